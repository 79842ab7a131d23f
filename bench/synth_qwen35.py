#!/usr/bin/env python3
"""Write a synthetic Bonsai-2-shaped `qwen35` GGUF (Gated DeltaNet + gated
attention, every 4th layer full attention) with random 1-bit (Q1_0, 41) or
ternary (Q2_0 g64, 42) matrices and the real Qwen vocabulary copied from a
donor GGUF, for timing shohin against llama.cpp on the same file (the
upstream peer runs `qwen35` in these upstream types).

usage: synth_qwen35.py OUT.gguf --shape 9b|27b|tiny [--qtype q1_0|q2_0] --vocab DONOR.gguf [--seed N]
needs gguf-py that knows Q1_0/Q2_0: PYTHONPATH=<peer>/src/vendor/llama.cpp/gguf-py

Shapes: 27b is Ternary-Bonsai-2-27B's (from a metadata dump, see
../shared/docs/bonsai2-formats.md); 9b follows llama.cpp's qwen35 size
table (32 layers, n_embd != 2560) with Qwen3-Next-style proportions
(n_embd 4096, ffn 12288, 16 heads / 4 kv of 256, 16 k groups / 32 v
heads of 128): an assumed shape, not read from a released file.
"""
import argparse
import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as QT

# layers, embd, ffn, heads, kv heads, head dim, rope dims, k groups, v heads, state
SHAPES = {
    '27b': (64, 5120, 17408, 24, 4, 256, 64, 16, 48, 128),
    '9b': (32, 4096, 12288, 16, 4, 256, 64, 16, 32, 128),
    'tiny': (4, 256, 768, 4, 2, 64, 16, 2, 4, 32),
}
CONV_KERNEL = 4


def q1_0(rows, cols, rng, scale):
    nb = cols // 128
    blk = np.zeros((rows, nb, 18), dtype=np.uint8)
    d = (scale * rng.uniform(0.5, 1.5, size=(rows, nb))).astype(np.float16)
    blk[:, :, 0:2] = d.view(np.uint8).reshape(rows, nb, 2)
    blk[:, :, 2:] = rng.integers(0, 256, size=(rows, nb, 16), dtype=np.uint8)
    return blk.reshape(rows, nb * 18)


def q2_0(rows, cols, rng, scale):
    nb = cols // 64
    blk = np.zeros((rows, nb, 18), dtype=np.uint8)
    d = (scale * rng.uniform(0.5, 1.5, size=(rows, nb))).astype(np.float16)
    blk[:, :, 0:2] = d.view(np.uint8).reshape(rows, nb, 2)
    c = rng.integers(0, 3, size=(rows, nb, 16, 4), dtype=np.uint8)  # 0,1,2 = -1,0,+1
    blk[:, :, 2:] = c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)
    return blk.reshape(rows, nb * 18)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--shape', default='tiny', choices=sorted(SHAPES))
    ap.add_argument('--qtype', default='q1_0', choices=['q1_0', 'q2_0'])
    ap.add_argument('--vocab', required=True)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--ctx', type=int, default=4096)
    a = ap.parse_args()
    L, E, FF, NH, NKV, HD, ROT, NK, NV, S = SHAPES[a.shape]
    key_dim, value_dim = NK * S, NV * S
    conv_dim = 2 * key_dim + value_dim
    rng = np.random.default_rng(a.seed)
    w = GGUFWriter(a.out, 'qwen35')
    w.add_name(f'synthetic-bonsai2-{a.shape}-{a.qtype}')
    w.add_block_count(L)
    w.add_context_length(a.ctx)
    w.add_embedding_length(E)
    w.add_feed_forward_length(FF)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_key_length(HD)
    w.add_value_length(HD)
    w.add_rope_freq_base(1e7)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(ROT)
    w.add_array('qwen35.rope.dimension_sections', [ROT // 6 + 1, ROT // 6 + 1, ROT // 6, 0][:4])
    w.add_uint32('qwen35.ssm.conv_kernel', CONV_KERNEL)
    w.add_uint32('qwen35.ssm.inner_size', value_dim)
    w.add_uint32('qwen35.ssm.state_size', S)
    w.add_uint32('qwen35.ssm.group_count', NK)
    w.add_uint32('qwen35.ssm.time_step_rank', NV)
    w.add_uint32('qwen35.full_attention_interval', 4)
    donor = GGUFReader(a.vocab)
    vocab = None
    for f in donor.fields.values():
        if not f.name.startswith('tokenizer.'):
            continue
        v = f.contents()
        if f.name == 'tokenizer.ggml.tokens':
            vocab = len(v)
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            w.add_array(f.name, v)
        elif t == gguf.GGUFValueType.STRING:
            w.add_string(f.name, v)
        elif t == gguf.GGUFValueType.BOOL:
            w.add_bool(f.name, v)
        else:
            w.add_uint32(f.name, int(v))
    quant = q1_0 if a.qtype == 'q1_0' else q2_0
    qt = QT.Q1_0 if a.qtype == 'q1_0' else QT(42)

    def mat(name, rows, cols):
        data = quant(rows, cols, rng, 1.0 / np.sqrt(cols))
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qt)

    def f32(name, x):
        w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))

    def norm(name, n):
        f32(name, 1.0 + 0.1 * rng.standard_normal(n))

    mat('token_embd.weight', vocab, E)
    for i in range(L):
        p = f'blk.{i}.'
        norm(p + 'attn_norm.weight', E)
        norm(p + 'post_attention_norm.weight', E)
        if (i + 1) % 4 == 0:  # gated full attention
            mat(p + 'attn_q.weight', 2 * NH * HD, E)
            mat(p + 'attn_k.weight', NKV * HD, E)
            mat(p + 'attn_v.weight', NKV * HD, E)
            norm(p + 'attn_q_norm.weight', HD)
            norm(p + 'attn_k_norm.weight', HD)
            mat(p + 'attn_output.weight', E, NH * HD)
        else:  # Gated DeltaNet
            mat(p + 'attn_qkv.weight', conv_dim, E)
            mat(p + 'attn_gate.weight', value_dim, E)
            f32(p + 'ssm_conv1d.weight', 0.3 * rng.standard_normal((conv_dim, CONV_KERNEL)))
            f32(p + 'ssm_dt.bias', rng.standard_normal(NV))
            f32(p + 'ssm_a', -np.exp(0.5 * rng.standard_normal(NV)))
            mat(p + 'ssm_beta.weight', NV, E)
            mat(p + 'ssm_alpha.weight', NV, E)
            norm(p + 'ssm_norm.weight', S)
            mat(p + 'ssm_out.weight', E, value_dim)
        mat(p + 'ffn_gate.weight', FF, E)
        mat(p + 'ffn_up.weight', FF, E)
        mat(p + 'ffn_down.weight', E, FF)
    norm('output_norm.weight', E)
    mat('output.weight', vocab, E)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == '__main__':
    main()
