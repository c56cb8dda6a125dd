#!/usr/bin/env bash
# The CPU ranking experiment of docs/nas-bench-201.md: `nao correlate --supernet` with
# the nb201-rank-cpu recipe (100 cells against valid_acc_200ep, the parameter-count
# ranking of the same cells beside it) for seeds 0, 1 and 2, then the summary table.
# Each seed trains its uniform and its balanced supernet side by side, one process and
# one torch thread each, so a seed takes the 2 cores of this machine for one run's time
# (about 21 minutes).
#
#   bash benchmarks/nb201_ranking.sh [OUTPUT_DIR] [extra nao correlate flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${TMPDIR:-/tmp}/naonet-nb201-ranking}
shift || true
source benchmarks/shared_data.sh
[ -n "$DATA" ] || { echo "nb201_ranking.sh: no shared data folder (set NAONET_SHARED to the folder holding data/)"; exit 2; }
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# One thread per process: under passive OpenMP waiting, a second thread costs the
# small supernet more in wake-ups than it saves (docs/nas-bench-201.md).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
mkdir -p "$OUTPUT_DIR"
for seed in 0 1 2; do
    for sampling in uniform balanced; do
        python3 -m naonet.cli.main correlate --supernet --preset nb201-rank-cpu \
            --reference "table:$DATA/nasbench201/nb201_cifar10.csv" \
            --data "$DATA/cifar10/cifar10-jpg.tar.gz" --archs 100 --samplings "$sampling" \
            --score-every 24 --seed "$seed" --output "$OUTPUT_DIR/$sampling-seed$seed" "$@" \
            > "$OUTPUT_DIR/$sampling-seed$seed.log" 2>&1 &
    done
    wait
    tail -n 4 "$OUTPUT_DIR"/*-seed"$seed".log
done
python3 benchmarks/nb201_ranking.py "$OUTPUT_DIR"/*-seed* | tee "$OUTPUT_DIR/table.md"
