//! NEON dot products (see `super`): the integer sum of each 32-value
//! activation block by vector code, everything in `f32` exactly as the
//! scalar references (q1_0.rs, q2_0.rs `vec_dot_g`, q8_0.rs) do it.

use crate::fp16::read_f16;
use core::arch::aarch64::*;

/// `Q8_0R` planes: values per block, and the `(quants, scales, sums)`
/// split of a row (q8_0r.rs).
const QK: usize = 32;

fn planes(a: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let nb = a.len() / (QK + 8);
    let (q, rest) = a.split_at(QK * nb);
    let (d, rest) = rest.split_at(4 * nb);
    (q, d, &rest[..4 * nb])
}

fn f32_at(p: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]])
}

fn i32_at(p: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]])
}

/// `Σ a[i]·b[i]` over 16 lanes into 4 `i32` lanes (exact).
#[inline]
#[target_feature(enable = "neon")]
fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vpadalq_s16(vpadalq_s16(acc, lo), hi)
}

/// The 32 quants of activation block `k` of the quants plane `q`.
#[inline]
#[target_feature(enable = "neon")]
fn quants(q: &[u8], k: usize) -> (int8x16_t, int8x16_t) {
    let b = &q[QK * k..QK * (k + 1)];
    // SAFETY: `b` has 32 bytes; unaligned loads of 16.
    unsafe {
        (
            vld1q_s8(b.as_ptr().cast()),
            vld1q_s8(b[16..].as_ptr().cast()),
        )
    }
}

/// Signs of 32 weights (4 bytes, bit `j % 8` of byte `j / 8`, LSB first)
/// as bytes 0/1, lanes 0..16 and 16..32.
#[inline]
#[target_feature(enable = "neon")]
fn sign_bits(bits: [u8; 4]) -> (int8x16_t, int8x16_t) {
    const LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const MASK: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(bits)));
    // SAFETY: 16-byte constant arrays.
    let (lo, hi, mask) = unsafe {
        (
            vld1q_u8(LO.as_ptr()),
            vld1q_u8(HI.as_ptr()),
            vld1q_u8(MASK.as_ptr()),
        )
    };
    let one = vdupq_n_u8(1);
    let bit = |idx| vreinterpretq_s8_u8(vandq_u8(vtstq_u8(vqtbl1q_u8(v, idx), mask), one));
    (bit(lo), bit(hi))
}

/// 2-bit codes of 32 weights (8 bytes, weight `j` at bits `2·(j % 4)` of
/// byte `j / 4`) as bytes 0..=3, lanes 0..16 and 16..32.
#[inline]
#[target_feature(enable = "neon")]
fn codes(qs: [u8; 8]) -> (int8x16_t, int8x16_t) {
    const LO: [u8; 16] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    const HI: [u8; 16] = [4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7];
    const SHIFT: [i8; 16] = [0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6];
    let v = vreinterpretq_u8_u64(vdupq_n_u64(u64::from_le_bytes(qs)));
    // SAFETY: 16-byte constant arrays.
    let (lo, hi, shift) = unsafe {
        (
            vld1q_u8(LO.as_ptr()),
            vld1q_u8(HI.as_ptr()),
            vld1q_s8(SHIFT.as_ptr()),
        )
    };
    let three = vdupq_n_u8(3);
    let code = |idx| vreinterpretq_s8_u8(vandq_u8(vshlq_u8(vqtbl1q_u8(v, idx), shift), three));
    (code(lo), code(hi))
}

