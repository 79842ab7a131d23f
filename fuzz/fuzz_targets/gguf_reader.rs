//! Fuzz the GGUF reader: `cargo +nightly fuzz run gguf_reader` (from the
//! repository root). Any input must give `Ok` or `Err`, never a panic, abort
//! or an allocation out of proportion to the input; on `Ok` every tensor's
//! bytes and every metadata value are touched, and the file must survive a
//! write/read round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shohin_gguf::{GgufError, GgufFile, GgufWriter, Value};

fn touch(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(_, items) => items.iter().fold(1, |s, v| s.wrapping_add(touch(v))),
        v => v.as_u64().unwrap_or(1),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut sum = 0u64;
    for t in f.tensors() {
        let d = f.tensor_data(t);
        assert_eq!(d.len() as u64, t.n_bytes);
        sum = sum.wrapping_add(d.iter().map(|&x| u64::from(x)).sum::<u64>());
    }
    for (k, v) in f.metadata() {
        sum = sum.wrapping_add(touch(v)).wrapping_add(k.len() as u64);
    }
    std::hint::black_box(sum);
    let mut out = Vec::new();
    match GgufWriter::from_file(&f).write_to(&mut out) {
        Err(GgufError::AmbiguousQ2_0 { .. }) => {}
        r => {
            r.expect("an accepted file can be written");
            let g = GgufFile::from_bytes(out).expect("a written file reads back");
            assert_eq!(g.tensors().len(), f.tensors().len());
            assert_eq!(g.metadata().len(), f.metadata().len());
        }
    }
});
