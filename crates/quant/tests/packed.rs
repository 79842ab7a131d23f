//! The packed (row-interleaved) kernels of the 1-bit, ternary, `Q5_0` and
//! `Q8_0` formats against the scalar reference
//! `vec_dot` of each format, row by row and token by token, on random data,
//! at every kernel level this CPU has (AVX2, AVX-512); and
//! [`PackedMatrix::quantize_act`] against an independent construction of
//! the planar activation rows.
//!
//! Tolerance: the packed kernels form the same exact integer block sums and
//! the same per-block products as the references but sum in another order
//! (and with fused multiply-adds), so they must agree within `1e-5·M`,
//! `M = Σ |w_j|·|a_j|` of the dequantized operands; one wrong code, bit,
//! lane, block or token moves the result by about `M / n` or more
//! (`n` ≤ 1024 here, so at least `1e-3·M`), a hundred times the tolerance.
//!
//! Data: fully random weight bytes (code 3 for the 2-bit formats, bytes
//! above 242 for `TQ1_0`) with random finite f16 scales of both signs;
//! activations quantized from random floats and, in one case, with
//! extreme values, also against the largest codes everywhere (the largest
//! integer sums, which a narrow partial sum would overflow on); row
//! counts that leave a partial group of 16; token counts that exercise the
//! decode path (1, with both decode step widths), whole prefill tiles (8,
//! 16) and every tile tail (1..=7 tokens); a sub-range of row groups.

mod packed_support;

use half::f16;
use packed_support::{assert_band_matches, Rng};
use shohin_quant::packed::{available, has_kernels, Kind, PackFormat, PackedMatrix, ROWS};
use shohin_quant::simd::{detected, isa, Isa};
use shohin_quant::{row_bytes, scalar_kernels, GgmlType};

const FORMATS: [GgmlType; 9] = [
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::Q2_0G128,
    GgmlType::PQ2_0,
    GgmlType::PTQ1_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
];

/// Byte offset of the f16 scale in a block.
fn d_at(ty: GgmlType) -> usize {
    match ty {
        GgmlType::TQ2_0 => 64,
        GgmlType::TQ1_0 => 52,
        GgmlType::PTQ1_0 => 26,
        _ => 0,
    }
}

/// What a check feeds the kernels.
#[derive(Clone, Copy, PartialEq)]
enum Data {
    /// Random weight bytes, activations from random floats.
    Random,
    /// Random weight bytes, activations at ±amax in runs of 256 values
    /// (every activation block quantizes to all 127 or all −127).
    Extreme,
    /// `Extreme` activations against the largest codes everywhere (bytes
    /// 0xFF; `Q8_0`: −128): the largest integer block sums, which bound
    /// the kernels' narrow partial sums.
    Saturating,
}

fn weights(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize, data: Data) -> Vec<u8> {
    let most = if ty == GgmlType::Q8_0 { 0x80 } else { 0xFF };
    let mut w: Vec<u8> = (0..rows * row_bytes(ty, cols).unwrap())
        .map(|_| {
            if data == Data::Saturating {
                most
            } else {
                rng.next() as u8
            }
        })
        .collect();
    for blk in w.chunks_exact_mut(ty.type_size()) {
        let d = f16::from_f32(rng.f() * 0.05).to_bits().to_le_bytes();
        blk[d_at(ty)..d_at(ty) + 2].copy_from_slice(&d);
    }
    w
}

