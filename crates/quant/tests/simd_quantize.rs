//! The x86 / NEON SIMD activation quantizers (`Q8_0`, `Q8_1`, `Q8_K`)
//! against the scalar references (`scalar_kernels`, bit-exact with ggml,
//! see standard_known_answers.rs), bit for bit at every level this CPU
//! supports, on any input: random magnitudes, ties, NaN, ±inf and
//! subnormal maxima. The dots: simd_standard.rs.

mod standard_support;

use shohin_quant::simd::kernels_for;
use shohin_quant::{scalar_kernels, GgmlType};
use standard_support::{floats, levels, Rng};

/// Compares the quantizer of `ty` at every level with the scalar one.
fn check_quantize(ty: GgmlType, x: &[f32], what: &str) {
    let nb = x.len() / ty.block_size();
    let mut want = vec![0u8; nb * ty.type_size()];
    (scalar_kernels(ty).quantize)(x, &mut want);
    for level in levels() {
        let q = kernels_for(ty, level).quantize;
        for off in [0, 1, 3] {
            // Misaligned source and destination.
            let mut src = vec![0f32; off];
            src.extend_from_slice(x);
            let mut got = vec![0x5Au8; want.len() + off];
            q(&src[off..], &mut got[off..]);
            if got[off..] != want[..] {
                let blk = ty.type_size();
                let i = (0..want.len()).find(|&i| got[off + i] != want[i]).unwrap();
                let b = i / blk;
                panic!(
                    "{ty} {} {what}: byte {i} (block {b}) differs: {:?} vs {:?}\ninput {:?}",
                    level.name(),
                    &got[off + b * blk..off + (b + 1) * blk],
                    &want[b * blk..(b + 1) * blk],
                    &x[b * ty.block_size()..(b + 1) * ty.block_size()],
                );
            }
        }
    }
}

/// Blocks built so that `v·id` (`Q8_0`) or `iscale·v` (`Q8_K`) hits
/// exact halves `k + 0.5`, plus neighbours one ulp away: the maximum is
/// `±127·2^e`, so the scale is a power of two.
fn tie_blocks(bs: usize, nb: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(nb * bs);
    for _ in 0..nb {
        let e = 2f32.powi((rng.next_u64() % 40) as i32 - 20);
        let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
        let mut blk = vec![sign * 127.0 * e];
        while blk.len() < bs {
            let k = (rng.next_u64() % 254) as f32 - 127.0;
            let v = (k + 0.5) * e;
            blk.push(match rng.next_u64() % 4 {
                0 => f32::from_bits(v.to_bits() + 1),
                1 if v != 0.0 => f32::from_bits(v.to_bits() - 1),
                _ => v,
            });
        }
        // Put the maximum somewhere random.
        let j = (rng.next_u64() as usize) % bs;
        blk.swap(0, j);
        x.extend(blk);
    }
    x
}

/// Blocks with NaN, ±inf, subnormal maxima (1/d overflows), all zeros,
/// signed zeros, and both signs of the maximum in either order.
fn odd_blocks(bs: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::new();
    let base = |rng: &mut Rng| floats(bs, rng);
    let mut push = |mut blk: Vec<f32>, i: usize, v: f32| {
        blk[i % bs] = v;
        x.extend(blk);
    };
    push(base(rng), 3, f32::NAN);
    push(base(rng), bs - 1, f32::NAN);
    push(base(rng), 0, -f32::NAN);
    push(base(rng), 5, f32::INFINITY);
    push(base(rng), 7, f32::NEG_INFINITY);
    push(vec![0.0; bs], 0, 0.0);
    push(vec![-0.0; bs], 1, -0.0);
    push(vec![f32::NAN; bs], 1, f32::NAN);
    let tiny: Vec<f32> = (0..bs)
        .map(|i| f32::from_bits((i as u32 * 7) % 900) * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    push(tiny.clone(), 0, f32::from_bits(899));
    push(tiny, 0, f32::from_bits(1));
    push(vec![1e-40; bs], 2, -1e-40);
    for (i, j) in [(2, 9), (9, 2), (0, bs - 1), (bs - 1, 0)] {
        let mut blk = base(rng);
        let m = blk.iter().fold(0f32, |m, v| m.max(v.abs())) * 2.0;
        blk[i] = m;
        blk[j] = -m;
        x.extend(blk);
    }
    let mut blk = vec![1.0f32; bs];
    blk[4] = f32::MAX;
    blk[6] = -f32::MAX;
    x.extend(blk);
    x
}

#[test]
fn simd_standard_q8_0_quantize_is_bit_exact() {
    let mut rng = Rng(0x5170);
    for nb in 1..=9 {
        check_quantize(GgmlType::Q8_0, &floats(nb * 32, &mut rng), "random");
        check_quantize(GgmlType::Q8_0, &tie_blocks(32, nb, &mut rng), "ties");
    }
    check_quantize(GgmlType::Q8_0, &odd_blocks(32, &mut rng), "special values");
    check_quantize(
        GgmlType::Q8_0,
        &floats(32 * 4864 / 32, &mut rng),
        "4864 wide",
    );
}

/// `Q8_1`: `Q8_0`'s quants and scale plus the block sum `s`.
#[test]
fn simd_standard_q8_1_quantize_is_bit_exact() {
    let mut rng = Rng(0x5172);
    for nb in 1..=9 {
        check_quantize(GgmlType::Q8_1, &floats(nb * 32, &mut rng), "random");
        check_quantize(GgmlType::Q8_1, &tie_blocks(32, nb, &mut rng), "ties");
    }
    check_quantize(GgmlType::Q8_1, &odd_blocks(32, &mut rng), "special values");
    check_quantize(
        GgmlType::Q8_1,
        &floats(32 * 4864 / 32, &mut rng),
        "4864 wide",
    );
}

#[test]
fn simd_standard_q8_k_quantize_is_bit_exact() {
    let mut rng = Rng(0x5171);
    for nb in 1..=9 {
        check_quantize(GgmlType::Q8K, &floats(nb * 256, &mut rng), "random");
        check_quantize(GgmlType::Q8K, &tie_blocks(256, nb, &mut rng), "ties");
    }
    check_quantize(GgmlType::Q8K, &odd_blocks(256, &mut rng), "special values");
}
