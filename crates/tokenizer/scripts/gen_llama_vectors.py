#!/usr/bin/env python3
"""Record reference token ids from llama.cpp itself (libllama via the
llama-cpp-python ctypes bindings) for tests/data/llama_cpp_vectors.json.

Usage:
  LLAMA_CPP_LIB_PATH=<dir with libllama.so> PYTHONPATH=<llama-cpp-python src> \
  gen_llama_vectors.py FIXTURE_VOCAB_GGUF REAL_MODEL_GGUF OUT.json [N_RANDOM] [SEED]

Each case is tokenized with add_special = false and parse_special both false
and true, against both vocabularies (llama.cpp's ggml-vocab-qwen2.gguf and the
real Qwen2.5-Coder model, whose special tokens differ). It also records a
digest of every token's piece (llama_token_to_piece, special on and off).
"""
import ctypes
import json
import random
import sys

import llama_cpp as L

# (llama.cpp logs to stderr; redirect it when running)
L.llama_backend_init()


def load(path):
    p = L.llama_model_default_params()
    p.vocab_only = True
    m = L.llama_model_load_from_file(path.encode(), p)
    assert m, path
    return L.llama_model_get_vocab(m)


def tokenize(vocab, text, parse_special):
    b = text.encode()
    n = len(b) + 8
    buf = (L.llama_token * n)()
    r = L.llama_tokenize(vocab, b, len(b), buf, n, False, parse_special)
    assert r >= 0, (text, r)
    return list(buf[:r])


HAND = [
    "", " ", "\n", "Hello world", "don't DON'T we'Re you'LL it's", "'s'S'", "x'", "'",
    "1234567890", "３４ ٣٤ ½² Ⅻ", "a\u0301e\u0308 ि", "İstanbul ǅ ß ſ K",
    "\u00a0\u3000\u2028\u0085\v\f", "\r\n\r\n  \r\n", "tab\t\tend\t", "    indented\n        more",
    "emoji 😀👍🏽👨‍👩‍👧 🦙", "中文字符和English混合", "한국어 텍스트", "עברית ועربي",
    "\u0378\u0379 unassigned", "\ue000 private", "\u200b\u200d\ufeff zero width",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>", "<|im_start", "<|im_end|>x</s>y", "<tool_call>{\"a\": 1}</tool_call>",
    "[PAD151646][PAD151647]x", "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "def quicksort(xs):\n    if len(xs) <= 1:\n        return xs\n", "a" * 300, "ab" * 200,
    "!!!???...,,,;;;", "$100 + 5% = ~€105", "http://example.com/path?q=1&x=2#frag",
    "\n\n\n\n", "   ", "x   ", "   x", " \n \n", "\t\n\t\n",
]

POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + [" "] * 8
    + ["\t", "\n", "\r", "\v", "\f", "\u00a0", "\u3000", "\u2028", "\u0085", "\u1680", "\u200a"]
    + ["'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'Ll", "'d", "'D"]
    + list("éèßжЖяğİıñøÆœ大赛中文字你好한국語ひらがなカタカナ") + list("٣½²Ⅻ３")
    + ["\u0301", "\u0308", "\u093f", "\u0e31", "\u200d", "\u200b", "\ufeff", "\u0378", "\ue000", "\U0010fffd"]
    + list("😀👍🏽🦙🚀✅😶🌫️") + ["𬴊", "\U00020000"]
    + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "</s>", "<|", "|>", "[PAD151646]"]
    + ["the", " the", "ing", " quick", "Hello", "\n\n", "    ", "...", "123"]
)


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def piece_digests(vocab):
    """FNV-1a 64 over (u32 LE length, bytes) of every token's piece, for
    llama_token_to_piece(special = true) and (special = false)."""
    buf = ctypes.create_string_buffer(4096)
    out = {}
    for special in (True, False):
        h = 0xCBF29CE484222325
        for i in range(L.llama_vocab_n_tokens(vocab)):
            r = L.llama_token_to_piece(vocab, i, buf, len(buf), 0, special)
            assert r >= 0
            piece = buf.raw[:r]
            h = fnv1a64(len(piece).to_bytes(4, "little") + piece, h)
        out["special" if special else "plain"] = format(h, "016x")
    return out


def random_text(rng):
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34])
    return "".join(rng.choice(POOL) for _ in range(n))


def main():
    fixture, real, out = sys.argv[1], sys.argv[2], sys.argv[3]
    n_random = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 20240601
    rng = random.Random(seed)
    texts = HAND + [random_text(rng) for _ in range(n_random)]
    vf, vr = load(fixture), load(real)
    cases = []
    for t in texts:
        cases.append({
            "text": t,
            "fixture": tokenize(vf, t, False),
            "fixture_special": tokenize(vf, t, True),
            "real": tokenize(vr, t, False),
            "real_special": tokenize(vr, t, True),
        })
    digests = {"fixture": piece_digests(vf), "real": piece_digests(vr)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"source": "llama.cpp llama_tokenize(add_special=false)", "piece_digests": digests,
                   "cases": cases}, f,
                  ensure_ascii=True, separators=(",", ":"))
        f.write("\n")


main()
