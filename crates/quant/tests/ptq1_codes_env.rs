//! `SHOHIN_PTQ1_CODES=1` keeps `PTQ1_0` in `PQ2_0`'s 2-bit codes even where
//! the native base-3 layout (`Kind::Trit`) would run. Its own test binary:
//! the variable is read once per process, before any packing here.

use shohin_quant::packed::{Kind, PackFormat, PackedMatrix};
use shohin_quant::simd::{detected, Isa};
use shohin_quant::{quantize_row, row_bytes, GgmlType};

#[test]
fn the_variable_selects_the_2_bit_codes() {
    std::env::set_var("SHOHIN_PTQ1_CODES", "1");
    let f = PackFormat::at(GgmlType::PTQ1_0, Isa::Avx512).unwrap();
    assert_eq!(f.kind, Kind::Ternary { planes: 2 });
    if detected() < Isa::Avx512 {
        return;
    }
    let (rows, cols) = (16, 256);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 13) as f32 - 6.0)
        .collect();
    let rb = row_bytes(GgmlType::PTQ1_0, cols).unwrap();
    let mut w = vec![0u8; rows * rb];
    for (r, row) in w.chunks_exact_mut(rb).enumerate() {
        quantize_row(GgmlType::PTQ1_0, &x[r * cols..(r + 1) * cols], row).unwrap();
    }
    let m = PackedMatrix::pack_at(Isa::Avx512, GgmlType::PTQ1_0, rows, cols, &w).unwrap();
    assert_eq!(m.format.kind, Kind::Ternary { planes: 2 });
    // PQ2_0's size: 68 words per 16 x 128 block.
    assert_eq!(m.bytes(), cols / 128 * 68 * 8);
}
