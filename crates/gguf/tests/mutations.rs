//! A poor man's fuzzer, deterministic: thousands of random mutations of a
//! small valid file go through `from_bytes`. Nothing may panic, and every
//! mutant that is accepted must survive a write/read round trip.

mod common;

use common::small_valid_file;
use shohin_gguf::{GgufError, GgufFile, GgufWriter, Value};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that tend to break size arithmetic.
const INTERESTING: [u64; 10] = [
    0,
    1,
    2,
    31,
    32,
    0x7f,
    0xffff_ffff,
    1 << 32,
    i64::MAX as u64,
    u64::MAX,
];

fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(3) {
        let pos = rng.below(b.len());
        match rng.below(6) {
            0 => b[pos] = rng.next() as u8,
            1 => b[pos] ^= 1 << rng.below(8),
            2 => {
                // Overwrite a (possibly misaligned) u64 or u32 field.
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = if rng.below(2) == 0 { 8 } else { 4 };
                let end = (pos + w).min(b.len());
                b[pos..end].copy_from_slice(&v[..end - pos]);
            }
            3 => b.truncate(pos),
            4 => {
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(pos..pos, extra);
            }
            _ => {
                let end = (pos + 1 + rng.below(16)).min(b.len());
                b.drain(pos..end);
            }
        }
        if b.is_empty() {
            break;
        }
    }
    b
}

fn touch(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(_, items) => items.iter().fold(1, |s, v| s.wrapping_add(touch(v))),
        v => v.as_u64().unwrap_or(1),
    }
}

#[test]
fn random_mutations_never_panic() {
    let base = small_valid_file();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..5000 {
        let m = mutate(&mut rng, &base);
        match GgufFile::from_bytes(m) {
            Err(e) => {
                let _ = e.to_string();
                rejected += 1;
            }
            Ok(f) => {
                accepted += 1;
                let mut sum = 0u64;
                for t in f.tensors() {
                    let d = f.tensor_data(t);
                    assert_eq!(d.len() as u64, t.n_bytes);
                    sum = sum.wrapping_add(d.iter().map(|&x| x as u64).sum::<u64>());
                }
                for (_, v) in f.metadata() {
                    sum = sum.wrapping_add(touch(v));
                }
                std::hint::black_box(sum);
                let mut out = Vec::new();
                match GgufWriter::from_file(&f).write_to(&mut out) {
                    // A g128 tensor whose trailing padding was cut can be
                    // read but not written unambiguously.
                    Err(GgufError::AmbiguousQ2_0 { .. }) => continue,
                    r => r.unwrap(),
                };
                let g = GgufFile::from_bytes(out.clone()).unwrap();
                assert_eq!(g.tensors().len(), f.tensors().len());
                for (a, b) in f.tensors().iter().zip(g.tensors()) {
                    assert_eq!(
                        (&a.name, &a.dims, a.ggml_type),
                        (&b.name, &b.dims, b.ggml_type)
                    );
                    assert_eq!(f.tensor_data(a), g.tensor_data(b));
                }
                assert_eq!(f.metadata().len(), g.metadata().len());
                let mut again = Vec::new();
                GgufWriter::from_file(&g).write_to(&mut again).unwrap();
                assert!(again == out, "second write differs");
            }
        }
    }
    eprintln!("accepted {accepted}, rejected {rejected}");
    assert!(rejected > 2500, "mutations too weak: {rejected} rejected");
    assert!(
        accepted > 50,
        "mutator never keeps files valid: {accepted} accepted"
    );
}
