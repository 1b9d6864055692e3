#!/usr/bin/env bash
# The README's test command: a local virtual environment with everything the tests need
# (training + export extras, the OpenVINO engine, the HTTP server, pytest, ruff), Chromium for
# the live preview's browser test, then the whole suite. Extra arguments go to pytest (e.g. -m "not slow" for the fast tests).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[train,openvino,serve,ray,dev]'

# Debian packages for the live tests: chromium (browser preview), Xvfb + xdotool (window).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xdotool >/dev/null 2>&1 || missing+=(xdotool)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the live tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
      >/dev/null) || echo "could not install ${missing[*]}: the tests that need them will skip"
  else
    echo "${missing[*]} not found and not root: the tests that need them will skip"
  fi
fi

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
