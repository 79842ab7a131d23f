//! Run-time selection of SIMD kernels. The instruction set is detected once
//! (`is_x86_feature_detected!`, no `target-cpu=native`); each format starts
//! from its scalar reference and a SIMD module replaces the functions it has
//! a faster version of. `SHOHIN_ISA=scalar` forces the references (for
//! benchmarks and bisecting), `SHOHIN_ISA=avx2` caps x86 at AVX2. On
//! aarch64 the level is NEON (part of the base architecture).

pub mod attn;

use crate::{scalar_kernels, GgmlType, Kernels, ALL_TYPES};
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

#[cfg(target_arch = "aarch64")]
pub(crate) mod arm;

/// The instruction-set level kernels are chosen for. Ordered so that
/// capping with `min` works on either architecture: a CPU only ever has
/// `Scalar` and the levels of its own architecture ([`supported`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// aarch64 NEON.
    Neon,
    Avx2,
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "NEON",
            Isa::Avx2 => "AVX2",
            Isa::Avx512 => "AVX-512",
        }
    }
}

/// The level in use: the best the CPU has, capped by `SHOHIN_ISA`.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match std::env::var("SHOHIN_ISA").as_deref() {
            Ok("scalar") => Isa::Scalar,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        detected().min(cap)
    })
}

/// The best level this CPU supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        x86::detected()
    }
    #[cfg(target_arch = "aarch64")]
    {
        arm::detected()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Isa::Scalar
    }
}

/// Whether this CPU has `level`: the scalar level, or a level of its own
/// architecture up to [`detected`].
pub fn supported(level: Isa) -> bool {
    let d = detected();
    match level {
        Isa::Scalar => true,
        Isa::Neon => d == Isa::Neon,
        Isa::Avx2 | Isa::Avx512 => d >= Isa::Avx2 && level <= d,
    }
}

/// The kernels of `ty` for [`isa()`].
pub fn kernels(ty: GgmlType) -> Kernels {
    static TABLE: OnceLock<Vec<(GgmlType, Kernels)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let level = isa();
        ALL_TYPES
            .iter()
            .map(|&t| (t, kernels_for(t, level)))
            .collect()
    });
    table
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or_else(|| scalar_kernels(ty), |(_, k)| *k)
}

/// The kernels of `ty` at a given level (tests compare every level the CPU
/// supports against the scalar reference).
pub fn kernels_for(ty: GgmlType, level: Isa) -> Kernels {
    #[allow(unused_mut)]
    let mut k = scalar_kernels(ty);
    #[cfg(target_arch = "x86_64")]
    x86::apply(ty, level.min(detected()), &mut k);
    #[cfg(target_arch = "aarch64")]
    arm::apply(ty, level.min(detected()), &mut k);
    let _ = level;
    k
}
