//! The graph's nodes: attributes, initializer inputs, and the checks of a
//! `MatMulNBits` node before its weights are converted.

use std::collections::HashMap;

use super::nbits::{NBits, ZeroPoints, BLOB, QK};
use super::proto::{dtype, GraphProto, NodeProto, TensorProto, ATTR_INT};
use super::store::{numel, Store};
use crate::ConvertError;

pub(super) fn node_err(node: &NodeProto, msg: impl ToString) -> ConvertError {
    ConvertError::Node {
        node: if node.name.is_empty() {
            format!(
                "producing {:?}",
                node.output.first().map_or("", |s| s.as_str())
            )
        } else {
            node.name.clone()
        },
        op: node.op_type.clone(),
        msg: msg.to_string(),
    }
}

/// An INT attribute of `node`.
pub(super) fn int_attr(node: &NodeProto, name: &str) -> Result<Option<i64>, ConvertError> {
    match node.attribute.iter().find(|a| a.name == name) {
        None => Ok(None),
        Some(a) if a.r#type == ATTR_INT || a.r#type == 0 => Ok(Some(a.i)),
        Some(a) => Err(node_err(
            node,
            format!("attribute {name} has type {}, not INT", a.r#type),
        )),
    }
}

fn need_int_attr(node: &NodeProto, name: &str) -> Result<i64, ConvertError> {
    int_attr(node, name)?.ok_or_else(|| node_err(node, format!("attribute {name} is missing")))
}

/// The graph's initializers by name.
pub(super) struct Graph<'g> {
    pub(super) g: &'g GraphProto,
    pub(super) inits: HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Graph<'g> {
    /// Input `i` of `node` if present (not empty).
    pub(super) fn input(node: &'g NodeProto, i: usize) -> Option<&'g str> {
        node.input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn init(
        &self,
        node: &NodeProto,
        i: usize,
        what: &str,
    ) -> Result<&'g TensorProto, ConvertError> {
        let name = node
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| node_err(node, format!("input {i} ({what}) is missing")))?;
        self.inits.get(name.as_str()).copied().ok_or_else(|| {
            node_err(
                node,
                format!("input {i} ({what}) {name:?} is not an initializer (a constant weight)"),
            )
        })
    }
}

/// The shape of a validated MatMulNBits node.
#[derive(Clone, Copy)]
pub(super) struct NBitsShape {
    pub(super) k: usize,
    pub(super) n: usize,
}

/// Checks a MatMulNBits node's attributes and inputs (types and sizes; the
/// codes are checked when converted).
pub(super) fn check_nbits(g: &Graph<'_>, node: &NodeProto) -> Result<NBitsShape, ConvertError> {
    for a in &node.attribute {
        if !matches!(
            a.name.as_str(),
            "K" | "N" | "bits" | "block_size" | "accuracy_level"
        ) {
            return Err(node_err(
                node,
                format!("attribute {} is not supported", a.name),
            ));
        }
    }
    let bits = int_attr(node, "bits")?.unwrap_or(4);
    if bits != 2 {
        return Err(node_err(
            node,
            format!("bits = {bits}: only 2-bit (ternary) MatMulNBits maps exactly to Q2_0 g128"),
        ));
    }
    let bs = need_int_attr(node, "block_size")?;
    if bs != QK as i64 {
        return Err(node_err(
            node,
            format!("block_size = {bs}: only 128 maps exactly to Q2_0 g128"),
        ));
    }
    let pos = |name: &str| -> Result<usize, ConvertError> {
        let v = need_int_attr(node, name)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v < (1 << 40))
            .ok_or_else(|| node_err(node, format!("attribute {name} = {v} is not a size")))
    };
    let (k, n) = (pos("K")?, pos("N")?);
    if k % QK != 0 {
        return Err(node_err(
            node,
            format!("K = {k} is not a multiple of 128 (GGUF rows are whole Q2_0 g128 blocks)"),
        ));
    }
    if Graph::input(node, 4).is_some() {
        return Err(node_err(node, "g_idx (act-order) is not supported"));
    }
    if Graph::input(node, 5).is_some() {
        return Err(node_err(node, "a bias input is not supported"));
    }
    if node.input.len() > 6 {
        return Err(node_err(
            node,
            format!("{} inputs (at most 6)", node.input.len()),
        ));
    }
    let nb = k / QK;
    let b = g.init(node, 1, "B")?;
    if b.data_type != dtype::UINT8 {
        return Err(node_err(
            node,
            format!("B is {}, not UINT8", dtype::name(b.data_type)),
        ));
    }
    let want_b = [n as i64, nb as i64, BLOB as i64];
    if numel(b)? != n * nb * BLOB || (b.dims.len() == 3 && b.dims != want_b) {
        return Err(node_err(
            node,
            format!(
                "B {:?} has dims {:?}, K = {k}, N = {n} give {want_b:?}",
                b.name, b.dims
            ),
        ));
    }
    let s = g.init(node, 2, "scales")?;
    if !matches!(s.data_type, dtype::FLOAT | dtype::FLOAT16 | dtype::BFLOAT16) {
        return Err(node_err(
            node,
            format!(
                "scales are {}, not FLOAT or FLOAT16",
                dtype::name(s.data_type)
            ),
        ));
    }
    if numel(s)? != n * nb {
        return Err(node_err(
            node,
            format!(
                "scales have dims {:?}, not N * K / 128 = {} values",
                s.dims,
                n * nb
            ),
        ));
    }
    if Graph::input(node, 3).is_some() {
        let z = g.init(node, 3, "zero_points")?;
        let want = if z.data_type == dtype::UINT8 {
            n * nb.div_ceil(4)
        } else if z.data_type == s.data_type {
            n * nb
        } else {
            return Err(node_err(
                node,
                format!(
                    "zero_points are {}, neither UINT8 nor the scales' {}",
                    dtype::name(z.data_type),
                    dtype::name(s.data_type)
                ),
            ));
        };
        if numel(z)? != want {
            return Err(node_err(
                node,
                format!("zero_points have dims {:?}, not {want} values", z.dims),
            ));
        }
    }
    Ok(NBitsShape { k, n })
}

/// The bytes of a checked MatMulNBits node.
pub(super) fn nbits_data<'s>(
    store: &'s Store,
    g: &Graph<'s>,
    node: &'s NodeProto,
    k: usize,
) -> Result<NBits<'s>, ConvertError> {
    let b = g.init(node, 1, "B")?;
    let s = g.init(node, 2, "scales")?;
    let zero_points = match Graph::input(node, 3) {
        None => None,
        Some(_) => {
            let z = g.init(node, 3, "zero_points")?;
            let bytes = store.bytes(z)?;
            Some(if z.data_type == dtype::UINT8 {
                ZeroPoints::Packed(bytes)
            } else {
                ZeroPoints::Float(bytes, z.data_type)
            })
        }
    };
    Ok(NBits {
        k,
        b: store.bytes(b)?,
        scales: store.bytes(s)?,
        scale_type: s.data_type,
        zero_points,
    })
}
