//! A small fast hasher for the vocabulary maps (token text → id, id pair →
//! merge). std's SipHash protects against hash flooding by chosen keys; these
//! keys come from the model file, are hashed once per load or per merge
//! lookup, and SipHash made loading a 150k-token vocabulary several times slower.
//!
//! The mixing is the "Fx" scheme used by rustc (rotate, xor, multiply by a
//! 64-bit odd constant), fed 8 bytes at a time.

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        // MurmurHash3 fmix64 avalanche, so the low bits (bucket index) and the
        // high bits (hashbrown's control byte) both depend on every input bit
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub(crate) type FxBuildHasher = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_keys_spread() {
        let b = FxBuildHasher::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            seen.insert(b.hash_one(format!("tok{i}")) & 0xFFFF);
        }
        // 10k keys into 65536 buckets: a random function gives ~9270 distinct
        // low-16-bit values
        assert!(seen.len() > 9100, "{}", seen.len());
    }
}
