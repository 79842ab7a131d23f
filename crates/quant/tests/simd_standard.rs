//! The x86 SIMD kernels of the standard formats against the scalar
//! references (`scalar_kernels`, themselves bit-exact with ggml, see
//! standard_known_answers.rs) and against ggml's own outputs in
//! tests/data/standard/, at every level this CPU supports
//! (`kernels_for(ty, level)` for `level <= detected()`).
//!
//! What must hold (module doc of `simd::x86::standard`):
//! * quantizers `Q8_0`, `Q8_1`, `Q8_K`: bit for bit, on any input (ties,
//!   NaN, ±inf, subnormal maxima);
//! * K-quant dots (`Q4_K`, `Q5_K`, `Q6_K`): bit for bit (they replay the
//!   reference's `f32` steps on exact integers);
//! * `Q8_0`/`Q5_0`/`Q4_0` dots: integer block sums exact, only the `f32`
//!   summation order differs: `|simd − scalar| <= (1.5·nb + 8)·2⁻²⁴·T`
//!   with `T = Σ_i |w_i·a_i|` over the dequantized values (exact here);
//!   derivation in `legacy.rs`: the reference's sequential sum is within
//!   `(nb + 2)·u·T` of the exact value (two roundings per term for
//!   `Q4_0`), the SIMD pairwise lanes within `(⌈nb/2⌉ + 5)·u·T`;
//! * `Q4_1`/`Q5_1` dots: integer block sums exact, and the `f32` steps of
//!   ggml's x86 kernels, so bit for bit equal to ggml's recorded
//!   (dispatching-kernel) answers; against the scalar reference
//!   `|simd − scalar| <= (2·nb + 8)·2⁻²⁴·T'`, `T' = Σ_blocks |d_w·d_a|·
//!   Σ|q·q_a| + |m_w·s_a|` (derivation in `asym.rs`);
//! * `F32`/`F16` dots: same `f32` products, `f64` sums in another order:
//!   `|simd − scalar| <= (2⁻²³ + n·2⁻⁵¹)·T`;
//! * `vec_dot_multi` row `t` equals that level's `vec_dot` bit for bit.
//!
//! The quantizers are checked in simd_quantize.rs.

mod standard_support;

use shohin_quant::simd::{kernels_for, Isa};
use shohin_quant::{dequantize_row, scalar_kernels, GgmlType, Kernels};
use standard_support::{cases, f32s, field, floats, levels, load, Rng, STANDARD};

const BLOCK_FORMATS: [GgmlType; 8] = [
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

fn is_k(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K)
}

/// The formats with a minimum (`q·d + m`), dotted with `Q8_1`.
fn has_min(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1)
}

/// Random finite `f16` bits (any exponent but the inf/NaN one).
fn f16_bits(rng: &mut Rng) -> [u8; 2] {
    loop {
        let b = rng.next_u64() as u16;
        if (b >> 10) & 0x1F != 0x1F {
            return b.to_le_bytes();
        }
    }
}

/// `Q8_K` block sums recomputed from the quants (the format's invariant).
fn fix_bsums(b: &mut [u8]) {
    for blk in b.chunks_exact_mut(292) {
        for g in 0..16 {
            let s: i16 = blk[4 + 16 * g..4 + 16 * (g + 1)]
                .iter()
                .map(|&q| i16::from(q as i8))
                .sum();
            blk[260 + 2 * g..262 + 2 * g].copy_from_slice(&s.to_le_bytes());
        }
    }
}

/// `nb` blocks of `ty`: `mode` 0 quantizes random floats with the scalar
/// reference; 1 is random payload bytes with random finite scales; 2 is
/// extreme payloads (all quant bytes 0x80 = −128, 0x7F or 0xFF), random
/// scales.
fn blocks(ty: GgmlType, nb: usize, mode: u32, rng: &mut Rng) -> Vec<u8> {
    let ts = ty.type_size();
    let mut b = if mode == 0 {
        let x = floats(nb * ty.block_size(), rng);
        let mut b = vec![0u8; nb * ts];
        (scalar_kernels(ty).quantize)(&x, &mut b);
        b
    } else if mode == 1 {
        rng.bytes(nb * ts)
    } else {
        let fill = [0x80u8, 0x7F, 0xFF][(rng.next_u64() % 3) as usize];
        vec![fill; nb * ts]
    };
    if mode != 0 {
        for blk in b.chunks_exact_mut(ts) {
            match ty {
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
                    blk[..2].copy_from_slice(&f16_bits(rng))
                }
                // `d` and `m` (weights) or `d` and `s` (`Q8_1`); a random `s`
                // is no valid block sum, but the dots take it as it is.
                GgmlType::Q4K
                | GgmlType::Q5K
                | GgmlType::Q4_1
                | GgmlType::Q5_1
                | GgmlType::Q8_1 => {
                    blk[..2].copy_from_slice(&f16_bits(rng));
                    blk[2..4].copy_from_slice(&f16_bits(rng));
                }
                GgmlType::Q6K => blk[208..210].copy_from_slice(&f16_bits(rng)),
                GgmlType::Q8K => {
                    let d = rng.uniform(1e-6, 1e2) * if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                    blk[..4].copy_from_slice(&(d as f32).to_le_bytes());
                }
                _ => unreachable!(),
            }
        }
        if ty == GgmlType::Q8K {
            fix_bsums(&mut b);
        }
    }
    b
}

