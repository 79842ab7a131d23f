//! The `prism.hadamard` fold's refusals: one specific error, naming the
//! key, per kind of hostile metadata, and tensors that do not fit the fold.

#[path = "hadamard/meta.rs"]
mod meta;

use meta::*;
use shohin_engine::hadamard::{GdnHeads, HadamardFold};
use shohin_gguf::{Value, ValueType};

fn base() -> Vec<(String, Value)> {
    metadata(&["output.weight", "blk.0.ffn_down.weight"], 1)
}

#[test]
fn accepts_the_base_metadata() {
    let fold = parse(base()).unwrap().unwrap();
    assert_eq!(fold.version(), 1);
    assert!(fold.explicit_signs() && fold.gdn_v_grouped() && fold.folds_embedding());
    assert_eq!(fold.weight_names().len(), 2);
}

#[test]
fn refuses_unknown_versions() {
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::U32(2));
    refused(m, "prism.hadamard.version", "tied_output");
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::U32(0));
    refused(m, "prism.hadamard.version", "unknown version 0");
    let mut m = base();
    set(&mut m, "prism.hadamard.version", Value::String("1".into()));
    refused(m, "prism.hadamard.version", "expected an integer");
}

#[test]
fn refuses_bad_block_sizes() {
    for (v, phrase) in [
        (Value::U32(0), "not a power of two"),
        (Value::U32(48), "not a power of two"),
        (Value::U64(1 << 20), "implausibly large"),
        (Value::I32(-16), "does not fit u64"),
    ] {
        let mut m = base();
        set(&mut m, "prism.hadamard.block_size", v);
        refused(m, "prism.hadamard.block_size", phrase);
    }
    let mut m = base();
    unset(&mut m, "prism.hadamard.block_size");
    refused(m, "prism.hadamard.block_size", "not found");
}

#[test]
fn refuses_unknown_transform_axis_and_sign_mode() {
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.transform",
        Value::String("walsh-hadamard".into()),
    );
    refused(
        m,
        "prism.hadamard.transform",
        "unsupported transform `walsh-hadamard`",
    );
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.axis",
        Value::String("output-first-dimension".into()),
    );
    refused(m, "prism.hadamard.axis", "unsupported axis");
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_mode",
        Value::String("random".into()),
    );
    refused(
        m,
        "prism.hadamard.sign_mode",
        "unsupported sign mode `random`",
    );
    let mut m = base();
    unset(&mut m, "prism.hadamard.transform");
    refused(m, "prism.hadamard.transform", "not found");
}

#[test]
fn refuses_bad_sign_values() {
    // a value that is not ±1
    let mut m = base();
    let mut v: Vec<i32> = vec![1; 208];
    v[100] = 0;
    set(&mut m, "prism.hadamard.sign_values", i32s(&v));
    refused(m, "prism.hadamard.sign_values", "is 0, not ±1");
    let mut m = base();
    v[100] = 2;
    set(&mut m, "prism.hadamard.sign_values", i32s(&v));
    refused(m, "prism.hadamard.sign_values", "is 2, not ±1");
    // too few, too many
    let mut m = base();
    set(&mut m, "prism.hadamard.sign_values", i32s(&[1; 207]));
    refused(
        m,
        "prism.hadamard.sign_values",
        "fewer than the widths' sum",
    );
    let mut m = base();
    set(&mut m, "prism.hadamard.sign_values", i32s(&[1; 209]));
    refused(m, "prism.hadamard.sign_values", "widths sum to 208");
    // not integers
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_values",
        Value::Array(ValueType::F32, vec![Value::F32(1.0); 208]),
    );
    refused(m, "prism.hadamard.sign_values", "not an integer");
    // missing under explicit
    let mut m = base();
    unset(&mut m, "prism.hadamard.sign_values");
    refused(m, "prism.hadamard.sign_values", "not found");
}

#[test]
fn refuses_bad_sign_widths() {
    for (w, phrase) in [
        (vec![48, 64, 64, 32], "listed twice"),
        (vec![48, 60, 100], "not a multiple of block_size 16"),
        (vec![-48, 64, 96], "out of range"),
        (vec![0, 64, 96, 48], "out of range"),
        (vec![], "is empty"),
    ] {
        let mut m = base();
        set(&mut m, "prism.hadamard.sign_widths", i32s(&w));
        refused(m, "prism.hadamard.sign_widths", phrase);
    }
    let mut m = base();
    unset(&mut m, "prism.hadamard.sign_widths");
    refused(m, "prism.hadamard.sign_widths", "not found");
    // identity mode with signs present is ambiguous
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.sign_mode",
        Value::String("identity".into()),
    );
    refused(m, "prism.hadamard.sign_widths", "sign_mode is `identity`");
}

