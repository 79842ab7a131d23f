"""Writes a Hugging Face Qwen3 checkpoint whose linear weights are ternary
(t * d, t in {-1, 0, 1}, one scale d per row and 128 columns) as an ONNX
model in onnxruntime-genai's model-builder layout: com.microsoft
MatMulNBits nodes (bits 2, block_size 128) named
/model/layers.{i}/{attn,mlp}/{x}_proj/MatMul_Q2, initializers
model.layers.{i}.input_layernorm.weight etc., external data in
model.onnx.data. The graph is a skeleton (the converter reads weights and
node attributes, not the dataflow).

Layer 0: no zero_points (default 2), float16 scales. Layer 1: Q, K and V in
one qkv_proj node, packed uint8 zero_points (1 or 2 per block), float32
scales. lm_head: a float MatMul weight [hidden, vocab] (the tied embedding,
transposed); with --tied the embedding itself is left out (the builder's
Transpose + Gather).

usage: make_onnx.py CHECKPOINT_DIR OUT_DIR [--bits N] [--block-size N]
       [--bad-code] [--tied]
"""

import argparse
import json
import os
import shutil
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QK = 128


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            v = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            v = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(dt)
        out[name] = v.reshape(info["shape"])
    return out


def load_checkpoint(d):
    index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    w = {}
    for f in sorted(set(index["weight_map"].values())):
        w.update(read_safetensors(os.path.join(d, f)))
    return w


