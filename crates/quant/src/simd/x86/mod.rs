//! x86-64 kernels (AVX2, AVX-512). Every `unsafe fn` here carries
//! `#[target_feature]`; the safe wrappers installed in [`crate::Kernels`] are
//! only ever selected after `is_x86_feature_detected!` confirmed the features.

use super::Isa;
use crate::{GgmlType, Kernels};

mod standard;
mod ternary;

/// The best level this CPU supports. AVX-512 here means F + BW + VL + VNNI
/// (Ice Lake / Zen 4 and later), which the kernels assume together.
pub(crate) fn detected() -> Isa {
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni");
    if avx512 {
        Isa::Avx512
    } else if avx2 {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// Replace the kernels of `ty` that have a SIMD version at `level`.
pub(crate) fn apply(ty: GgmlType, level: Isa, k: &mut Kernels) {
    if level == Isa::Scalar {
        return;
    }
    standard::apply(ty, level, k);
    ternary::apply(ty, level, k);
}
