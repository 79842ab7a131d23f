//! `Q4_K` (ggml type 12): super-blocks of 256 weights in 8 sub-blocks of 32,
//! `x = d·sc_j·q - dmin·m_j` with 4-bit `q` and 6-bit per-sub-block scale
//! `sc_j` and minimum `m_j`. Also home of the helpers `Q5_K` shares.
//!
//! Layout (ggml-common.h `block_q4_K`, `QK_K = 256`, `K_SCALE_SIZE = 12`,
//! 144 bytes):
//!
//! | bytes   | field                                                    |
//! |---------|----------------------------------------------------------|
//! | 0..2    | `d`: `ggml_half`, scale of the sub-block scales          |
//! | 2..4    | `dmin`: `ggml_half`, scale of the sub-block minimums     |
//! | 4..16   | `scales[12]`: 8 6-bit scales and 8 6-bit mins, packed as |
//! |         | below (`get_scale_min_k4`)                               |
//! | 16..144 | `qs[128]`: four 32-byte chunks; chunk `c` holds sub-block |
//! |         | `2c` in the low nibbles and `2c+1` in the high nibbles   |
//!
//! `scales` packing (ggml-quants.c `get_scale_min_k4`; gguf-py quants.py
//! draws the same map): for `j < 4`, `sc_j = scales[j] & 63` and
//! `m_j = scales[j+4] & 63`; for `j >= 4`, the low 4 bits come from
//! `scales[j+4]` (sc low nibble, m high nibble) and the top 2 bits from the
//! top 2 bits of `scales[j-4]` (sc) and `scales[j]` (m).

use crate::fp16::{f16_bits, read_f16};
use crate::q8_k::{self, nearest_int};
use crate::QK_K;

/// Bytes per block (`sizeof(block_q4_K)`).
const BLOCK: usize = 2 + 2 + 12 + QK_K / 2;
/// Offset of `qs`.
const QS: usize = 16;

/// ggml-quants.c `get_scale_min_k4`: scale and min of sub-block `j` (0..8)
/// from the 12 packed bytes.
pub(crate) fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The parameters of one 256-weight super-block shared by `Q4_K` and
/// `Q5_K`: `f16` bits of `d` and `dmin`, the packed scales, and the level
/// `0..=nmax` of every weight.
pub(crate) struct KBlock {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub levels: [u8; QK_K],
}

/// The shared body of ggml-quants.c `quantize_row_q4_K_ref` and
/// `quantize_row_q5_K_ref` (they differ only in `nmax`, `rmin`, `nstep`
/// and packing): fit each 32-weight sub-block with [`make_qkx2_quants`]
/// (weights `sqrt(mean x²) + |x|`), quantize the 8 scales and 8 mins to 6
/// bits against their maxima, then re-quantize every weight against the
/// rounded scale and min.
pub(crate) fn quantize_k(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> KBlock {
    let mut levels = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut scales = [0f32; QK_K / 32];
    let mut mins = [0f32; QK_K / 32];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * (j + 1)];
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let l = &mut levels[32 * j..32 * (j + 1)];
        let (scale, min) = make_qkx2_quants(nmax, xs, &weights, l, &mut aux, rmin, 0.1, nstep);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..QK_K / 32 {
        // `uint8_t ls = nearest_int(..)`: truncated to 8 bits, then capped.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16_bits(max_scale / 63.0);
    let dmin = f16_bits(max_min / 63.0);
    let (df, dminf) = (f16_to_f32(d), f16_to_f32(dmin));

    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min(j, &packed);
        let ds = df * f32::from(sc);
        if ds == 0.0 {
            // ggml keeps the levels of the sub-block fit.
            continue;
        }
        let dm = dminf * f32::from(m);
        for i in 32 * j..32 * (j + 1) {
            levels[i] = nearest_int((x[i] + dm) / ds).clamp(0, nmax) as u8;
        }
    }
    KBlock {
        d,
        dmin,
        scales: packed,
        levels,
    }
}

