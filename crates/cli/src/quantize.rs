//! `shohin quantize IN OUT TYPE`: llama-quantize's per-tensor type choice and
//! bits (see the shohin-quantize crate), with a summary line per tensor.

use crate::args::QuantizeArgs;
use anyhow::{bail, Context, Result};
use shohin_quantize::{Ftype, Options};

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub fn quantize(a: QuantizeArgs) -> Result<()> {
    let Some(name) = a.type_flag.as_deref().or(a.type_pos.as_deref()) else {
        bail!(
            "missing the target type (third argument or --type); valid: {}",
            shohin_quantize::FTYPES
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let ftype = Ftype::parse(name)?;
    if a.input == a.output {
        bail!("{}: the output must be another file", a.output.display());
    }
    let opts = Options {
        ftype,
        allow_requantize: a.allow_requantize,
        threads: a.threads,
    };
    let input = a.input.display().to_string();
    // plan first (cheap) so that a refusal writes nothing and the bar knows its length
    let n = {
        let f = shohin_gguf::GgufFile::open(&a.input).with_context(|| input.clone())?;
        shohin_quantize::plan(&f, &opts)
            .with_context(|| input.clone())?
            .len()
    };
    let bar =
        crate::load::terminal_bar_with("{bar:40} {pos}/{len} tensors {elapsed} {msg}", n as u64);
    let start = std::time::Instant::now();
    let summary = shohin_quantize::quantize_file(&a.input, &a.output, &opts, |i, p| {
        let dims: Vec<String> = p.dims.iter().map(u64::to_string).collect();
        let line = format!(
            "[{:4}/{:4}] {:<40} [{:>14}] {:>6} -> {}",
            i + 1,
            n,
            p.name,
            dims.join(", "),
            p.from.name(),
            p.to.name()
        );
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    })
    .with_context(|| input.clone())?;
    bar.finish_and_clear();
    println!(
        "quantized {} to {} ({}): {} tensors, {:.2} MiB -> {:.2} MiB, file {:.2} MiB, {:.1} s",
        a.input.display(),
        a.output.display(),
        ftype.name,
        summary.tensors.len(),
        mib(summary.bytes_in),
        mib(summary.bytes_out),
        mib(summary.file_size),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
