//! `Q6_K` (ggml type 14): super-blocks of 256 weights in 16 sub-blocks of
//! 16, `x = d·sc_j·(q - 32)` with 6-bit `q` and a signed 8-bit scale `sc_j`
//! per sub-block (no minimum).
//!
//! Layout (ggml-common.h `block_q6_K`, `QK_K = 256`, 210 bytes):
//!
//! | bytes    | field                                                     |
//! |----------|-----------------------------------------------------------|
//! | 0..128   | `ql[128]`: low 4 bits of the quants                       |
//! | 128..192 | `qh[64]`: high 2 bits of the quants                       |
//! | 192..208 | `scales[16]`: `int8_t` sub-block scales                   |
//! | 208..210 | `d`: `ggml_half` super-block scale                        |
//!
//! Each half `h` (weights `128h .. 128h+128`) uses `ql[64h .. 64h+64]` and
//! `qh[32h .. 32h+32]`: for `l` in `0..32`, weight `128h + 32k + l`
//! (`k` in `0..4`) has low bits `ql[64h + l + 32(k&1)]` (low nibble for
//! `k < 2`, high nibble for `k >= 2`) and high bits `(qh[32h+l] >> 2k) & 3`.
//! Its scale is `scales[8h + 2k + l/16]` (ggml-quants.c
//! `dequantize_row_q6_K`).

use crate::fp16::{f16_bits, read_f16};
use crate::q8_k::{self, nearest_int};
use crate::QK_K;

/// Bytes per block (`sizeof(block_q6_K)`).
const BLOCK: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;
/// Offsets of `qh`, `scales` and `d`.
const QH: usize = QK_K / 2;
const SC: usize = QH + QK_K / 4;
const D: usize = SC + QK_K / 16;
/// ggml-quants.c `GROUP_MAX_EPS`: below this a group counts as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// The signed quants (`q - 32`, in `-32..=31`) of a block, in weight order.
fn unpack(b: &[u8]) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[QH + 32 * h..QH + 32 * h + 32];
        let out = &mut q[128 * h..128 * h + 128];
        for l in 0..32 {
            let hb = |k: usize| ((qh[l] >> (2 * k)) & 3) << 4;
            out[l] = ((ql[l] & 0x0F) | hb(0)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0x0F) | hb(1)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | hb(2)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | hb(3)) as i8 - 32;
        }
    }
    q
}

/// ggml-quants.c `dequantize_row_q6_K`: `(d·sc)·q` in `f32`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[D..]);
        let q = unpack(b);
        for (j, (y, q)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let ds = d * f32::from(b[SC + j] as i8);
            for (y, &q) in y.iter_mut().zip(q) {
                *y = ds * f32::from(q);
            }
        }
    }
}

/// ggml-quants.c `make_qx_quants` for `rmse_type = 1` without importance
/// weights (the only use in `quantize_row_q6_K_ref`): symmetric levels
/// `l` in `-nmax..nmax` (stored `+ nmax`), trying 19 grid scales
/// `-(nmax + 0.1·is)/max` and keeping the one whose `x²`-weighted
/// least-squares scale fits best. Returns that scale. Every `f32`
/// operation is in ggml's order, so the result is the same.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // `sumlx += w*x*l; suml2 += w*l*l` with `w = x²`.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -nmaxf / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (level(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (level(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml-quants.c `quantize_row_q6_K_ref`: a [`make_qx_quants`] scale per
/// 16-weight sub-block, the scales quantized to `int8` against the one of
/// largest magnitude (`iscale = -128 / max_scale`, `d = 1/iscale`), then
/// every weight re-quantized against its rounded scale.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BLOCK)) {
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for (ib, s) in scales.iter_mut().enumerate() {
            let r = 16 * ib..16 * (ib + 1);
            *s = make_qx_quants(32, &x[r.clone()], &mut levels[r]);
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = *s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            b.fill(0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        b[D..D + 2].copy_from_slice(&f16_bits(1.0 / iscale).to_le_bytes());
        for (ib, s) in scales.iter().enumerate() {
            b[SC + ib] = nearest_int(iscale * s).min(127) as i8 as u8;
        }
        let d = read_f16(&b[D..]);
        for j in 0..QK_K / 16 {
            let ds = d * f32::from(b[SC + j] as i8);
            if ds == 0.0 {
                // ggml keeps the levels of the sub-block fit.
                continue;
            }
            for i in 16 * j..16 * (j + 1) {
                levels[i] = (nearest_int(x[i] / ds).clamp(-32, 31) + 32) as i8;
            }
        }
        for h in 0..2 {
            let l = &levels[128 * h..128 * h + 128];
            for i in 0..32 {
                let q = |k: usize| l[i + 32 * k] as u8;
                b[64 * h + i] = (q(0) & 0x0F) | ((q(2) & 0x0F) << 4);
                b[64 * h + i + 32] = (q(1) & 0x0F) | ((q(3) & 0x0F) << 4);
                b[QH + 32 * h + i] =
                    (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
    }
}

/// `Q6_K · Q8_K`, the semantics of ggml-cpu quants.c
/// `ggml_vec_dot_q6_K_q8_K_generic`: per super-block the exact integer
/// `Σ_j sc_j·Σ (q-32)·qa`, times `d_w·d_a`, summed in `f32` (ggml's
/// generic code spreads it over 8 `f32` lanes; same integers).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(q8_k::BLOCK)) {
        let q = unpack(bw);
        let qa = q8_k::quants(ba);
        let mut isum = 0i32;
        for j in 0..QK_K / 16 {
            let si: i32 = (16 * j..16 * (j + 1))
                .map(|i| i32::from(q[i]) * i32::from(qa[i] as i8))
                .sum();
            isum += i32::from(bw[SC + j] as i8) * si;
        }
        sum += read_f16(&bw[D..]) * q8_k::scale(ba) * isum as f32;
    }
    sum
}