fn f16_to_f32(bits: u16) -> f32 {
    read_f16(&bits.to_le_bytes())
}

/// ggml-quants.c `make_qkx2_quants` with `use_mad = false` (the only use in
/// the reference quantizers): fit `x ≈ scale·L + min` (`min <= 0`) over
/// `L` in `0..=nmax`, minimising the `weights`-weighted squared error. It
/// starts from the full-range grid, then tries `nstep + 1` grid sizes
/// `nmax + rmin + rdelta·is` and, for each, the weighted least-squares
/// scale and min of the resulting levels. Returns `(scale, -min)`.
///
/// Every `f32` operation is written in ggml's order so that the levels and
/// scales (and thus the bytes) come out the same.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * f32::from(l[i]) + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, lf) = (weights[i], q as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml-quants.c `dequantize_row_q4_K`: `d·sc·q - dmin·m`, computed as
/// `(d·sc)·q - (dmin·m)` in `f32` (no fused multiply-add).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[0..2]);
        let dmin = read_f16(&b[2..4]);
        let scales = &b[4..16];
        for (c, (qs, y)) in b[QS..]
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc1, m1) = scale_min(2 * c, scales);
            let (sc2, m2) = scale_min(2 * c + 1, scales);
            let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
            let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, y1), y2) in qs.iter().zip(lo).zip(hi) {
                *y1 = d1 * f32::from(q & 0x0F) - min1;
                *y2 = d2 * f32::from(q >> 4) - min2;
            }
        }
    }
}

/// ggml-quants.c `quantize_row_q4_K_ref` (`nmax = 15`, `rmin = -1`,
/// `rdelta = 0.1`, `nstep = 20`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BLOCK)) {
        let k = quantize_k(x, 15, -1.0, 20);
        b[0..2].copy_from_slice(&k.d.to_le_bytes());
        b[2..4].copy_from_slice(&k.dmin.to_le_bytes());
        b[4..16].copy_from_slice(&k.scales);
        for (c, qs) in b[QS..].chunks_exact_mut(32).enumerate() {
            for (i, q) in qs.iter_mut().enumerate() {
                *q = k.levels[64 * c + i] | (k.levels[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// `Q4_K · Q8_K`, the semantics of ggml-cpu quants.c
/// `ggml_vec_dot_q4_K_q8_K_generic`: per super-block the exact integers
/// `Σ_j sc_j·Σ q·qa` and `Σ_g bsums[g]·m_{g/2}` (the minimums applied
/// through the activations' 16-value block sums), then
/// `acc += d_w·d_a·isum; acc -= dmin_w·d_a·msum` in `f32`. (ggml's generic
/// code spreads the first sum over 8 `f32` lanes; the integers are the
/// same, only the `f32` rounding order differs.)
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(q8_k::BLOCK)) {
        let scales = &bw[4..16];
        let qa = q8_k::quants(ba);
        let mut isum = 0i32;
        let mut msum = 0i32;
        for (c, qs) in bw[QS..].chunks_exact(32).enumerate() {
            let (sc1, m1) = scale_min(2 * c, scales);
            let (sc2, m2) = scale_min(2 * c + 1, scales);
            let a1 = &qa[64 * c..64 * c + 32];
            let a2 = &qa[64 * c + 32..64 * c + 64];
            let (mut s1, mut s2) = (0i32, 0i32);
            for ((&q, &y1), &y2) in qs.iter().zip(a1).zip(a2) {
                s1 += i32::from(q & 0x0F) * i32::from(y1 as i8);
                s2 += i32::from(q >> 4) * i32::from(y2 as i8);
            }
            isum += i32::from(sc1) * s1 + i32::from(sc2) * s2;
            for g in 0..4 {
                let m = if g < 2 { m1 } else { m2 };
                msum += q8_k::bsum(ba, 4 * c + g) * i32::from(m);
            }
        }
        let da = q8_k::scale(ba);
        sum += read_f16(&bw[0..2]) * da * isum as f32;
        sum -= read_f16(&bw[2..4]) * da * msum as f32;
    }
    sum
}
