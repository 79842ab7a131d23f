//! ns per weight row of the standard-format kernels at each instruction-set
//! level this CPU has (scalar, AVX2, AVX-512), on the shapes of
//! Qwen2.5-Coder-0.5B (rows 896 and 4864 wide): `vec_dot` (one token),
//! `vec_dot_multi` with 8 tokens (per row, i.e. for all 8), and the
//! activation quantizers (per row). Weights of 64 rows stay hot in cache,
//! so this measures compute, not memory bandwidth. Minimum of several
//! repetitions (the machine may be shared).
//!
//! `cargo bench -p shohin-quant --bench standard` (plain `main`, no
//! harness; `SHOHIN_BENCH_REPS=n` sets the repetitions, default 30).

use shohin_quant::simd::{detected, kernels_for, Isa};
use shohin_quant::{scalar_kernels, GgmlType, Kernels};
use std::hint::black_box;
use std::time::Instant;

const ROWS: usize = 64;
const TOKENS: usize = 8;

/// Deterministic pseudo-random floats (SplitMix64, roughly normal).
fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| ((0..4).map(|_| next()).sum::<f64>() - 2.0) as f32)
        .collect()
}

fn quantized(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let x = floats(rows * cols, seed);
    let mut b = vec![0u8; rows * cols / ty.block_size() * ty.type_size()];
    (scalar_kernels(ty).quantize)(&x, &mut b);
    b
}

/// Minimum over `reps` runs of 8 calls of `f`, in ns, divided by `per`.
fn time(reps: usize, per: usize, mut f: impl FnMut()) -> f64 {
    const INNER: usize = 8;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..INNER {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    best / (per * INNER) as f64
}

fn kernels_at(ty: GgmlType, level: Isa) -> Kernels {
    if level == Isa::Scalar {
        scalar_kernels(ty)
    } else {
        kernels_for(ty, level)
    }
}

fn main() {
    let reps = match std::env::var("SHOHIN_BENCH_REPS") {
        Ok(r) => r.parse().unwrap_or(30),
        Err(_) => 30,
    };
    // `SHOHIN_BENCH_LEVEL=AVX-512` keeps one level (for profiling).
    let only = std::env::var("SHOHIN_BENCH_LEVEL").unwrap_or_default();
    let levels: Vec<Isa> = [Isa::Scalar, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&l| l <= detected() && (only.is_empty() || l.name() == only))
        .collect();
    use GgmlType::*;
    let shapes = [
        (Q8_0, 896),
        (Q8_0, 4864),
        (Q5_0, 896),
        (Q5_0, 4864),
        (Q4_0, 896),
        (Q4_0, 4864),
        // the asymmetric formats (activations `Q8_1`)
        (Q4_1, 896),
        (Q4_1, 4864),
        (Q5_1, 896),
        (Q5_1, 4864),
        (Q4K, 4864),
        (Q5K, 4864),
        (Q6K, 4864),
        (F32, 896),
        (F16, 896),
        (F16, 4864),
    ];
    // `SHOHIN_BENCH_FILTER=Q5_0` keeps the shapes whose format name
    // contains the text (for profiling one kernel).
    let filter = std::env::var("SHOHIN_BENCH_FILTER").unwrap_or_default();
    let shapes: Vec<_> = shapes
        .into_iter()
        .filter(|(ty, _)| ty.name().contains(filter.as_str()))
        .collect();
    println!("ns per weight row (vec_dot: 1 token; multi: 8 tokens)");
    print!("{:<6} {:>5} {:<8}", "format", "cols", "kernel");
    for l in &levels {
        print!(" {:>9}", l.name());
    }
    println!();
    for (ty, cols) in shapes {
        let at = ty.vec_dot_type();
        let w_row = cols / ty.block_size() * ty.type_size();
        let a_row = cols / at.block_size() * at.type_size();
        let w = quantized(ty, ROWS, cols, 1);
        let a = quantized(at, TOKENS, cols, 2);
        let mut single = Vec::new();
        let mut multi = Vec::new();
        for &level in &levels {
            let k = kernels_at(ty, level);
            single.push(time(reps, ROWS, || {
                for r in w.chunks_exact(w_row) {
                    black_box((k.vec_dot)(black_box(r), black_box(&a[..a_row])));
                }
            }));
            let mut out = [0f32; TOKENS];
            multi.push(time(reps, ROWS, || {
                for r in w.chunks_exact(w_row) {
                    (k.vec_dot_multi)(black_box(r), black_box(&a), a_row, &mut out);
                    black_box(&out);
                }
            }));
        }
        for (name, v) in [("vec_dot", &single), ("multi8", &multi)] {
            print!("{:<6} {:>5} {:<8}", ty.name(), cols, name);
            for t in v {
                print!(" {t:>9.1}");
            }
            println!();
        }
    }
    println!("\nns per activation row (quantize)");
    for (ty, cols) in [
        (Q8_0, 896),
        (Q8_0, 4864),
        (Q8_1, 896),
        (Q8_1, 4864),
        (Q8K, 4864),
    ] {
        let x = floats(TOKENS * cols, 3);
        let mut b = vec![0u8; TOKENS * cols / ty.block_size() * ty.type_size()];
        print!("{:<6} {:>5} {:<8}", ty.name(), cols, "quantize");
        for &level in &levels {
            let q = kernels_at(ty, level).quantize;
            let t = time(reps, TOKENS, || q(black_box(&x), black_box(&mut b)));
            print!(" {t:>9.1}");
        }
        println!();
    }
}
