//! Token sampling with llama.cpp's default chain (`common/sampling.cpp`,
//! `common_sampler_init`, default `params.samplers` order; each stage as in
//! `src/llama-sampler.cpp`):
//!
//! penalties → top-k → top-p → min-p → temperature → seeded draw.
//!
//! (DRY, top-n-sigma, typical-p and XTC sit between these in llama.cpp's list
//! but are disabled by default, so they are left out.) `temperature <= 0`
//! means greedy: the arg-max of the penalised logits, lowest id on ties.
//!
//! Randomness comes from `ChaCha8Rng` seeded with [`SamplerConfig::seed`], so a
//! given seed yields the same tokens on every platform.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// When top-p runs on an unsorted vocabulary, sort only this many of the best
/// candidates first and sort the rest only if they do not reach `top_p`
/// (the same shortcut as llama.cpp's `llama_sampler_top_p_apply`).
const TOP_P_PARTIAL_SORT: usize = 256;

/// Sampling parameters (llama.cpp `common_params_sampling` names in brackets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// `temp`: logits are divided by it before the draw; `<= 0` is greedy.
    pub temperature: f32,
    /// `top_k`: keep the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// `top_p`: keep the smallest most-likely set whose probability reaches
    /// `top_p`; 1 disables. Must be in (0, 1].
    pub top_p: f32,
    /// `min_p`: drop tokens with probability below `min_p` × the top token's;
    /// 0 disables. Must be in [0, 1].
    pub min_p: f32,
    /// `penalty_repeat`: positive logits of recent tokens are divided by it,
    /// negative ones multiplied; 1 disables. Must be > 0.
    pub repeat_penalty: f32,
    /// `penalty_last_n`: how many of the most recent history tokens the
    /// penalties look at; 0 disables all three penalties.
    pub repeat_last_n: usize,
    /// `penalty_present`: subtracted once from every token seen in the window.
    pub presence_penalty: f32,
    /// `penalty_freq`: subtracted once per occurrence in the window.
    pub frequency_penalty: f32,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's CLI defaults (`common/common.h`, `common_params_sampling`).
    /// The seed is fixed at `0xFFFF_FFFF`, the value of `LLAMA_DEFAULT_SEED`;
    /// unlike llama.cpp, it is *not* replaced by a random seed: runs are
    /// reproducible unless the caller picks a seed.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0xFFFF_FFFF,
        }
    }
}

/// An invalid [`SamplerConfig`] field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    /// The field's value is outside its valid range.
    #[error("sampler {field} = {value} is invalid: must be {expected}")]
    OutOfRange {
        /// Field name in [`SamplerConfig`].
        field: &'static str,
        /// The rejected value.
        value: f32,
        /// Human-readable valid range.
        expected: &'static str,
    },
}

/// One token and its (transformed) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) id: u32,
    pub(crate) logit: f32,
}

/// Stateful sampler: holds the RNG and reusable buffers, so `sample` does not
/// allocate once the buffers have grown to the vocabulary size.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
    candidates: Vec<Candidate>,
    window: Vec<u32>,
}