/// A copy of `b` starting `off` bytes into a fresh buffer (misaligned).
fn shifted(b: &[u8], off: usize) -> Vec<u8> {
    let mut v = vec![0xA5u8; off];
    v.extend_from_slice(b);
    v
}

/// `T = Σ |w_i·a_i|` over the dequantized values.
fn magnitude(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let (mut wd, mut ad) = (vec![0f32; n], vec![0f32; n]);
    dequantize_row(ty, w, &mut wd).unwrap();
    dequantize_row(ty.vec_dot_type(), a, &mut ad).unwrap();
    wd.iter()
        .zip(&ad)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum()
}

fn f16_at(b: &[u8], off: usize) -> f64 {
    let mut x = [0f32; 1];
    dequantize_row(GgmlType::F16, &b[off..off + 2], &mut x).unwrap();
    f64::from(x[0])
}

/// The unsigned quants of a `Q4_1` or `Q5_1` block (q4_1.rs, q5_1.rs).
fn quants_with_min(ty: GgmlType, blk: &[u8]) -> [i64; 32] {
    let (qs, qh) = if ty == GgmlType::Q5_1 {
        (
            &blk[8..24],
            u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]),
        )
    } else {
        (&blk[4..20], 0)
    };
    std::array::from_fn(|i| {
        let nib = if i < 16 { qs[i] & 0xF } else { qs[i - 16] >> 4 };
        i64::from(nib) + (i64::from((qh >> i) & 1) << 4)
    })
}

/// `T' = Σ_blocks |d_w·d_a|·Σ|q·q_a| + |m_w·s_a|`: the magnitudes of the
/// terms both `Q4_1`/`Q5_1` kernels add (the minimum term comes from the
/// activation's stored block sum `s`, so `Σ|w_i·a_i|` does not bound it).
fn magnitude_with_min(ty: GgmlType, w: &[u8], a: &[u8]) -> f64 {
    let at = GgmlType::Q8_1;
    w.chunks_exact(ty.type_size())
        .zip(a.chunks_exact(at.type_size()))
        .map(|(bw, ba)| {
            let q = quants_with_min(ty, bw);
            let s: i64 = q
                .iter()
                .zip(&ba[4..])
                .map(|(&q, &qa)| (q * i64::from(qa as i8)).abs())
                .sum();
            (f16_at(bw, 0) * f16_at(ba, 0)).abs() * s as f64 + (f16_at(bw, 2) * f16_at(ba, 2)).abs()
        })
        .sum()
}

/// Checks `simd` against `scalar` under the contract of `ty`.
fn check_dot(ty: GgmlType, level: Isa, w: &[u8], a: &[u8], simd: f32, scalar: f32, what: &str) {
    let n = w.len() / ty.type_size() * ty.block_size();
    if is_k(ty) {
        assert_eq!(
            simd.to_bits(),
            scalar.to_bits(),
            "{ty} {} {what}: {simd:e} vs scalar {scalar:e}",
            level.name()
        );
        return;
    }
    let u = 2f64.powi(-24);
    let nb = (n / ty.block_size()) as f64;
    if has_min(ty) {
        // A minimum beyond the `f16` range quantizes to ±inf (inputs up to
        // ~10⁵ here); its `m·s` term is then ±inf or NaN in either kernel.
        if !scalar.is_finite() {
            assert!(
                simd.to_bits() == scalar.to_bits() || (simd.is_nan() && scalar.is_nan()),
                "{ty} {} {what}: {simd:e} vs scalar {scalar:e}",
                level.name()
            );
            return;
        }
        // Module doc of simd::x86::standard::asym.
        let tol = (2.0 * nb + 8.0) * u * magnitude_with_min(ty, w, a);
        let err = (f64::from(simd) - f64::from(scalar)).abs();
        assert!(
            err <= tol,
            "{ty} {} {what}: {simd:e} vs scalar {scalar:e}, err {err:e} > {tol:e}",
            level.name()
        );
        return;
    }
    let t = magnitude(ty, w, a, n);
    let tol = match ty {
        GgmlType::F32 | GgmlType::F16 => (2.0 * u + n as f64 * 2f64.powi(-51)) * t,
        _ => (1.5 * nb + 8.0) * u * t,
    };
    let err = (f64::from(simd) - f64::from(scalar)).abs();
    assert!(
        err <= tol,
        "{ty} {} {what}: {simd:e} vs scalar {scalar:e}, err {err:e} > {tol:e}",
        level.name()
    );
}

