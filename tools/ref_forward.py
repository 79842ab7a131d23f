#!/usr/bin/env python3
"""Float64 reference forward pass of a qwen3 GGUF (numpy), independent of
shohin: reads the file with `gguf_raw`, dequantizes with `ggml_formats`, and
runs the textbook qwen3 block (llama.cpp src/models/qwen3.cpp): RMSNorm,
q/k/v projections, per-head RMSNorm of q and k, NEOX RoPE (rotate halves),
causal softmax attention with grouped kv heads, output projection, residual;
RMSNorm, SwiGLU feed-forward, residual; final RMSNorm and the output matrix
(token_embd when output.weight is absent). No quantization of activations,
no f16 anywhere: this is the exact function the weights define.

For a prompt of token ids it takes N greedy steps (each step recomputes the
whole sequence) and writes JSON: prompt_ids, greedy_ids, and per step the
top-20 ids and logits (6 decimals).

    ref_forward.py MODEL.gguf --prompt 1,2,3 --steps 6 [--out F.json] [--compare GOLDEN.json]
    ref_forward.py --synth [DIR]   # every model of synth_models.SPECS -> DIR/<name>.f64.json
    ref_forward.py MODEL.gguf --emulate REF.f64.json [--out F.json]   # see `Emulated`
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_formats as gf  # noqa: E402
import gguf_raw as gr  # noqa: E402

TOP_K = 20


class Qwen3:
    def __init__(self, path):
        r = gr.Reader(path)
        m = r.meta
        if m.get("general.architecture") != "qwen3":
            raise SystemExit(f"{path}: architecture {m.get('general.architecture')!r}, expected qwen3")
        k = lambda s: m[f"qwen3.{s}"]  # noqa: E731
        self.n_layer = k("block_count")
        self.n_embd = k("embedding_length")
        self.n_head = k("attention.head_count")
        self.n_kv = m.get("qwen3.attention.head_count_kv", self.n_head)
        self.hd = m.get("qwen3.attention.key_length", self.n_embd // self.n_head)
        self.hd_v = m.get("qwen3.attention.value_length", self.hd)
        self.eps = float(k("attention.layer_norm_rms_epsilon"))
        base = float(m.get("qwen3.rope.freq_base", 10000.0))
        self.inv_freq = base ** (-np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        self.r = r
        self.formats = {}

        self.emb = self.tensor("token_embd.weight")
        self.out = self.tensor("output.weight") if "output.weight" in r.tensors else self.emb
        self.out_norm = self.tensor("output_norm.weight")
        self.layers = []
        for i in range(self.n_layer):
            names = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm",
                     "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
            self.layers.append({n: self.tensor(f"blk.{i}.{n}.weight") for n in names})
        self.n_vocab = self.emb.shape[0]

    def tensor(self, name):
        t = self.r.tensors[name]
        cols = t.dims[0]
        rows = t.n_elements // cols
        fmt = gf.resolve(t.type_id, t.n_elements, t.slot_end - t.start)
        self.formats[name] = fmt
        w = gf.dequant(fmt, self.r.raw(t, gf.nbytes(fmt, t.n_elements)), rows, cols)
        return w[0] if len(t.dims) == 1 else w

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        """x [n, heads, hd]; NEOX: element i pairs with i + hd/2."""
        ang = np.outer(pos, self.inv_freq)[:, None, :]
        c, s = np.cos(ang), np.sin(ang)
        h = self.hd // 2
        a, b = x[..., :h], x[..., h:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    # Rounding hooks, identities here; `Emulated` overrides them.
    def act(self, x):
        """An activation about to be multiplied by a weight matrix."""
        return x

    def half(self, x):
        """q, k, v and attention probabilities (f16 in llama.cpp)."""
        return x

    def logits(self, seq):
        n, NH, NKV, HD, HDV = len(seq), self.n_head, self.n_kv, self.hd, self.hd_v
        A, H = self.act, self.half
        x = self.emb[np.asarray(seq)]
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for L in self.layers:
            h = A(self.rms(x, L["attn_norm"]))
            q = (h @ L["attn_q"].T).reshape(n, NH, HD)
            k = (h @ L["attn_k"].T).reshape(n, NKV, HD)
            v = H((h @ L["attn_v"].T).reshape(n, NKV, HDV))
            q = H(self.rope(self.rms(q, L["attn_q_norm"]), pos))
            k = H(self.rope(self.rms(k, L["attn_k_norm"]), pos))
            att = np.empty((n, NH, HDV))
            for hh in range(NH):
                kv = hh // (NH // NKV)  # consecutive q heads share a kv head
                s = q[:, hh] @ k[:, kv].T / np.sqrt(HD) + mask
                p = np.exp(s - s.max(axis=-1, keepdims=True))
                att[:, hh] = H(p / p.sum(axis=-1, keepdims=True)) @ v[:, kv]
            x = x + A(att.reshape(n, NH * HDV)) @ L["attn_output"].T
            h = A(self.rms(x, L["ffn_norm"]))
            g, u = h @ L["ffn_gate"].T, h @ L["ffn_up"].T
            x = x + A(g / (1.0 + np.exp(-g)) * u) @ L["ffn_down"].T
        return A(self.rms(x[-1], self.out_norm)) @ self.out.T


def round_half_away(x):
    """C roundf."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