/// `Q1_0` (128 weights, f16 `d`, 16 bytes of signs) · `Q8_0R`.
pub(super) fn q1_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q1_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn q1_0_neon(w: &[u8], a: &[u8]) -> f32 {
    let (qa, da, sa) = planes(a);
    let mut sumf = 0.0f32;
    // Whole weight blocks with whole activation blocks, as the
    // reference's `zip` (the shorter operand decides).
    for (i, blk) in w.chunks_exact(18).take(qa.len() / 128).enumerate() {
        let d0 = read_f16(blk);
        let mut sumi = 0.0f32;
        for k in 0..4 {
            let ab = 4 * i + k;
            let (b0, b1) = sign_bits(blk[2 + 4 * k..6 + 4 * k].try_into().expect("4 bytes"));
            let (q0, q1) = quants(qa, ab);
            // Σ ±q = 2·Σ bit·q − Σ q (exact integers).
            let s = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), b0, q0), b1, q1));
            let sumi_block = 2 * s - i32_at(sa, ab);
            sumi += f32_at(da, ab) * sumi_block as f32;
        }
        sumf += d0 * sumi;
    }
    sumf
}

/// `Q2_0` with weight groups of `G` (f16 `d`, `G / 4` bytes of codes) ·
/// `Q8_0R`.
#[target_feature(enable = "neon")]
fn q2_0_neon<const G: usize>(w: &[u8], a: &[u8]) -> f32 {
    let (qa, da, sa) = planes(a);
    let per = G / QK;
    let mut sumf = 0.0f32;
    for (i, blk) in w.chunks_exact(2 + G / 4).take(qa.len() / G).enumerate() {
        let d0 = read_f16(blk);
        let mut sumi = 0.0f32;
        for k in 0..per {
            let ab = per * i + k;
            let (c0, c1) = codes(blk[2 + 8 * k..10 + 8 * k].try_into().expect("8 bytes"));
            let (q0, q1) = quants(qa, ab);
            // Σ (code − 1)·q = Σ code·q − Σ q.
            let s = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), c0, q0), c1, q1));
            let sumi_block = s - i32_at(sa, ab);
            sumi += f32_at(da, ab) * sumi_block as f32;
        }
        sumf += d0 * sumi;
    }
    sumf
}

pub(super) fn q2_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q2_0_neon::<64>(w, a) }
}

pub(super) fn q2_0_g128(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q2_0_neon::<128>(w, a) }
}

/// `Q8_0` · `Q8_0` (34-byte blocks: f16 `d`, 32 `int8`).
pub(super) fn q8_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q8_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn q8_0_neon(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(34).zip(a.chunks_exact(34)) {
        let (x0, x1) = quants(&bw[2..], 0);
        let (y0, y1) = quants(&ba[2..], 0);
        let sumi = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), x0, y0), x1, y1));
        sum += sumi as f32 * (read_f16(bw) * read_f16(ba));
    }
    sum
}

/// `TQ2_0` (256 weights: 64 bytes of 2-bit codes, f16 `d` last; weight `i`
/// at bits `2·((i % 128) / 32)` of byte `32·(i / 128) + i % 32`, tq2_0.rs)
/// · `Q8_K` (f32 `d`, 256 `int8`, 16 `i16` block sums).
pub(super) fn tq2_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { tq2_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn tq2_0_neon(w: &[u8], a: &[u8]) -> f32 {
    const QS: usize = 64;
    const Q8_K: usize = 4 + 256 + 32;
    let three = vdupq_n_u8(3);
    let mut sumf = 0.0f32;
    for (blk, act) in w.chunks_exact(QS + 2).zip(a.chunks_exact(Q8_K)) {
        let dy = f32_at(act, 0);
        let q = &act[4..4 + 256];
        let mut acc = vdupq_n_s32(0);
        for h in 0..2 {
            // SAFETY: bytes 32h..32h + 32 of the 64 code bytes.
            let (b0, b1) = unsafe {
                (
                    vld1q_u8(blk[32 * h..].as_ptr()),
                    vld1q_u8(blk[32 * h + 16..].as_ptr()),
                )
            };
            for m in 0..4 {
                let sh = vdupq_n_s8(-2 * m as i8);
                let c0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(b0, sh), three));
                let c1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(b1, sh), three));
                let (q0, q1) = quants(q, 4 * h + m);
                acc = dot16(dot16(acc, c0, q0), c1, q1);
            }
        }
        // Σ (code − 1)·q = Σ code·q − Σ q, Σ q from the block sums.
        let bsum: i32 = act[4 + 256..]
            .chunks_exact(2)
            .map(|p| i32::from(i16::from_le_bytes([p[0], p[1]])))
            .sum();
        let sumi = vaddvq_s32(acc) - bsum;
        sumf += sumi as f32 * (dy * read_f16(&blk[QS..]));
    }
    sumf
}

