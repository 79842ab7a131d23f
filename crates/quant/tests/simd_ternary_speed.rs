//! Timing of the 1-bit / ternary dot products on a realistic row (4096
//! weights, the hidden size of an 8B model): ns per weight row for one
//! activation row (decode) and for eight (prefill, `vec_dot_multi`), at
//! every level the CPU has. Ignored by default; run with
//!
//! ```text
//! cargo test -p shohin-quant --release --test simd_ternary_speed -- --ignored --nocapture
//! ```
//!
//! `SHOHIN_BENCH_MS` sets the time per measurement (default 200 ms),
//! `SHOHIN_BENCH_ONLY` a comma-separated list of formats (`Q1_0,TQ2_0`),
//! `SHOHIN_BENCH_LEVELS` the levels (`scalar,AVX2,AVX-512`),
//! `SHOHIN_BENCH_WROWS` the number of weight rows (default 64, 36 to 70 KB,
//! which cycle through L1/L2 like a matrix–vector product's; 1 measures
//! the kernel alone, 4096 rows of a real matrix stream from L3 / memory).

use shohin_quant::simd::{detected, kernels_for, Isa};
use shohin_quant::{scalar_kernels, GgmlType};
use std::hint::black_box;
use std::time::{Duration, Instant};

const N: usize = 4096;

fn lcg(s: &mut u64) -> u8 {
    *s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (*s >> 33) as u8
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// CPU time of this thread in seconds (`CLOCK_THREAD_CPUTIME_ID`): time
/// the scheduler gives to others on a busy machine does not count.
fn thread_cpu() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid `struct timespec` (two 64-bit fields on
    // x86-64 Linux) and clock 3 is CLOCK_THREAD_CPUTIME_ID.
    let rc = unsafe { clock_gettime(3, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// Run `f` for about `budget` in 50 slices and return the best per-call
/// thread CPU time of a slice: on a shared machine the minimum is the
/// least disturbed estimate.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..50 {
        let (start, cpu0) = (Instant::now(), thread_cpu());
        let mut calls = 0u64;
        while calls < 2 || start.elapsed() < budget / 50 {
            f();
            calls += 1;
        }
        best = best.min((thread_cpu() - cpu0) / calls as f64);
    }
    best
}

#[test]
#[ignore = "timing; run explicitly"]
fn ternary_dot_speed() {
    let ms = std::env::var("SHOHIN_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let budget = Duration::from_millis(ms);
    let wrows: usize = std::env::var("SHOHIN_BENCH_WROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    println!(
        "{:<9} {:<8} {:>11} {:>9} {:>13} {:>13} {:>8}",
        "format", "level", "dot ns/row", "GB/s", "multi8 ns/row", "ns/row/token", "speedup"
    );
    for ty in [
        GgmlType::Q1_0,
        GgmlType::Q2_0,
        GgmlType::Q2_0G128,
        GgmlType::PTQ1_0,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
    ] {
        let only = std::env::var("SHOHIN_BENCH_ONLY").unwrap_or_default();
        if !only.is_empty() && !only.split(',').any(|o| o == ty.to_string()) {
            continue;
        }
        let vt = ty.vec_dot_type();
        let wbytes = N / ty.block_size() * ty.type_size();
        let abytes = N / vt.block_size() * vt.type_size();
        let mut s = 0x1234_5678u64;
        // quantized random weights and activations
        let x: Vec<f32> = (0..N * wrows)
            .map(|_| f32::from(lcg(&mut s)) / 128.0 - 1.0)
            .collect();
        let mut w = vec![0u8; wbytes * wrows];
        (scalar_kernels(ty).quantize)(&x, &mut w);
        let xa: Vec<f32> = (0..N * 8)
            .map(|_| f32::from(lcg(&mut s)) / 64.0 - 2.0)
            .collect();
        let mut a = vec![0u8; abytes * 8];
        (scalar_kernels(vt).quantize)(&xa, &mut a);
        let levels = std::env::var("SHOHIN_BENCH_LEVELS").unwrap_or_default();
        for level in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            if level > detected() || !(levels.is_empty() || levels.contains(level.name())) {
                continue;
            }
            let k = if level == Isa::Scalar {
                scalar_kernels(ty)
            } else {
                kernels_for(ty, level)
            };
            let dot = time(budget, || {
                for r in w.chunks_exact(wbytes) {
                    black_box((k.vec_dot)(black_box(r), black_box(&a[..abytes])));
                }
            }) / wrows as f64;
            let mut out = [0f32; 8];
            let multi = time(budget, || {
                for r in w.chunks_exact(wbytes) {
                    (k.vec_dot_multi)(black_box(r), black_box(&a), abytes, &mut out);
                    black_box(&out);
                }
            }) / wrows as f64;
            println!(
                "{:<9} {:<8} {:>11.1} {:>9.2} {:>13.1} {:>13.1} {:>7.2}x",
                ty.to_string(),
                level.name(),
                dot * 1e9,
                wbytes as f64 / dot / 1e9,
                multi * 1e9,
                multi * 1e9 / 8.0,
                dot * 8.0 / multi
            );
        }
    }
}
