#!/usr/bin/env bash
# Regenerates the golden per-tensor hashes of llama-quantize's output on the
# F16 form of the real fixture (Qwen2.5-Coder-0.5B-Instruct Q4_K_M).
# Needs the peer llama.cpp build (../shared/peer/build-llama-cpp.sh) and python3;
# the tests only read the JSON files this writes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../../../../shared" && pwd)
PEER=$(bash "$shared/peer/build-llama-cpp.sh")
REAL=$(bash "$shared/fixtures/fetch-real-model.sh")
export LD_LIBRARY_PATH="$PEER/bin"
work=${WORK:-$(mktemp -d)}
f16="$work/f16.gguf"
"$PEER/bin/llama-quantize" --allow-requantize "$REAL" "$f16" F16 >/dev/null 2>&1
python3 "$here/gguf_tensor_hashes.py" "$f16" F16 >"$here/golden_F16.json"
# Q4_K_S, Q5_K_S and Q5_K_M use Q5_1 on this model (the fallback of Q5_K
# for 896-wide rows).
for t in ${TYPES:-Q8_0 Q4_0 Q5_0 Q1_0 Q2_0 TQ1_0 TQ2_0 Q4_K_M Q6_K Q4_K_S Q5_K_S Q5_K_M}; do
  "$PEER/bin/llama-quantize" "$f16" "$work/$t.gguf" "$t" >/dev/null 2>&1
  python3 "$here/gguf_tensor_hashes.py" "$work/$t.gguf" "$t" >"$here/golden_$t.json"
  rm -f "$work/$t.gguf"
  echo "golden_$t.json"
done