/// `Q5_0` (22-byte blocks: f16 `d`, `qh` fifth bits, 16 bytes of nibbles:
/// weight `j` in the low nibble of byte `j`, `j + 16` in its high nibble;
/// value `q − 16`, q5_0.rs) · `Q8_0`.
pub(super) fn q5_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q5_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn q5_0_neon(w: &[u8], a: &[u8]) -> f32 {
    let (low4, sixteen) = (vdupq_n_u8(0x0F), vdupq_n_s8(16));
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(22).zip(a.chunks_exact(34)) {
        // Fifth bits as 0/1 bytes for weights 0..16 and 16..32, moved to bit 4.
        let (h0, h1) = sign_bits(bw[2..6].try_into().expect("4 bytes"));
        // SAFETY: the 16 nibble bytes of the block.
        let qs = unsafe { vld1q_u8(bw[6..].as_ptr()) };
        let q = |nib: uint8x16_t, h: int8x16_t| {
            let v = vorrq_u8(nib, vshlq_n_u8::<4>(vreinterpretq_u8_s8(h)));
            vsubq_s8(vreinterpretq_s8_u8(v), sixteen)
        };
        let x0 = q(vandq_u8(qs, low4), h0);
        let x1 = q(vshrq_n_u8::<4>(qs), h1);
        let (y0, y1) = quants(&ba[2..], 0);
        let sumi = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), x0, y0), x1, y1));
        sum += (read_f16(bw) * read_f16(ba)) * sumi as f32;
    }
    sum
}

/// Σ over 16 lanes of `a·b` as one `i32` (exact).
#[inline]
#[target_feature(enable = "neon")]
fn sum16(a: int8x16_t, b: int8x16_t) -> i32 {
    vaddvq_s32(dot16(vdupq_n_s32(0), a, b))
}

/// The 16 bytes at `p[i..i + 16]`.
#[inline]
#[target_feature(enable = "neon")]
fn load16(p: &[u8], i: usize) -> uint8x16_t {
    let b = &p[i..i + 16];
    // SAFETY: `b` has 16 bytes; unaligned load.
    unsafe { vld1q_u8(b.as_ptr()) }
}

