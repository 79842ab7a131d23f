//! `PTQ1_0`'s native base-3 packed layout (`Kind::Trit`, AVX-512) against
//! the same weights packed as `PQ2_0` codes (`Kind::Ternary { planes: 2 }`)
//! and run by the AVX-512 `PQ2_0` kernel: the outputs must be equal **bit
//! for bit** (both form exact integer block sums and then the same float
//! operations in the same order), for decode (one token, the two-`vpdpbusd`
//! kernel) and prefill (every tile tail, several whole tiles: the scratch
//! rewritten in `PQ2_0`'s form), on random weights (quantized from floats, and raw random
//! bytes, including bytes above 242 and f16 scales of both signs), row
//! counts that leave a partial group, and 128 to 12288 columns. A wrong
//! digit order, chunk, lane or decode identity changes the integer sums
//! and so, almost surely, the bits.
//!
//! Also: which layout `pack` picks, the packed size, and that a `Trit`
//! matrix is never run by the AVX2 kernel.

use half::f16;
use shohin_quant::packed::{has_kernels, Kind, PackFormat, PackedMatrix, ROWS};
use shohin_quant::simd::{detected, isa, Isa};
use shohin_quant::{quantize_row, row_bytes, GgmlType};

/// xorshift64: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

const TY: GgmlType = GgmlType::PTQ1_0;
const BLOCK: usize = 28;

fn avx512() -> bool {
    if detected() < Isa::Avx512 {
        eprintln!("no AVX-512 here: the Trit layout is not used, nothing to compare");
        return false;
    }
    true
}

/// Random `PTQ1_0` rows: quantized from floats (`raw = false`, per-row
/// magnitude varied) or random bytes with random finite scales.
fn weights(rng: &mut Rng, rows: usize, cols: usize, raw: bool) -> Vec<u8> {
    let rb = row_bytes(TY, cols).unwrap();
    let mut w = vec![0u8; rows * rb];
    for row in w.chunks_exact_mut(rb) {
        if raw {
            row.iter_mut().for_each(|b| *b = rng.next() as u8);
            for blk in row.chunks_exact_mut(BLOCK) {
                let d = f16::from_f32(rng.f() * 0.05).to_bits().to_le_bytes();
                blk[26..28].copy_from_slice(&d);
            }
        } else {
            let s = 0.01 + rng.f().abs();
            let x: Vec<f32> = (0..cols).map(|_| rng.f() * s).collect();
            quantize_row(TY, &x, row).unwrap();
        }
    }
    w
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Packs `w` both ways, runs both at AVX-512 over `groups` for each token
/// count, and compares the bands bit for bit.
fn compare(
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    raw: bool,
    tokens: &[usize],
    groups: Option<std::ops::Range<usize>>,
) {
    let w = weights(rng, rows, cols, raw);
    let trit = PackedMatrix::pack_at(Isa::Avx512, TY, rows, cols, &w).unwrap();
    let codes = PackedMatrix::pack_at(Isa::Avx2, TY, rows, cols, &w).unwrap();
    assert_eq!(trit.format.kind, Kind::Trit);
    assert_eq!(codes.format.kind, Kind::Ternary { planes: 2 });
    let pa = trit.act_row_bytes();
    assert_eq!(pa, codes.act_row_bytes());
    let groups = groups.unwrap_or(0..trit.n_groups());
    let max_t = tokens.iter().copied().max().unwrap();
    // Both kernels read the same planar activation rows.
    let mut acts = vec![0u8; max_t * pa];
    for a in acts.chunks_exact_mut(pa) {
        let scale = 0.1 + 4.0 * rng.f().abs();
        let x: Vec<f32> = (0..cols).map(|_| rng.f() * scale).collect();
        trit.quantize_act(&x, a);
    }
    for &nt in tokens {
        let len = groups.len() * nt * ROWS;
        let mut a = vec![f32::NAN; len];
        let mut b = vec![-f32::NAN; len];
        codes.matmul_groups_at(Isa::Avx512, &acts, pa, nt, groups.clone(), &mut a);
        trit.matmul_groups_at(Isa::Avx512, &acts, pa, nt, groups.clone(), &mut b);
        assert!(a.iter().all(|x| x.is_finite()), "{rows}x{cols} tokens {nt}");
        assert!(a.iter().any(|&x| x != 0.0), "{rows}x{cols} tokens {nt}");
        if bits(&a) != bits(&b) {
            let i = (0..len)
                .find(|&i| a[i].to_bits() != b[i].to_bits())
                .unwrap();
            let (g, t, r) = (i / (nt * ROWS), i / ROWS % nt, i % ROWS);
            panic!(
                "{rows}x{cols} raw {raw} tokens {nt}: group {} token {t} row {r}: PQ2_0 layout {} vs Trit {}",
                groups.start + g,
                a[i],
                b[i]
            );
        }
    }
}

const TOKENS: [usize; 22] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 37, 64,
];

