#!/usr/bin/env bash
# NAS-Bench-201 at the paper's scale on one CUDA GPU (issue 8, item 7), in
# NAONET_GPU_SECONDS (default 480): (1) the supernet ranking experiment, C 16,
# 5 cells per stage, 32 px, the benchmark's 25k/25k split, 50 epochs, uniform and
# balanced sampling, 100 cells scored by validation loss against valid_acc_200ep,
# beside the parameter-count ranking; (2) the one-shot NAO-V2 search on NB201 at the
# same scale, reporting the found cell's true test accuracy and rank among 15,625. The
# three runs share the GPU at once (NAONET_GPU_AT_ONCE=3, the default) or run one after
# another (1); all stop by the budget less 20 s. Measured at once on an H200
# (docs/nas-bench-201.md, "At the paper's scale on one GPU"): an epoch took about 12.3 s,
# so 50 epochs needed about 10.5 minutes per sampling; benchmarks/nb201_step.py measures
# which layout and autocast setting finish sooner (gpu_session.sh runs it first). A run
# stopped at the budget keeps the points it scored (summary.json, unfinished).
# Rerunning the script on the same OUTPUT_DIR resumes all three runs after their last
# saved epoch (a warm device keeps the folder; give a fresh one an ignored folder of the
# checkout, e.g. shared/gpu-nb201, and carry it). NAONET_GPU_AMP (default bf16; none is
# float32) and NAONET_GPU_TRAIN_ON (default space; sample trains the ranking supernets on
# the 100 scored cells only) select the recipe variants still to be measured at scale.
#
#   bash benchmarks/gpu_nb201.sh [OUTPUT_DIR]
#
# Needs the shared CIFAR-10 archive and the NB201 table ($NAONET_SHARED/data,
# shared/data or ../shared/data: benchmarks/shared_data.sh). Writes summary.json,
# rounds.jsonl and the logs to OUTPUT_DIR (default: $OUT if set, else
# $TMPDIR/naonet-gpu-nb201).
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${NAONET_GPU_SECONDS:-480}
AMP=${NAONET_GPU_AMP:-bf16}
TRAIN_ON=${NAONET_GPU_TRAIN_ON:-space}
AT_ONCE=${NAONET_GPU_AT_ONCE:-3}
case "$AT_ONCE" in
    1|3) ;;
    *) echo "gpu_nb201.sh: NAONET_GPU_AT_ONCE is 3 (the three runs at once) or 1 (one after another), not '$AT_ONCE'"; exit 2 ;;
esac
OUTPUT_DIR=${1:-${OUT:-${TMPDIR:-/tmp}/naonet-gpu-nb201}}
mkdir -p "$OUTPUT_DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
source benchmarks/shared_data.sh
[ -n "$DATA" ] || { echo "gpu_nb201.sh: no shared data folder (copy ../shared/data to shared/data, or set NAONET_SHARED)"; exit 2; }
TABLE="table:$DATA/nasbench201/nb201_cifar10.csv"
IMAGES="$DATA/cifar10/cifar10-jpg.tar.gz"
NAO=(python3 -m naonet.cli.main)  # an array, not a function: timeout runs commands

python3 -c "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))" \
    || { echo "gpu_nb201.sh: no CUDA device visible to torch"; exit 1; }
start=$SECONDS
deadline=$(( start + BUDGET - 20 ))  # every run stops by then: SIGINT, and 10 s later a kill
# Seconds a run may take: what is left before the deadline, less the share ($1 % of the
# budget) kept for the runs after it (one after another, each ranking has 40 %, the
# search 20 %, and a run that ends early hands its time on).
limit() { local left=$(( deadline - SECONDS - BUDGET * $1 / 100 )); echo $(( left > 1 ? left : 1 )); }

# The preset's batch 64 (on the CPU, batch 256 at lr 0.1 ranked at tau 0.01 against
# 0.30: what trains shared weights is the number of sampled cells). A GPU step at batch
# 64 is bound by kernel launches, not by the GPU; whether the three runs (the uniform and
# the balanced supernet, the search) finish sooner sharing the GPU as three processes at
# once or one after another is what benchmarks/nb201_step.py measures. The ranking scores
# on 5,000 held-out images at epochs 25 and 50.
ranking() {  # $1: sampling, $2: seconds
    timeout --signal=INT --kill-after=10 "$2" "${NAO[@]}" correlate --supernet \
        --preset nb201-rank-gpu --samplings "$1" --eval-batches 10 \
        --reference "$TABLE" --data "$IMAGES" --archs 100 --score-every 25 \
        --train-on "$TRAIN_ON" --device cuda --amp "$AMP" --workers 4 \
        --output "$OUTPUT_DIR/ranking_$1" > "$OUTPUT_DIR/ranking_$1.log" 2>&1
}
search() {  # $1: seconds
    timeout --signal=INT --kill-after=10 "$1" "${NAO[@]}" search --space nb201 \
        --preset nb201-rank-gpu --eval-batches 10 \
        --rounds 3 --supernet-epochs 8 --seed-pool-size 200 \
        --new-architectures 100 --top-seeds 100 --controller-epochs 300 --rerank-top 0 \
        --reference "$TABLE" --data "$IMAGES" --device cuda --amp "$AMP" --workers 4 \
        --no-progress --output "$OUTPUT_DIR/search" > "$OUTPUT_DIR/search.log" 2>&1
}
layout=$([ "$AT_ONCE" = 3 ] && echo "the three at once" || echo "one after another")
echo "== ranking (nb201-rank-gpu, uniform and balanced, tau at epochs 25 and 50, trained"
echo "   on the $TRAIN_ON, autocast $AMP) and the one-shot NAO-V2 search on NB201,"
echo "   $layout, all done within $(( BUDGET - 20 )) s"
if [ "$AT_ONCE" = 3 ]; then
    ranking uniform "$(limit 0)" &
    ranking balanced "$(limit 0)" &
    search "$(limit 0)" &
    wait
else
    ranking uniform "$(limit 60)"
    echo "   uniform done at $(( SECONDS - start )) s"
    ranking balanced "$(limit 20)"
    echo "   balanced done at $(( SECONDS - start )) s"
    search "$(limit 0)"
fi
cat "$OUTPUT_DIR"/ranking_*.log
python3 benchmarks/nb201_ranking.py "$OUTPUT_DIR"/ranking_uniform "$OUTPUT_DIR"/ranking_balanced \
    | tee "$OUTPUT_DIR/ranking-table.md"
echo "== one-shot NAO-V2 search on NB201"
cat "$OUTPUT_DIR/search.log"
echo "gpu_nb201.sh: $((SECONDS - start)) s in all; outputs in $OUTPUT_DIR"
