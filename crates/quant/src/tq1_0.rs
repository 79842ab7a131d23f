//! SCAFFOLD: to be written (layout doc, scalar reference, tests).

pub fn dequantize(_src: &[u8], _dst: &mut [f32]) {
    unimplemented!()
}

pub fn quantize(_src: &[f32], _dst: &mut [u8]) {
    unimplemented!()
}

pub fn vec_dot(_w: &[u8], _a: &[u8]) -> f32 {
    unimplemented!()
}
