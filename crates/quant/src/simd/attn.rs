//! Vector helper for attention over an f16 KV cache: `y += p·v` with f16
//! values, converting with F16C eight lanes at a time (scalar fallback
//! elsewhere). Products and sums are f32, as in ggml's f16 `mul_mat`.

use super::{isa, Isa};
use half::f16;

/// `y[i] += alpha * x[i]` with `x` in f16.
pub fn axpy_f16(y: &mut [f32], alpha: f32, x: &[f16]) {
    assert_eq!(y.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: isa() >= Avx2 means AVX2, FMA and F16C were detected.
        return unsafe { x86::axpy(y, alpha, x) };
    }
    for (o, v) in y.iter_mut().zip(x) {
        *o += alpha * v.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// Needs AVX2, FMA and F16C; `y.len() == x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy(y: &mut [f32], alpha: f32, x: &[f16]) {
        let n = y.len();
        let va = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n = y.len() = x.len(): loads and the store
            // stay in bounds; unaligned accesses.
            unsafe {
                let vx = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i).cast()));
                let vy = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(va, vx, vy));
            }
            i += 8;
        }
        for j in i..n {
            y[j] += alpha * x[j].to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_matches_scalar_on_all_lengths() {
        let mut s = 7u32;
        let mut r = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for n in 0..70 {
            let b: Vec<f16> = (0..n).map(|_| f16::from_f32(r())).collect();
            let mut y: Vec<f32> = (0..n).map(|_| r()).collect();
            let want: Vec<f32> = y
                .iter()
                .zip(&b)
                .map(|(y, x)| y + 0.3 * x.to_f32())
                .collect();
            axpy_f16(&mut y, 0.3, &b);
            for (g, w) in y.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6, "n={n}");
            }
        }
    }
}
