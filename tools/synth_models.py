#!/usr/bin/env python3
"""Generate small deterministic qwen3 GGUF models in shapes and weight formats
that the shared tiny fixtures do not cover, for shohin's engine tests
(crates/engine/tests/synth_models.rs). Not run in CI: the files are committed.

    python3 tools/synth_models.py [--out crates/engine/tests/data/synth] [--check]

Every matrix is random ternary (or, for Q1_0, random signs) codes times a
random per-block f16 scale, packed by `ggml_formats` from the ggml block
definitions; norm weights are F32 (F16 in one model) around 1. Tensor names
and metadata keys follow llama.cpp (src/llama-arch.cpp LLM_TENSOR_NAMES and
LLM_KV_NAMES for LLM_ARCH_QWEN3). No tokenizer (model "none"): the engine
tests feed token ids.

`--check` cross-checks the TQ1_0 / TQ2_0 packers and dequantizers against
gguf-py's `quants.py` (needs PYTHONPATH=<llama.cpp>/gguf-py).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_formats as gf  # noqa: E402
import gguf_raw as gr  # noqa: E402

# One entry per model. fmt: matrix format; tied: no output.weight; prompt:
# the token ids the reference and the tests run; code3: fraction of code-3
# (+2 * d) weights in the g128 formats, whose codec allows them.
#
# Gains scale the per-block weight scales (gain / sqrt(cols)): emb_gain for
# token_embd, out_gain for output.weight, proj_gain for attn_output and
# ffn_down; qk_spread is the spread of the q/k norm weights around 1. They
# are tuned so that the logits spread about 1 (clear top-1s) while the
# rounding llama.cpp's arithmetic does (Q8_0 / Q8_K activations above all)
# moves them by at most ~0.065 from the exact values: the tests' tolerance is
# 0.1, and random models amplify that rounding more than trained ones.
SPECS = {
    # n_head * head_dim (384) != n_embd (256), GQA 4:2, untied output, 3 layers.
    "q1_0_gqa_wide": dict(fmt="Q1_0", n_layer=3, n_embd=256, n_head=4, n_head_kv=2,
                          head_dim=96, n_ff=512, n_vocab=512, tied=False, rope_base=1e6,
                          emb_gain=2.0, out_gain=1.0, seed=101,
                          prompt=[17, 402, 9, 311, 88, 256, 7]),
    # PrismML g128 under type 42, tied embeddings; every matrix has far more
    # than 64 * 32 weights so its g64 size cannot fit its g128 slot.
    "q2_0_g128_tied": dict(fmt="Q2_0_g128", n_layer=2, n_embd=256, n_head=4, n_head_kv=2,
                           head_dim=64, n_ff=512, n_vocab=768, tied=True, rope_base=1e4,
                           emb_gain=1.0, code3=0.02, seed=102,
                           prompt=[5, 700, 123, 64, 511, 3]),
    # type 142, MQA (2 q heads, 1 kv head) with head_dim 128, F16 q/k norms.
    "pq2_0": dict(fmt="PQ2_0", n_layer=2, n_embd=256, n_head=2, n_head_kv=1,
                  head_dim=128, n_ff=640, n_vocab=512, tied=False, rope_base=1e6,
                  emb_gain=2.0, out_gain=1.0, code3=0.02, qk_norm_f16=True, seed=103,
                  prompt=[100, 1, 450, 300, 22, 499, 77, 8, 260]),
    # ggml TQ1_0 (QK_K = 256: every row length is a multiple of 256), MQA 4:1,
    # general.alignment 64.
    "tq1_0": dict(fmt="TQ1_0", n_layer=2, n_embd=256, n_head=4, n_head_kv=1,
                  head_dim=64, n_ff=512, n_vocab=1024, tied=False, rope_base=1e4,
                  emb_gain=2.0, out_gain=0.8, alignment=64, seed=104,
                  prompt=[1000, 3, 512, 77, 901]),
    # ggml TQ2_0, n_head * head_dim (512) > n_embd (256), tied output.
    "tq2_0": dict(fmt="TQ2_0", n_layer=2, n_embd=256, n_head=4, n_head_kv=2,
                  head_dim=128, n_ff=512, n_vocab=512, tied=True, rope_base=1e6,
                  emb_gain=1.2, proj_gain=0.5, seed=105,
                  prompt=[42, 43, 310, 2, 128, 499, 11]),
}

N_CTX_TRAIN = 256
# greedy steps of the reference (ref_forward.py --synth)
N_STEPS = 8
RMS_EPS = 1e-6


def random_matrix(rng, fmt, rows, cols, gain, code3=0.0):
    """Raw bytes of a random [rows, cols] matrix in `fmt`; per-block scales
    gain / sqrt(cols) * U(0.5, 1.5), rounded to f16."""
    _, bs, _ = gf.FORMATS[fmt]
    assert cols % bs == 0, (fmt, rows, cols)
    d = (gain / np.sqrt(cols) * rng.uniform(0.5, 1.5, size=(rows, cols // bs))).astype(np.float16)
    if fmt == "Q1_0":
        return gf.pack_q1_0(rng.integers(0, 2, size=(rows, cols)), d)
    codes = rng.integers(0, 3, size=(rows, cols))  # 0, 1, 2 = -1, 0, +1
    if code3 > 0 and fmt in ("Q2_0_g128", "PQ2_0"):
        codes = np.where(rng.random((rows, cols)) < code3, 3, codes)  # +2
    if fmt in ("Q2_0_g128", "PQ2_0"):
        return gf.pack_q2(codes, d, 128)
    if fmt == "TQ1_0":
        return gf.pack_tq1_0(codes, d)
    if fmt == "TQ2_0":
        return gf.pack_tq2_0(codes, d)
    raise ValueError(fmt)


def build(name, s):
    rng = np.random.default_rng(s["seed"])
    fmt = s["fmt"]
    type_id = gf.FORMATS[fmt][0]
    E, NH, NKV, HD, FF, V = (s[k] for k in ("n_embd", "n_head", "n_head_kv", "head_dim", "n_ff", "n_vocab"))
    w = gr.Writer()
    w.add("general.architecture", gr.STRING, "qwen3")
    w.add("general.name", gr.STRING, f"shohin-synth-{name}")
    if "alignment" in s:
        w.add("general.alignment", gr.U32, s["alignment"])
    for key, val in [("block_count", s["n_layer"]), ("context_length", N_CTX_TRAIN),
                     ("embedding_length", E), ("feed_forward_length", FF),
                     ("attention.head_count", NH), ("attention.head_count_kv", NKV),
                     ("attention.key_length", HD), ("attention.value_length", HD)]:
        w.add(f"qwen3.{key}", gr.U32, val)
    w.add("qwen3.rope.freq_base", gr.F32, s["rope_base"])
    w.add("qwen3.attention.layer_norm_rms_epsilon", gr.F32, RMS_EPS)
    # No tokenizer; these two let llama.cpp load the file for cross-checks
    # (src/llama-vocab.cpp: model "none" adds `vocab_size` dummy tokens).
    w.add("qwen3.vocab_size", gr.U32, V)
    w.add("tokenizer.ggml.model", gr.STRING, "none")

    def mat(tname, rows, cols, gain=1.0):
        data = random_matrix(rng, fmt, rows, cols, gain, s.get("code3", 0.0))
        assert len(data) == gf.nbytes(fmt, rows * cols)
        if type_id == 42:  # must not be mistaken for the g64 layout
            assert rows * cols // 64 > w.alignment(), tname
        w.add_tensor(tname, [cols, rows], type_id, data)

    def norm(tname, n, f16=False, spread=0.1):
        v = 1.0 + spread * rng.standard_normal(n)
        if f16:
            w.add_tensor(tname, [n], 1, v.astype("<f2").tobytes())
        else:
            w.add_tensor(tname, [n], 0, v.astype("<f4").tobytes())

    mat("token_embd.weight", V, E, gain=s.get("emb_gain", 1.0))
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight", E)
        mat(p + "attn_q.weight", NH * HD, E)
        mat(p + "attn_k.weight", NKV * HD, E)
        mat(p + "attn_v.weight", NKV * HD, E)
        norm(p + "attn_q_norm.weight", HD, s.get("qk_norm_f16", False), spread=s.get("qk_spread", 0.2))
        norm(p + "attn_k_norm.weight", HD, s.get("qk_norm_f16", False), spread=s.get("qk_spread", 0.2))
        mat(p + "attn_output.weight", E, NH * HD, gain=s.get("proj_gain", 1.0))
        norm(p + "ffn_norm.weight", E)
        mat(p + "ffn_gate.weight", FF, E)
        mat(p + "ffn_up.weight", FF, E)
        mat(p + "ffn_down.weight", E, FF, gain=s.get("proj_gain", 1.0))
    norm("output_norm.weight", E)
    if not s["tied"]:
        mat("output.weight", V, E, gain=s.get("out_gain", 1.0))
    return w


def check_against_gguf_py():
    """TQ1_0 / TQ2_0: gguf-py re-quantizing our dequantized weights must give
    our bytes, and its dequantizer must agree with ours."""
    from gguf import quants
    from gguf.constants import GGMLQuantizationType as QT
    rng = np.random.default_rng(7)
    for fmt, qt in (("TQ1_0", QT.TQ1_0), ("TQ2_0", QT.TQ2_0)):
        rows, cols = 16, 512
        raw = np.frombuffer(random_matrix(rng, fmt, rows, cols, 1.0), np.uint8)
        ours = gf.dequant(fmt, raw, rows, cols)
        theirs = quants.dequantize(raw.reshape(rows, -1), qt).astype(np.float64)
        assert np.array_equal(ours, theirs), f"{fmt}: dequantizers differ"
        again = quants.quantize(ours.astype(np.float32), qt)
        assert np.array_equal(again.reshape(-1), raw), f"{fmt}: packers differ"
        print(f"{fmt}: packer and dequantizer agree with gguf-py")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates/engine/tests/data/synth"))
    ap.add_argument("--check", action="store_true", help="cross-check TQ packers with gguf-py")
    ap.add_argument("names", nargs="*", help="models to write (default: all)")
    a = ap.parse_args()
    if a.check:
        check_against_gguf_py()
    os.makedirs(a.out, exist_ok=True)
    for name in a.names or SPECS:
        n = build(name, SPECS[name]).write(os.path.join(a.out, f"{name}.gguf"))
        print(f"{name}.gguf: {n} bytes")
        assert n < 600_000, "keep the committed fixtures small"


if __name__ == "__main__":
    main()