#[test]
fn trit_equals_the_pq2_0_layout_bit_for_bit() {
    if !avx512() {
        return;
    }
    let mut rng = Rng(0x7217_0001);
    // (rows, cols): partial groups, one block, odd block counts, the 9B
    // model's widths.
    for (i, &(rows, cols)) in [
        (16, 128),
        (5, 128),
        (37, 384),
        (100, 1152),
        (48, 4096),
        (21, 12288),
    ]
    .iter()
    .enumerate()
    {
        compare(&mut rng, rows, cols, i % 2 == 1, &TOKENS, None);
        compare(&mut rng, rows, cols, i % 2 == 0, &[1, 9, 64], None);
    }
}

#[test]
fn trit_equals_on_larger_matrices_and_group_ranges() {
    if !avx512() {
        return;
    }
    let mut rng = Rng(0x7217_0002);
    compare(
        &mut rng,
        4096 + 3,
        4096,
        false,
        &[1, 2, 8, 37],
        Some(100..180),
    );
    compare(&mut rng, 250, 12288, true, &[1, 7, 16], Some(3..16));
    compare(&mut rng, 12288, 1024, false, &[1, 64], None);
}

#[test]
fn pack_picks_the_layout_of_the_kernel_level() {
    let (rows, cols) = (40, 1152);
    let w = weights(&mut Rng(3), rows, cols, false);
    let Some(m) = PackedMatrix::pack(TY, rows, cols, &w) else {
        assert!(!has_kernels(TY, isa()));
        return;
    };
    let want = if isa() >= Isa::Avx512 {
        Kind::Trit
    } else {
        Kind::Ternary { planes: 2 }
    };
    assert_eq!(m.format.kind, want);
    assert_eq!(PackFormat::of(TY).unwrap(), m.format);
    let blocks = rows.div_ceil(ROWS) * cols / 128;
    // 448 bytes per 16 rows × 128 weights (1.75 bits per weight, the
    // source's), against 544 as 2-bit codes.
    let per = if want == Kind::Trit { 448 } else { 544 };
    assert_eq!(m.bytes(), blocks * per);
    if detected() >= Isa::Avx512 {
        let t = PackedMatrix::pack_at(Isa::Avx512, TY, rows, cols, &w).unwrap();
        assert_eq!(t.bytes(), blocks * 448);
        assert!(t.has_kernels(Isa::Avx512) && !t.has_kernels(Isa::Avx2));
        let c = PackedMatrix::pack_at(Isa::Avx2, TY, rows, cols, &w).unwrap();
        assert_eq!(c.bytes(), blocks * 544);
        assert!(c.has_kernels(Isa::Avx512) && c.has_kernels(Isa::Avx2));
    }
    // The other formats keep one layout at every level.
    for ty in [GgmlType::PQ2_0, GgmlType::TQ1_0, GgmlType::Q1_0] {
        assert_eq!(
            PackFormat::at(ty, Isa::Avx2),
            PackFormat::at(ty, Isa::Avx512)
        );
    }
}

#[test]
#[should_panic(expected = "kernel at Avx2")]
fn a_trit_matrix_never_runs_the_avx2_kernel() {
    if detected() < Isa::Avx512 {
        // Nothing to check here; panic as the test expects.
        panic!("no Trit kernel at Avx2 (no AVX-512 on this CPU)");
    }
    let (rows, cols) = (16, 128);
    let w = weights(&mut Rng(4), rows, cols, false);
    let m = PackedMatrix::pack_at(Isa::Avx512, TY, rows, cols, &w).unwrap();
    let mut a = vec![0u8; m.act_row_bytes()];
    m.quantize_act(&vec![0.5; cols], &mut a);
    let mut band = vec![0f32; ROWS];
    m.matmul_groups_at(Isa::Avx2, &a, a.len(), 1, 0..1, &mut band);
}
