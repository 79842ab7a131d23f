//! llama-perplexity's `kl_divergence()` statistics of the current model
//! against a base file ([`super::base`]), with its labels and formats.

use super::base::{Reader, Record};
use anyhow::Result;
use std::io::Write;

/// One token's contributions, as llama.cpp's `log_softmax(.., kld)`.
pub struct TokenStats {
    nll: f32,
    nll_base: f32,
    kld: f64,
    same_top: bool,
    p_diff: f32,
}

impl TokenStats {
    pub fn new(logits: &[f32], base: &Record, tok: usize) -> Self {
        let mut max = logits[0];
        let mut imax = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let nll = max + log_sum_exp - logits[tok];
        let nll_base = -base.target_log_prob;
        let max_ls = max + log_sum_exp;
        let mut kld = 0.0f64;
        for (&q, &l) in base.q.iter().zip(logits) {
            let lp_base = base.scale * f32::from(q) + base.min_log_prob;
            if lp_base > -16.0 {
                let p_base = lp_base.exp();
                kld += f64::from(p_base * (lp_base - l + max_ls));
            }
        }
        let p_diff = (-nll).exp() - (-nll_base).exp();
        TokenStats {
            nll,
            nll_base,
            kld,
            same_top: imax == base.top as usize,
            p_diff,
        }
    }
}

