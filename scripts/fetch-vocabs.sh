#!/usr/bin/env bash
# Fetch llama.cpp's Llama vocabularies and their tokenizer test vectors
# (models/ggml-vocab-llama-{spm,bpe}.gguf + .inp/.out, MIT) from the
# llama-cpp-python 0.3.36 sdist on PyPI, without building it. Tests of the
# Llama tokenizers and the synthetic Llama models read them from here.
# Usage: fetch-vocabs.sh [DEST_DIR]  (default $SHOHIN_FIXTURES or
# ~/.cache/shohin-fixtures); prints DEST_DIR/vocab. Idempotent.
set -euo pipefail
DEST=${1:-${SHOHIN_FIXTURES:-$HOME/.cache/shohin-fixtures}}/vocab
VER=0.3.36
FILES="ggml-vocab-llama-spm.gguf ggml-vocab-llama-spm.gguf.inp ggml-vocab-llama-spm.gguf.out
ggml-vocab-llama-bpe.gguf ggml-vocab-llama-bpe.gguf.inp ggml-vocab-llama-bpe.gguf.out"
have=1
for f in $FILES; do [ -f "$DEST/$f" ] || have=0; done
if [ $have = 1 ]; then echo "$DEST"; exit 0; fi
mkdir -p "$DEST"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
SDIST=${SHOHIN_PEER_DIR:-$HOME/.cache/shohin-peer}/dl/llama_cpp_python-$VER.tar.gz
if [ ! -f "$SDIST" ]; then
  # pip speaks the registry's protocol (the JSON API is not reachable here).
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VER" -d "$TMP" >&2
  SDIST=$TMP/llama_cpp_python-$VER.tar.gz
fi
members=""
for f in $FILES; do members="$members llama_cpp_python-$VER/vendor/llama.cpp/models/$f"; done
tar xzf "$SDIST" -C "$TMP" $members
for f in $FILES; do mv "$TMP/llama_cpp_python-$VER/vendor/llama.cpp/models/$f" "$DEST/$f.part" && mv "$DEST/$f.part" "$DEST/$f"; done
echo "$DEST"
