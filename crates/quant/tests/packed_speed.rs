//! Opt-in timing of the packed kernels (`cargo test --release --test
//! packed_speed -- --ignored --nocapture`): one thread, a Bonsai-8B-shaped
//! matrix, GB/s of weights streamed per decode step and GOP/s of prefill.

use shohin_quant::packed::{available, PackedMatrix, ROWS};
use shohin_quant::{row_bytes, GgmlType};
use std::time::Instant;

fn time(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize) {
    let w: Vec<u8> = (0..rows * row_bytes(ty, cols).unwrap())
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let m = PackedMatrix::pack(ty, rows, cols, &w).unwrap();
    let pa = m.act_row_bytes();
    let x: Vec<f32> = (0..cols)
        .map(|j| ((j * 7919) % 201) as f32 / 100.0 - 1.0)
        .collect();
    let mut a = vec![0u8; n_tokens * pa];
    for t in 0..n_tokens {
        m.quantize_act(&x, &mut a[t * pa..(t + 1) * pa]);
    }
    let mut band = vec![0f32; m.n_groups() * n_tokens * ROWS];
    let reps = (2_000_000_000 / (rows * cols * n_tokens)).max(3);
    m.matmul_groups(&a, pa, n_tokens, 0..m.n_groups(), &mut band);
    let t0 = Instant::now();
    for _ in 0..reps {
        m.matmul_groups(&a, pa, n_tokens, 0..m.n_groups(), &mut band);
    }
    let s = t0.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{ty} {rows}x{cols} tokens {n_tokens}: {:.1} us, {:.2} GB/s weights, {:.1} GOP/s",
        s * 1e6,
        m.bytes() as f64 / s / 1e9,
        2.0 * (rows * cols * n_tokens) as f64 / s / 1e9
    );
}

#[test]
#[ignore]
fn packed_speed() {
    for ty in [
        GgmlType::Q1_0,
        GgmlType::Q2_0,
        GgmlType::Q2_0G128,
        GgmlType::TQ2_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
    ] {
        if !available(ty) {
            continue;
        }
        for nt in [1, 64] {
            time(ty, 4096, 4096, nt);
            time(ty, 4096, 12288, nt);
        }
    }
}
