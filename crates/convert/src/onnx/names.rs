//! ONNX names to GGUF tensor names, after onnxruntime-genai's model builder
//! (`src/python/py/models/builder*.py`): linear layers are nodes named
//! `/model/layers.{i}/attn/{q,k,v,o}_proj/MatMul...`,
//! `/model/layers.{i}/mlp/{gate,up,down}_proj/MatMul...`,
//! `/model/layers.{i}/attn/qkv_proj/MatMul...` (Q, K and V stacked by rows)
//! and `/lm_head/MatMul...` (its quantized initializers named after the node,
//! e.g. `model.layers.0.attn.q_proj.MatMul.weight_Q2G128`); float
//! initializers are `model.embed_tokens.weight`,
//! `model.layers.{i}.{input,post_attention}_layernorm.weight`,
//! `model.layers.{i}.attn.{q,k}_norm.layernorm.weight`,
//! `model.layers.{n_layer}.final_norm_layernorm.weight`,
//! `model.layers.{i}.attn.{q,k,v}_proj.Add.bias` and, for a float MatMul,
//! the node's name with `.weight` (`lm_head.MatMul.weight`), stored
//! transposed (`[in, out]`).

/// A linear layer of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Linear {
    Q,
    K,
    V,
    O,
    /// Q, K and V in one matrix.
    Qkv,
    Gate,
    Up,
    Down,
}

impl Linear {
    fn parse(s: &str) -> Option<Linear> {
        Some(match s {
            "q_proj" => Linear::Q,
            "k_proj" => Linear::K,
            "v_proj" => Linear::V,
            "o_proj" => Linear::O,
            "qkv_proj" => Linear::Qkv,
            "gate_proj" => Linear::Gate,
            "up_proj" => Linear::Up,
            "down_proj" => Linear::Down,
            _ => return None,
        })
    }

    /// The GGUF name stem (`blk.{i}.{stem}.weight`).
    pub(crate) fn gguf(self) -> &'static str {
        match self {
            Linear::Q => "attn_q",
            Linear::K => "attn_k",
            Linear::V => "attn_v",
            Linear::O => "attn_output",
            Linear::Qkv => "attn_qkv",
            Linear::Gate => "ffn_gate",
            Linear::Up => "ffn_up",
            Linear::Down => "ffn_down",
        }
    }
}

/// What a linear layer's node (or weight) name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Layer(usize, Linear),
    LmHead,
}

fn tokens(name: &str) -> Vec<&str> {
    name.split(['/', '.']).filter(|t| !t.is_empty()).collect()
}

/// The layer of `/model/layers.{i}/...` and the one projection named after
/// it; `lm_head` anywhere.
pub(crate) fn linear_target(name: &str) -> Option<Target> {
    let t = tokens(name);
    if t.first() == Some(&"lm_head") || t.get(1) == Some(&"lm_head") {
        return Some(Target::LmHead);
    }
    let at = t.iter().position(|s| *s == "layers")?;
    let layer: usize = t.get(at + 1)?.parse().ok()?;
    let mut projs = t[at + 2..].iter().filter_map(|s| Linear::parse(s));
    let p = projs.next()?;
    if projs.next().is_some() {
        return None;
    }
    Some(Target::Layer(layer, p))
}

/// The GGUF name of a float initializer, and whether it is stored
/// transposed (a MatMul weight, `[in, out]`).
pub(crate) fn float_target(name: &str, n_layer: usize) -> Option<(String, bool)> {
    match name {
        "model.embed_tokens.weight" => return Some(("token_embd.weight".into(), false)),
        "lm_head.MatMul.weight" => return Some(("output.weight".into(), true)),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (i, tail) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    if tail == "final_norm_layernorm.weight" {
        return (i == n_layer).then(|| ("output_norm.weight".into(), false));
    }
    let b = |s: &str| Some((format!("blk.{i}.{s}"), false));
    match tail {
        "input_layernorm.weight" => return b("attn_norm.weight"),
        "post_attention_layernorm.weight" => return b("ffn_norm.weight"),
        "attn.q_norm.layernorm.weight" => return b("attn_q_norm.weight"),
        "attn.k_norm.layernorm.weight" => return b("attn_k_norm.weight"),
        _ => {}
    }
    let (module, rest) = tail.split_once('.')?;
    let (proj, rest) = rest.split_once('.')?;
    let lin = Linear::parse(proj).filter(|l| *l != Linear::Qkv)?;
    match (module, rest) {
        ("attn", "Add.bias") if matches!(lin, Linear::Q | Linear::K | Linear::V) => {
            Some((format!("blk.{i}.{}.bias", lin.gguf()), false))
        }
        ("attn" | "mlp", "MatMul.weight") => Some((format!("blk.{i}.{}.weight", lin.gguf()), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names() {
        use Linear::*;
        let l = |s| linear_target(s);
        assert_eq!(
            l("/model/layers.3/attn/q_proj/MatMul_Q2"),
            Some(Target::Layer(3, Q))
        );
        assert_eq!(
            l("/model/layers.0/attn/qkv_proj/MatMulNBits"),
            Some(Target::Layer(0, Qkv))
        );
        assert_eq!(
            l("/model/layers.12/mlp/down_proj/MatMul"),
            Some(Target::Layer(12, Down))
        );
        assert_eq!(
            l("model.layers.1.mlp.gate_proj.MatMul.weight_Q2G128"),
            Some(Target::Layer(1, Gate))
        );
        assert_eq!(l("/lm_head/MatMul_Q2"), Some(Target::LmHead));
        assert_eq!(l("/model/layers.1/attn/MatMul"), None);
        let f = |s| float_target(s, 28);
        assert_eq!(
            f("model.layers.28.final_norm_layernorm.weight"),
            Some(("output_norm.weight".into(), false))
        );
        assert_eq!(f("model.layers.27.final_norm_layernorm.weight"), None);
        assert_eq!(
            f("model.layers.2.attn.k_norm.layernorm.weight"),
            Some(("blk.2.attn_k_norm.weight".into(), false))
        );
        assert_eq!(
            f("model.layers.2.attn.v_proj.Add.bias"),
            Some(("blk.2.attn_v.bias".into(), false))
        );
        assert_eq!(
            f("model.layers.2.mlp.up_proj.MatMul.weight"),
            Some(("blk.2.ffn_up.weight".into(), true))
        );
        assert_eq!(
            f("lm_head.MatMul.weight"),
            Some(("output.weight".into(), true))
        );
        assert_eq!(f("cos_cache"), None);
    }
}
