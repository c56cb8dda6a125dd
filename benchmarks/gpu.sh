#!/usr/bin/env bash
# Figures (a)-(g) at full size on one CUDA GPU: the eager float32 baseline against
# naonet's defaults (channels_last, bf16 autocast, torch.compile, device pipeline,
# batched scoring), interleaved in one run per figure. Writes a markdown table and
# the JSON reports to OUTPUT_DIR (default: $OUT if set, else $TMPDIR/naonet-bench-gpu).
#
#   bash benchmarks/gpu.sh [OUTPUT_DIR]
#   python benchmarks/report.py OUTPUT_DIR/*.json --docs docs/benchmarks.md --section gpu
#
# Needs python3 with torch (and torchvision, pillow, numpy, tqdm, pyyaml); naonet is
# read from src/ (no install). Real CIFAR-10 images for (d) and (f): the archive in
# $NAONET_SHARED/data, shared/data or ../shared/data (benchmarks/workloads.py); without
# it both variants use random images (the same cost). Budget: NAONET_GPU_SECONDS
# (default 480 s). Each figure has its share of it as a time limit
# (below): it starts no timed round past it and is stopped 10 s later, keeping the
# rounds it finished (written after every round); the other figures still run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${OUT:-${TMPDIR:-/tmp}/naonet-bench-gpu}}
mkdir -p "$OUTPUT_DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
# One inductor cache for all figures: (f) reuses the training graph (a) compiled.
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/naonet-inductor-cache}
export NAONET_CACHE=${NAONET_CACHE:-/tmp/naonet-cache}

python3 - <<'PY' || { echo "gpu.sh: no CUDA device visible to torch"; exit 1; }
import torch
assert torch.cuda.is_available()
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}; "
      f"{torch.get_num_threads()} CPU threads")
PY

BUDGET=${NAONET_GPU_SECONDS:-480}
start=$SECONDS
status=0
# figure script : its share of 480 s, after which it starts no new round (the shares sum
# to 385; with 10 s of grace per figure, the start-up check and the search estimate the
# script stays inside the budget). Every share is scaled by BUDGET / 480.
for entry in train_step:95 inference:55 supernet_step:40 scoring:55 controller:35 epoch:90 pooling:15; do
    name=${entry%%:*}
    limit=$(( ${entry##*:} * BUDGET / 480 ))
    echo "== $name (soft limit ${limit} s, $((SECONDS - start)) s elapsed)"
    timeout --signal=INT --kill-after=5 "$((limit + 10))" \
        python3 benchmarks/"$name".py --full --device cuda --time-limit "$limit" \
        --json "$OUTPUT_DIR/$name.json" 2>&1 | tee "$OUTPUT_DIR/$name.log"
    code=${PIPESTATUS[0]}
    if [ "$code" -ne 0 ]; then
        echo "gpu.sh: $name did not finish (exit $code; 124 = over its time limit)"
        status=1
    fi
done

reports=("$OUTPUT_DIR"/*.json)
if [ -e "${reports[0]}" ]; then
    python3 benchmarks/report.py "${reports[@]}" | tee "$OUTPUT_DIR/gpu-table.md"
fi
# The full nao-v2-cifar10 search's predicted wall time on this GPU (about a minute), in
# what is left of the budget.
left=$(( BUDGET - (SECONDS - start) ))
if [ "$left" -ge 30 ]; then
    timeout "$left" python3 benchmarks/search.py --estimate --device cuda \
        | tee "$OUTPUT_DIR/search-estimate.md" || status=1
else
    echo "gpu.sh: no time left for the search estimate (${left} s of the budget)"
fi
echo "gpu.sh: $((SECONDS - start)) s in all; table in $OUTPUT_DIR/gpu-table.md"
exit $status
