//! `Q5_K` (ggml type 13): `Q4_K` with a fifth bit per weight —
//! `x = d·sc_j·q - dmin·m_j`, `q` in `0..=31`.
//!
//! Layout (ggml-common.h `block_q5_K`, `QK_K = 256`, 176 bytes):
//!
//! | bytes   | field                                                     |
//! |---------|-----------------------------------------------------------|
//! | 0..2    | `d`: `ggml_half`, scale of the sub-block scales           |
//! | 2..4    | `dmin`: `ggml_half`, scale of the sub-block minimums      |
//! | 4..16   | `scales[12]`: 6-bit scales and mins, packed as in `Q4_K`  |
//! | 16..48  | `qh[32]`: bit `s` of `qh[l]` is bit 4 of weight `l` of    |
//! |         | sub-block `s` (`s` in `0..8`, `l` in `0..32`)             |
//! | 48..176 | `qs[128]`: low 4 bits, four 32-byte chunks; chunk `c`     |
//! |         | holds sub-block `2c` (low nibbles) and `2c+1` (high ones) |

use crate::fp16::read_f16;
use crate::q4_k::{quantize_k, scale_min};
use crate::q8_k;
use crate::QK_K;

/// Bytes per block (`sizeof(block_q5_K)`).
const BLOCK: usize = 2 + 2 + 12 + QK_K / 8 + QK_K / 2;
/// Offsets of `qh` and `qs`.
const QH: usize = 16;
const QS: usize = QH + QK_K / 8;

/// The level (`0..=31`) of weight `l` of sub-block `s`.
fn level(b: &[u8], s: usize, l: usize) -> u8 {
    let lo = b[QS + 32 * (s / 2) + l];
    let lo = if s & 1 == 0 { lo & 0x0F } else { lo >> 4 };
    let hi = (b[QH + l] >> s) & 1;
    lo | (hi << 4)
}

/// ggml-quants.c `dequantize_row_q5_K`: `(d·sc)·q - (dmin·m)` in `f32`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[0..2]);
        let dmin = read_f16(&b[2..4]);
        for (s, y) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min(s, &b[4..16]);
            let (ds, dm) = (d * f32::from(sc), dmin * f32::from(m));
            for (l, y) in y.iter_mut().enumerate() {
                *y = ds * f32::from(level(b, s, l)) - dm;
            }
        }
    }
}

/// ggml-quants.c `quantize_row_q5_K_ref` (`nmax = 31`, `rmin = -0.5`,
/// `rdelta = 0.1`, `nstep = 15`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BLOCK)) {
        let k = quantize_k(x, 31, -0.5, 15);
        b[0..2].copy_from_slice(&k.d.to_le_bytes());
        b[2..4].copy_from_slice(&k.dmin.to_le_bytes());
        b[4..16].copy_from_slice(&k.scales);
        b[QH..QS].fill(0);
        for s in 0..QK_K / 32 {
            for l in 0..32 {
                let q = k.levels[32 * s + l];
                b[QH + l] |= (q >> 4) << s;
                let nib = q & 0x0F;
                let byte = &mut b[QS + 32 * (s / 2) + l];
                if s & 1 == 0 {
                    *byte = nib;
                } else {
                    *byte |= nib << 4;
                }
            }
        }
    }
}

/// `Q5_K · Q8_K`, the semantics of ggml-cpu quants.c
/// `ggml_vec_dot_q5_K_q8_K_generic` (see `Q4_K`'s `vec_dot`): exact integer
/// sums `Σ_j sc_j·Σ q·qa` and `Σ_g bsums[g]·m_{g/2}`, scaled in `f32`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(q8_k::BLOCK)) {
        let qa = q8_k::quants(ba);
        let mut isum = 0i32;
        let mut msum = 0i32;
        for s in 0..QK_K / 32 {
            let (sc, m) = scale_min(s, &bw[4..16]);
            let mut si = 0i32;
            for l in 0..32 {
                si += i32::from(level(bw, s, l)) * i32::from(qa[32 * s + l] as i8);
            }
            isum += i32::from(sc) * si;
            msum += (q8_k::bsum(ba, 2 * s) + q8_k::bsum(ba, 2 * s + 1)) * i32::from(m);
        }
        let da = q8_k::scale(ba);
        sum += read_f16(&bw[0..2]) * da * isum as f32;
        sum -= read_f16(&bw[2..4]) * da * msum as f32;
    }
    sum
}
