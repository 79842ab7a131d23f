//! `shohin perplexity`: llama-perplexity's method, number for number.
//!
//! The whole text is tokenized once (BOS prepended when the vocabulary adds
//! one, special tokens not parsed: llama.cpp's `common_tokenize(.., true)`),
//! cut into non-overlapping chunks of `-c` tokens (at least two chunks'
//! worth of text, as llama.cpp demands), and each chunk runs as one prompt
//! from an empty cache, its first token replaced by BOS when the vocabulary
//! adds one. Only the second half is scored: the logits at positions
//! `first = n_ctx/2 ..= n_ctx-2` predict the tokens after them, each
//! through a float64 log-softmax like llama.cpp's `log_softmax`. The
//! running estimate `exp(mean nll)` is printed per chunk, then
//! `Final estimate: PPL = X +/- Y` with `Y = PPL * sqrt(var(nll)/(count-1))`.
//!
//! Up to `-b / -c` chunks run in one engine step, each as its own span with
//! its own cache; a token's logits do not depend on what it is batched with.
//! The engine hands back each token's normed final hidden state
//! (`Span::hidden`); the scored rows go through the output matrix here, a
//! few dozen at a time, so memory stays at one group of logit rows.
//!
//! KL divergence (`--kl-divergence-base`, `--kl-divergence`): the base file
//! format is in [`base`], the statistics in [`kld`].

mod base;
mod kld;

use crate::args::{ModelArgs, PerplexityArgs};
use crate::load;
use anyhow::{bail, Context, Result};
use shohin_engine::model::{Model, Span};
use std::io::Write;
use std::time::Instant;

/// Scored rows sent through the output matrix at once.
const ROW_GROUP: usize = 32;