/// Every level replaces the kernels it claims to (else the comparisons
/// below would compare the scalar code with itself).
#[test]
fn simd_standard_kernels_are_installed() {
    for level in levels() {
        // NEON has the Q8_0, Q5_0, Q4_K and Q6_K dots (simd/arm/mod.rs).
        let (dots, quantizers): (Vec<GgmlType>, Vec<GgmlType>) = if level == Isa::Neon {
            (
                vec![GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4K, GgmlType::Q6K],
                vec![GgmlType::Q8_0, GgmlType::Q8K],
            )
        } else {
            (
                BLOCK_FORMATS
                    .into_iter()
                    .chain([GgmlType::F32, GgmlType::F16])
                    .collect(),
                vec![GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8K],
            )
        };
        for ty in dots {
            let (k, s) = (kernels_for(ty, level), scalar_kernels(ty));
            assert!(
                !std::ptr::fn_addr_eq(k.vec_dot, s.vec_dot),
                "{ty} {}",
                level.name()
            );
            assert!(
                !std::ptr::fn_addr_eq(k.vec_dot_multi, s.vec_dot_multi),
                "{ty} {}",
                level.name()
            );
        }
        for ty in quantizers {
            let (k, s) = (kernels_for(ty, level), scalar_kernels(ty));
            assert!(!std::ptr::fn_addr_eq(k.quantize, s.quantize), "{ty}");
        }
    }
}

/// One weight row, `rows` activation rows `a_row` bytes apart (padding
/// filled with junk), at a misaligned start.
struct Case {
    w: Vec<u8>,
    a: Vec<u8>,
    a_row: usize,
    rows: usize,
}

fn case(ty: GgmlType, nb: usize, rows: usize, rng: &mut Rng) -> Case {
    let at = ty.vec_dot_type();
    let w = blocks(ty, nb, (rng.next_u64() % 3) as u32, rng);
    let need = nb * at.type_size();
    let a_row = need + (rng.next_u64() % 3) as usize * 7;
    let mut a = Vec::with_capacity(rows * a_row);
    for _ in 0..rows {
        let mode = (rng.next_u64() % 3) as u32;
        a.extend(blocks(at, nb, mode, rng));
        a.extend(rng.bytes(a_row - need));
    }
    Case { w, a, a_row, rows }
}

/// Dot products of block formats: `vec_dot` against the scalar one under
/// the contract, `vec_dot_multi` against `vec_dot` bit for bit.
#[test]
fn simd_standard_block_dots_match_scalar() {
    let mut rng = Rng(0xD07);
    for ty in BLOCK_FORMATS {
        let at = ty.vec_dot_type();
        let scalar = scalar_kernels(ty);
        // 1..=9 blocks, plus rows longer than the 32-block scale chunks
        // of the `Q*_0` kernels (odd and even tails) and 4864 wide.
        let long: &[usize] = if is_k(ty) { &[19] } else { &[32, 33, 67, 152] };
        for nb in (1..=9).chain(long.iter().copied()) {
            for rows in [1, 2, 3, 5, 8, 9, 17] {
                let c = case(ty, nb, rows, &mut rng);
                let need = nb * at.type_size();
                for level in levels() {
                    let k = kernels_for(ty, level);
                    check_case(ty, level, &k, &scalar, &c, need, nb);
                }
            }
        }
    }
}

