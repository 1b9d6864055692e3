#!/usr/bin/env bash
# The README's test command: a local virtual environment with everything the tests need
# (training + export extras, pytest, ruff), Chromium for the live preview's browser test,
# then the whole suite. Extra arguments go to pytest (e.g. -m "not slow" for the fast tests).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[train,dev]'

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "could not install chromium: the browser test will be skipped"
  else
    echo "chromium not found and not root: the browser test will be skipped"
  fi
fi

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