/// The running statistics of a comparison (llama.cpp's
/// `kl_divergence_result`, plus every token's KLD and Δp for percentiles).
pub struct Compare {
    reader: Reader,
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

/// Mean and its uncertainty, as llama.cpp's `mean_and_uncertainty`.
fn mean_unc(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let f = sum / n;
    let df = sum2 / n - f * f;
    let df = if df > 0.0 && count > 10 {
        (df / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (f, df)
}

/// llama.cpp's `covariance`.
fn covariance(a: f64, b: f64, ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (ab / n - (a / n) * (b / n)) / (n - 1.0)
}

/// llama.cpp's `percentile` of sorted values (in f32).
fn percentile(v: &[f32], fraction: f32) -> f32 {
    if fraction <= 0.0 {
        return v[0];
    }
    if fraction >= 1.0 {
        return v[v.len() - 1];
    }
    let p = fraction * (v.len() - 1) as f32;
    let ip = p as usize;
    let p = p - ip as f32;
    (1.0 - p) * v[ip] + p * v[(ip + 1).min(v.len() - 1)]
}

fn median(v: &[f32]) -> f32 {
    let n = v.len();
    if n.is_multiple_of(2) {
        0.5 * (v[n / 2] + v[n / 2 - 1])
    } else {
        v[n / 2]
    }
}

pub fn print_table_header(out: &mut impl Write) -> Result<()> {
    writeln!(out, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p")?;
    Ok(())
}

impl Compare {
    pub fn new(reader: Reader, n_tokens: usize) -> Self {
        Compare {
            reader,
            sum_nll: 0.0,
            sum_nll2: 0.0,
            sum_nll_base: 0.0,
            sum_nll_base2: 0.0,
            sum_nll_nll_base: 0.0,
            sum_kld: 0.0,
            sum_kld2: 0.0,
            sum_p_diff: 0.0,
            sum_p_diff2: 0.0,
            sum_p_diff4: 0.0,
            n_same_top: 0,
            count: 0,
            kld_values: Vec::with_capacity(n_tokens),
            p_diff_values: Vec::with_capacity(n_tokens),
        }
    }

    pub fn read(&mut self) -> Result<Record> {
        self.reader.read()
    }

    /// Accumulate one token (llama.cpp's float/double types kept).
    pub fn add(&mut self, t: TokenStats) {
        self.sum_nll += f64::from(t.nll);
        self.sum_nll2 += f64::from(t.nll * t.nll);
        self.sum_nll_base += f64::from(t.nll_base);
        self.sum_nll_base2 += f64::from(t.nll_base * t.nll_base);
        self.sum_nll_nll_base += f64::from(t.nll * t.nll_base);
        self.sum_kld += t.kld;
        self.sum_kld2 += t.kld * t.kld;
        self.sum_p_diff += f64::from(t.p_diff);
        let p2 = f64::from(t.p_diff * t.p_diff);
        self.sum_p_diff2 += p2;
        self.sum_p_diff4 += p2 * p2;
        self.n_same_top += usize::from(t.same_top);
        self.count += 1;
        self.kld_values.push(t.kld as f32);
        self.p_diff_values.push(t.p_diff);
    }

    fn log_ppl(&self) -> ((f64, f64), (f64, f64), f64) {
        let q = mean_unc(self.sum_nll, self.sum_nll2, self.count);
        let b = mean_unc(self.sum_nll_base, self.sum_nll_base2, self.count);
        let cov = covariance(
            self.sum_nll,
            self.sum_nll_base,
            self.sum_nll_nll_base,
            self.count,
        );
        (q, b, cov)
    }

    fn rms_p_diff(&self) -> (f64, f64) {
        let mse = mean_unc(self.sum_p_diff2, self.sum_p_diff4, self.count);
        let v = mse.0.sqrt();
        (v, 0.5 / v * mse.1)
    }

    fn same_top(&self) -> (f64, f64) {
        let v = self.n_same_top as f64 / self.count as f64;
        (v, (v * (1.0 - v) / (self.count as f64 - 1.0)).sqrt())
    }

    /// The running line after a chunk.
    pub fn print_chunk(&self, out: &mut impl Write, chunk: usize) -> Result<()> {
        let (q, b, cov) = self.log_ppl();
        let ppl = q.0.exp();
        let ratio = q.0 - b.0;
        let ratio_unc = (q.1 * q.1 + b.1 * b.1 - 2.0 * cov).max(0.0).sqrt();
        let kl = mean_unc(self.sum_kld, self.sum_kld2, self.count);
        let rms = self.rms_p_diff();
        let top = self.same_top();
        writeln!(
            out,
            "{chunk:4}    {ppl:9.4} ± {:9.4}    {ratio:10.5} ± {ratio_unc:10.5}    {:10.5} ± {:10.5}    {:6.3} ± {:6.3} %    {:6.3} ± {:6.3} %",
            ppl * q.1,
            kl.0,
            kl.1,
            100.0 * rms.0,
            100.0 * rms.1,
            100.0 * top.0,
            100.0 * top.1
        )?;
        Ok(())
    }

    /// The final statistics, llama.cpp's labels and formats.
    pub fn finish(mut self, out: &mut impl Write) -> Result<()> {
        if self.count < 100 {
            eprintln!(
                "kl-divergence: only {} scored tokens; the statistics need at least 100 (llama-perplexity's rule)",
                self.count
            );
            return Ok(());
        }
        self.kld_values.sort_by(f32::total_cmp);
        self.p_diff_values.sort_by(f32::total_cmp);
        let (q, b, cov) = self.log_ppl();
        let ppl = q.0.exp();
        let ppl_unc = ppl * q.1;
        let ppl_base = b.0.exp();
        let ppl_base_unc = ppl_base * b.1;
        writeln!(out, "====== Perplexity statistics ======")?;
        writeln!(
            out,
            "Mean PPL(Q)                   : {ppl:10.6} ± {ppl_unc:10.6}"
        )?;
        writeln!(
            out,
            "Mean PPL(base)                : {ppl_base:10.6} ± {ppl_base_unc:10.6}"
        )?;
        let cor = cov / (q.1 * b.1);
        writeln!(out, "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%", 100.0 * cor)?;
        let ratio = q.0 - b.0;
        let ratio_unc = (q.1 * q.1 + b.1 * b.1 - 2.0 * cov).max(0.0).sqrt();
        writeln!(
            out,
            "Mean ln(PPL(Q)/PPL(base))     : {ratio:10.6} ± {ratio_unc:10.6}"
        )?;
        let r = ratio.exp();
        writeln!(
            out,
            "Mean PPL(Q)/PPL(base)         : {r:10.6} ± {:10.6}",
            r * ratio_unc
        )?;
        let ppl_cov = ppl * ppl_base * cov;
        let diff_unc = (ppl_unc * ppl_unc + ppl_base_unc * ppl_base_unc - 2.0 * ppl_cov)
            .max(0.0)
            .sqrt();
        writeln!(
            out,
            "Mean PPL(Q)-PPL(base)         : {:10.6} ± {diff_unc:10.6}",
            ppl - ppl_base
        )?;
        writeln!(out)?;

        let k = &self.kld_values;
        writeln!(out, "====== KL divergence statistics ======")?;
        let kl = mean_unc(self.sum_kld, self.sum_kld2, self.count);
        writeln!(out, "Mean    KLD: {:10.6} ± {:10.6}", kl.0, kl.1)?;
        writeln!(out, "Maximum KLD: {:10.6}", k[k.len() - 1])?;
        for (label, f) in [
            ("99.9%", 0.999),
            ("99.0%", 0.990),
            ("95.0%", 0.950),
            ("90.0%", 0.900),
        ] {
            writeln!(out, "{label}   KLD: {:10.6}", percentile(k, f))?;
        }
        writeln!(out, "Median  KLD: {:10.6}", median(k))?;
        for (label, f) in [
            ("10.0%", 0.100),
            (" 5.0%", 0.050),
            (" 1.0%", 0.010),
            (" 0.1%", 0.001),
        ] {
            writeln!(out, "{label}   KLD: {:10.6}", percentile(k, f))?;
        }
        writeln!(out, "Minimum KLD: {:10.6}", k[0])?;
        writeln!(out)?;

        let p = &self.p_diff_values;
        writeln!(out, "====== Token probability statistics ======")?;
        let pd = mean_unc(self.sum_p_diff, self.sum_p_diff2, self.count);
        writeln!(
            out,
            "Mean    Δp: {:6.3} ± {:5.3} %",
            100.0 * pd.0,
            100.0 * pd.1
        )?;
        writeln!(out, "Maximum Δp: {:6.3}%", 100.0 * p[p.len() - 1])?;
        let upper = [
            ("99.9%", 0.999),
            ("99.0%", 0.990),
            ("95.0%", 0.950),
            ("90.0%", 0.900),
            ("75.0%", 0.750),
        ];
        for (label, f) in upper {
            writeln!(out, "{label}   Δp: {:6.3}%", 100.0 * percentile(p, f))?;
        }
        writeln!(out, "Median  Δp: {:6.3}%", 100.0 * median(p))?;
        let lower = [
            ("25.0%", 0.250),
            ("10.0%", 0.100),
            (" 5.0%", 0.050),
            (" 1.0%", 0.010),
            (" 0.1%", 0.001),
        ];
        for (label, f) in lower {
            writeln!(out, "{label}   Δp: {:6.3}%", 100.0 * percentile(p, f))?;
        }
        writeln!(out, "Minimum Δp: {:6.3}%", 100.0 * p[0])?;
        let rms = self.rms_p_diff();
        writeln!(
            out,
            "RMS Δp    : {:6.3} ± {:5.3} %",
            100.0 * rms.0,
            100.0 * rms.1
        )?;
        let top = self.same_top();
        writeln!(
            out,
            "Same top p: {:6.3} ± {:5.3} %",
            100.0 * top.0,
            100.0 * top.1
        )?;
        Ok(())
    }
}
