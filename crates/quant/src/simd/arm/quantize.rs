//! NEON activation quantizers, bit for bit the scalar references'
//! (q8_0.rs, q8_k.rs): the same `f32` operations per value, with the
//! reductions whose result depends on order or on NaN handled so that
//! they agree (a block holding a NaN goes through the reference).

use crate::fp16::f16_bits;
use core::arch::aarch64::*;

/// `Q8_0` (q8_0.rs `quantize`): per 32 values `d = amax / 127`, each value
/// times `1/d`, rounded half away from zero (`vcvtaq`, `roundf`),
/// saturated to `i8`.
pub(super) fn q8_0(src: &[f32], dst: &mut [u8]) {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q8_0_neon(src, dst) }
}

#[target_feature(enable = "neon")]
fn q8_0_neon(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(32).zip(dst.chunks_exact_mut(34)) {
        // SAFETY: 8 loads of 4 within the 32 values.
        let v: [float32x4_t; 8] =
            std::array::from_fn(|i| unsafe { vld1q_f32(x[4 * i..].as_ptr()) });
        let mut m = vabsq_f32(v[0]);
        for v in &v[1..] {
            m = vmaxq_f32(m, vabsq_f32(*v));
        }
        // Without NaN the maximum does not depend on the order; with one,
        // the reference's fold decides (`vmaxq` propagates it).
        let amax = vmaxvq_f32(m);
        if amax.is_nan() {
            crate::q8_0::quantize(x, b);
            continue;
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        let vid = vdupq_n_f32(id);
        for (i, pair) in v.chunks_exact(2).enumerate() {
            let a = vcvtaq_s32_f32(vmulq_f32(pair[0], vid));
            let c = vcvtaq_s32_f32(vmulq_f32(pair[1], vid));
            let q8 = vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(c)));
            // SAFETY: bytes 2 + 8i .. + 8 of the 34-byte block.
            unsafe { vst1_s8(b[2 + 8 * i..].as_mut_ptr().cast(), q8) };
        }
    }
}

/// `Q8_K` (q8_k.rs `quantize`): per 256 values the first value of the
/// largest magnitude (NaN never counts), `iscale = −127 / max`, quants by
/// the magic-number `nearest_int`, capped at 127; 16 group sums; `d =
/// 1 / iscale`.
pub(super) fn q8_k(src: &[f32], dst: &mut [u8]) {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q8_k_neon(src, dst) }
}

#[target_feature(enable = "neon")]
fn q8_k_neon(src: &[f32], dst: &mut [u8]) {
    const QK: usize = 256;
    const BSUMS: usize = 4 + QK;
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BSUMS + 32)) {
        // `vmaxnm` ignores NaN as the reference's `>` test does.
        let mut m = vdupq_n_f32(0.0);
        for c in x.chunks_exact(4) {
            // SAFETY: 4 values.
            m = vmaxnmq_f32(m, vabsq_f32(unsafe { vld1q_f32(c.as_ptr()) }));
        }
        let amax = vmaxnmvq_f32(m);
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        // The first value reaching it, with its sign.
        let max = *x
            .iter()
            .find(|v| v.abs() == amax)
            .expect("amax is one of the values");
        let iscale = -127.0 / max;
        let (vs, magic) = (vdupq_n_f32(iscale), vdupq_n_f32(12_582_912.0));
        let (mask, bias, cap) = (
            vdupq_n_s32(0x007f_ffff),
            vdupq_n_s32(0x0040_0000),
            vdupq_n_s32(127),
        );
        for g in 0..QK / 16 {
            let mut q = [0i32; 16];
            for k in 0..4 {
                let i = 16 * g + 4 * k;
                // SAFETY: 4 values at i.
                let v = unsafe { vld1q_f32(x[i..].as_ptr()) };
                let bits = vreinterpretq_s32_f32(vaddq_f32(vmulq_f32(vs, v), magic));
                let n = vminq_s32(vsubq_s32(vandq_s32(bits, mask), bias), cap);
                // SAFETY: 4 of the 16.
                unsafe { vst1q_s32(q[4 * k..].as_mut_ptr(), n) };
            }
            let mut s = 0i16;
            for (o, &n) in b[4 + 16 * g..4 + 16 * (g + 1)].iter_mut().zip(&q) {
                *o = n as i8 as u8;
                s += i16::from(n as i8);
            }
            b[BSUMS + 2 * g..BSUMS + 2 * g + 2].copy_from_slice(&s.to_le_bytes());
        }
        b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// `Q8_0R`: the NEON `Q8_0` numbers in planes (q8_0r.rs).
pub(super) fn q8_0r(src: &[f32], dst: &mut [u8]) {
    crate::q8_0r::quantize_with(q8_0, src, dst);
}