impl Sampler {
    /// Validates `cfg` and seeds the RNG.
    pub fn new(cfg: SamplerConfig) -> Result<Self, SamplerError> {
        let check = |field, value: f32, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(SamplerError::OutOfRange {
                    field,
                    value,
                    expected,
                })
            }
        };
        let t = cfg.temperature;
        check(
            "temperature",
            t,
            t.is_finite() && t >= 0.0,
            "finite and >= 0 (0 = greedy)",
        )?;
        let p = cfg.top_p;
        check("top_p", p, p > 0.0 && p <= 1.0, "in (0, 1] (1 = off)")?;
        let m = cfg.min_p;
        check("min_p", m, (0.0..=1.0).contains(&m), "in [0, 1] (0 = off)")?;
        let r = cfg.repeat_penalty;
        check(
            "repeat_penalty",
            r,
            r.is_finite() && r > 0.0,
            "finite and > 0 (1 = off)",
        )?;
        let pp = cfg.presence_penalty;
        check("presence_penalty", pp, pp.is_finite(), "finite")?;
        let fp = cfg.frequency_penalty;
        check("frequency_penalty", fp, fp.is_finite(), "finite")?;
        Ok(Self {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            candidates: Vec::new(),
            window: Vec::new(),
        })
    }

    /// The configuration this sampler was built with.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` (one per vocabulary id). `history`
    /// is the sequence so far; its last `repeat_last_n` tokens feed the
    /// penalties (ids outside the vocabulary are ignored). NaN logits count as
    /// `-inf`. Empty `logits` yields 0; if no logit is finite the lowest id
    /// with the highest value is returned.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
            }));
        if self.candidates.is_empty() {
            return 0;
        }
        let n = self.cfg.repeat_last_n.min(history.len());
        let window = &history[history.len() - n..];
        apply_penalties(&mut self.candidates, window, &self.cfg, &mut self.window);

        if self.cfg.temperature <= 0.0 {
            return argmax(&self.candidates);
        }
        let sorted = truncate_top_k(&mut self.candidates, self.cfg.top_k);
        truncate_top_p(&mut self.candidates, self.cfg.top_p, sorted);
        truncate_min_p(&mut self.candidates, self.cfg.min_p);
        // One uniform per non-greedy call, whatever the candidates, so the
        // random stream stays aligned with the number of sampled tokens.
        let u: f64 = self.rng.random();
        let max = max_logit(&self.candidates);
        if !max.is_finite() {
            // No finite logit, or +inf ones: the distribution is degenerate.
            return best(&self.candidates);
        }
        // Temperature (`llama_sampler_temp_impl`: logit / temp), applied
        // after subtracting the max so that a tiny temperature sends the
        // others to -inf instead of overflowing the best to +inf.
        let t = self.cfg.temperature;
        for c in self.candidates.iter_mut() {
            c.logit = (c.logit - max) / t;
        }
        draw(&self.candidates, u)
    }
}

