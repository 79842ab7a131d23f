//! `com.microsoft::MatMulNBits` with `bits = 2`, `block_size = 128` to
//! PrismML `Q2_0` g128 blocks, without re-quantization.
//!
//! MatMulNBits (onnxruntime `docs/ContribOperators.md`): `B` is uint8
//! `[N, n_blocks_per_col, blob_size]` (`blob_size = block_size * bits / 8`
//! = 32), each byte four 2-bit codes, lowest bits first, so weight `k` of
//! row `n` is code `q = (B[n][k / 128][(k % 128) / 4] >> 2 * (k % 4)) & 3`,
//! with value `(q - zp) * scale`; `scales` `[N * n_blocks_per_col]` (float
//! or float16); `zero_points` optional: uint8 packed like `B` (each row's
//! `n_blocks_per_col` 2-bit values padded to whole bytes), or the scales'
//! type; absent, `zp = 2^(bits - 1) = 2`.
//!
//! A `Q2_0` g128 block (`shohin_quant::q2_0_g128`) is an f16 scale `d` and
//! 128 codes `c` (same packing) of value `(c - 1) * d`. So `d = scale` (an
//! f16 scale as is; a float one must be exactly an f16) and
//! `c = q - zp + 1`, which has to be 0, 1 or 2 for every weight: the export
//! must be ternary. Anything else is refused, never rounded.

use std::borrow::Cow;

use half::{bf16, f16};

use super::proto::dtype;

/// Weights per block.
pub(crate) const QK: usize = 128;
/// Bytes of one packed block of codes in `B`.
pub(crate) const BLOB: usize = QK / 4;
/// Bytes of one `Q2_0` g128 block.
pub(crate) const BLOCK_BYTES: usize = 2 + BLOB;

/// The tensors of one validated MatMulNBits node.
pub(crate) struct NBits<'a> {
    /// Input features (`K`), a multiple of [`QK`].
    pub k: usize,
    /// `B`, `N * K / 4` bytes.
    pub b: Cow<'a, [u8]>,
    /// Scales, `N * K / QK` of type `scale_type`.
    pub scales: Cow<'a, [u8]>,
    pub scale_type: i32,
    pub zero_points: Option<ZeroPoints<'a>>,
}

/// The optional zero points.
pub(crate) enum ZeroPoints<'a> {
    /// uint8, 2 bits each, each row padded to whole bytes.
    Packed(Cow<'a, [u8]>),
    /// One value per block, of the scales' type (FLOAT, FLOAT16, BFLOAT16).
    Float(Cow<'a, [u8]>, i32),
}

/// A value of a FLOAT / FLOAT16 / BFLOAT16 array.
fn float_at(data: &[u8], ty: i32, i: usize) -> f32 {
    match ty {
        dtype::FLOAT => f32::from_le_bytes(data[4 * i..4 * i + 4].try_into().unwrap()),
        dtype::FLOAT16 => f16::from_le_bytes([data[2 * i], data[2 * i + 1]]).to_f32(),
        _ => bf16::from_le_bytes([data[2 * i], data[2 * i + 1]]).to_f32(),
    }
}

/// For each zero point `z` in `-1..=4` (index `z + 1`) and packed byte of
/// four codes `q`: the byte of codes `q - z + 1`, or `None` when one of them
/// is not 0, 1 or 2.
fn tables() -> &'static [[Option<u8>; 256]; 6] {
    static T: std::sync::OnceLock<[[Option<u8>; 256]; 6]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[None; 256]; 6];
        for (zi, row) in t.iter_mut().enumerate() {
            let z = zi as i32 - 1;
            for (byte, slot) in row.iter_mut().enumerate() {
                let mut out = 0u8;
                let mut ok = true;
                for j in 0..4 {
                    let q = (byte >> (2 * j)) as i32 & 3;
                    let c = q - z + 1;
                    ok &= (0..=2).contains(&c);
                    out |= (c.clamp(0, 3) as u8) << (2 * j);
                }
                *slot = ok.then_some(out);
            }
        }
        t
    })
}