class Emulated(Qwen3):
    """Diagnostics only: the same forward with the roundings llama.cpp's CPU
    path does (and shohin copies), in float64 otherwise. Activations go
    through Q8_0 (ggml-quants.c quantize_row_q8_0_ref: d = amax/127 stored as
    f16, q = roundf(x/d)) or, for the QK_K formats, Q8_K
    (quantize_row_q8_K_ref: scale -127/max of the signed largest-magnitude
    value, round half to even, clamp to 127); q, k, v and the softmax
    probabilities are rounded to f16 (llama-graph.cpp build_attn_mha, f16 KV
    cache). Not bit-exact (f32 sums, exp), so a value on a rounding boundary
    can fall either way: agreement to ~1e-4 is typical, never guaranteed."""

    def __init__(self, path):
        super().__init__(path)
        fmts = {f for f in self.formats.values() if gf.FORMATS[f][1] > 1}
        self.q8k = fmts <= {"TQ1_0", "TQ2_0"}
        if not (self.q8k or fmts.isdisjoint({"TQ1_0", "TQ2_0"})):
            raise SystemExit(f"mixed Q8_0 / Q8_K activation formats: {fmts}")

    def act(self, x):
        shape = x.shape
        if self.q8k:
            b = x.reshape(-1, 256)
            mx = b[np.arange(len(b)), np.abs(b).argmax(axis=-1)][:, None]
            iscale = np.where(mx != 0, -127.0 / np.where(mx != 0, mx, 1), 0.0)
            q = np.minimum(127, np.round(iscale * b))
            y = np.where(iscale != 0, q / np.where(iscale != 0, iscale, 1), 0.0)
        else:
            b = x.reshape(-1, 32)
            d = np.abs(b).max(axis=-1, keepdims=True) / 127
            inv = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0.0)
            y = round_half_away(b * inv) * d.astype(np.float16).astype(np.float64)
        return y.reshape(shape)

    def half(self, x):
        return x.astype(np.float16).astype(np.float64)


def run(path, prompt, steps, model=Qwen3):
    m = model(path)
    seq, out = list(prompt), []
    for _ in range(steps):
        lg = m.logits(seq)
        top = np.argsort(-lg, kind="stable")[:TOP_K]
        out.append({"top_ids": [int(i) for i in top],
                    "top_logits": [round(float(lg[i]), 6) for i in top]})
        seq.append(int(top[0]))
    res = {"model": os.path.basename(path), "prompt_ids": list(prompt),
           "greedy_ids": seq[len(prompt):], "steps": out}
    return res, m


def follow(path, ref, model):
    """`model`'s logits at `ref`'s top ids, teacher-forced with its greedy ids."""
    m = model(path)
    seq, out = list(ref["prompt_ids"]), []
    for i, st in enumerate(ref["steps"]):
        lg = m.logits(seq)
        out.append({"top_ids": st["top_ids"], "top_logits": [round(float(lg[t]), 6) for t in st["top_ids"]]})
        seq.append(ref["greedy_ids"][i])
    return {"model": os.path.basename(path), "prompt_ids": ref["prompt_ids"],
            "greedy_ids": ref["greedy_ids"], "steps": out}


def compare(res, golden_path):
    """Max |dlogit| against another reference's top ids (same ids required)."""
    with open(golden_path) as f:
        g = json.load(f)
    assert g["prompt_ids"] == res["prompt_ids"], "different prompts"
    assert g["greedy_ids"] == res["greedy_ids"], (g["greedy_ids"], res["greedy_ids"])
    worst = 0.0
    for a, b in zip(res["steps"], g["steps"]):
        ours = dict(zip(a["top_ids"], a["top_logits"]))
        for i, l in zip(b["top_ids"], b["top_logits"]):
            if i in ours:
                worst = max(worst, abs(ours[i] - l))
        assert a["top_ids"][:5] == b["top_ids"][:5], (a["top_ids"], b["top_ids"])
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--prompt", help="comma-separated token ids")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out")
    ap.add_argument("--compare", help="golden JSON to compare the logits with")
    ap.add_argument("--emulate", metavar="REF_JSON",
                    help="diagnostics: llama.cpp-like roundings (class Emulated), teacher-forced "
                         "with REF_JSON's ids; logits at its top ids, max |dlogit| on stderr")
    ap.add_argument("--synth", nargs="?", const="", metavar="DIR",
                    help="all synth_models.SPECS models in DIR (default: the test data folder)")
    a = ap.parse_args()
    if a.synth is not None:
        import synth_models
        here = os.path.dirname(os.path.abspath(__file__))
        d = a.synth or os.path.join(here, "..", "crates/engine/tests/data/synth")
        for name, spec in synth_models.SPECS.items():
            res, m = run(os.path.join(d, f"{name}.gguf"), spec["prompt"], synth_models.N_STEPS)
            want = spec["fmt"]
            assert all(f == want for n, f in m.formats.items() if n.count(".weight") and
                       gf.FORMATS[f][1] > 1), (name, m.formats)
            with open(os.path.join(d, f"{name}.f64.json"), "w") as f:
                json.dump(res, f)
                f.write("\n")
            gaps = [s["top_logits"][0] - s["top_logits"][1] for s in res["steps"]]
            print(f"{name}: greedy {res['greedy_ids']}, top-2 gaps {np.round(gaps, 3).tolist()}")
        return
    if a.model and a.emulate:
        with open(a.emulate) as f:
            ref = json.load(f)
        res = follow(a.model, ref, Emulated)
        worst = max(abs(x - y) for s1, s2 in zip(res["steps"], ref["steps"])
                    for x, y in zip(s1["top_logits"], s2["top_logits"]))
        print(f"max |dlogit| emulated vs {a.emulate}: {worst:.4f}", file=sys.stderr)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(res, f)
        return
    if not (a.model and a.prompt):
        ap.error("MODEL and --prompt are required (or --synth)")
    res, _ = run(a.model, [int(x) for x in a.prompt.split(",")], a.steps)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f)
            f.write("\n")
    else:
        print(json.dumps(res))
    if a.compare:
        print(f"max |dlogit| vs {a.compare}: {compare(res, a.compare):.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