def quantize_ternary(w, zero_points, rng):
    """w [N, K] ternary per 128-block -> B [N, K/128, 32] uint8, scales
    [N * K/128] float32, zero points per block (2, or 1 / 2 at random)."""
    n, k = w.shape
    nb = k // QK
    blocks = w.reshape(n, nb, QK).astype(np.float64)
    scales = np.abs(blocks).max(axis=2)
    scales[scales == 0] = 1.0
    t = np.rint(blocks / scales[:, :, None]).astype(np.int64)
    assert np.all(np.abs(t) <= 1) and np.array_equal(t * scales[:, :, None], blocks), "not ternary"
    if zero_points:
        zp = rng.integers(1, 3, size=(n, nb))
    else:
        zp = np.full((n, nb), 2)
    q = (t + zp[:, :, None]).astype(np.uint8)
    assert q.max() <= 3
    q = q.reshape(n, nb, QK // 4, 4)
    b = q[..., 0] | (q[..., 1] << 2) | (q[..., 2] << 4) | (q[..., 3] << 6)
    return b.astype(np.uint8), scales.astype(np.float32).reshape(-1), zp


def pack_zero_points(zp):
    n, nb = zp.shape
    per_row = (nb + 3) // 4
    out = np.zeros((n, per_row), dtype=np.uint8)
    for j in range(nb):
        out[:, j // 4] |= (zp[:, j].astype(np.uint8) << (2 * (j % 4)))
    return out.reshape(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=QK)
    ap.add_argument("--bad-code", action="store_true", help="one code 0 with zero point 2 (-2)")
    ap.add_argument("--tied", action="store_true", help="no embedding initializer")
    args = ap.parse_args()

    cfg = json.load(open(os.path.join(args.checkpoint, "config.json")))
    w = load_checkpoint(args.checkpoint)
    rng = np.random.default_rng(7)
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr, name))

    def nbits(basename, weight, x, layer):
        """A MatMulNBits node for weight [N, K]; returns its output."""
        n, k = weight.shape
        second = layer == 1
        b, scales, zp = quantize_ternary(weight, second, rng)
        if args.bad_code and basename.endswith("layers.0/attn/q_proj"):
            b[0, 0, 0] &= 0xFC  # weight 0: code 0, zero point 2
        name = f"{basename}/MatMul_Q{args.bits}"
        prefix = name[1:].replace("/", ".")
        wname = f"{basename[1:].replace('/', '.')}.MatMul.weight_Q{args.bits}G{args.block_size}"
        init(wname, b)
        sname = f"{basename[1:].replace('/', '.')}.MatMul.weight_scale"
        init(sname, scales if second else scales.astype(np.float16))
        inputs = [x, wname, sname]
        if second:
            zname = f"{basename[1:].replace('/', '.')}.MatMul.weight_zp"
            init(zname, pack_zero_points(zp))
            inputs.append(zname)
        out = f"{name}/output_0"
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                inputs,
                [out],
                name=name,
                domain="com.microsoft",
                K=k,
                N=n,
                bits=args.bits,
                block_size=args.block_size,
                accuracy_level=4,
            )
        )
        assert prefix
        return out

    def norm(name, weight_name, x, skip=None):
        out = f"{name}/output_0"
        if skip is None:
            nodes.append(helper.make_node("SimplifiedLayerNormalization", [x, weight_name], [out], name=name, axis=-1, epsilon=1e-6))
        else:
            nodes.append(helper.make_node("SkipSimplifiedLayerNormalization", [x, skip, weight_name], [out], name=name, domain="com.microsoft", epsilon=1e-6))
        return out

    emb = w["model.embed_tokens.weight"].astype(np.float16)
    init("lm_head.MatMul.weight", np.ascontiguousarray(emb.T))
    if args.tied:
        nodes.append(helper.make_node("Transpose", ["lm_head.MatMul.weight"], ["/model/embed_tokens/Transpose/output_0"], name="/model/embed_tokens/Transpose", perm=[1, 0]))
        table = "/model/embed_tokens/Transpose/output_0"
    else:
        init("model.embed_tokens.weight", emb)
        table = "model.embed_tokens.weight"
    nodes.append(helper.make_node("Gather", [table, "input_ids"], ["/model/embed_tokens/Gather/output_0"], name="/model/embed_tokens/Gather"))
    x = "/model/embed_tokens/Gather/output_0"
    for i in range(layers):
        p = f"model.layers.{i}."
        base = f"/model/layers.{i}"
        init(f"{p}input_layernorm.weight", w[f"{p}input_layernorm.weight"])
        h = norm(f"{base}/input_layernorm/LayerNorm", f"{p}input_layernorm.weight", x)
        q_w, k_w, v_w = (w[f"{p}self_attn.{n}_proj.weight"] for n in "qkv")
        if i == 1:
            qkv = nbits(f"{base}/attn/qkv_proj", np.concatenate([q_w, k_w, v_w]), h, i)
            q = k = v = qkv
        else:
            q = nbits(f"{base}/attn/q_proj", q_w, h, i)
            k = nbits(f"{base}/attn/k_proj", k_w, h, i)
            v = nbits(f"{base}/attn/v_proj", v_w, h, i)
        for n in "qk":
            wn = f"{p}attn.{n}_norm.layernorm.weight"
            init(wn, w[f"{p}self_attn.{n}_norm.weight"])
            norm(f"{base}/attn/{n}_norm/SimplifiedLayerNormalization", wn, q if n == "q" else k)
        att = f"{base}/attn/GroupQueryAttention/output_0"
        nodes.append(helper.make_node("GroupQueryAttention", [q, k, v], [att], name=f"{base}/attn/GroupQueryAttention", domain="com.microsoft", num_heads=cfg["num_attention_heads"], kv_num_heads=cfg["num_key_value_heads"]))
        o = nbits(f"{base}/attn/o_proj", w[f"{p}self_attn.o_proj.weight"], att, i)
        init(f"{p}post_attention_layernorm.weight", w[f"{p}post_attention_layernorm.weight"])
        h = norm(f"{base}/post_attention_layernorm/SkipLayerNorm", f"{p}post_attention_layernorm.weight", o, skip=x)
        g = nbits(f"{base}/mlp/gate_proj", w[f"{p}mlp.gate_proj.weight"], h, i)
        u = nbits(f"{base}/mlp/up_proj", w[f"{p}mlp.up_proj.weight"], h, i)
        act = f"{base}/mlp/act_fn/Mul/output_0"
        nodes.append(helper.make_node("Mul", [g, u], [act], name=f"{base}/mlp/act_fn/Mul"))
        x = nbits(f"{base}/mlp/down_proj", w[f"{p}mlp.down_proj.weight"], act, i)
    fn = f"model.layers.{layers}.final_norm_layernorm.weight"
    init(fn, w["model.norm.weight"])
    h = norm(f"/model/layers.{layers}/final_norm_layernorm/SkipLayerNorm", fn, x)
    nodes.append(helper.make_node("MatMul", [h, "lm_head.MatMul.weight"], ["logits"], name="/lm_head/MatMul"))
    # the builder's rotary caches: initializers that are no weight
    init("cos_cache", np.ones((16, cfg["head_dim"] // 2), dtype=np.float32))

    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", cfg["vocab_size"]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
        producer_name="onnxruntime-genai",
    )
    os.makedirs(args.out, exist_ok=True)
    onnx.save_model(
        model,
        os.path.join(args.out, "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=1024,
    )
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.checkpoint, f), os.path.join(args.out, f))


if __name__ == "__main__":
    main()
