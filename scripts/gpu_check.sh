#!/usr/bin/env bash
# GPU verification without internet: install edgecnn from a folder of wheels into a fresh
# virtual environment, then run `doctor`, `classify --provider cuda` and `--provider tensorrt`,
# and `bench --provider all` on the bundled model and a plant-sized model, and print one table.
#
#   scripts/gpu_check.sh WHEEL_DIR [PLANT_ONNX]
#
# WHEEL_DIR holds the wheels for `edgecnn[cuda,openvino]` (an edgecnn wheel, or setuptools to
# build this checkout) and their dependencies, e.g. made on a machine with internet by
#   pip download -d wheels 'onnxruntime-gpu[cuda,cudnn]' openvino numpy opencv-python pillow \
#       click setuptools && pip wheel -w wheels --no-deps .
# PLANT_ONNX: a plant-sized model (benchmarks/engines_speed.py caches one under scratch/bench);
# without it the plant rows are skipped and the table says so. Results go to gpu-check/ (JSON).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 WHEEL_DIR [PLANT_ONNX]" >&2
  exit 2
fi
WHEELS=$(cd "$1" && pwd)
PLANT=${2:-}
cd "$(dirname "$0")/.."
OUT=${GPU_CHECK_OUT:-gpu-check}
VENV=${GPU_CHECK_VENV:-"$OUT/venv"}
mkdir -p "$OUT"

python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS")
if ls "$WHEELS"/edgecnn-*.whl >/dev/null 2>&1; then
  "${PIP[@]}" 'edgecnn[cuda,openvino]'
else
  "${PIP[@]}" setuptools
  "${PIP[@]}" --no-build-isolation '.[cuda,openvino]'
fi
EDGECNN="$VENV/bin/edgecnn"

status() {  # status NAME COMMAND...: run, keep the output, record the exit code
  local name=$1
  shift
  set +e
  "$@" >"$OUT/$name.txt" 2>&1
  echo $? >"$OUT/$name.rc"
  set -e
}

status doctor "$EDGECNN" doctor
status classify-cuda "$EDGECNN" classify samples/images --provider cuda -o "$OUT/classify-cuda.csv"
status classify-tensorrt "$EDGECNN" classify samples/images --provider tensorrt \
  -o "$OUT/classify-tensorrt.csv"
BENCH=(bench --provider all --batch-sizes 1,16 --threads auto --images samples/images)
status bench-bundled "$EDGECNN" "${BENCH[@]}" --json "$OUT/bench-bundled.json"
if [ -n "$PLANT" ]; then
  status bench-plant "$EDGECNN" "${BENCH[@]}" "$PLANT" --json "$OUT/bench-plant.json"
fi

"$VENV/bin/python" - "$OUT" "${PLANT:-}" <<'PY'
import json, sys
from pathlib import Path

out, plant = Path(sys.argv[1]), sys.argv[2]
def text(name):
    path = out / f"{name}.txt"
    return path.read_text(errors="replace") if path.exists() else ""
def rc(name):
    path = out / f"{name}.rc"
    return path.read_text().strip() if path.exists() else "-"

print("== edgecnn GPU check ==")
for line in text("doctor").splitlines():
    if line.startswith(("CUDA:", "  cpu", "  openvino", "  cuda", "  tensorrt", "CPU:")):
        print(line)
for engine in ("cuda", "tensorrt"):
    last = (text(f"classify-{engine}").strip().splitlines() or ["(no output)"])[-1]
    print(f"classify --provider {engine}: exit {rc(f'classify-{engine}')}: {last[:150]}")
rows = []
for name in ("bench-bundled", "bench-plant"):
    path = out / f"{name}.json"
    if not path.exists():
        note = "skipped (no PLANT_ONNX given)" if name == "bench-plant" and not plant else \
            f"failed (exit {rc(name)}): {(text(name).strip().splitlines() or [''])[-1][:150]}"
        print(f"{name}: {note}")
        continue
    report = json.loads(path.read_text())
    first = {(w["model"], w["threads"]): w for w in report.get("warmup", [])}
    for row in report["model_only"]:
        if row.get("keras"):
            continue
        warm = first.get((row["model"], row["threads"]), {})
        rows.append((row["model"], row["batch_size"], row["images_per_second"],
                     row.get("ratio_to_fastest"), row.get("top1_agreement"),
                     warm.get("session_s")))
print()
print(f"{'model [engine]':<46} {'batch':>5} {'images/s':>10} {'vs fastest':>10} "
      f"{'top-1 agree':>11} {'load+build s':>12}")
for model, batch, ips, ratio, agree, build in rows:
    cell = lambda v, f: "-" if v is None else format(v, f)
    print(f"{model[:46]:<46} {batch:>5} {ips:>10.1f} {cell(ratio, '.2f'):>10} "
          f"{cell(agree, '.3f'):>11} {cell(build, '.1f'):>12}")
PY