/// The planar activation row of `x` for `act` (`Q8_0R` or `Q8K`, see
/// [`PackedMatrix::act_type`]), built here from the scalar `Q8_0` / `Q8_K`
/// quantizers' blocks independently of the library's own rearranging:
/// the quants in order, then the `f32` scales, then the `i32` quant sums
/// (summed here from the quants, not taken from `Q8_K`'s `bsums`); then,
/// for 1-bit / ternary weight groups spanning several activation blocks,
/// each group's `−Σ sum·d` (halved for `Q1_0`).
fn planar_reference(m: &PackedMatrix, x: &[f32]) -> Vec<u8> {
    let act = m.act_type();
    let (src_ty, qk, d_len, q_at) = match act {
        // block_q8_0: f16 d, 32 quants.
        GgmlType::Q8_0R => (GgmlType::Q8_0, 32, 2, 2),
        // block_q8_K: f32 d, 256 quants, 16 i16 sums.
        GgmlType::Q8K => (GgmlType::Q8K, 256, 4, 4),
        other => panic!("no planar layout for {other}"),
    };
    let mut blocks = vec![0u8; row_bytes(src_ty, x.len()).unwrap()];
    (scalar_kernels(src_ty).quantize)(x, &mut blocks);
    let (mut q, mut d, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for b in blocks.chunks_exact(src_ty.type_size()) {
        let scale = if d_len == 2 {
            f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
        } else {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let quants = &b[q_at..q_at + qk];
        let sum: i32 = quants.iter().map(|&v| i32::from(v as i8)).sum();
        q.extend_from_slice(quants);
        d.extend_from_slice(&scale.to_le_bytes());
        s.extend_from_slice(&sum.to_le_bytes());
    }
    let mut offsets = Vec::new();
    let f = m.format;
    if matches!(f.kind, Kind::Ternary { .. } | Kind::Trit) && f.group > f.act_block {
        let per = f.group / f.act_block;
        let num = |v: &[u8], i: usize| <[u8; 4]>::try_from(&v[4 * i..4 * i + 4]).unwrap();
        for g in 0..x.len() / f.group {
            let mut t = 0f32;
            for b in g * per..(g + 1) * per {
                t -= i32::from_le_bytes(num(&s, b)) as f32 * f32::from_le_bytes(num(&d, b));
            }
            if m.ty == GgmlType::Q1_0 {
                t *= 0.5;
            }
            offsets.extend_from_slice(&t.to_le_bytes());
        }
    }
    [q, d, s, offsets].concat()
}

/// Activations in the reference's format (`vec_dot_type`) and in the
/// packed kernels' planar layout ([`planar_reference`]).
fn activations(rng: &mut Rng, m: &PackedMatrix, n_tokens: usize, data: Data) -> (Vec<u8>, Vec<u8>) {
    let vt = m.ty.vec_dot_type();
    let n = m.cols;
    let (ra, pa) = (row_bytes(vt, n).unwrap(), m.act_row_bytes());
    let mut reference = vec![0u8; n_tokens * ra];
    let mut planar = vec![0u8; n_tokens * pa];
    for t in 0..n_tokens {
        let x: Vec<f32> = (0..n)
            .map(|j| {
                if data != Data::Random {
                    // Whole blocks at ±amax quantize to -127/127.
                    if (j / 256) % 2 == 0 {
                        3.0
                    } else {
                        -3.0
                    }
                } else {
                    rng.f() * 4.0
                }
            })
            .collect();
        let r = &mut reference[t * ra..(t + 1) * ra];
        (scalar_kernels(vt).quantize)(&x, r);
        planar[t * pa..(t + 1) * pa].copy_from_slice(&planar_reference(m, &x));
    }
    (reference, planar)
}

/// The kernel levels to compare at: AVX2 and AVX-512 where this CPU has
/// them and `has_kernels` admits `ty`.
fn levels(ty: GgmlType) -> Vec<Isa> {
    [Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&l| l <= detected() && has_kernels(ty, l))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check(
    level: Isa,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    groups: std::ops::Range<usize>,
    data: Data,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let w = weights(&mut rng, ty, rows, cols, data);
    // Packed for `level`'s kernels (`PTQ1_0`: codes at AVX2, its own
    // base-3 layout at AVX-512).
    let m = PackedMatrix::pack_at(level, ty, rows, cols, &w).expect("packable");
    assert_eq!(m.n_groups(), rows.div_ceil(ROWS));
    let (reference, planar) = activations(&mut rng, &m, n_tokens, data);
    let pa = m.act_row_bytes();
    let mut band = vec![f32::NAN; groups.len() * n_tokens * ROWS];
    m.matmul_groups_at(level, &planar, pa, n_tokens, groups.clone(), &mut band);
    assert_band_matches(
        &format!("{level:?}"),
        ty,
        &w,
        &reference,
        rows,
        cols,
        n_tokens,
        groups,
        &band,
    );
}

/// Every (format, level) pair to test, with the format's index; empty (and
/// said so) on a CPU without packed kernels, or when `SHOHIN_ISA` caps the
/// level below them (then nothing packs).
fn cases() -> Vec<(usize, GgmlType, Isa)> {
    let all: Vec<_> = FORMATS
        .into_iter()
        .enumerate()
        .filter(|&(_, ty)| available(ty))
        .flat_map(|(i, ty)| levels(ty).into_iter().map(move |l| (i, ty, l)))
        .collect();
    if all.is_empty() {
        eprintln!("no packed kernels here (AVX2, or SHOHIN_ISA): nothing to compare");
    }
    all
}

#[test]
fn every_level_of_this_cpu_is_tested() {
    // AVX2 (with FMA and F16C) is the floor of every packed format, so the
    // checks below run at each level this CPU has and cannot skip one.
    for ty in FORMATS {
        let want: Vec<Isa> = [Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&l| l <= detected())
            .collect();
        assert_eq!(levels(ty), want, "{ty}");
        assert!(!has_kernels(ty, Isa::Scalar), "{ty}");
        // Packing (and so every check) happens at the level in use.
        assert_eq!(available(ty), isa() >= Isa::Avx2, "{ty}");
    }
}

#[test]
fn decode_matches_scalar() {
    for (i, ty, level) in cases() {
        let g = PackFormat::of(ty).unwrap().group;
        // 6 groups, the last with 2 padded rows.
        check(
            level,
            ty,
            6 * ROWS - 2,
            4 * g.max(256),
            1,
            0..6,
            Data::Random,
            11 + i as u64,
        );
        // 5 whole groups of one weight block each.
        check(
            level,
            ty,
            5 * ROWS,
            2 * g,
            1,
            0..5,
            Data::Random,
            31 + i as u64,
        );
        check(level, ty, 5, g, 1, 0..1, Data::Random, 21 + i as u64);
    }
}

#[test]
fn prefill_matches_scalar() {
    for (i, ty, level) in cases() {
        let g = PackFormat::of(ty).unwrap().group;
        // Every tail of the 8-token tiles (1..=7 after whole tiles, or alone).
        for (k, nt) in [2usize, 3, 7, 8, 9, 12, 13, 14, 16].into_iter().enumerate() {
            check(
                level,
                ty,
                3 * ROWS + 7,
                2 * g.max(256),
                nt,
                0..4,
                Data::Random,
                100 * i as u64 + k as u64 + 1,
            );
        }
    }
}

#[test]
fn extremes_and_group_ranges() {
    for (i, ty, level) in cases() {
        let g = PackFormat::of(ty).unwrap().group;
        let n = 1024.max(g);
        check(
            level,
            ty,
            9 * ROWS,
            n,
            1,
            3..9,
            Data::Extreme,
            500 + i as u64,
        );
        check(
            level,
            ty,
            9 * ROWS,
            n,
            5,
            2..5,
            Data::Extreme,
            600 + i as u64,
        );
        check(
            level,
            ty,
            2 * ROWS,
            n,
            1,
            0..2,
            Data::Saturating,
            700 + i as u64,
        );
        check(
            level,
            ty,
            2 * ROWS,
            n,
            9,
            0..2,
            Data::Saturating,
            800 + i as u64,
        );
    }
}

#[test]
fn quantize_act_writes_the_planar_layout() {
    let mut rng = Rng(77);
    for ty in FORMATS {
        let g = PackFormat::of(ty).unwrap().group;
        for cols in [g.max(256), 3 * g.max(256)] {
            let w = weights(&mut rng, ty, ROWS, cols, Data::Random);
            let Some(m) = PackedMatrix::pack(ty, ROWS, cols, &w) else {
                eprintln!("{ty}: no packed kernels on this CPU");
                continue;
            };
            for scale in [4.0f32, 1e-3, 0.0] {
                let x: Vec<f32> = (0..cols).map(|_| rng.f() * scale).collect();
                let mut out = vec![0xA5u8; m.act_row_bytes()];
                m.quantize_act(&x, &mut out);
                let want = planar_reference(&m, &x);
                assert_eq!(out.len(), want.len(), "{ty} {cols}");
                assert!(
                    out == want,
                    "{ty} {cols} scale {scale}: planar bytes differ"
                );
            }
        }
    }
}

#[test]
fn unsupported_formats_are_not_packed() {
    let w = vec![0u8; row_bytes(GgmlType::F32, 256).unwrap() * 2];
    assert!(PackedMatrix::pack(GgmlType::F32, 2, 256, &w).is_none());
    // Wrong byte count: refused, not a panic.
    let w = vec![0u8; 17];
    assert!(PackedMatrix::pack(GgmlType::Q1_0, 1, 128, &w).is_none());
}
