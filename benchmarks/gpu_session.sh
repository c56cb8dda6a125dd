#!/usr/bin/env bash
# Every GPU check of the project as one command that fits one lent device call (10
# minutes a command, 15 minutes of device time a session, the machine's start included),
# all done and packed within 590 s:
# (1) benchmarks/nb201_step.py, about 80 s (stopped at 110): the NB201 supernet step at
#     the paper's scale with one process and with three at once, bf16 and float32, and
#     the layout and autocast setting for gpu_nb201.sh. NAONET_GPU_AT_ONCE and
#     NAONET_GPU_AMP given in the environment win over its choice; with both given it is
#     skipped, with NAONET_GPU_AMP alone it measures that setting only.
# (2) benchmarks/gpu_nb201.sh so laid out, the NAS-Bench-201 ranking experiment and
#     one-shot search at the paper's scale (issue 8, item 7), in NB201_SECONDS (default
#     480, the item's 8 minutes) or what is left, if less.
# (3) benchmarks/gpu.sh, the speed figures, in FIGURES_SECONDS (default 0: skipped; they
#     need a call of their own at 480) or what is left, if less.
# (4) the CUDA-only equivalence tests (`pytest -m gpu`) in what is left, then (5)
#     benchmarks/step_operators.py, the calls and kernels of a supernet step, if 45 s are.
# After each part, what it wrote is packed into one archive, gpu-session.tar.gz, beside
# the tables, in OUTPUT_DIR (default $OUT, the folder a device call brings back: at most
# 8 files), so a call cut short still brings back the parts that finished. Run once on an
# H200 before the probe existed (docs/benchmarks.md, "GPU figures"): with 360 s for
# gpu_nb201.sh and 180 s for the figures, only figures (e) and (g) finished and the
# 50-epoch rankings stopped at epochs 27 and 24.
#
# From a session that was lent a device (docs/benchmarks.md, "GPU figures"):
#   mkdir -p shared && cp -r ../shared/data shared/   # ../shared does not travel
#   echo /shared/ >> .git/info/exclude                # keep it out of commits
#   run(command="bash benchmarks/gpu_session.sh", carry=["shared"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${OUT:-${TMPDIR:-/tmp}/naonet-gpu-session}}
WORK=${TMPDIR:-/tmp}/naonet-gpu-session-work
LIMIT=590  # of the call's 600 s: whatever runs is done, and packed, by then
rm -rf "$WORK" && mkdir -p "$WORK" "$OUTPUT_DIR"
start=$SECONDS
source benchmarks/shared_data.sh  # before the probe: a forgotten carry costs nothing
[ -n "$DATA" ] || { echo "gpu_session.sh: no shared data folder (copy ../shared/data to shared/data and carry it)"; exit 2; }
# What has been measured so far goes back with the call even if a later part overruns it.
pack() {
    cp "$WORK/nb201-step.log" "$OUTPUT_DIR/nb201-step.md" 2>/dev/null
    cp "$WORK/nb201/ranking-table.md" "$OUTPUT_DIR/nb201-ranking-table.md" 2>/dev/null
    cp "$WORK/figures/gpu-table.md" "$OUTPUT_DIR/gpu-table.md" 2>/dev/null
    tar -czf "$OUTPUT_DIR/gpu-session.tar.gz" -C "$WORK" --exclude='*.pt' .
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$WORK/gpu.txt"

if [ -n "${NAONET_GPU_AT_ONCE:-}" ] && [ -n "${NAONET_GPU_AMP:-}" ]; then
    echo "== nb201_step.py skipped: NAONET_GPU_AT_ONCE and NAONET_GPU_AMP are given"
else
    echo "== nb201_step.py (the supernet step: which layout and autocast setting)"
    amps=(${NAONET_GPU_AMP:-bf16 none})  # a given autocast setting is the only one tried
    timeout 110 python3 benchmarks/nb201_step.py --device cuda --amps "${amps[@]}" \
        --budget "${NB201_SECONDS:-480}" --json "$WORK/nb201-step.json" \
        --env-file "$WORK/nb201-layout.env" 2>&1 | tee "$WORK/nb201-step.log"
    if [ -f "$WORK/nb201-layout.env" ]; then
        while IFS='=' read -r name value; do  # the environment's own settings win
            [ -z "${!name:-}" ] && export "$name=$value"
        done < "$WORK/nb201-layout.env"
    fi
    pack
fi
# gpu_nb201.sh ends by its budget plus about 15 s (its CUDA check, the ranking table)
nb201=$(( LIMIT - (SECONDS - start) - 15 ))
nb201=$(( nb201 < ${NB201_SECONDS:-480} ? nb201 : ${NB201_SECONDS:-480} ))
echo "== gpu_nb201.sh (${nb201} s, NAONET_GPU_AT_ONCE=${NAONET_GPU_AT_ONCE:-3}," \
     "NAONET_GPU_AMP=${NAONET_GPU_AMP:-bf16}; $((SECONDS - start)) s elapsed)"
NAONET_GPU_SECONDS=$nb201 bash benchmarks/gpu_nb201.sh "$WORK/nb201" > "$WORK/nb201.log" 2>&1
tail -n 40 "$WORK/nb201.log"
pack
figures=$(( LIMIT - (SECONDS - start) - 20 ))
figures=$(( figures < ${FIGURES_SECONDS:-0} ? figures : ${FIGURES_SECONDS:-0} ))
if [ "$figures" -gt 0 ]; then
    echo "== gpu.sh (${figures} s; $((SECONDS - start)) s elapsed)"
    NAONET_GPU_SECONDS=$figures bash benchmarks/gpu.sh "$WORK/figures" \
        > "$WORK/figures.log" 2>&1
    cat "$WORK/figures/gpu-table.md" 2>/dev/null || tail -n 20 "$WORK/figures.log"
    pack
fi
left=$(( LIMIT - 10 - (SECONDS - start) ))
echo "== pytest -m gpu (${left} s left)"
if [ "$left" -ge 20 ]; then
    PYTHONPATH="$PWD/src" timeout "$left" python3 -m pytest -q -m gpu -p no:cacheprovider \
        tests/test_fast_paths.py > "$WORK/pytest-gpu.log" 2>&1
    tail -n 5 "$WORK/pytest-gpu.log"
fi
left=$(( LIMIT - 10 - (SECONDS - start) ))
if [ "$left" -ge 45 ]; then  # (5) the kernels a supernet step launches, by phase
    echo "== step_operators.py (${left} s left)"
    timeout $(( left - 5 )) python3 benchmarks/step_operators.py --device cuda \
        > "$WORK/step-operators.md" 2>&1
    grep '^|\|ratio' "$WORK/step-operators.md"
fi
pack
echo "gpu_session.sh: $((SECONDS - start)) s in all; $OUTPUT_DIR/gpu-session.tar.gz"
