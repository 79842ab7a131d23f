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
use crate::ops::fwht;
use rayon::prelude::*;
use shohin_gguf::{GgufFile, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

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

    /// Checks the fold against the tensors (name, input width = GGUF
    /// `ne[0]`); extra tensors are ignored. Every folded or inverse-folded
    /// name must be present, its width a multiple of `block_size`, have a
    /// sign vector of its width (`explicit`), and for a grouped `ssm_out`
    /// fit the DeltaNet geometry (`n_v % n_k == 0`, `K % n_v == 0`).
    pub fn check<'a>(&self, tensors: impl IntoIterator<Item = (&'a str, usize)>) -> Result<()> {
        self.widths(tensors).map(|_| ())
    }

    /// The widths of the folded tensors, checked (see [`Self::check`]).
    fn widths<'a>(
        &self,
        tensors: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> Result<(HashMap<String, usize>, Option<usize>)> {
        let wanted: HashSet<&str> = self
            .weight_names
            .iter()
            .map(String::as_str)
            .chain(self.inverse_embd.then_some(TOKEN_EMBD))
            .collect();
        let mut found: HashMap<String, usize> = HashMap::with_capacity(wanted.len());
        for (name, width) in tensors {
            if wanted.contains(name) {
                found.insert(name.to_string(), width);
            }
        }
        let mut widths = HashMap::with_capacity(self.weight_names.len());
        for name in &self.weight_names {
            let w = self.check_one(KEY_WEIGHT_NAMES, name, found.get(name.as_str()).copied())?;
            if self.gdn_v_grouped && is_ssm_out(name) {
                self.gdn_geometry(name, w)?;
            }
            widths.insert(name.clone(), w);
        }
        let embd = if self.inverse_embd {
            Some(self.check_one(
                KEY_INVERSE_WEIGHT_NAMES,
                TOKEN_EMBD,
                found.get(TOKEN_EMBD).copied(),
            )?)
        } else {
            None
        };
        Ok((widths, embd))
    }

    fn check_one(&self, key: &str, name: &str, width: Option<usize>) -> Result<usize> {
        let Some(w) = width else {
            return Err(bad(
                key,
                format!("names tensor `{name}`, which the model does not have"),
            ));
        };
        if w == 0 || !w.is_multiple_of(self.block_size) {
            return Err(bad(
                KEY_BLOCK_SIZE,
                format!(
                    "{} does not divide the input width {w} of `{name}`",
                    self.block_size
                ),
            ));
        }
        if self.explicit && !self.signs.contains_key(&w) {
            return Err(bad(
                KEY_SIGN_WIDTHS,
                format!(
                    "no sign vector of width {w} for `{name}` (widths: {:?})",
                    self.signs.keys().collect::<Vec<_>>()
                ),
            ));
        }
        Ok(w)
    }

    /// `(hd, n_k, rep)` of a grouped `ssm_out` of input width `k`.
    fn gdn_geometry(&self, name: &str, k: usize) -> Result<(usize, usize, usize)> {
        let Some(GdnHeads { n_v, n_k }) = self.gdn else {
            return Err(bad(
                KEY_GDN_V_GROUPED,
                format!(
                    "set, and `{name}` is folded, but the DeltaNet head counts \
                     (ssm.time_step_rank, ssm.group_count) were not given"
                ),
            ));
        };
        if n_k == 0 || n_v == 0 || !n_v.is_multiple_of(n_k) || !k.is_multiple_of(n_v) {
            return Err(bad(
                KEY_GDN_V_GROUPED,
                format!(
                    "bad DeltaNet head geometry for `{name}`: input width {k}, \
                     n_v (ssm.time_step_rank) {n_v}, n_k (ssm.group_count) {n_k}"
                ),
            ));
        }
        Ok((k / n_v, n_k, n_v / n_k))
    }

    /// [`Self::check`], then works out a [`FoldPlan`] per folded tensor so
    /// that [`Self::prepare_input`] and [`Self::unfold_embedding`] do only
    /// the per-token arithmetic.
    pub fn bind<'a>(&mut self, tensors: impl IntoIterator<Item = (&'a str, usize)>) -> Result<()> {
        let (widths, embd) = self.widths(tensors)?;
        let mut plans = HashMap::with_capacity(widths.len());
        for (name, w) in widths {
            let heads = if self.gdn_v_grouped && is_ssm_out(&name) {
                let (hd, n_k, rep) = self.gdn_geometry(&name, w)?;
                // grouped slot r + rep·k takes tiled head k + n_k·r
                let mut order = vec![0u32; n_k * rep];
                for k in 0..n_k {
                    for r in 0..rep {
                        order[r + rep * k] = (k + n_k * r) as u32;
                    }
                }
                Some((hd, Arc::<[u32]>::from(order)))
            } else {
                None
            };
            let plan = FoldPlan {
                width: w,
                block: self.block_size,
                signs: self.signs.get(&w).cloned(),
                heads,
                inverse: false,
            };
            plans.insert(name, plan);
        }
        self.embd_plan = embd.map(|w| FoldPlan {
            width: w,
            block: self.block_size,
            signs: self.signs.get(&w).cloned(),
            heads: None,
            inverse: true,
        });
        self.plans = plans;
        Ok(())
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Whether `sign_mode` is `explicit`.
    pub fn explicit_signs(&self) -> bool {
        self.explicit
    }

    /// The sign vector (±1.0) for input width `width`, if any.
    pub fn signs(&self, width: usize) -> Option<&[f32]> {
        self.signs.get(&width).map(|s| &s[..])
    }

    /// Folded weight names, in file order.
    pub fn weight_names(&self) -> &[String] {
        &self.weight_names
    }

    pub fn is_folded(&self, weight_name: &str) -> bool {
        self.folded.contains(weight_name)
    }

    /// Whether `token_embd.weight` is inverse-folded (rows need
    /// [`Self::unfold_embedding`] after the lookup).
    pub fn folds_embedding(&self) -> bool {
        self.inverse_embd
    }

    pub fn gdn_v_grouped(&self) -> bool {
        self.gdn_v_grouped
    }

    /// The plan of a folded weight (after [`Self::bind`]): clone it into
    /// the layer to skip the name lookup per call.
    pub fn plan(&self, weight_name: &str) -> Option<&FoldPlan> {
        self.plans.get(weight_name)
    }

    /// The plan of the embedding un-fold (after [`Self::bind`]).
    pub fn embedding_plan(&self) -> Option<&FoldPlan> {
        self.embd_plan.as_ref()
    }

    /// Before a matmul with `weight_name`: turns `x` (one or many rows of
    /// the weight's input width K, row-major) into `H·S·P·x` row by row.
    /// `Ok(false)`, `x` untouched, when the weight is not folded. Errors
    /// when it is folded but the fold was never bound to the tensors, or
    /// `x.len()` is not a multiple of K.
    pub fn prepare_input(&self, weight_name: &str, x: &mut [f32]) -> Result<bool> {
        match self.plans.get(weight_name) {
            Some(plan) => plan.apply(x).map(|()| true),
            None if self.is_folded(weight_name) => Err(unbound(weight_name)),
            None => Ok(false),
        }
    }

    /// After looking up rows of an inverse-folded `token_embd`: `z ← S·H·z`
    /// per row of width n_embd (`H` blockwise first, then the signs).
    /// `Ok(false)`, `z` untouched, when `token_embd` is not inverse-folded.
    pub fn unfold_embedding(&self, z: &mut [f32]) -> Result<bool> {
        match &self.embd_plan {
            Some(plan) => plan.apply(z).map(|()| true),
            None if self.inverse_embd => Err(unbound(TOKEN_EMBD)),
            None => Ok(false),
        }
    }
}

