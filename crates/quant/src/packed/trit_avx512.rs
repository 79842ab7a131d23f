//! AVX-512 (F/BW/VNNI) kernels of the native `PTQ1_0` layout
//! ([`super::Kind::Trit`], `trit.rs`). Their results are bit-identical to
//! the same weights packed as `PQ2_0` codes and run by `avx512.rs`: the
//! integer block sums are exact either way, and the float operations are
//! that kernel's, in its order.
//!
//! Decode (one token) reads the base-3 bytes as they are. With `m_0` a
//! vector of bytes and `m_{n+1} = 3·m_n mod 256` (two byte adds), digit
//! `n` of every byte is `(3·m_n − m_{n+1}) / 256` exactly, so for the
//! chunk `c` held in digit `n`,
//! `Σ digit·q = (3·dpbusd(m_n, q_c) − dpbusd(m_{n+1}, q_c)) / 256`;
//! summed over an activation block's chunks (two `i32` accumulators `P`,
//! `R` per block) that is one multiply, subtract and shift per block.
//! Per chunk that is two byte adds and two `vpdpbusd` instead of a
//! shift, an AND and one `vpdpbusd`: more work per weight, but 18% fewer
//! bytes to stream, and decode is bound by memory bandwidth (an experiment
//! measured decode matrix-vector products of 9B shapes from DRAM ~10%
//! faster, 2 threads, Zen 4; end to end on the synthetic 9B model, decode
//! at 0.99x-1.18x `PQ2_0`'s tokens/s over 4 interleaved rounds, median
//! ~1.10x).
//!
//! Prefill (more than [`DECODE_TOKENS`] tokens) would pay that extra
//! `vpdpbusd` per token, so
//! instead each row group is rewritten once into a thread-local scratch in
//! `PQ2_0`'s packed form (2-bit codes, `Kind::Ternary { planes: 2 }`, the
//! size of the group's own packed `PQ2_0` data: 17 KiB at 4096 columns),
//! over which `avx512.rs`'s kernel runs for every token tile, exactly as
//! for a `PQ2_0` matrix. (Expanding to a byte per weight instead, read
//! with one load per chunk, measured ~5% slower prefill than `PQ2_0`.)

use super::avx512::group;
use super::trit::{BLOCK_WORDS, SCALES_AT, TAIL_AT, VECTORS};
use super::{PackedMatrix, ROWS};
use core::arch::x86_64::*;
use std::cell::RefCell;

/// Token counts run by the decode kernel, one token at a time.
const DECODE_TOKENS: usize = 2;

/// Weights per block (`PTQ1_0`'s) and per activation block (`Q8_0R`).
const G: usize = 128;
const S: usize = 32;

/// `u64` words of one block in `PQ2_0`'s packed form (`PackFormat::block_words`
/// of `Ternary { planes: 2 }` at `G = 128`): 4 words of scales, then 8
/// words per 4 chunks.
const PQ2_WORDS: usize = 4 + G / 4 * 2;

thread_local! {
    /// A row group's blocks in `PQ2_0`'s packed form ([`PQ2_WORDS`] each;
    /// read with unaligned loads, as the packed words are).
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// # Safety
/// AVX-512 F/BW/VNNI must be present. `w` holds whole row groups of `m`
/// (a `Trit` matrix), `acts` at least `n_tokens` rows of `a_row` bytes,
/// each at least `m.act_row_bytes()`, and `band` is `[groups][n_tokens][16]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn matmul(
    m: &PackedMatrix,
    w: &[u64],
    acts: &[u8],
    a_row: usize,
    n_tokens: usize,
    band: &mut [f32],
) {
    let n = m.cols;
    debug_assert_eq!(m.format.group, G);
    let gw = n / G * BLOCK_WORDS;
    let n_groups = w.len() / gw;
    debug_assert_eq!(band.len(), n_groups * n_tokens * ROWS);
    let (wp, ap, op) = (w.as_ptr(), acts.as_ptr(), band.as_mut_ptr());
    // Up to 2 tokens (decode, two slots decoding together, short
    // speculative checks): the decode kernel once per token, the group's
    // weights read from DRAM once and from cache for the second token;
    // 2·(2 adds + 2 `vpdpbusd`) per chunk against the rewrite's ~7 ops
    // plus a shift, an AND and 2 `vpdpbusd`.
    if n_tokens <= DECODE_TOKENS {
        for g in 0..n_groups {
            for t in 0..n_tokens {
                // SAFETY: group `g` of `w`, token row `t`, its 16 floats
                // (band `[group][token][16]`).
                unsafe {
                    decode_group(
                        n,
                        wp.add(g * gw),
                        ap.add(t * a_row),
                        op.add((g * n_tokens + t) * ROWS),
                    )
                };
            }
        }
        return;
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.resize(n / G * PQ2_WORDS, 0);
        let sp = scratch.as_mut_ptr();
        for g in 0..n_groups {
            // SAFETY: group `g` of `w` expands into the scratch sized for
            // one group above; the tiles read it, the `n_tokens` token rows
            // and write the group's `16·n_tokens` floats.
            unsafe {
                expand_group(n, wp.add(g * gw), sp);
                group::<2, G, S>(n, sp, ap, a_row, n_tokens, op.add(g * n_tokens * ROWS));
            }
        }
    });
}

