//! The `prism.hadamard` weight fold of PrismML's Bonsai 2 files (see
//! `docs/bonsai2-formats.md` in the shared fixtures): folded weights store
//! `W' = W·P⁻¹·S·H`, so a forward pass multiplies `W'` by
//! `x' = H·S·P·x` instead of `W` by `x`:
//!
//! * `P`: only for `blk.N.ssm_out.weight` when `gdn_v_grouped` is set, the
//!   DeltaNet output's V heads from the runtime's tiled order to the grouped
//!   order the checkpoint was folded in: with `hd = K / n_v`, `rep = n_v /
//!   n_k`, `x_g[i + hd·(r + rep·k)] = x[i + hd·(k + n_k·r)]`;
//! * `S`: the ±1 sign vector of the weight's input width (`sign_mode`
//!   `explicit`; none for `identity`);
//! * `H`: the normalized Sylvester Walsh–Hadamard matrix applied to each
//!   consecutive block of `block_size` features (`H·H = I`, `Hᵀ = H`).
//!
//! Since `H` and `S` are their own inverses, `W'·x' = W·P⁻¹·S·H·H·S·P·x =
//! W·x`. A weight row folds by the same transform as an activation: `w' =
//! (wᵀ·P⁻¹·S·H)ᵀ = H·S·P·w`. The inverse-folded `token_embd.weight` stores
//! rows `e' = H·S·e`; a looked-up row is restored by `e = S·H·e'`
//! ([`HadamardFold::unfold_embedding`]: `H` first, then the signs).
//!
//! Checked against PrismML-Eng/llama.cpp `src/llama-model.cpp`
//! (`load_hparams`: the keys and their checks; end of `load_tensors`: the
//! rotation matrix, sign vectors by input width and the `perm_hd / perm_nk
//! / perm_rep` DeltaNet geometry) and `conversion/base.py`
//! (`add_hadamard_metadata`). Everything the fork refuses is refused here,
//! plus a few things it lets through silently (duplicate sign widths, sign
//! keys under `identity`, absurd sizes).
//!
//! Per token the work is the permutation (ssm_out only), one multiply by
//! ±1 and the `O(K log B)` butterflies (`ops/fwht.rs`); everything else is
//! worked out once by [`HadamardFold::bind`] into a [`FoldPlan`] per weight.

use crate::error::{EngineError, Result};
use shohin_gguf::{GgufFile, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

mod plan;
pub use plan::{fwht_blocks, fwht_blocks_scalar, FoldPlan};

pub const KEY_VERSION: &str = "prism.hadamard.version";
pub const KEY_BLOCK_SIZE: &str = "prism.hadamard.block_size";
pub const KEY_TRANSFORM: &str = "prism.hadamard.transform";
pub const KEY_AXIS: &str = "prism.hadamard.axis";
pub const KEY_SIGN_MODE: &str = "prism.hadamard.sign_mode";
pub const KEY_SIGN_WIDTHS: &str = "prism.hadamard.sign_widths";
pub const KEY_SIGN_VALUES: &str = "prism.hadamard.sign_values";
pub const KEY_WEIGHT_NAMES: &str = "prism.hadamard.weight_names";
pub const KEY_INVERSE_WEIGHT_NAMES: &str = "prism.hadamard.inverse_weight_names";
pub const KEY_GDN_V_GROUPED: &str = "prism.hadamard.gdn_v_grouped";

/// The only transform the fork knows.
pub const TRANSFORM: &str = "normalized-sylvester-walsh-hadamard";
/// The only axis the fork knows: GGUF `ne[0]`, the input features.
pub const AXIS: &str = "input-last-dimension";
/// The only table the fork un-folds after a row lookup.
pub const TOKEN_EMBD: &str = "token_embd.weight";

/// Largest block size accepted (the real files use 1024; the fork builds a
/// dense `B×B` f32 rotation, so 65536 would already be 16 GiB there).
pub const MAX_BLOCK_SIZE: u64 = 1 << 16;
/// Largest input width accepted for a sign vector (as `config.rs` MAX_DIM).
pub const MAX_WIDTH: u64 = 1 << 20;
/// Most names accepted in either name list, and most sign values in all
/// (keeps hostile metadata from driving allocations).
const MAX_NAMES: usize = 1 << 20;
const MAX_SIGN_VALUES: usize = 1 << 24;

/// `blk.N.<kind>.weight` kinds the fork folds (`is_foldable_weight`):
/// every matmul of them goes through its Hadamard-aware `build_lora_mm`.
pub const FOLDABLE_KINDS: &[&str] = &[
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_gate",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "ffn_gate_exps",
    "ffn_up_exps",
    "ffn_down_exps",
    "ffn_gate_up_exps",
    "ffn_gate_shexp",
    "ffn_up_shexp",
    "ffn_down_shexp",
    "ssm_out",
];

/// The DeltaNet head counts the `gdn_v_grouped` permutation needs:
/// `n_v` = `{arch}.ssm.time_step_rank`, `n_k` = `{arch}.ssm.group_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GdnHeads {
    pub n_v: usize,
    pub n_k: usize,
}