fn check_case(
    ty: GgmlType,
    level: Isa,
    k: &Kernels,
    s: &Kernels,
    c: &Case,
    need: usize,
    nb: usize,
) {
    let off = c.rows % 4;
    let (w, a) = (shifted(&c.w, off), shifted(&c.a, 3 - off));
    let (w, a) = (&w[off..], &a[3 - off..]);
    let mut multi = vec![f32::NAN; c.rows];
    (k.vec_dot_multi)(w, a, c.a_row, &mut multi);
    for (t, &m) in multi.iter().enumerate() {
        let at = &a[t * c.a_row..t * c.a_row + need];
        let single = (k.vec_dot)(w, at);
        let want = (s.vec_dot)(w, at);
        let what = format!("nb={nb} row {t}/{}", c.rows);
        check_dot(ty, level, w, at, single, want, &what);
        assert_eq!(
            m.to_bits(),
            single.to_bits(),
            "{ty} {} {what}: multi {m:e} != vec_dot {single:e}",
            level.name()
        );
    }
}

/// `F32`/`F16`: lengths around the vector widths, random values (for
/// `F16` also random finite bit patterns).
#[test]
fn simd_standard_float_dots_match_scalar() {
    let mut rng = Rng(0xF10A7);
    for ty in [GgmlType::F32, GgmlType::F16] {
        let scalar = scalar_kernels(ty);
        for n in (1..=70).chain([127, 128, 129, 896]) {
            for rows in [1, 3, 9] {
                let enc = |rng: &mut Rng| {
                    let mut b = vec![0u8; n * ty.type_size()];
                    if ty == GgmlType::F16 && rng.unit() < 0.5 {
                        for c in b.chunks_exact_mut(2) {
                            c.copy_from_slice(&f16_bits(rng));
                        }
                    } else {
                        (scalar_kernels(ty).quantize)(&floats(n, rng), &mut b);
                    }
                    b
                };
                let w = enc(&mut rng);
                let need = w.len();
                let a_row = need + 4 * (n % 3);
                let mut a = Vec::new();
                for _ in 0..rows {
                    a.extend(enc(&mut rng));
                    a.extend(rng.bytes(a_row - need));
                }
                let c = Case { w, a, a_row, rows };
                for level in levels() {
                    check_case(ty, level, &kernels_for(ty, level), &scalar, &c, need, n);
                }
            }
        }
    }
}

/// The SIMD kernels reproduce ggml's own outputs recorded in
/// tests/data/standard/ (independent of the scalar references): quantize
/// bytes exactly, dot products within the tolerance of
/// standard_known_answers.rs.
#[test]
fn simd_standard_known_answers_from_ggml() {
    let mut checked = 0;
    for (ty, name) in STANDARD {
        if matches!(ty, GgmlType::BF16 | GgmlType::Q8K) {
            continue;
        }
        let doc = load(name);
        for level in levels() {
            let k = kernels_for(ty, level);
            if matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1) {
                for case in cases(&doc, "quantize") {
                    let src = f32s(&field(case, "src"));
                    let want = field(case, "dst");
                    let mut got = vec![0u8; want.len()];
                    (k.quantize)(&src, &mut got);
                    assert_eq!(got, want, "{ty} {} quantize", level.name());
                    checked += 1;
                }
            }
            for case in cases(&doc, "vec_dot") {
                let (w, a) = (field(case, "w"), field(case, "a"));
                let want = f32s(&field(case, "dot"))[0];
                let n = w.len() / ty.type_size() * ty.block_size();
                let got = (k.vec_dot)(&w, &a);
                if has_min(ty) {
                    // These kernels replay ggml's x86 float steps (module
                    // doc of `simd::x86::standard::asym`): bit for bit.
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{ty} {}: {got:e} vs ggml {want:e}",
                        level.name()
                    );
                    checked += 1;
                    continue;
                }
                let mag = magnitude(ty, &w, &a, n);
                let nblocks = (n / ty.block_size()) as f64;
                let tol = (nblocks + 8.0) * f64::from(f32::EPSILON) * mag;
                let err = (f64::from(got) - f64::from(want)).abs();
                assert!(
                    err <= tol,
                    "{ty} {}: {got:e} vs ggml {want:e}",
                    level.name()
                );
                checked += 1;
            }
        }
    }
    let q8k = load("q8_k");
    for level in levels() {
        let k = kernels_for(GgmlType::Q8K, level);
        for case in cases(&q8k, "quantize") {
            let src = f32s(&field(case, "src"));
            let want = field(case, "dst");
            let mut got = vec![0u8; want.len()];
            (k.quantize)(&src, &mut got);
            assert_eq!(got, want, "Q8_K {} quantize", level.name());
            checked += 1;
        }
    }
    assert!(checked > 0 || levels().is_empty());
}
