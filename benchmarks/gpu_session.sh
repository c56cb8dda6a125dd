#!/usr/bin/env bash
# Every GPU check of the project as one command that fits one lent device call (10
# minutes a command, 15 minutes of device time a session, the machine's start included):
# (1) benchmarks/gpu_nb201.sh, the NAS-Bench-201 ranking experiment and one-shot search
# at the paper's scale (issue 8, item 7), in NB201_SECONDS (default 360); (2)
# benchmarks/gpu.sh, the speed figures, in FIGURES_SECONDS (default 180); (3) the
# CUDA-only equivalence tests (`pytest -m gpu`), in what is left of 570 s. Everything
# it writes is packed into one archive, gpu-session.tar.gz, beside the two tables, in
# OUTPUT_DIR (default $OUT, the folder a device call brings back: at most 8 files).
# Run once on an H200 (docs/benchmarks.md, "GPU figures"): at this split only figures (e)
# and (g) finished (compiling NAONet-V2-36 outlasts a figure's 15-35 s share) and the
# 50-epoch rankings stopped at epochs 27 and 24; where device time allows, give each part
# a call of its own (NB201_SECONDS=480, FIGURES_SECONDS=480).
#
# From a session that was lent a device (docs/benchmarks.md, "GPU figures"):
#   mkdir -p shared && cp -r ../shared/data shared/   # ../shared does not travel
#   echo /shared/ >> .git/info/exclude                # keep it out of commits
#   run(command="bash benchmarks/gpu_session.sh", carry=["shared"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${OUT:-${TMPDIR:-/tmp}/naonet-gpu-session}}
WORK=${TMPDIR:-/tmp}/naonet-gpu-session-work
rm -rf "$WORK" && mkdir -p "$WORK" "$OUTPUT_DIR"
start=$SECONDS
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$WORK/gpu.txt"

echo "== gpu_nb201.sh (${NB201_SECONDS:-360} s)"
NAONET_GPU_SECONDS=${NB201_SECONDS:-360} bash benchmarks/gpu_nb201.sh "$WORK/nb201" \
    > "$WORK/nb201.log" 2>&1
tail -n 40 "$WORK/nb201.log"
echo "== gpu.sh (${FIGURES_SECONDS:-180} s; $((SECONDS - start)) s elapsed)"
NAONET_GPU_SECONDS=${FIGURES_SECONDS:-180} bash benchmarks/gpu.sh "$WORK/figures" \
    > "$WORK/figures.log" 2>&1
cat "$WORK/figures/gpu-table.md" 2>/dev/null || tail -n 20 "$WORK/figures.log"
left=$(( 570 - (SECONDS - start) ))
echo "== pytest -m gpu (${left} s left)"
if [ "$left" -ge 20 ]; then
    PYTHONPATH="$PWD/src" timeout "$left" python3 -m pytest -q -m gpu -p no:cacheprovider \
        tests/test_fast_paths.py > "$WORK/pytest-gpu.log" 2>&1
    tail -n 5 "$WORK/pytest-gpu.log"
fi
cp "$WORK/nb201/ranking-table.md" "$OUTPUT_DIR/nb201-ranking-table.md" 2>/dev/null
cp "$WORK/figures/gpu-table.md" "$OUTPUT_DIR/gpu-table.md" 2>/dev/null
tar -czf "$OUTPUT_DIR/gpu-session.tar.gz" -C "$WORK" --exclude='*.pt' .
echo "gpu_session.sh: $((SECONDS - start)) s in all; $OUTPUT_DIR/gpu-session.tar.gz"