/// A validated `prism.hadamard` block; after [`Self::bind`] (or
/// [`Self::from_gguf`]) it also holds a [`FoldPlan`] per folded tensor.
#[derive(Clone, Debug)]
pub struct HadamardFold {
    version: u32,
    block_size: usize,
    /// Sign vectors by input width, as ±1.0 (`explicit`); empty for
    /// `identity`.
    signs: BTreeMap<usize, Arc<[f32]>>,
    explicit: bool,
    /// Folded weight names, in file order, and as a set.
    weight_names: Vec<String>,
    folded: HashSet<String>,
    /// Whether `token_embd.weight` is inverse-folded.
    inverse_embd: bool,
    gdn_v_grouped: bool,
    gdn: Option<GdnHeads>,
    plans: HashMap<String, FoldPlan>,
    embd_plan: Option<FoldPlan>,
}

fn bad(key: &str, why: impl Into<String>) -> EngineError {
    EngineError::BadHparam {
        key: key.to_string(),
        why: why.into(),
    }
}

/// Whether `name` is `output.weight` or `blk.<N>.<kind>.weight` with a kind
/// of [`FOLDABLE_KINDS`] (N decimal, as the fork's `is_foldable_weight`).
pub fn is_foldable_name(name: &str) -> bool {
    if name == "output.weight" {
        return true;
    }
    let Some(rest) = name.strip_prefix("blk.") else {
        return false;
    };
    let Some((layer, rest)) = rest.split_once('.') else {
        return false;
    };
    if layer.is_empty() || layer.len() > 9 || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    rest.strip_suffix(".weight")
        .is_some_and(|kind| FOLDABLE_KINDS.contains(&kind))
}

/// Whether `name` is a DeltaNet `blk.<N>.ssm_out.weight`.
fn is_ssm_out(name: &str) -> bool {
    name.starts_with("blk.") && name.ends_with(".ssm_out.weight")
}

fn str_key<'f>(f: &'f GgufFile, key: &str) -> Result<&'f str> {
    Ok(f.get_str(key)?)
}

