#!/usr/bin/env bash
# Regenerates llama_cpp_logits_{f32,f16}.json: llama.cpp (the peer, through
# its Python binding) loads the GGUF files that `shohin convert` made from
# the test's random Qwen3 checkpoint (seeded, so the same bytes every run)
# and prints its greedy ids and top-20 logits. Run the roundtrip test first
# (it leaves the files in target/tmp). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
export PYTHONPATH="$PEER/src:$PEER/src/vendor/llama.cpp/gguf-py" LLAMA_CPP_LIB_PATH="$PEER/bin"
cargo test --release -p shohin-convert --test roundtrip >&2
for t in f32 f16; do
  python3 ../shared/tools/peer_logits.py "target/tmp/convert-$t.gguf" "Hello world, this is a test of" 6 \
    > "crates/convert/tests/data/llama_cpp_logits_$t.json"
done
