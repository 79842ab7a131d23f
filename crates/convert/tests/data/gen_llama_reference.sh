#!/usr/bin/env bash
# Regenerates the references of tests/llama.rs from the test's random Llama
# checkpoint (seeded, so the same bytes every run; the tests leave it in
# target/tmp/convert-llama-ck, with shohin's GGUF files beside it):
# - llama_reference.json: llama.cpp's own convert_hf_to_gguf.py on that
#   checkpoint for each --outtype, described by describe_gguf.py (every
#   metadata key in order with its value, every tensor's name, type, shape
#   and sha256), which the test compares with shohin's files;
# - special_vocab_reference.json: gguf-py's SpecialVocab (the special token
#   keys the converter writes) on the checkpoint's tokenizer with each case
#   of special_vocab_cases.json applied;
# - llama_cpp_logits_llama_{f32,f16}.json: llama.cpp (the peer, through its
#   Python binding) running shohin's converted files: greedy ids and top-20
#   logits per step, which the test compares with a float64 forward.
# Needs Python with the converter's requirements (torch, transformers,
# sentencepiece, protobuf, numpy): $CONVERT_PYTHON, else a venv made in
# target/convert-venv from the package registry. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
LCPP="$PEER/src/vendor/llama.cpp"
PY=${CONVERT_PYTHON:-}
if [ -z "$PY" ]; then
  if [ ! -x target/convert-venv/bin/python ]; then
    python3 -m venv target/convert-venv
    target/convert-venv/bin/pip install -q "torch==2.11.0" "numpy~=2.2.6" \
      "sentencepiece>=0.1.98,<0.3.0" "transformers==4.57.6" "protobuf>=4.21.0,<5.0.0"
  fi
  PY=target/convert-venv/bin/python
fi
# the checkpoint and shohin's files (the reference tests may fail here)
cargo test --release -p shohin-convert --test llama -- llama_keys_and_tensors >&2
CK=target/tmp/convert-llama-ck
args=()
for t in f32 f16 bf16 q8_0; do
  PYTHONPATH="$LCPP/gguf-py" "$PY" "$LCPP/convert_hf_to_gguf.py" "$CK" --outtype "$t" \
    --outfile "target/tmp/convert-llama-ref-$t.gguf" >&2
  args+=("$t=target/tmp/convert-llama-ref-$t.gguf")
done
PYTHONPATH="$LCPP/gguf-py" python3 crates/convert/tests/data/describe_gguf.py "${args[@]}" \
  > crates/convert/tests/data/llama_reference.json
PYTHONPATH="$LCPP/gguf-py" python3 crates/convert/tests/data/special_vocab_reference.py "$CK" \
  crates/convert/tests/data/special_vocab_cases.json > crates/convert/tests/data/special_vocab_reference.json
export PYTHONPATH="$PEER/src:$LCPP/gguf-py" LLAMA_CPP_LIB_PATH="$PEER/bin"
for t in f32 f16; do
  python3 ../shared/tools/peer_logits.py "target/tmp/convert-llama-$t.gguf" "Hello world, this is a test of" 6 \
    > "crates/convert/tests/data/llama_cpp_logits_llama_$t.json"
done
