//! Opt-in timing of the packed kernels (`cargo test --release --test
//! packed_speed -- --ignored --nocapture`): one thread, a Bonsai-8B-shaped
//! matrix, GB/s of weights streamed per decode step and GOP/s of prefill,
//! at every kernel level this CPU has (AVX2, AVX-512); the best of 7
//! trials. `PACKED_SPEED_ONLY=Q1_0,Q8_0,AVX2` picks formats and levels.

use shohin_quant::packed::{has_kernels, PackedMatrix, ROWS};
use shohin_quant::simd::{detected, Isa};
use shohin_quant::{row_bytes, GgmlType};
use std::time::Instant;

fn time(level: Isa, ty: GgmlType, rows: usize, cols: usize, n_tokens: usize) {
    let w: Vec<u8> = (0..rows * row_bytes(ty, cols).unwrap())
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let t0 = Instant::now();
    // The layout `level`'s kernels run on (`PTQ1_0` differs by level).
    let m = PackedMatrix::pack_at(level, ty, rows, cols, &w).unwrap();
    let pack = t0.elapsed().as_secs_f64();
    let pa = m.act_row_bytes();
    let x: Vec<f32> = (0..cols)
        .map(|j| ((j * 7919) % 201) as f32 / 100.0 - 1.0)
        .collect();
    let mut a = vec![0u8; n_tokens * pa];
    for t in 0..n_tokens {
        m.quantize_act(&x, &mut a[t * pa..(t + 1) * pa]);
    }
    let mut band = vec![0f32; m.n_groups() * n_tokens * ROWS];
    let reps = (400_000_000 / (rows * cols * n_tokens)).max(2);
    let groups = 0..m.n_groups();
    m.matmul_groups_at(level, &a, pa, n_tokens, groups.clone(), &mut band);
    // The best of several trials: the machine may be shared, and the
    // fastest run is the one least disturbed.
    let s = (0..7)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..reps {
                m.matmul_groups_at(level, &a, pa, n_tokens, groups.clone(), &mut band);
            }
            t0.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "{:7} {ty} {rows}x{cols} tokens {n_tokens}: {:.1} us, {:.2} GB/s weights, {:.1} GOP/s (pack {:.1} ms)",
        level.name(),
        s * 1e6,
        m.bytes() as f64 / s / 1e9,
        2.0 * (rows * cols * n_tokens) as f64 / s / 1e9,
        pack * 1e3
    );
}

/// Whether `PACKED_SPEED_ONLY` (e.g. `Q1_0,TQ2_0,AVX2`) picks the format
/// or level `name`: all when unset or when it names none of that sort.
fn picked(name: &str) -> bool {
    let Ok(only) = std::env::var("PACKED_SPEED_ONLY") else {
        return true;
    };
    let levels = [Isa::Avx2.name(), Isa::Avx512.name()];
    let of_sort = |t: &&str| levels.contains(t) == levels.contains(&name);
    let mut named = only.split(',').filter(of_sort).peekable();
    named.peek().is_none() || named.any(|t| t == name)
}

#[test]
#[ignore]
fn packed_speed() {
    for ty in [
        GgmlType::Q1_0,
        GgmlType::Q2_0,
        GgmlType::Q2_0G128,
        GgmlType::PTQ1_0,
        GgmlType::TQ2_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
    ] {
        if !picked(&ty.to_string()) {
            continue;
        }
        for level in [Isa::Avx2, Isa::Avx512] {
            if level > detected() || !has_kernels(ty, level) || !picked(level.name()) {
                continue;
            }
            for nt in [1, 64] {
                time(level, ty, 4096, 4096, nt);
                time(level, ty, 4096, 12288, nt);
            }
        }
    }
}
