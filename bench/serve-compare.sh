#!/usr/bin/env bash
# Serving throughput of `shohin serve` against llama-server (the reference
# peer, built by ../shared/peer/build-llama-cpp.sh), in one run, on the same
# model, threads and machine. Not part of CI.
#
# usage: bench/serve-compare.sh [THREADS] [TOKENS] [ROUNDS] [MODEL]
# Both servers get 8 slots (-np 8) and 2048 tokens per slot; 1, 4, 8 and 16
# concurrent clients each send ROUNDS greedy streaming requests of TOKENS
# generated tokens (ignore_eos). Prints aggregate tokens/s, time to first
# token (p50 / p95) and the ratio shohin / llama-server.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
N=${2:-64}
R=${3:-2}
SHARED=../shared
MODEL=${4:-$(bash "$SHARED/fixtures/fetch-real-model.sh")}
PEER=$(bash "$SHARED/peer/build-llama-cpp.sh")
cargo build --release >&2
P1=18181
P2=18182
OUT=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT

target/release/shohin serve -m "$MODEL" --host 127.0.0.1 --port $P1 -t "$T" --parallel 8 --ctx-size 16384 2>"$OUT/shohin.log" &
PIDS+=($!)
LD_LIBRARY_PATH="$PEER/bin" "$PEER/bin/llama-server" -m "$MODEL" --host 127.0.0.1 --port $P2 -t "$T" -np 8 -c 16384 2>"$OUT/llama.log" >/dev/null &
PIDS+=($!)
for p in $P1 $P2; do
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$p/health" >/dev/null && break
    sleep 0.2
  done
done

printf '| clients | llama-server t/s | shohin t/s | ratio | llama-server TTFT p50 / p95 ms | shohin TTFT p50 / p95 ms |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
for c in 1 4 8 16; do
  # Alternate who goes first at each level, so neither always runs on a warmer machine.
  l=$(python3 bench/serve_load.py "http://127.0.0.1:$P2" "$c" "$N" "$R")
  s=$(python3 bench/serve_load.py "http://127.0.0.1:$P1" "$c" "$N" "$R")
  python3 - "$c" "$l" "$s" <<'PY'
import json, sys
c, l, s = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {c} | {l['tok_s']:.1f} | {s['tok_s']:.1f} | {s['tok_s'] / l['tok_s']:.2f}x | "
      f"{l['ttft_p50_ms']:.0f} / {l['ttft_p95_ms']:.0f} | {s['ttft_p50_ms']:.0f} / {s['ttft_p95_ms']:.0f} |")
PY
done
echo "shohin serve peak RSS: $(grep VmHWM /proc/${PIDS[0]}/status | awk '{print $2/1024 " MB"}'), llama-server: $(grep VmHWM /proc/${PIDS[1]}/status | awk '{print $2/1024 " MB"}')"