pub fn perplexity(a: PerplexityArgs) -> Result<()> {
    let n_ctx = a.ctx_size;
    if n_ctx < 4 {
        bail!("-c/--ctx-size must be at least 4 (half of each chunk is context, the rest is scored), got {n_ctx}");
    }
    if a.batch_size == 0 {
        bail!("-b/--batch-size must be at least 1");
    }
    if a.kl_divergence && a.kl_divergence_base.is_none() {
        bail!("--kl-divergence needs --kl-divergence-base FILE (the base run to compare against)");
    }
    if a.chunks == Some(0) {
        bail!("--chunks must be at least 1");
    }
    let bytes = std::fs::read(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let base_path = a.kl_divergence_base.as_deref();
    // Open the base file before the (slow) model load, so a wrong file
    // fails fast.
    let mut reader = match (a.kl_divergence, base_path) {
        (true, Some(p)) => Some(base::Reader::open(p)?),
        _ => None,
    };

    let ma = ModelArgs {
        model: a.model.clone(),
        threads: a.threads,
        ctx_size: Some(n_ctx),
        no_repack: a.no_repack,
        cache: a.cache.clone(),
        rope: a.rope.clone(),
        lora: a.lora.clone(),
    };
    let l = load::load(&ma)?;
    let tok = &l.tokenizer;
    let model = &l.model;
    let n_vocab = model.n_vocab();
    let tokens = tok.encode(&text, true, false);
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{}: the text tokenizes to only {} tokens; a context of {n_ctx} needs at least {} \
             (llama-perplexity's rule: two chunks' worth)",
            a.file.display(),
            tokens.len(),
            2 * n_ctx
        );
    }
    let n_chunk_max = tokens.len() / n_ctx;
    let mut n_chunk = a.chunks.map_or(n_chunk_max, |c| c.min(n_chunk_max));
    let first = n_ctx / 2;
    let n_scored = n_ctx - 1 - first;

    let mut mode = match (a.kl_divergence, base_path) {
        (true, Some(p)) => {
            let r = reader.take().expect("opened above");
            n_chunk = r.check(p, n_ctx, n_vocab, &tokens)?;
            Mode::Compare(Box::new(kld::Compare::new(r, n_chunk * n_scored)))
        }
        (false, Some(p)) => {
            let hash = base::token_hash(&tokens[..n_chunk * n_ctx]);
            Mode::Save(base::Writer::create(
                p, n_ctx, n_vocab, n_chunk, n_scored, hash,
            )?)
        }
        _ => Mode::Ppl,
    };

    let n_seq = (a.batch_size / n_ctx).max(1);
    let piece = a.batch_size.min(n_ctx);
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let threads = match a.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    eprintln!(
        "perplexity: {} tokens, {n_chunk} chunks of {n_ctx} ({n_scored} scored each), \
         {} chunk(s) per step",
        tokens.len(),
        n_seq.min(n_chunk)
    );
    let bar = load::terminal_bar_with(
        "{bar:40} {pos}/{len} chunks {elapsed} {msg}",
        n_chunk as u64,
    );
    let mut out = std::io::stdout().lock();
    let mut sums = PplSums::default();
    let start = Instant::now();
    let d = model.config.n_embd;
    let mut hidden: Vec<Vec<f32>> = vec![Vec::new(); n_seq];
    let mut h = Vec::new();
    let mut logits = Vec::new();
    if let Mode::Compare(_) = mode {
        kld::print_table_header(&mut out)?;
    }
    for i in (0..n_chunk).step_by(n_seq) {
        let n_seq_batch = n_seq.min(n_chunk - i);
        let mut chunks: Vec<Vec<u32>> = (0..n_seq_batch)
            .map(|s| tokens[(i + s) * n_ctx..(i + s + 1) * n_ctx].to_vec())
            .collect();
        if let Some(b) = bos {
            chunks.iter_mut().for_each(|c| c[0] = b);
        }
        let mut caches: Vec<_> = (0..n_seq_batch).map(|_| model.new_cache(n_ctx)).collect();
        hidden.iter_mut().for_each(Vec::clear);
        for j in (0..n_ctx).step_by(piece) {
            let end = (j + piece).min(n_ctx);
            let mut spans: Vec<Span<'_>> = caches
                .iter_mut()
                .zip(&chunks)
                .zip(hidden.iter_mut())
                .map(|((cache, c), hid)| Span {
                    cache,
                    tokens: &c[j..end],
                    logits: None,
                    hidden: Some(hid),
                })
                .collect();
            model.forward_batch(&mut spans)?;
        }
        for (s, hid) in hidden.iter().enumerate().take(n_seq_batch) {
            let c0 = (i + s) * n_ctx;
            for g in (first..n_ctx - 1).step_by(ROW_GROUP) {
                let g_end = (g + ROW_GROUP).min(n_ctx - 1);
                let rows = g_end - g;
                output_logits(model, &hid[g * d..g_end * d], rows, &mut h, &mut logits);
                // targets[r] is the token after row r
                let targets = &tokens[c0 + g + 1..c0 + g_end + 1];
                mode.rows(
                    &logits[..rows * n_vocab],
                    n_vocab,
                    targets,
                    threads,
                    &mut sums,
                )?;
            }
            let chunk_no = i + s + 1;
            bar.suspend(|| -> Result<()> {
                match &mode {
                    Mode::Compare(c) => c.print_chunk(&mut out, chunk_no)?,
                    _ => write!(
                        out,
                        "[{chunk_no}]{:.4},",
                        (sums.nll / sums.count as f64).exp()
                    )?,
                }
                out.flush()?;
                Ok(())
            })?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    writeln!(out)?;
    match mode {
        Mode::Compare(c) => c.finish(&mut out)?,
        Mode::Save(w) => {
            w.finish()?;
            sums.print_final(&mut out)?;
            eprintln!(
                "perplexity: saved the log-probabilities of {} tokens to {}",
                sums.count,
                base_path.expect("save mode has a path").display()
            );
        }
        Mode::Ppl => sums.print_final(&mut out)?,
    }
    let n_eval = n_chunk * n_ctx;
    eprintln!(
        "perplexity: {n_eval} tokens in {secs:.2} s, {:.1} tokens/s",
        n_eval as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// The logits of `rows` normed hidden states `hid` (`[rows][n_embd]`)
/// into `logits` (`[rows][n_vocab]`), through the engine's output head.
fn output_logits(model: &Model, hid: &[f32], rows: usize, h: &mut Vec<f32>, logits: &mut Vec<f32>) {
    h.clear();
    h.extend_from_slice(hid);
    logits.resize(rows * model.n_vocab(), 0.0);
    model.output_logits(h, rows, &mut logits[..rows * model.n_vocab()]);
}

/// What the scored rows are for.
enum Mode {
    /// Perplexity only.
    Ppl,
    /// Perplexity, and the log-probabilities written to a base file.
    Save(base::Writer),
    /// KL divergence against a base file.
    Compare(Box<kld::Compare>),
}

impl Mode {
    /// Score `targets.len()` rows of `logits`, the rows split over
    /// `threads` threads; the sums are taken in row order.
    fn rows(
        &mut self,
        logits: &[f32],
        n_vocab: usize,
        targets: &[u32],
        threads: usize,
        sums: &mut PplSums,
    ) -> Result<()> {
        let n = targets.len();
        match self {
            Mode::Ppl => {
                let v = par_rows(n, threads, |r| {
                    -log_softmax(&logits[r * n_vocab..(r + 1) * n_vocab], targets[r] as usize)
                });
                v.into_iter().for_each(|v| sums.add(v));
            }
            Mode::Save(w) => {
                let recs = par_rows(n, threads, |r| {
                    base::Record::from_logits(
                        &logits[r * n_vocab..(r + 1) * n_vocab],
                        targets[r] as usize,
                    )
                });
                for (nll, rec) in recs {
                    sums.add(nll);
                    w.write(&rec)?;
                }
            }
            Mode::Compare(c) => {
                let bases = (0..n).map(|_| c.read()).collect::<Result<Vec<_>>>()?;
                let rows = par_rows(n, threads, |r| {
                    kld::TokenStats::new(
                        &logits[r * n_vocab..(r + 1) * n_vocab],
                        &bases[r],
                        targets[r] as usize,
                    )
                });
                rows.into_iter().for_each(|t| c.add(t));
            }
        }
        Ok(())
    }
}

/// `f(0..n)` computed on up to `threads` threads, in order.
fn par_rows<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let per = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|r0| {
                let f = &f;
                s.spawn(move || (r0..(r0 + per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a scoring thread panicked"))
            .collect()
    })
}

/// llama.cpp's `log_softmax(n_vocab, logits, tok).log_softmax`: the max in
/// f32, the sum of `expf(l - max)` in f64, the result in f64.
pub fn log_softmax(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(logits[0], f32::max);
    let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    f64::from(logits[tok] - max) - sum_exp.ln()
}

/// The running sums of the negative log-likelihoods.
#[derive(Default)]
struct PplSums {
    nll: f64,
    nll2: f64,
    count: usize,
}

impl PplSums {
    fn add(&mut self, v: f64) {
        self.nll += v;
        self.nll2 += v * v;
        self.count += 1;
    }

    /// `Final estimate: PPL = X +/- Y`, llama-perplexity's formula.
    fn print_final(&self, out: &mut impl Write) -> Result<()> {
        let n = self.count as f64;
        let nll = self.nll / n;
        let ppl = nll.exp();
        let var = self.nll2 / n - nll * nll;
        if var > 0.0 {
            let err = (var / (n - 1.0)).sqrt();
            writeln!(out, "Final estimate: PPL = {ppl:.4} +/- {:.5}", err * ppl)?;
        } else {
            eprintln!("Unexpected negative standard deviation of log(prob)");
        }
        Ok(())
    }
}