fn unbound(name: &str) -> EngineError {
    bad(
        KEY_WEIGHT_NAMES,
        format!("`{name}` is folded but the fold was not bound to the model's tensors"),
    )
}

/// What one folded tensor needs per token, worked out once by
/// [`HadamardFold::bind`]. Cheap to clone (shared vectors).
#[derive(Clone, Debug)]
pub struct FoldPlan {
    width: usize,
    block: usize,
    signs: Option<Arc<[f32]>>,
    /// `gdn_v_grouped` ssm_out: head size and, per grouped head slot, the
    /// tiled head it takes.
    heads: Option<(usize, Arc<[u32]>)>,
    /// The embedding's `S·H` (H first) instead of the forward `H·S·P`.
    inverse: bool,
}

/// Rows per parallel task are chosen so a task has at least this many
/// values: below it, a step's rows are done on the calling thread.
const PAR_MIN_VALUES: usize = 1 << 15;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl FoldPlan {
    /// The input width K this plan's rows have.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Applies the plan to each row of `x` (rows of [`Self::width`]), on
    /// the current rayon pool when there are enough rows to share out.
    pub fn apply(&self, x: &mut [f32]) -> Result<()> {
        let k = self.width;
        if !x.len().is_multiple_of(k) {
            return Err(bad(
                KEY_WEIGHT_NAMES,
                format!(
                    "activation of {} values is not whole rows of the folded width {k}",
                    x.len()
                ),
            ));
        }
        let rows = x.len() / k;
        if rows >= 2 && x.len() >= 2 * PAR_MIN_VALUES {
            let per_task = PAR_MIN_VALUES.div_ceil(k);
            x.par_chunks_mut(k)
                .with_min_len(per_task)
                .for_each(|row| self.apply_row(row));
        } else {
            x.chunks_exact_mut(k).for_each(|row| self.apply_row(row));
        }
        Ok(())
    }

    /// One row of exactly [`Self::width`] values.
    pub fn apply_row(&self, row: &mut [f32]) {
        assert_eq!(row.len(), self.width);
        if self.inverse {
            fwht::fwht_blocks(row, self.block);
            if let Some(s) = &self.signs {
                mul_signs(row, s);
            }
            return;
        }
        match (&self.heads, &self.signs) {
            (Some((hd, order)), signs) => SCRATCH.with_borrow_mut(|tmp| {
                tmp.clear();
                tmp.extend_from_slice(row);
                for (g, &t) in order.iter().enumerate() {
                    let src = &tmp[t as usize * hd..][..*hd];
                    let dst = &mut row[g * hd..][..*hd];
                    match signs {
                        Some(s) => {
                            for ((d, &v), &s) in dst.iter_mut().zip(src).zip(&s[g * hd..]) {
                                *d = v * s;
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                }
            }),
            (None, Some(s)) => return fwht::fwht_blocks_signed(row, self.block, Some(s)),
            (None, None) => {}
        }
        fwht::fwht_blocks(row, self.block);
    }
}

/// `x[i] *= s[i]` (the compiler vectorizes it; multiplying by ±1 is exact).
fn mul_signs(x: &mut [f32], s: &[f32]) {
    for (v, &s) in x.iter_mut().zip(s) {
        *v *= s;
    }
}

/// `x ← H_B·x` for each consecutive block of `block` values (a power of two
/// dividing `x.len()`): the normalized Sylvester Walsh–Hadamard transform,
/// AVX-512 / AVX2 where the CPU has them (identical bits to the scalar
/// path). Panics on a bad `block`.
pub fn fwht_blocks(x: &mut [f32], block: usize) {
    fwht::fwht_blocks(x, block);
}

/// The portable path of [`fwht_blocks`], for comparisons.
pub fn fwht_blocks_scalar(x: &mut [f32], block: usize) {
    fwht::fwht_blocks_scalar(x, block, None);
}