#[test]
fn refuses_bad_weight_names() {
    for bad in [
        "blk.0.attn_norm.weight",
        "token_embd.weight",
        "blk.x.ffn_up.weight",
        "output.bias",
        "blk.0.ffn_up.weight.extra",
    ] {
        let mut m = base();
        set(
            &mut m,
            "prism.hadamard.weight_names",
            strs(&["output.weight", bad]),
        );
        refused(
            m,
            "prism.hadamard.weight_names",
            &format!("`{bad}` is not a weight"),
        );
    }
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.weight_names",
        strs(&["output.weight", "blk.1.ffn_up.weight", "output.weight"]),
    );
    refused(m, "prism.hadamard.weight_names", "listed twice");
    let mut m = base();
    set(&mut m, "prism.hadamard.weight_names", strs(&[]));
    refused(m, "prism.hadamard.weight_names", "is empty");
    let mut m = base();
    set(&mut m, "prism.hadamard.weight_names", i32s(&[1, 2]));
    refused(m, "prism.hadamard.weight_names", "not a string");
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.weight_names",
        Value::String("output.weight".into()),
    );
    refused(m, "prism.hadamard.weight_names", "expected arr");
    let mut m = base();
    unset(&mut m, "prism.hadamard.weight_names");
    refused(m, "prism.hadamard.weight_names", "not found");
}

#[test]
fn refuses_bad_inverse_names() {
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.inverse_weight_names",
        strs(&["output.weight"]),
    );
    refused(
        m,
        "prism.hadamard.inverse_weight_names",
        "`output.weight` is not an inverse-after-lookup table",
    );
    let mut m = base();
    set(
        &mut m,
        "prism.hadamard.inverse_weight_names",
        strs(&["token_embd.weight", "token_embd.weight"]),
    );
    refused(m, "prism.hadamard.inverse_weight_names", "listed twice");
    // absent or empty: no embedding un-fold
    let mut m = base();
    unset(&mut m, "prism.hadamard.inverse_weight_names");
    assert!(!parse(m).unwrap().unwrap().folds_embedding());
    let mut m = base();
    set(&mut m, "prism.hadamard.inverse_weight_names", strs(&[]));
    assert!(!parse(m).unwrap().unwrap().folds_embedding());
}

#[test]
fn refuses_a_non_bool_gdn_flag() {
    let mut m = base();
    set(&mut m, "prism.hadamard.gdn_v_grouped", Value::U32(1));
    refused(m, "prism.hadamard.gdn_v_grouped", "expected bool");
    let mut m = base();
    unset(&mut m, "prism.hadamard.gdn_v_grouped");
    assert!(!parse(m).unwrap().unwrap().gdn_v_grouped());
}

// ---------------------------------------------------- checks at load time

#[track_caller]
fn check_refused(
    names: &[&str],
    tensors: &[(&str, u64)],
    gdn: Option<GdnHeads>,
    key: &str,
    phrase: &str,
) {
    let f = gguf(metadata(names, 1), tensors);
    let e = match HadamardFold::from_gguf(&f, gdn) {
        Ok(_) => panic!("accepted; wanted {key}: {phrase}"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(key) && e.contains(phrase),
        "error `{e}` should name `{key}` and say `{phrase}`"
    );
    // check() says the same without binding
    let fold = HadamardFold::from_metadata(&f, gdn).unwrap().unwrap();
    let e2 = fold
        .check(
            f.tensors()
                .iter()
                .map(|t| (t.name.as_str(), t.dims[0] as usize)),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(e, e2);
}

#[test]
fn refuses_tensors_that_do_not_fit_the_fold() {
    let embd = ("token_embd.weight", 64);
    // a folded weight the model lacks
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[embd],
        None,
        "prism.hadamard.weight_names",
        "`blk.0.ffn_up.weight`, which the model does not have",
    );
    // an inverse table the model lacks
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 64)],
        None,
        "prism.hadamard.inverse_weight_names",
        "`token_embd.weight`, which the model does not have",
    );
    // input width not a multiple of the block
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 72), embd],
        None,
        "prism.hadamard.block_size",
        "16 does not divide the input width 72 of `blk.0.ffn_up.weight`",
    );
    // no sign vector of the width
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 32), embd],
        None,
        "prism.hadamard.sign_widths",
        "no sign vector of width 32 for `blk.0.ffn_up.weight`",
    );
    check_refused(
        &["blk.0.ffn_up.weight"],
        &[("blk.0.ffn_up.weight", 64), ("token_embd.weight", 128)],
        None,
        "prism.hadamard.sign_widths",
        "no sign vector of width 128 for `token_embd.weight`",
    );
    // grouped ssm_out without head counts, or with a geometry that does not fit
    let ssm = ("blk.0.ssm_out.weight", 48);
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        None,
        "prism.hadamard.gdn_v_grouped",
        "head counts",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 6, n_k: 4 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 5, n_k: 1 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
    check_refused(
        &["blk.0.ssm_out.weight"],
        &[ssm, embd],
        Some(GdnHeads { n_v: 6, n_k: 0 }),
        "prism.hadamard.gdn_v_grouped",
        "bad DeltaNet head geometry",
    );
}
