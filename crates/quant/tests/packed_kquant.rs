//! The packed `Q4_K` / `Q6_K` kernels against the scalar reference
//! `vec_dot` (bit-exact with ggml's generic kernels) with `Q8_K`
//! activations, row by row and token by token, on random data; plus an
//! opt-in timing against the row-major kernels (`cargo test --release
//! --test packed_kquant -- --ignored --nocapture`).
//!
//! Tolerance (the rule of tests/packed.rs): the packed kernels form ggml's
//! exact integer sums per super-block and differ only in the order (and
//! fusing) of the `f32` steps after them, so they must agree within
//! `1e-5·M`, `M = Σ |w_j|·|a_j|` of the dequantized operands. A wrong
//! code, bit, scale, minimum, lane or token moves the result by about
//! `M / n` or more (`n` ≤ 1024 here), a hundred times that.
//!
//! Data: fully random block bytes (every code, scale and minimum bit
//! pattern) with random finite f16 `d`/`dmin` of both signs; weights
//! quantized from random floats; saturated blocks at the integer ranges'
//! extremes against saturated activations; rows that leave a partial group
//! of 16; token counts for the decode path (1, over 2-group steps and a
//! single group) and for every prefill tile width (2..=13, 13 being two
//! tiles); sub-ranges of row groups. Activations go through [`PackedMatrix::quantize_act`] (the
//! engine's path) and the reference through the scalar `Q8_K` quantizer.

mod packed_support;

use half::f16;
use packed_support::{assert_band_matches, Rng};
use shohin_quant::packed::{available, PackedMatrix, ROWS};
use shohin_quant::{kernels, row_bytes, scalar_kernels, GgmlType};
use std::time::Instant;

const FORMATS: [GgmlType; 2] = [GgmlType::Q4K, GgmlType::Q6K];

#[derive(Clone, Copy, PartialEq)]
enum Data {
    /// Random bytes, random finite f16 scales.
    Raw,
    /// Quantized from random floats by the reference quantizer.
    Quantized,
    /// Every block at the extreme of the integer ranges (see [`extreme`]).
    Extreme,
}

/// Byte offsets of the f16 fields of a block: `d` (and `dmin`).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4K => &[0, 2],
        _ => &[208],
    }
}

/// A saturated block: `Q4_K` codes 15, scales and mins 63; `Q6_K` codes 0
/// (value −32) with scales −128. With activations all ±127 these give the
/// largest integer sums.
fn extreme(ty: GgmlType, blk: &mut [u8]) {
    if ty == GgmlType::Q4K {
        blk.fill(0xFF);
    } else {
        blk[..192].fill(0);
        blk[192..208].fill(0x80);
    }
}

fn weights(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize, data: Data) -> Vec<u8> {
    let n = rows * row_bytes(ty, cols).unwrap();
    if data == Data::Quantized {
        let x: Vec<f32> = (0..rows * cols).map(|_| rng.f()).collect();
        let mut w = vec![0u8; n];
        (scalar_kernels(ty).quantize)(&x, &mut w);
        return w;
    }
    let mut w: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    for blk in w.chunks_exact_mut(ty.type_size()) {
        if data == Data::Extreme {
            extreme(ty, blk);
        }
        for &at in f16_fields(ty) {
            let d = f16::from_f32(rng.f() * 0.05).to_bits().to_le_bytes();
            blk[at..at + 2].copy_from_slice(&d);
        }
    }
    w
}

/// `n_tokens` activation rows: the reference's `Q8_K` rows and the
/// packed kernels' planar rows, from the same floats.
fn activations(rng: &mut Rng, m: &PackedMatrix, n_tokens: usize, data: Data) -> (Vec<u8>, Vec<u8>) {
    let n = m.cols;
    let (ra, pa) = (row_bytes(GgmlType::Q8K, n).unwrap(), m.act_row_bytes());
    let mut reference = vec![0u8; n_tokens * ra];
    let mut planar = vec![0u8; n_tokens * pa];
    for t in 0..n_tokens {
        let x: Vec<f32> = (0..n)
            .map(|j| match data {
                // Same sign: saturated sums; t flips it per token.
                Data::Extreme => [3.0, -3.0][t % 2] * if j % 97 == 0 { 1.0 } else { 0.999 },
                _ => rng.f() * 4.0,
            })
            .collect();
        (scalar_kernels(GgmlType::Q8K).quantize)(&x, &mut reference[t * ra..(t + 1) * ra]);
        m.quantize_act(&x, &mut planar[t * pa..(t + 1) * pa]);
    }
    (reference, planar)
}

#[allow(clippy::too_many_arguments)]
fn check(
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
    let m = PackedMatrix::pack(ty, rows, cols, &w).expect("packable");
    assert_eq!(m.n_groups(), rows.div_ceil(ROWS));
    let (reference, planar) = activations(&mut rng, &m, n_tokens, data);
    let pa = m.act_row_bytes();
    let mut band = vec![f32::NAN; groups.len() * n_tokens * ROWS];
    m.matmul_groups(&planar, pa, n_tokens, groups.clone(), &mut band);
    assert_band_matches("", ty, &w, &reference, rows, cols, n_tokens, groups, &band);
}

fn skip() -> bool {
    if !FORMATS.iter().all(|&ty| available(ty)) {
        eprintln!("no packed K-quant kernels on this CPU (AVX-512 VNNI): nothing to compare");
        return true;
    }
    false
}

