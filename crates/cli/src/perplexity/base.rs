//! The KL-divergence base file: a base run's log-probabilities of every
//! scored token, written and read a record at a time.
//!
//! # Format (version 1, little-endian)
//!
//! Header, 40 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SHOHINKL` |
//! | 4 | u32 version = 1 |
//! | 4 | u32 n_ctx (`-c`) |
//! | 4 | u32 n_vocab (logit rows of the model) |
//! | 4 | u32 n_chunk |
//! | 4 | u32 n_scored = n_ctx - 1 - n_ctx/2 (records per chunk) |
//! | 4 | u32 reserved = 0 |
//! | 8 | u64 FNV-1a hash of the evaluated token ids (`n_chunk * n_ctx` u32 LE, as tokenized, before the BOS replacement) |
//!
//! Then `n_chunk * n_scored` records in evaluation order, `16 + 2 * n_vocab`
//! bytes each, one per scored token:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | f32 scale |
//! | 4 | f32 min_log_prob |
//! | 4 | f32 log-probability of the token that follows (not coded: `logits[tok] - max - ln(sum exp)` in f32) |
//! | 4 | u32 the top token (first index of the largest logit, exact) |
//! | 2 * n_vocab | u16 q\[i\]: log p\[i\] ≈ min_log_prob + scale * q\[i\] |
//!
//! The row is llama.cpp's own compression (its `log_softmax` writing
//! `uint16`): a linear code of the log-probabilities over the 16 nats below
//! the top one (`scale = (max - max(min, max - 16)) / 65535` in logit
//! units), rounding each by at most `scale / 2` <= 1.3e-4 nats; tokens
//! further below decode to at most -16. The mean KLD is therefore not the
//! exact `sum_i p_base(i) * (log p_base(i) - log p(i))` but what llama.cpp
//! computes from its own base file: the sum over the tokens with
//! `log p_base > -16` (each token left out has `p_base < e^-16`), of the
//! rounded log-probabilities. Measured: the model against its own base
//! file gives per-token KLDs within +-4e-5 and a mean of 1e-6. The
//! log-probability of the next token (for PPL(base) and Δp) and the top
//! token (for Same top p) are stored uncoded, where llama.cpp reads them
//! back from the code; so a model compared with its own base gets Δp = 0,
//! PPL ratio 1 and Same top p 100% exactly. The file is the size of
//! llama.cpp's (2 bytes per vocabulary entry and scored token, 57 MB for 189
//! tokens of a 151,936-token vocabulary) and is written and read a record
//! at a time.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"SHOHINKL";
const VERSION: u32 = 1;
const HEADER: usize = 40;

/// FNV-1a (64 bit) of the token ids as u32 little-endian bytes.
pub fn token_hash(tokens: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tokens.iter().flat_map(|t| t.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One scored token of the base run.
pub struct Record {
    pub scale: f32,
    pub min_log_prob: f32,
    /// The log-probability of the token that follows.
    pub target_log_prob: f32,
    /// The top token.
    pub top: u32,
    /// The coded log-probabilities.
    pub q: Vec<u16>,
}

impl Record {
    /// The record of one row of logits whose next token is `tok`, and the
    /// negative log-likelihood llama.cpp's saving `log_softmax` returns
    /// (`max + log_sum_exp - logits[tok]` in f32).
    pub fn from_logits(logits: &[f32], tok: usize) -> (f64, Record) {
        let mut max = logits[0];
        let mut min = logits[0];
        let mut top = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                top = i;
            }
            min = min.min(l);
        }
        let min = min.max(max - 16.0);
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let min_log_prob = min - max - log_sum_exp;
        let scale = (max - min) / 65535.0;
        let q = if scale != 0.0 {
            let inv = 1.0 / scale;
            logits
                .iter()
                .map(|&l| {
                    if l > min {
                        (inv * (l - min)).round_ties_even() as u16
                    } else {
                        0
                    }
                })
                .collect()
        } else {
            vec![0; logits.len()]
        };
        // The same f32 arithmetic as TokenStats::new, so that a model
        // compared with its own base file gets Δp = 0 exactly.
        let nll = max + log_sum_exp - logits[tok];
        let target_log_prob = -nll;
        let rec = Record {
            scale,
            min_log_prob,
            target_log_prob,
            top: top as u32,
            q,
        };
        (f64::from(nll), rec)
    }
}