/// A string array; `None` when absent.
fn str_array(f: &GgufFile, key: &str) -> Result<Option<Vec<String>>> {
    if f.get(key).is_none() {
        return Ok(None);
    }
    let items = f.get_array(key)?;
    if items.len() > MAX_NAMES {
        return Err(bad(
            key,
            format!("{} names is implausibly many", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad(
                key,
                format!("entry {i} is {}, not a string", other.type_description()),
            )),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An integer array; `None` when absent.
fn int_array(f: &GgufFile, key: &str, limit: usize) -> Result<Option<Vec<i64>>> {
    if f.get(key).is_none() {
        return Ok(None);
    }
    let items = f.get_array(key)?;
    if items.len() > limit {
        return Err(bad(
            key,
            format!("{} entries is implausibly many", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64().ok_or_else(|| {
                bad(
                    key,
                    format!("entry {i} is {}, not an integer", v.type_description()),
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

impl HadamardFold {
    /// Reads and validates `prism.hadamard.*`: `Ok(None)` when
    /// `prism.hadamard.version` is absent (no fold), an error naming the
    /// key for anything the fork would refuse or that could silently
    /// change the model's function. `gdn` is needed only when the file
    /// sets `gdn_v_grouped` and folds an `ssm_out` (checked by
    /// [`Self::check`]). No tensor is looked at: call [`Self::bind`] next,
    /// or use [`Self::from_gguf`] for both.
    pub fn from_metadata(f: &GgufFile, gdn: Option<GdnHeads>) -> Result<Option<Self>> {
        if f.get(KEY_VERSION).is_none() {
            return Ok(None);
        }
        let version = f.get_u32(KEY_VERSION)?;
        match version {
            1 => {}
            2 => {
                return Err(bad(
                    KEY_VERSION,
                    "version 2 (later PrismML builds: `tied_output`, an output head \
                     that reads the inverse-folded token_embd) is not supported; \
                     shohin knows version 1",
                ))
            }
            v => {
                return Err(bad(
                    KEY_VERSION,
                    format!("unknown version {v} (shohin knows version 1)"),
                ))
            }
        }

        let block = f.get_u64(KEY_BLOCK_SIZE)?;
        if block == 0 || !block.is_power_of_two() {
            return Err(bad(
                KEY_BLOCK_SIZE,
                format!("{block} is not a power of two"),
            ));
        }
        if block > MAX_BLOCK_SIZE {
            return Err(bad(
                KEY_BLOCK_SIZE,
                format!("{block} is implausibly large (limit {MAX_BLOCK_SIZE})"),
            ));
        }
        let block_size = block as usize;

        let transform = str_key(f, KEY_TRANSFORM)?;
        if transform != TRANSFORM {
            return Err(bad(
                KEY_TRANSFORM,
                format!("unsupported transform `{transform}` (supported: `{TRANSFORM}`)"),
            ));
        }
        let axis = str_key(f, KEY_AXIS)?;
        if axis != AXIS {
            return Err(bad(
                KEY_AXIS,
                format!("unsupported axis `{axis}` (supported: `{AXIS}`)"),
            ));
        }
        let explicit = match str_key(f, KEY_SIGN_MODE)? {
            "identity" => false,
            "explicit" => true,
            other => {
                return Err(bad(
                    KEY_SIGN_MODE,
                    format!("unsupported sign mode `{other}` (supported: `identity`, `explicit`)"),
                ))
            }
        };

        let signs = Self::read_signs(f, explicit, block_size)?;

        let Some(weight_names) = str_array(f, KEY_WEIGHT_NAMES)? else {
            return Err(EngineError::Gguf(shohin_gguf::GgufError::MissingKey(
                KEY_WEIGHT_NAMES.to_string(),
            )));
        };
        if weight_names.is_empty() {
            return Err(bad(KEY_WEIGHT_NAMES, "is empty"));
        }
        let mut seen = HashSet::with_capacity(weight_names.len());
        for name in &weight_names {
            if !is_foldable_name(name) {
                return Err(bad(
                    KEY_WEIGHT_NAMES,
                    format!(
                        "`{name}` is not a weight the fold may apply to (output.weight, or \
                         blk.N.{{{}}}.weight)",
                        FOLDABLE_KINDS.join(", ")
                    ),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(bad(KEY_WEIGHT_NAMES, format!("`{name}` is listed twice")));
            }
        }

        let mut inverse_embd = false;
        for name in str_array(f, KEY_INVERSE_WEIGHT_NAMES)?.unwrap_or_default() {
            if name != TOKEN_EMBD {
                return Err(bad(
                    KEY_INVERSE_WEIGHT_NAMES,
                    format!("`{name}` is not an inverse-after-lookup table (only `{TOKEN_EMBD}`)"),
                ));
            }
            if inverse_embd {
                return Err(bad(
                    KEY_INVERSE_WEIGHT_NAMES,
                    format!("`{name}` is listed twice"),
                ));
            }
            inverse_embd = true;
        }

        let gdn_v_grouped = match f.get(KEY_GDN_V_GROUPED) {
            None => false,
            Some(_) => f.get_bool(KEY_GDN_V_GROUPED)?,
        };

        Ok(Some(HadamardFold {
            version,
            block_size,
            signs,
            explicit,
            folded: weight_names.iter().cloned().collect(),
            weight_names,
            inverse_embd,
            gdn_v_grouped,
            gdn,
            plans: HashMap::new(),
            embd_plan: None,
        }))
    }

    fn read_signs(
        f: &GgufFile,
        explicit: bool,
        block: usize,
    ) -> Result<BTreeMap<usize, Arc<[f32]>>> {
        let widths = int_array(f, KEY_SIGN_WIDTHS, MAX_NAMES)?;
        let values = int_array(f, KEY_SIGN_VALUES, MAX_SIGN_VALUES)?;
        if !explicit {
            // The fork ignores these under `identity`; a file that carries
            // signs but says `identity` is ambiguous, so it is refused.
            for (key, v) in [(KEY_SIGN_WIDTHS, &widths), (KEY_SIGN_VALUES, &values)] {
                if v.as_ref().is_some_and(|v| !v.is_empty()) {
                    return Err(bad(
                        key,
                        "present and non-empty, but sign_mode is `identity`",
                    ));
                }
            }
            return Ok(BTreeMap::new());
        }
        let missing = |k: &str| EngineError::Gguf(shohin_gguf::GgufError::MissingKey(k.into()));
        let widths = widths.ok_or_else(|| missing(KEY_SIGN_WIDTHS))?;
        let values = values.ok_or_else(|| missing(KEY_SIGN_VALUES))?;
        if widths.is_empty() {
            return Err(bad(
                KEY_SIGN_WIDTHS,
                "is empty, but sign_mode is `explicit`",
            ));
        }
        let mut signs = BTreeMap::new();
        let mut off = 0usize;
        for &w in &widths {
            if w <= 0 || w as u64 > MAX_WIDTH {
                return Err(bad(
                    KEY_SIGN_WIDTHS,
                    format!("width {w} is out of range 1..={MAX_WIDTH}"),
                ));
            }
            let w = w as usize;
            if !w.is_multiple_of(block) {
                return Err(bad(
                    KEY_SIGN_WIDTHS,
                    format!("width {w} is not a multiple of block_size {block}"),
                ));
            }
            if signs.contains_key(&w) {
                return Err(bad(KEY_SIGN_WIDTHS, format!("width {w} is listed twice")));
            }
            let Some(vec) = values.get(off..off + w) else {
                return Err(bad(
                    KEY_SIGN_VALUES,
                    format!(
                        "has {} values, fewer than the widths' sum (width {w} needs {}..{})",
                        values.len(),
                        off,
                        off + w
                    ),
                ));
            };
            let mut s = Vec::with_capacity(w);
            for (i, &v) in vec.iter().enumerate() {
                s.push(match v {
                    1 => 1.0f32,
                    -1 => -1.0,
                    other => {
                        return Err(bad(
                            KEY_SIGN_VALUES,
                            format!(
                                "value {} (index {i} of width {w}) is {other}, not ±1",
                                off + i
                            ),
                        ))
                    }
                });
            }
            signs.insert(w, Arc::<[f32]>::from(s));
            off += w;
        }
        if off != values.len() {
            return Err(bad(
                KEY_SIGN_VALUES,
                format!("has {} values but the widths sum to {off}", values.len()),
            ));
        }
        Ok(signs)
    }

    /// [`Self::from_metadata`], then [`Self::bind`] to the input widths
    /// (`dims[0]`) of `f`'s own tensors.
    pub fn from_gguf(f: &GgufFile, gdn: Option<GdnHeads>) -> Result<Option<Self>> {
        let Some(mut fold) = Self::from_metadata(f, gdn)? else {
            return Ok(None);
        };
        fold.bind(
            f.tensors()
                .iter()
                .map(|t| (t.name.as_str(), t.dims[0] as usize)),
        )?;
        Ok(Some(fold))
    }
}