/// Repetition, frequency and presence penalties on `cands` (in id order, so
/// `cands[id]` is token `id`), from `llama_sampler_penalties_apply`: for each
/// token occurring `count > 0` times in `window`,
/// `logit = logit <= 0 ? logit * repeat : logit / repeat`, then
/// `logit -= count * frequency + presence`. Disabled, as in llama.cpp, when
/// `repeat_last_n == 0` or all three penalties are neutral. `scratch` is a
/// reusable buffer.
pub(crate) fn apply_penalties(
    cands: &mut [Candidate],
    window: &[u32],
    cfg: &SamplerConfig,
    scratch: &mut Vec<u32>,
) {
    let neutral =
        cfg.repeat_penalty == 1.0 && cfg.frequency_penalty == 0.0 && cfg.presence_penalty == 0.0;
    if cfg.repeat_last_n == 0 || neutral || window.is_empty() {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(window);
    scratch.sort_unstable();
    for run in scratch.chunk_by(|a, b| a == b) {
        let Some(c) = cands.get_mut(run[0] as usize) else {
            continue;
        };
        debug_assert_eq!(c.id, run[0]);
        let count = run.len() as f32;
        if c.logit <= 0.0 {
            c.logit *= cfg.repeat_penalty;
        } else {
            c.logit /= cfg.repeat_penalty;
        }
        c.logit -= count * cfg.frequency_penalty + cfg.presence_penalty;
    }
}

/// Descending logit, ascending id on ties: a total order, so partial and
/// full sorts agree and ties resolve to the lowest id like greedy.
fn by_rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

fn max_logit(cands: &[Candidate]) -> f32 {
    cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Highest logit, lowest id on ties (`llama_sampler_greedy_apply` keeps the
/// first strictly greater). `cands` is in id order here.
fn argmax(cands: &[Candidate]) -> u32 {
    let mut best = cands[0];
    for c in &cands[1..] {
        if c.logit > best.logit {
            best = *c;
        }
    }
    best.id
}

/// The best candidate in rank order, whatever order `cands` is in.
fn best(cands: &[Candidate]) -> u32 {
    cands.iter().copied().min_by(by_rank).map_or(0, |c| c.id)
}

/// Keeps the `k` best candidates, sorted best-first
/// (`llama_sampler_top_k_impl`); 0 disables. Returns whether `cands` is
/// now sorted.
fn truncate_top_k(cands: &mut Vec<Candidate>, k: usize) -> bool {
    if k == 0 {
        return false;
    }
    if k < cands.len() {
        cands.select_nth_unstable_by(k - 1, by_rank);
        cands.truncate(k);
    }
    cands.sort_unstable_by(by_rank);
    true
}

/// Keeps the smallest best-first prefix whose softmax probability sums to at
/// least `p` (`llama_sampler_top_p_apply` with `min_keep = 0`); 1 disables.
/// Probabilities are at temperature 1: temperature comes later in the chain.
fn truncate_top_p(cands: &mut Vec<Candidate>, p: f32, sorted: bool) {
    if p >= 1.0 {
        return;
    }
    let max = max_logit(cands);
    if !max.is_finite() {
        // All -inf, or +inf present: the best token carries all the mass.
        let keep = best(cands);
        cands.retain(|c| c.id == keep);
        return;
    }
    let total: f64 = cands.iter().map(|c| f64::from((c.logit - max).exp())).sum();
    let target = f64::from(p) * total;
    let mut sorted_len = if sorted { cands.len() } else { 0 };
    let mut cum = 0.0f64;
    let mut kept = cands.len();
    for i in 0..cands.len() {
        if i == sorted_len {
            // Sort lazily: first the best few, everything only if needed.
            // After `select_nth_unstable_by(want - 1)` every later element
            // ranks below the first `want`, so sorting the tail later yields
            // the same order as one full sort.
            let want = if i == 0 {
                TOP_P_PARTIAL_SORT.min(cands.len())
            } else {
                cands.len()
            };
            if want < cands.len() {
                cands.select_nth_unstable_by(want - 1, by_rank);
            }
            cands[i..want].sort_unstable_by(by_rank);
            sorted_len = want;
        }
        cum += f64::from((cands[i].logit - max).exp());
        if cum >= target {
            kept = i + 1;
            break;
        }
    }
    cands.truncate(kept);
}

/// Drops tokens with `logit < max_logit + ln(min_p)`, i.e. probability below
/// `min_p` × the top probability (`llama_sampler_min_p_apply`); 0 disables.
/// Keeps the order.
fn truncate_min_p(cands: &mut Vec<Candidate>, min_p: f32) {
    if min_p <= 0.0 {
        return;
    }
    let max = max_logit(cands);
    if !max.is_finite() {
        return;
    }
    let min_logit = max + min_p.ln();
    cands.retain(|c| c.logit >= min_logit);
}

/// Inverse-CDF draw from the softmax (`llama_sampler_dist_apply`): the first
/// candidate whose running mass (f64) reaches `u` × total. Logits must have
/// a finite maximum of 0 (see `Sampler::sample`).
fn draw(cands: &[Candidate], u: f64) -> u32 {
    let total: f64 = cands.iter().map(|c| f64::from(c.logit.exp())).sum();
    let target = total * u;
    let mut run = 0.0f64;
    let mut last_positive = None;
    for c in cands {
        let w = f64::from(c.logit.exp());
        if w > 0.0 {
            run += w;
            last_positive = Some(c.id);
            // `w > 0`: a zero-probability token is never drawn, even for u = 0.
            if run >= target {
                return c.id;
            }
        }
    }
    // Rounding left `run` just short of `target`.
    last_positive.unwrap_or_else(|| best(cands))
}

#[cfg(test)]
mod tests;