/// Chunks 30 and 31 of the block at `blk`: the tail's nibbles, the high
/// half of the vector taken from the high nibbles.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tail_chunks(blk: *const u8) -> (__m512i, __m512i) {
    // SAFETY: the caller points at a whole block.
    let t =
        _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(blk.add(TAIL_AT) as *const __m256i) });
    let shift = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(4));
    // 16-bit shift: what it moves across bytes is masked off.
    let t = _mm512_srlv_epi16(t, shift);
    let three = _mm512_set1_epi8(3);
    (
        _mm512_and_si512(t, three),
        _mm512_and_si512(_mm512_srli_epi16::<2>(t), three),
    )
}

/// Rewrites the `n / G` blocks of one row group (`w`) into `dst` in
/// `PQ2_0`'s packed form ([`PQ2_WORDS`] per block, `packed/mod.rs`): the
/// 16 scales, then per 4 chunks 64 bytes, byte `4r + k` holding the code
/// of weight `4c + k` of row `r` at bits `2·(c % 4)`.
///
/// # Safety
/// AVX-512 F/BW must be present; `w` holds a row group, `dst` `n / G ·
/// PQ2_WORDS` words.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn expand_group(n: usize, w: *const u64, dst: *mut u64) {
    let (lo, hi) = (_mm512_set1_epi8(86), _mm512_set1_epi8(171u8 as i8));
    // SAFETY: block `b` of the group and of `dst`, both inside the caller's
    // ranges.
    unsafe {
        for b in 0..n / G {
            let blk = w.add(b * BLOCK_WORDS) as *const u8;
            let out = dst.add(b * PQ2_WORDS);
            let sc = _mm256_loadu_si256(blk.add(SCALES_AT) as *const __m256i);
            _mm256_storeu_si256(out as *mut __m256i, sc);
            // Chunks in order; every fourth completes a 64-byte word group.
            let mut codes = _mm512_setzero_si512();
            macro_rules! put {
                ($c:expr, $d_shifted:expr) => {{
                    let c: usize = $c;
                    codes = _mm512_or_si512(codes, $d_shifted);
                    if c % 4 == 3 {
                        _mm512_storeu_si512(out.add(4 + 8 * (c / 4)) as *mut __m512i, codes);
                        codes = _mm512_setzero_si512();
                    }
                }};
            }
            for j in 0..VECTORS {
                let mut m = _mm512_load_si512(blk.add(64 * j) as *const __m512i);
                for n in 0..5 {
                    let c = 5 * j + n;
                    // Digit n = (3·m_n) >> 8: 1 from m_n ≥ 86, 2 from ≥ 171,
                    // counted in units of its bit position `2·(c % 4)`.
                    let unit = _mm512_set1_epi8(1 << (2 * (c % 4)));
                    let d = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(m, lo), unit);
                    let d = _mm512_mask_add_epi8(d, _mm512_cmpge_epu8_mask(m, hi), d, unit);
                    put!(c, d);
                    m = _mm512_add_epi8(_mm512_add_epi8(m, m), m);
                }
            }
            let (c30, c31) = tail_chunks(blk);
            // Chunks 30 and 31 sit at bits 4 and 6 (30 % 4 = 2).
            put!(30, _mm512_slli_epi16::<4>(c30));
            put!(31, _mm512_slli_epi16::<6>(c31));
        }
    }
}