/// Writes a base file record by record.
pub struct Writer {
    out: BufWriter<File>,
    path: String,
}

impl Writer {
    pub fn create(
        path: &Path,
        n_ctx: usize,
        n_vocab: usize,
        n_chunk: usize,
        n_scored: usize,
        hash: u64,
    ) -> Result<Self> {
        let name = path.display().to_string();
        let f = File::create(path).with_context(|| name.clone())?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let mut h = Vec::with_capacity(HEADER);
        h.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            n_ctx as u32,
            n_vocab as u32,
            n_chunk as u32,
            n_scored as u32,
            0,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&hash.to_le_bytes());
        out.write_all(&h).with_context(|| name.clone())?;
        Ok(Writer { out, path: name })
    }

    pub fn write(&mut self, r: &Record) -> Result<()> {
        let mut b = Vec::with_capacity(16 + 2 * r.q.len());
        b.extend_from_slice(&r.scale.to_le_bytes());
        b.extend_from_slice(&r.min_log_prob.to_le_bytes());
        b.extend_from_slice(&r.target_log_prob.to_le_bytes());
        b.extend_from_slice(&r.top.to_le_bytes());
        b.extend(r.q.iter().flat_map(|q| q.to_le_bytes()));
        self.out.write_all(&b).with_context(|| self.path.clone())
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.flush().with_context(|| self.path.clone())
    }
}

/// Reads a base file record by record.
pub struct Reader {
    inp: BufReader<File>,
    path: String,
    n_ctx: usize,
    n_vocab: usize,
    n_chunk: usize,
    hash: u64,
    buf: Vec<u8>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let f = File::open(path).with_context(|| name.clone())?;
        let mut inp = BufReader::with_capacity(1 << 20, f);
        let mut h = [0u8; HEADER];
        let not_base = || {
            format!("{name}: not a KL-divergence base file of shohin (write one with --kl-divergence-base FILE without --kl-divergence)")
        };
        inp.read_exact(&mut h).with_context(not_base)?;
        if &h[..8] != MAGIC {
            bail!(not_base());
        }
        let u =
            |i: usize| u32::from_le_bytes(h[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes"));
        if u(0) != VERSION {
            bail!(
                "{name}: base file version {} (this shohin reads version {VERSION})",
                u(0)
            );
        }
        Ok(Reader {
            inp,
            path: name,
            n_ctx: u(1) as usize,
            n_vocab: u(2) as usize,
            n_chunk: u(3) as usize,
            hash: u64::from_le_bytes(h[32..40].try_into().expect("8 bytes")),
            buf: Vec::new(),
        })
    }

    /// Refuse a base file made with another context size, vocabulary or
    /// text; returns its number of chunks.
    pub fn check(
        &self,
        path: &Path,
        n_ctx: usize,
        n_vocab: usize,
        tokens: &[u32],
    ) -> Result<usize> {
        let name = path.display();
        if self.n_ctx != n_ctx {
            bail!(
                "{name} was made with a context of {} tokens, this run has -c {n_ctx}: use -c {}",
                self.n_ctx,
                self.n_ctx
            );
        }
        if self.n_vocab != n_vocab {
            bail!(
                "{name} was made by a model with a vocabulary of {} tokens, this model has {n_vocab}",
                self.n_vocab
            );
        }
        let n = self.n_chunk * n_ctx;
        if tokens.len() < n || token_hash(&tokens[..n]) != self.hash {
            bail!(
                "{name} was made from another text: the hash of its {} evaluated tokens differs \
                 from this text's (use the same -f file as for the base run)",
                n
            );
        }
        Ok(self.n_chunk)
    }

    pub fn read(&mut self) -> Result<Record> {
        let len = 16 + 2 * self.n_vocab;
        self.buf.resize(len, 0);
        self.inp
            .read_exact(&mut self.buf)
            .with_context(|| format!("{}: truncated base file", self.path))?;
        let b = &self.buf;
        let f = |i: usize| f32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(Record {
            scale: f(0),
            min_log_prob: f(4),
            target_log_prob: f(8),
            top: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
            q: b[16..]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        })
    }
}
