#!/usr/bin/env bash
# Every GPU check of the project as one command that fits one lent device call (10
# minutes a command, 15 minutes of device time a session, the machine's start included):
# (1) benchmarks/nb201_step.py, about 80 s: the NB201 supernet step at the paper's scale
# with one process and with three at once, bf16 and float32, and which layout and
# autocast setting would let gpu_nb201.sh train soonest; (2) benchmarks/gpu_nb201.sh
# with that layout and setting (NAONET_GPU_AT_ONCE and NAONET_GPU_AMP given in the
# environment win over the probe), the NAS-Bench-201 ranking experiment and one-shot
# search at the paper's scale (issue 8, item 7), in NB201_SECONDS (default 480, the
# item's 8 minutes); (3) benchmarks/gpu.sh, the speed figures, in FIGURES_SECONDS
# (default 0: skipped; 480 in a call of their own); (4) the CUDA-only equivalence tests
# (`pytest -m gpu`) in what is left of 590 s. Everything it writes is packed into one
# archive, gpu-session.tar.gz, beside the tables, in OUTPUT_DIR (default $OUT, the
# folder a device call brings back: at most 8 files). Run once on an H200 before the
# probe existed (docs/benchmarks.md, "GPU figures"): with 360 s for gpu_nb201.sh and
# 180 s for the figures, only figures (e) and (g) finished and the 50-epoch rankings
# stopped at epochs 27 and 24.
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

echo "== nb201_step.py (the supernet step: which layout and autocast setting)"
timeout 150 python3 benchmarks/nb201_step.py --device cuda --json "$WORK/nb201-step.json" \
    --env-file "$WORK/nb201-layout.env" 2>&1 | tee "$WORK/nb201-step.log"
if [ -f "$WORK/nb201-layout.env" ]; then
    while IFS='=' read -r name value; do  # the environment's own settings win
        [ -z "${!name:-}" ] && export "$name=$value"
    done < "$WORK/nb201-layout.env"
fi
echo "== gpu_nb201.sh (${NB201_SECONDS:-480} s, NAONET_GPU_AT_ONCE=${NAONET_GPU_AT_ONCE:-3}," \
     "NAONET_GPU_AMP=${NAONET_GPU_AMP:-bf16}; $((SECONDS - start)) s elapsed)"
NAONET_GPU_SECONDS=${NB201_SECONDS:-480} bash benchmarks/gpu_nb201.sh "$WORK/nb201" \
    > "$WORK/nb201.log" 2>&1
tail -n 40 "$WORK/nb201.log"
if [ "${FIGURES_SECONDS:-0}" -gt 0 ]; then
    echo "== gpu.sh (${FIGURES_SECONDS} s; $((SECONDS - start)) s elapsed)"
    NAONET_GPU_SECONDS=$FIGURES_SECONDS bash benchmarks/gpu.sh "$WORK/figures" \
        > "$WORK/figures.log" 2>&1
    cat "$WORK/figures/gpu-table.md" 2>/dev/null || tail -n 20 "$WORK/figures.log"
fi
left=$(( 590 - (SECONDS - start) ))
echo "== pytest -m gpu (${left} s left)"
if [ "$left" -ge 20 ]; then
    PYTHONPATH="$PWD/src" timeout "$left" python3 -m pytest -q -m gpu -p no:cacheprovider \
        tests/test_fast_paths.py > "$WORK/pytest-gpu.log" 2>&1
    tail -n 5 "$WORK/pytest-gpu.log"
fi
cp "$WORK/nb201/ranking-table.md" "$OUTPUT_DIR/nb201-ranking-table.md" 2>/dev/null
cp "$WORK/nb201-step.log" "$OUTPUT_DIR/nb201-step.md" 2>/dev/null
cp "$WORK/figures/gpu-table.md" "$OUTPUT_DIR/gpu-table.md" 2>/dev/null
tar -czf "$OUTPUT_DIR/gpu-session.tar.gz" -C "$WORK" --exclude='*.pt' .
echo "gpu_session.sh: $((SECONDS - start)) s in all; $OUTPUT_DIR/gpu-session.tar.gz"