/// One row group (`w`, `n / G` blocks) times one planar `Q8_0R` activation
/// row with its group offset terms (`a`): 16 floats to `o`, in the f32 op
/// order of `avx512.rs`'s one-token tile (the offset term, then per
/// activation block `fs += cvt(i)·d_a`, then `acc += fs·d_w`).
///
/// # Safety
/// AVX-512 F/BW/VNNI must be present; `w` covers one row group, `a` one
/// activation row of `n` values as `PackedMatrix::quantize_act` writes it,
/// `o` 16 floats.
// The unrolled chain's last `m = m1` of each vector is never read.
#[allow(unused_assignments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn decode_group(n: usize, w: *const u64, a: *const u8, o: *mut f32) {
    let nba = n / S;
    let (d_off, c_off) = (n, n + 8 * nba);
    // SAFETY: every read is inside block `g` of `w` or the token row `a`
    // (quants `128g..128g + 128`, scales `4g..4g + 4`, offset term `g`).
    unsafe {
        let mut acc = _mm512_setzero_ps();
        for g in 0..n / G {
            let blk = w.add(g * BLOCK_WORDS) as *const u8;
            let qa = a.add(g * G) as *const i32;
            let z = _mm512_setzero_si512();
            let (mut p0, mut p1, mut p2, mut p3) = (z, z, z, z);
            let (mut r0, mut r1, mut r2, mut r3) = (z, z, z, z);
            let mut m;
            // Chunk `c` from `m` (= m_n): P += m_n·q_c, R += m_{n+1}·q_c,
            // then m = m_{n+1}. In asm: LLVM otherwise folds the chain of
            // adds into `m_0·3^n` (a 4-op byte multiply) recomputed from
            // `m_0`, and the activations as an embedded broadcast of both
            // `vpdpbusd` save a `vpbroadcastd` per chunk (measured ~6%
            // faster in cache than the intrinsics).
            macro_rules! step {
                ($pb:ident, $rb:ident, $c:expr) => {{
                    let m1: __m512i;
                    core::arch::asm!(
                        "vpaddb {o}, {m}, {m}",
                        "vpaddb {o}, {o}, {m}",
                        "vpdpbusd {p}, {m}, dword ptr [{q}]{{1to16}}",
                        "vpdpbusd {r}, {o}, dword ptr [{q}]{{1to16}}",
                        m = in(zmm_reg) m,
                        o = out(zmm_reg) m1,
                        p = inout(zmm_reg) $pb,
                        r = inout(zmm_reg) $rb,
                        q = in(reg) qa.add($c),
                        options(pure, readonly, nostack, preserves_flags),
                    );
                    m = m1;
                }};
            }
            macro_rules! load {
                ($j:expr) => {
                    m = _mm512_load_si512(blk.add(64 * $j) as *const __m512i)
                };
            }
            // Vector j holds chunks 5j..5j + 5; activation block b chunks
            // 8b..8b + 8 (so P0/R0 take chunks 0..8, ..., P3/R3 24..30).
            load!(0);
            step!(p0, r0, 0);
            step!(p0, r0, 1);
            step!(p0, r0, 2);
            step!(p0, r0, 3);
            step!(p0, r0, 4);
            load!(1);
            step!(p0, r0, 5);
            step!(p0, r0, 6);
            step!(p0, r0, 7);
            step!(p1, r1, 8);
            step!(p1, r1, 9);
            load!(2);
            step!(p1, r1, 10);
            step!(p1, r1, 11);
            step!(p1, r1, 12);
            step!(p1, r1, 13);
            step!(p1, r1, 14);
            load!(3);
            step!(p1, r1, 15);
            step!(p2, r2, 16);
            step!(p2, r2, 17);
            step!(p2, r2, 18);
            step!(p2, r2, 19);
            load!(4);
            step!(p2, r2, 20);
            step!(p2, r2, 21);
            step!(p2, r2, 22);
            step!(p2, r2, 23);
            step!(p3, r3, 24);
            load!(5);
            step!(p3, r3, 25);
            step!(p3, r3, 26);
            step!(p3, r3, 27);
            step!(p3, r3, 28);
            step!(p3, r3, 29);
            let (p, r) = ([p0, p1, p2, p3], [r0, r1, r2, r3]);
            // Chunks 30, 31 (activation block 3) as plain codes.
            let (c30, c31) = tail_chunks(blk);
            let tl = _mm512_dpbusd_epi32(z, c30, _mm512_set1_epi32(qa.add(30).read_unaligned()));
            let tl = _mm512_dpbusd_epi32(tl, c31, _mm512_set1_epi32(qa.add(31).read_unaligned()));
            // The codes are unsigned (`w = code − 1`): the `−Σ q` term of
            // each block was summed per weight group by `quantize_act`.
            let mut fs = _mm512_set1_ps((a.add(c_off + 4 * g) as *const f32).read_unaligned());
            for b in 0..4 {
                // The exact digit sum: 3·P − R is 256 times it.
                let x =
                    _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(p[b], p[b]), p[b]), r[b]);
                let mut i = _mm512_srai_epi32::<8>(x);
                if b == 3 {
                    i = _mm512_add_epi32(i, tl);
                }
                let da = (a.add(d_off + 4 * (4 * g + b)) as *const f32).read_unaligned();
                fs = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(da), fs);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(SCALES_AT) as *const __m256i));
            acc = _mm512_fmadd_ps(fs, dw, acc);
        }
        _mm512_storeu_ps(o, acc);
    }
}
