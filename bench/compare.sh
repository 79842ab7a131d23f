#!/usr/bin/env bash
# Side-by-side speed of shohin and llama.cpp (the reference peer), in one run,
# on the same files, threads and machine. Not part of CI (it builds llama.cpp,
# ~8 min once, and writes ~6 GiB of synthetic models).
#
# usage: bench/compare.sh [THREADS] [REPETITIONS]
# env:   SHOHIN_BENCH_DIR (default ~/.cache/shohin-bench) for the models.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
R=${2:-3}
SHARED=../shared
D=${SHOHIN_BENCH_DIR:-$HOME/.cache/shohin-bench}
mkdir -p "$D"

PEER=$(bash "$SHARED/peer/build-llama-cpp.sh")
export PYTHONPATH="$PEER/src/vendor/llama.cpp/gguf-py"
VOCAB="$SHARED/fixtures/ggml-vocab-qwen2.gguf"
for q in q1_0 q2_0; do
  [ -f "$D/synth-8b-$q.gguf" ] || python3 "$SHARED/tools/synth_gguf.py" "$D/synth-8b-$q.gguf" --shape 8b --qtype "$q" --vocab "$VOCAB" >&2
done
# Bonsai 2 (qwen35 hybrid) at the 9B shape, in upstream types llama.cpp runs.
for q in q1_0 q2_0; do
  [ -f "$D/synth-bonsai2-9b-$q.gguf" ] || python3 bench/synth_qwen35.py "$D/synth-bonsai2-9b-$q.gguf" --shape 9b --qtype "$q" --vocab "$VOCAB" >&2
done
# The same ternary weights in llama.cpp's fast ternary format.
[ -f "$D/synth-8b-tq2_0.gguf" ] || "$PEER/bin/llama-quantize" --allow-requantize "$D/synth-8b-q2_0.gguf" "$D/synth-8b-tq2_0.gguf" TQ2_0 >&2
REAL=$(bash "$SHARED/fixtures/fetch-real-model.sh")
LLAMA=$(bash scripts/fetch-llama-model.sh)

cargo build --release >&2
SHOHIN=target/release/shohin
OUT=$(mktemp -d)

# name | shohin file | llama.cpp file | pp | tg
CASES=(
  "8B Q1_0|$D/synth-8b-q1_0.gguf|$D/synth-8b-q1_0.gguf|64|16"
  "8B ternary: shohin Q2_0 g64 vs llama.cpp TQ2_0|$D/synth-8b-q2_0.gguf|$D/synth-8b-tq2_0.gguf|64|16"
  "8B TQ2_0 (same file)|$D/synth-8b-tq2_0.gguf|$D/synth-8b-tq2_0.gguf|64|16"
  "real 0.5B Q4_K_M mix|$REAL|$REAL|128|32"
  "real SmolLM2-135M llama Q4_1|$LLAMA|$LLAMA|128|32"
  "Bonsai 2 9B-shape qwen35 Q1_0|$D/synth-bonsai2-9b-q1_0.gguf|$D/synth-bonsai2-9b-q1_0.gguf|64|16"
  "Bonsai 2 9B-shape qwen35 Q2_0 g64|$D/synth-bonsai2-9b-q2_0.gguf|$D/synth-bonsai2-9b-q2_0.gguf|64|16"
)
i=0
for c in "${CASES[@]}"; do
  IFS='|' read -r name sf lf pp tg <<<"$c"
  echo "== $name" >&2
  "$PEER/bin/llama-bench" -m "$lf" -t "$T" -p "$pp" -n "$tg" -r "$R" -o json >"$OUT/llama-$i.json" 2>/dev/null
  "$SHOHIN" bench -m "$sf" -t "$T" -p "$pp" -n "$tg" -r "$R" --json >"$OUT/shohin-$i.json"
  echo "$name" >"$OUT/name-$i"
  i=$((i + 1))
done
# shohin-only: the PrismML g128 layout against g64, same shapes; PTQ1_0
# against PQ2_0 on the Bonsai 2 9B shape (llama.cpp has neither).
"$SHOHIN" bench --synthetic ternary-8b -t "$T" -p 64 -n 16 -r "$R" --json >"$OUT/g64.json"
"$SHOHIN" bench --synthetic ternary-g128-8b -t "$T" -p 64 -n 16 -r "$R" --json >"$OUT/g128.json"
"$SHOHIN" bench --synthetic pq2-9b -t "$T" -p 64 -n 16 -r "$R" --json >"$OUT/pq2.json"
"$SHOHIN" bench --synthetic ptq1-9b -t "$T" -p 64 -n 16 -r "$R" --json >"$OUT/ptq1.json"

python3 - "$OUT" "$i" "$T" <<'PY'
import json, sys
out, n, t = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def ts(rows, kind):
    for r in rows:
        if (kind == 'pp' and r['n_prompt'] > 0 and r['n_gen'] == 0) or (kind == 'tg' and r['n_gen'] > 0 and r['n_prompt'] == 0):
            return r['avg_ts'], r.get('bandwidth_gbs'), r['n_prompt'] or r['n_gen']
    return None, None, None
print(f"| case ({t} threads) | test | llama.cpp t/s | shohin t/s | ratio | shohin tg GB/s |")
print("|---|---|---:|---:|---:|---:|")
for i in range(n):
    name = open(f"{out}/name-{i}").read().strip()
    l = json.load(open(f"{out}/llama-{i}.json")); s = json.load(open(f"{out}/shohin-{i}.json"))
    for kind in ('pp', 'tg'):
        lt, _, k = ts(l, kind); st, bw, _ = ts(s, kind)
        bws = f"{bw:.1f}" if bw else ""
        print(f"| {name} | {kind}{k} | {lt:.2f} | {st:.2f} | {st/lt:.2f}x | {bws} |")
g64 = json.load(open(f"{out}/g64.json")); g128 = json.load(open(f"{out}/g128.json"))
for kind in ('pp', 'tg'):
    a, _, k = ts(g64, kind); b, _, _ = ts(g128, kind)
    print(f"| shohin synthetic ternary 8B: g128 vs g64 | {kind}{k} | (g64) {a:.2f} | (g128) {b:.2f} | {b/a:.2f}x | |")
pq2 = json.load(open(f"{out}/pq2.json")); ptq1 = json.load(open(f"{out}/ptq1.json"))
for kind in ('pp', 'tg'):
    a, _, k = ts(pq2, kind); b, _, _ = ts(ptq1, kind)
    print(f"| shohin synthetic Bonsai 2 9B: PTQ1_0 vs PQ2_0 | {kind}{k} | (PQ2_0) {a:.2f} | (PTQ1_0) {b:.2f} | {b/a:.2f}x | |")
PY
rm -rf "$OUT"
