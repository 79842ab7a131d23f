//! `PTQ1_0` weight decoding for the `Q8_0R` kernels ([`super::planar_avx2`],
//! [`super::planar_avx512`]): the digits (`u = w + 1`, 0..=2) of 32 or 64
//! consecutive weights of one block as bytes in weight order, which is all
//! those kernels need of a layout (see `crate::ptq1_0` for the block).
//!
//! Weight order (per block of 128): weights `16n + m` (n < 5) are digit `n`
//! of `qs[m]` (m < 16), `80 + 8n + m` digit `n` of `qs[16 + m]` (m < 8),
//! `120 + 2n + h` digit `n` of `qh[h]` (h < 2). A vector is built whose
//! byte `p` is the source byte of weight `p`, with the matching `3^n` in
//! its 16-bit lane (every digit run is 8 or 16 bytes, the two bytes of a
//! lane share `n` even in the `qh` run), and `TQ1_0`'s digit extraction
//! ([`super::tq_avx2::trits`], [`super::tq_avx512::trits`]) does the rest:
//! `((byte·3^n) mod 256)·3 >> 8`, exact for every byte value.
//!
//! The block is read as two 16-byte loads, at 0 (`qs[0..16]`) and at 12
//! (`qs[12..16]`, `qs[16..24]`, `qh[0..2]`, `d`): both inside the 28 bytes.

use super::load::ld128;
use super::{tq_avx2, tq_avx512};
use std::arch::x86_64::*;

/// `qs[16..24]` and `qh` inside the load at 12.
const QS16: u8 = 4;
const QH: u8 = 12;

/// A 16-byte shuffle index: `qs[16..24]` twice.
const fn qs16_twice() -> [u8; 16] {
    let mut x = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        x[i] = QS16 + (i % 8) as u8;
        i += 1;
    }
    x
}

/// `qs[16..24]`, then `qh[0], qh[1]` four times.
const fn qs16_qh() -> [u8; 16] {
    let mut x = qs16_twice();
    let mut i = 8;
    while i < 16 {
        x[i] = QH + (i % 2) as u8;
        i += 1;
    }
    x
}

/// Identity (lane from the load at 0).
const fn ident() -> [u8; 16] {
    let mut x = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        x[i] = i as u8;
        i += 1;
    }
    x
}

/// Four 128-bit lanes of 16 bytes as one 64-byte array.
const fn cat4(x: [[u8; 16]; 4]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        out[k] = x[k / 16][k % 16];
        k += 1;
    }
    out
}

/// Half 1 of a block (weights 64..128), per 128-bit lane: digit 4 of
/// `qs[0..16]`; digits 0, 1 of `qs[16..24]`; digits 2, 3; digit 4 and the
/// `qh` digits 0..4 (weight `120 + 2n + h`, one lane per `qh` pair).
static H1_IDX: [u8; 64] = cat4([ident(), qs16_twice(), qs16_twice(), qs16_qh()]);
static H1_POW: [i16; 32] = [
    81, 81, 81, 81, 81, 81, 81, 81, //
    1, 1, 1, 1, 3, 3, 3, 3, //
    9, 9, 9, 9, 27, 27, 27, 27, //
    81, 81, 81, 81, 1, 3, 9, 27,
];
/// Half 0 (weights 0..64): digits 0..4 of `qs[0..16]`, one per lane.
static H0_POW: [i16; 32] = [
    1, 1, 1, 1, 1, 1, 1, 1, //
    3, 3, 3, 3, 3, 3, 3, 3, //
    9, 9, 9, 9, 9, 9, 9, 9, //
    27, 27, 27, 27, 27, 27, 27, 27,
];

/// A vector of 16 i16.
#[inline]
#[target_feature(enable = "avx2")]
fn ld_i16x16(x: &[i16; 16]) -> __m256i {
    // SAFETY: `x` is 32 readable bytes; `loadu` has no alignment
    // requirement.
    unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
}

/// A vector of 32 i16.
#[inline]
#[target_feature(enable = "avx512f")]
fn ld_i16x32(x: &[i16; 32]) -> __m512i {
    // SAFETY: `x` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(x.as_ptr().cast()) }
}

/// The multipliers of AVX2 quarter `k` (weights `32k..32k + 32`).
static Q_POW: [[i16; 16]; 4] = [
    [1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3],
    [9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27],
    [81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 1, 1, 3, 3, 3, 3],
    [9, 9, 9, 9, 27, 27, 27, 27, 81, 81, 81, 81, 1, 3, 9, 27],
];
/// The byte sources of AVX2 quarters 2 (`[load 0 | qs[16..24] ×2]`, from
/// `[load 0 | load 12]`) and 3 (`[qs[16..24] ×2 | qs[16..24], qh ×4]`,
/// from the load at 12 twice).
static Q2_IDX: [u8; 32] = {
    let (a, b) = (ident(), qs16_twice());
    let mut out = [0u8; 32];
    let mut k = 0;
    while k < 16 {
        out[k] = a[k];
        out[16 + k] = b[k];
        k += 1;
    }
    out
};
static Q3_IDX: [u8; 32] = {
    let (a, b) = (qs16_twice(), qs16_qh());
    let mut out = [0u8; 32];
    let mut k = 0;
    while k < 16 {
        out[k] = a[k];
        out[16 + k] = b[k];
        k += 1;
    }
    out
};

/// Digits of weights `32k..32k + 32` of the block at `s[off..off + 28]`
/// (`k` in 0..4, a constant at every call site).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn codes32(s: &[u8], off: usize, k: usize) -> __m256i {
    let idx = |x: &[u8; 32]| super::load::ld256(x, 0);
    let v = match k {
        0 | 1 => _mm256_broadcastsi128_si256(ld128(s, off)),
        2 => _mm256_shuffle_epi8(
            _mm256_set_m128i(ld128(s, off + 12), ld128(s, off)),
            idx(&Q2_IDX),
        ),
        _ => _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(ld128(s, off + 12)),
            idx(&Q3_IDX),
        ),
    };
    tq_avx2::trits(tq_avx2::split(v), ld_i16x16(&Q_POW[k]))
}

/// Digits of weights `64h..64h + 64` of the block at `s[off..off + 28]`
/// (`h` in 0..2, a constant at every call site).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
pub(super) fn codes64(s: &[u8], off: usize, h: usize) -> __m512i {
    let x = ld128(s, off);
    let (v, pow) = if h == 0 {
        (_mm512_broadcast_i32x4(x), &H0_POW)
    } else {
        let y = _mm512_inserti32x4::<0>(_mm512_broadcast_i32x4(ld128(s, off + 12)), x);
        let v = _mm512_shuffle_epi8(y, super::load::ld512(&H1_IDX, 0));
        (v, &H1_POW)
    };
    let (lo, hi) = tq_avx512::split(v);
    tq_avx512::trits(lo, hi, ld_i16x32(pow))
}
