#!/usr/bin/env bash
# GPU call 2: wait (up to ~9 minutes) for the detached quality runs, then hand the results back.
cd "$(dirname "$0")/../.."
for _ in $(seq 1 108); do [ -f runs/quality.done ] && break; sleep 5; done
tail -n 5 runs/bench-beauty.log runs/bench-ml100k.log 2>/dev/null
cp benchmarks/results/seqrec_*.json runs/rb_ml100k.json "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" runs/bench/*/results.json runs/bench/*/ranks.npz runs/bench/logs 2>/dev/null
true