/// `Q4_K` (f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and mins, 128
/// bytes of nibbles; q4_k.rs) · `Q8_K`: the integer sums by vector code,
/// scales, mins and `f32` steps as the reference.
pub(super) fn q4_k(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q4_k_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn q4_k_neon(w: &[u8], a: &[u8]) -> f32 {
    use crate::{q4_k::scale_min, q8_k};
    let low4 = vdupq_n_u8(0x0F);
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(144).zip(a.chunks_exact(q8_k::BLOCK)) {
        let scales = &bw[4..16];
        let qa = q8_k::quants(ba);
        let (mut isum, mut msum) = (0i32, 0i32);
        for c in 0..4 {
            let (sc1, m1) = scale_min(2 * c, scales);
            let (sc2, m2) = scale_min(2 * c + 1, scales);
            let (mut s1, mut s2) = (0i32, 0i32);
            for half in 0..2 {
                let qs = load16(bw, 16 + 32 * c + 16 * half);
                let lo = vreinterpretq_s8_u8(vandq_u8(qs, low4));
                let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(qs));
                let y1 = vreinterpretq_s8_u8(load16(qa, 64 * c + 16 * half));
                let y2 = vreinterpretq_s8_u8(load16(qa, 64 * c + 32 + 16 * half));
                s1 += sum16(lo, y1);
                s2 += sum16(hi, y2);
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

/// `Q6_K` (128 bytes of low nibbles `ql`, 64 of high bit pairs `qh`, 16
/// `i8` scales, f16 `d`; q6_k.rs) · `Q8_K`.
pub(super) fn q6_k(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { q6_k_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn q6_k_neon(w: &[u8], a: &[u8]) -> f32 {
    use crate::q8_k;
    const QH: usize = 128;
    const SC: usize = QH + 64;
    const D: usize = SC + 16;
    let (low4, three, off) = (vdupq_n_u8(0x0F), vdupq_n_u8(3), vdupq_n_s8(32));
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(D + 2).zip(a.chunks_exact(q8_k::BLOCK)) {
        let qa = q8_k::quants(ba);
        let mut isum = 0i32;
        for h in 0..2 {
            // 16 of the 32 `l` of this half at a time: weights 128h + l
            // + 32k for k = 0..4 (q6_k.rs `unpack`).
            for l0 in [0, 16] {
                let ql0 = load16(bw, 64 * h + l0);
                let ql1 = load16(bw, 64 * h + 32 + l0);
                let qh = load16(bw, QH + 32 * h + l0);
                let hb = |k: i8| vshlq_n_u8::<4>(vandq_u8(vshlq_u8(qh, vdupq_n_s8(-2 * k)), three));
                let parts = [
                    vandq_u8(ql0, low4),
                    vandq_u8(ql1, low4),
                    vshrq_n_u8::<4>(ql0),
                    vshrq_n_u8::<4>(ql1),
                ];
                for (k, nib) in parts.into_iter().enumerate() {
                    let q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib, hb(k as i8))), off);
                    let i = 128 * h + 32 * k + l0;
                    let y = vreinterpretq_s8_u8(load16(qa, i));
                    // Weights i..i + 16 are scale group i / 16.
                    isum += i32::from(bw[SC + i / 16] as i8) * sum16(q, y);
                }
            }
        }
        sum += read_f16(&bw[D..]) * q8_k::scale(ba) * isum as f32;
    }
    sum
}

/// Codes (trit + 1, 0..=2) of 16 packed `TQ1_0` bytes at per-lane powers
/// of three `pow`: `((b·pow mod 256)·3) >> 8`, tq1_0.rs `trit` plus one.
#[inline]
#[target_feature(enable = "neon")]
fn trits(b: uint8x16_t, pow: uint8x16_t) -> int8x16_t {
    let q = vmulq_u8(b, pow);
    let three = vdup_n_u8(3);
    let lo = vshrn_n_u16::<8>(vmull_u8(vget_low_u8(q), three));
    let hi = vshrn_n_u16::<8>(vmull_high_u8(q, vdupq_n_u8(3)));
    vreinterpretq_s8_u8(vcombine_u8(lo, hi))
}

/// `PTQ1_0` (24 bytes of five trits each, 2 bytes of four, f16 `d` last;
/// ptq1_0.rs for the weight order) · `Q8_0R`, in the scalar reference's
/// order: per activation block the exact `Σ trit·q` times its scale into
/// the block's `f32` sum, which times `d` goes into the row total.
pub(super) fn ptq1_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { ptq1_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn ptq1_0_neon(w: &[u8], a: &[u8]) -> f32 {
    // From the 16 bytes at 12 (`qs[12..16]`, `qs[16..24]`, `qh`, `d`):
    // `qs[16..24]` twice (weights 80..112, trits 0..4), and `qs[16..24]`
    // then the two `qh` bytes four times (112..120: trit 4; 120..128:
    // weight `120 + 2n + h` is trit n of `qh[h]`).
    const TWICE: [u8; 16] = [4, 5, 6, 7, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11];
    const TAIL: [u8; 16] = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 12, 13, 12, 13, 12, 13];
    const POW: [[u8; 16]; 3] = [
        [1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3],
        [9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27],
        [81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27],
    ];
    // SAFETY: 16-byte constant arrays.
    let (twice, tail, p01, p23, p4q) = unsafe {
        (
            vld1q_u8(TWICE.as_ptr()),
            vld1q_u8(TAIL.as_ptr()),
            vld1q_u8(POW[0].as_ptr()),
            vld1q_u8(POW[1].as_ptr()),
            vld1q_u8(POW[2].as_ptr()),
        )
    };
    let (qa, da, sa) = planes(a);
    let mut sumf = 0.0f32;
    for (i, blk) in w.chunks_exact(28).take(qa.len() / 128).enumerate() {
        let b0 = load16(blk, 0);
        let y = load16(blk, 12);
        let (s16, sq) = (vqtbl1q_u8(y, twice), vqtbl1q_u8(y, tail));
        // weights 32k..32k + 32 as two vectors of codes
        let c = [
            (trits(b0, vdupq_n_u8(1)), trits(b0, vdupq_n_u8(3))),
            (trits(b0, vdupq_n_u8(9)), trits(b0, vdupq_n_u8(27))),
            (trits(b0, vdupq_n_u8(81)), trits(s16, p01)),
            (trits(s16, p23), trits(sq, p4q)),
        ];
        let mut sumi = 0.0f32;
        for (k, (c0, c1)) in c.into_iter().enumerate() {
            let ab = 4 * i + k;
            let (q0, q1) = quants(qa, ab);
            // Σ (code − 1)·q = Σ code·q − Σ q.
            let s = vaddvq_s32(dot16(dot16(vdupq_n_s32(0), c0, q0), c1, q1));
            sumi += f32_at(da, ab) * (s - i32_at(sa, ab)) as f32;
        }
        sumf += read_f16(&blk[26..]) * sumi;
    }
    sumf
}

/// `TQ1_0` (48 bytes of five trits each, 4 bytes of four, f16 `d`;
/// tq1_0.rs `unpack` for the weight order) · `Q8_K`.
pub(super) fn tq1_0(w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is always present on aarch64.
    unsafe { tq1_0_neon(w, a) }
}

#[target_feature(enable = "neon")]
fn tq1_0_neon(w: &[u8], a: &[u8]) -> f32 {
    use crate::q8_k;
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    // The 4 `qh` bytes spread over 16 lanes (lane 4n + m: byte m, trit n).
    const QH_IDX: [u8; 16] = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];
    const QH_POW: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];
    // SAFETY: 16-byte constant arrays.
    let (qh_idx, qh_pow) = unsafe { (vld1q_u8(QH_IDX.as_ptr()), vld1q_u8(QH_POW.as_ptr())) };
    let mut sumf = 0.0f32;
    for (blk, act) in w.chunks_exact(54).zip(a.chunks_exact(q8_k::BLOCK)) {
        let dy = q8_k::scale(act);
        let q = q8_k::quants(act);
        let y = |i: usize| vreinterpretq_s8_u8(load16(q, i));
        let (b0, b1, b2) = (load16(blk, 0), load16(blk, 16), load16(blk, 32));
        let mut acc = vdupq_n_s32(0);
        for (n, &p) in POW3.iter().enumerate() {
            let pow = vdupq_n_u8(p);
            // Bytes 0..32, trit n: weights 32n + m.
            acc = dot16(acc, trits(b0, pow), y(32 * n));
            acc = dot16(acc, trits(b1, pow), y(32 * n + 16));
            // Bytes 32..48, trit n: weights 160 + 16n + m.
            acc = dot16(acc, trits(b2, pow), y(160 + 16 * n));
        }
        // The 4 `qh` bytes: weights 240 + 4n + m.
        let qh = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(
            blk[48..52].try_into().expect("4 bytes"),
        )));
        acc = dot16(acc, trits(vqtbl1q_u8(qh, qh_idx), qh_pow), y(240));
        // Σ trit·q = Σ code·q − Σ q, Σ q from the block sums.
        let bsum: i32 = (0..16).map(|g| q8_k::bsum(act, g)).sum();
        let sum = vaddvq_s32(acc) - bsum;
        sumf += sum as f32 * (read_f16(&blk[52..]) * dy);
    }
    sumf
}
