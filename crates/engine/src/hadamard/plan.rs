//! Binding a [`HadamardFold`] to a model's tensors (widths, sign vectors,
//! the DeltaNet geometry) into one [`FoldPlan`] per folded weight, and
//! applying a plan to activations (apart from the metadata reading in
//! hadamard.rs).

use super::{
    bad, is_ssm_out, GdnHeads, HadamardFold, KEY_BLOCK_SIZE, KEY_GDN_V_GROUPED,
    KEY_INVERSE_WEIGHT_NAMES, KEY_SIGN_WIDTHS, KEY_WEIGHT_NAMES, TOKEN_EMBD,
};
use crate::error::{EngineError, Result};
use crate::ops::fwht;
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl HadamardFold {
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
