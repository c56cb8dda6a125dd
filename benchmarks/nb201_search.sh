#!/usr/bin/env bash
# The CPU-scale one-shot NAO-V2 search of docs/nas-bench-201.md (issue 8, item 5):
# `nao search --space nb201 --preset nb201-search-cpu` on the shared CIFAR-10 for seeds
# 0, 1 and 2, and random search with the same supernet training, scoring and re-rank
# (`--strategy random`, the same number of cells scored) as its baseline; then the
# table of true test accuracies (the NB201 table is read for the report only).
# One search at a time on the machine's 2 cores: one torch thread for the supernet
# phases (a second one, under OMP_WAIT_POLICY=PASSIVE, makes them slower), and the
# preset's re-rank trains two cells at once in two worker processes, a thread each.
#
#   bash benchmarks/nb201_search.sh [OUTPUT_DIR] [extra nao search flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${TMPDIR:-/tmp}/naonet-nb201-search}
shift || true
source benchmarks/shared_data.sh
[ -n "$DATA" ] || { echo "nb201_search.sh: no shared data folder (set NAONET_SHARED to the folder holding data/)"; exit 2; }
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
mkdir -p "$OUTPUT_DIR"
search() {  # STRATEGY SEED
    python3 -m naonet.cli.main search --space nb201 --preset nb201-search-cpu \
        --strategy "$1" --seed "$2" --no-progress \
        --reference "table:$DATA/nasbench201/nb201_cifar10.csv" \
        --data "$DATA/cifar10/cifar10-jpg.tar.gz" --output "$OUTPUT_DIR/$1-seed$2" "${@:3}" \
        > "$OUTPUT_DIR/$1-seed$2.log" 2>&1
}
for strategy in nao random; do
    for seed in 0 1 2; do search "$strategy" "$seed" "$@"; done
done
tail -n 2 "$OUTPUT_DIR"/*.log
python3 benchmarks/nb201_search.py "$OUTPUT_DIR"/*-seed? | tee "$OUTPUT_DIR/table.md"
