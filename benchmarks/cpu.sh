#!/usr/bin/env bash
# Figures (a)-(h) at the default (CPU) sizes on this machine's CPU, one after the
# other, each interleaving the baseline and naonet's defaults; JSON reports, logs and a
# markdown table go to OUTPUT_DIR (default $TMPDIR/naonet-bench-cpu).
#
#   OMP_NUM_THREADS=1 bash benchmarks/cpu.sh [OUTPUT_DIR]
#   python benchmarks/report.py OUTPUT_DIR/*.json --docs docs/benchmarks.md --section cpu
#
# On a machine other programs also load, keep OMP_NUM_THREADS=1: oversubscribed
# OpenMP threads make torch several times slower and the figures noisy.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTPUT_DIR=${1:-${TMPDIR:-/tmp}/naonet-bench-cpu}
mkdir -p "$OUTPUT_DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
status=0
for name in train_step inference supernet_step scoring controller epoch pooling counting; do
    echo "== $name"
    python3 benchmarks/"$name".py --device cpu --json "$OUTPUT_DIR/$name.json" 2>&1 \
        | tee "$OUTPUT_DIR/$name.log" || status=1
done
python3 benchmarks/report.py "$OUTPUT_DIR"/*.json | tee "$OUTPUT_DIR/cpu-table.md"
exit $status
