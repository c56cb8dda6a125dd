#!/usr/bin/env bash
# The CPU ranking experiment of docs/nas-bench-201.md: `nao correlate --supernet` with
# the nb201-rank-cpu recipe (uniform and balanced sampling, 100 cells against
# valid_acc_200ep, tau every 2 epochs) for seeds 0, 1 and 2, then the summary table.
# About 20 minutes per seed on one thread of an idle 2-core machine.
#
#   bash benchmarks/nb201_ranking.sh [OUTPUT_DIR] [extra nao correlate flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${TMPDIR:-/tmp}/naonet-nb201-ranking}
shift || true
DATA=${NAONET_BENCH_DATA:-../shared/data}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
mkdir -p "$OUTPUT_DIR"
for seed in 0 1 2; do
    python3 -m naonet.cli.main correlate --supernet --preset nb201-rank-cpu \
        --reference "table:$DATA/nasbench201/nb201_cifar10.csv" \
        --data "$DATA/cifar10/cifar10-jpg.tar.gz" --archs 100 --score-every 2 \
        --seed "$seed" --output "$OUTPUT_DIR/seed$seed" "$@" 2>&1 \
        | tee "$OUTPUT_DIR/seed$seed.log"
done
python3 benchmarks/nb201_ranking.py "$OUTPUT_DIR"/seed* | tee "$OUTPUT_DIR/table.md"