#[test]
fn decode_matches_scalar() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let s = 10 * i as u64;
        for (k, data) in [Data::Raw, Data::Quantized].into_iter().enumerate() {
            let s = s + 3 * k as u64;
            // 5 groups: two 2-group decode steps and a single one; 2 padded rows.
            check(ty, 5 * ROWS - 2, 1024, 1, 0..5, data, s + 1);
            check(ty, 7, 256, 1, 0..1, data, s + 2);
            check(ty, 3 * ROWS, 768, 1, 1..3, data, s + 3);
        }
    }
}

#[test]
fn prefill_matches_scalar() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        // Every tile width (2..=12) and a split tile (13 = 7 + 6).
        for nt in 2..=13 {
            let s = 100 * i as u64 + 2 * nt as u64;
            check(ty, 3 * ROWS + 5, 512, nt, 0..4, Data::Raw, s);
        }
        for nt in [3, 8, 13] {
            let s = 100 * i as u64 + 50 + nt as u64;
            check(ty, 2 * ROWS, 768, nt, 1..2, Data::Quantized, s);
        }
    }
}

#[test]
fn extremes_match_scalar() {
    if skip() {
        return;
    }
    for (i, ty) in FORMATS.into_iter().enumerate() {
        for (k, nt) in [1usize, 3, 8, 13].into_iter().enumerate() {
            let s = 1000 + 100 * i as u64 + k as u64;
            check(ty, 2 * ROWS + 3, 1024, nt, 0..3, Data::Extreme, s);
        }
    }
}

#[test]
fn packed_size_is_the_source_size() {
    if skip() {
        return;
    }
    for ty in FORMATS {
        let (rows, cols) = (4 * ROWS, 1024);
        let w = vec![0u8; rows * row_bytes(ty, cols).unwrap()];
        let m = PackedMatrix::pack(ty, rows, cols, &w).unwrap();
        let ratio = m.bytes() as f64 / w.len() as f64;
        // Q4_K: 148 of 144 bytes (unpacked 6-bit scales); Q6_K: 210 of 210.
        let max = if ty == GgmlType::Q4K {
            148.0 / 144.0
        } else {
            1.0
        };
        assert!(ratio <= max + 1e-12, "{ty}: packed/source {ratio}");
    }
}

/// Seconds per call of `f` and of `g`, each the best of 20 short batches,
/// the batches alternating (on a shared machine both see the same load,
/// and the best batch is the one least disturbed).
fn seconds(reps: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    f();
    g();
    let batch = |h: &mut dyn FnMut()| {
        let t0 = Instant::now();
        for _ in 0..reps {
            h();
        }
        t0.elapsed().as_secs_f64() / reps as f64
    };
    let (mut bf, mut bg) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..20 {
        bf = bf.min(batch(&mut f));
        bg = bg.min(batch(&mut g));
    }
    (bf, bg)
}

fn time(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize) {
    let mut rng = Rng(7);
    let w = weights(&mut rng, ty, rows, cols, Data::Raw);
    let t0 = Instant::now();
    let m = PackedMatrix::pack(ty, rows, cols, &w).unwrap();
    let pack_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (pa, ra, wr) = (
        m.act_row_bytes(),
        row_bytes(GgmlType::Q8K, cols).unwrap(),
        row_bytes(ty, cols).unwrap(),
    );
    let mut a = vec![0u8; n_tokens * pa];
    let mut ar = vec![0u8; n_tokens * ra];
    for t in 0..n_tokens {
        let x: Vec<f32> = (0..cols).map(|_| rng.f()).collect();
        m.quantize_act(&x, &mut a[t * pa..(t + 1) * pa]);
        (kernels(GgmlType::Q8K).quantize)(&x, &mut ar[t * ra..(t + 1) * ra]);
    }
    let reps = (50_000_000 / (rows * cols * n_tokens)).max(1);
    let mut band = vec![0f32; m.n_groups() * n_tokens * ROWS];
    let k = kernels(ty);
    let mut out = vec![0f32; n_tokens];
    let packed_run = || m.matmul_groups(&a, pa, n_tokens, 0..m.n_groups(), &mut band);
    let row_major_run = || {
        for r in w.chunks_exact(wr) {
            if n_tokens == 1 {
                out[0] = (k.vec_dot)(r, &ar);
            } else {
                (k.vec_dot_multi)(r, &ar, ra, &mut out);
            }
            std::hint::black_box(&out);
        }
    };
    let (packed, row_major) = seconds(reps, packed_run, row_major_run);
    let gops = |s: f64| 2.0 * (rows * cols * n_tokens) as f64 / s / 1e9;
    println!(
        "{ty} {rows}x{cols} tokens {n_tokens}: packed {:.0} us {:.2} GB/s {:.1} GOP/s | \
         row-major {:.0} us {:.2} GB/s {:.1} GOP/s | speed-up {:.2}x (pack {pack_ms:.1} ms)",
        packed * 1e6,
        m.bytes() as f64 / packed / 1e9,
        gops(packed),
        row_major * 1e6,
        w.len() as f64 / row_major / 1e9,
        gops(row_major),
        row_major / packed,
    );
}

#[test]
#[ignore]
fn packed_kquant_speed() {
    if skip() {
        return;
    }
    for ty in FORMATS {
        for nt in [1, 64] {
            time(ty, 4096, 4096, nt);
            // Cache-resident, and Qwen2.5-0.5B's `ffn_down` (its K-quant tensors).
            time(ty, 256, 4096, nt);
            time(ty, 896, 4864, nt);
        }
    }
}