impl NBits<'_> {
    fn blocks_per_row(&self) -> usize {
        self.k / QK
    }

    /// The zero point of block `blk` of row `row`, as an integer.
    fn zero_point(&self, row: usize, blk: usize) -> Result<i32, String> {
        let nb = self.blocks_per_row();
        match &self.zero_points {
            None => Ok(2),
            Some(ZeroPoints::Packed(z)) => {
                let row_bytes = nb.div_ceil(4);
                let byte = z[row * row_bytes + blk / 4];
                Ok(i32::from((byte >> (2 * (blk % 4))) & 3))
            }
            Some(ZeroPoints::Float(z, ty)) => {
                let v = float_at(z, *ty, row * nb + blk);
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(format!(
                        "row {row}, block {blk}: zero point {v} is not an integer"
                    ));
                }
                Ok(v as i32)
            }
        }
    }

    /// The f16 scale of block `blk` of row `row`, exactly.
    fn scale(&self, row: usize, blk: usize) -> Result<f16, String> {
        let i = row * self.blocks_per_row() + blk;
        if self.scale_type == dtype::FLOAT16 {
            return Ok(f16::from_le_bytes([
                self.scales[2 * i],
                self.scales[2 * i + 1],
            ]));
        }
        let v = float_at(&self.scales, self.scale_type, i);
        let h = f16::from_f32(v);
        if h.to_f32() != v && !(v.is_nan() && h.is_nan()) {
            return Err(format!(
                "row {row}, block {blk}: scale {v:e} is not exactly an f16 (Q2_0 g128 stores f16 scales)"
            ));
        }
        Ok(h)
    }

    /// Appends the `Q2_0` g128 blocks of `rows` to `out`; the error says
    /// which weight is not ternary.
    pub(crate) fn repack_rows(
        &self,
        rows: std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let nb = self.blocks_per_row();
        let t = tables();
        out.reserve(rows.len() * nb * BLOCK_BYTES);
        for row in rows {
            for blk in 0..nb {
                let d = self.scale(row, blk)?;
                let z = self.zero_point(row, blk)?;
                let table = usize::try_from(z + 1)
                    .ok()
                    .and_then(|i| t.get(i))
                    .ok_or_else(|| {
                        format!("row {row}, block {blk}: zero point {z} leaves no code in -1..=1")
                    })?;
                out.extend_from_slice(&d.to_le_bytes());
                let src = &self.b[(row * nb + blk) * BLOB..][..BLOB];
                for (i, &byte) in src.iter().enumerate() {
                    match table[byte as usize] {
                        Some(c) => out.push(c),
                        None => {
                            let j = (0..4)
                                .find(|j| {
                                    let q = (byte >> (2 * j)) as i32 & 3;
                                    !(-1..=1).contains(&(q - z))
                                })
                                .unwrap_or(0);
                            let q = (byte >> (2 * j)) as i32 & 3;
                            return Err(format!(
                                "row {row}, weight {}: code {q} with zero point {z} is {} \
                                 times the scale, not -1, 0 or 1 (not a ternary export)",
                                blk * QK + 4 * i + j,
                                q - z
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(codes: &[u8]) -> Vec<u8> {
        codes
            .chunks(4)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |a, (j, &q)| a | (q << (2 * j)))
            })
            .collect()
    }

    #[test]
    fn default_zero_point_maps_codes_1_2_3_to_0_1_2() {
        let codes: Vec<u8> = (0..QK).map(|i| 1 + (i % 3) as u8).collect();
        let b = pack(&codes);
        let scales = f16::from_f32(0.75).to_le_bytes();
        let nb = NBits {
            k: QK,
            b: Cow::Borrowed(&b),
            scales: Cow::Borrowed(&scales),
            scale_type: dtype::FLOAT16,
            zero_points: None,
        };
        let mut out = Vec::new();
        nb.repack_rows(0..1, &mut out).unwrap();
        assert_eq!(out.len(), BLOCK_BYTES);
        let mut y = [0f32; QK];
        shohin_quant::dequantize_row(shohin_gguf::GgmlType::Q2_0G128, &out, &mut y).unwrap();
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, ((i % 3) as f32 - 1.0) * 0.75, "{i}");
        }
    }

    #[test]
    fn packed_and_float_zero_points_and_refusals() {
        // zero point 1: codes 0..=2 are -1..=1
        let codes: Vec<u8> = (0..2 * QK).map(|i| (i % 3) as u8).collect();
        let b = pack(&codes);
        let scales: Vec<u8> = [0.5f32, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let zp = [0b0101u8]; // blocks 0 and 1: zero point 1
        let mut nb = NBits {
            k: 2 * QK,
            b: Cow::Borrowed(&b),
            scales: Cow::Borrowed(&scales),
            scale_type: dtype::FLOAT,
            zero_points: Some(ZeroPoints::Packed(Cow::Borrowed(&zp))),
        };
        let mut out = Vec::new();
        nb.repack_rows(0..1, &mut out).unwrap();
        let mut y = vec![0f32; 2 * QK];
        shohin_quant::dequantize_row(shohin_gguf::GgmlType::Q2_0G128, &out, &mut y).unwrap();
        for (i, v) in y.iter().enumerate() {
            let s = if i < QK { 0.5 } else { 0.25 };
            assert_eq!(*v, ((i % 3) as f32 - 1.0) * s, "{i}");
        }
        // the default zero point 2: code 0 is -2
        nb.zero_points = None;
        let e = nb.repack_rows(0..1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("code 0") && e.contains("-2"), "{e}");
        // a float zero point that is not an integer
        let zf: Vec<u8> = [1.0f32, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        nb.zero_points = Some(ZeroPoints::Float(Cow::Borrowed(&zf), dtype::FLOAT));
        let e = nb.repack_rows(0..1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("block 1") && e.contains("1.5"), "{e}");
        // a float scale that is not an f16
        let zf: Vec<u8> = [1.0f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        nb.zero_points = Some(ZeroPoints::Float(Cow::Borrowed(&zf), dtype::FLOAT));
        let odd: Vec<u8> = [0.1f32, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        nb.scales = Cow::Borrowed(&odd);
        let e = nb.repack_rows(0..1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("not exactly an f16"), "{e}");
    }
}
