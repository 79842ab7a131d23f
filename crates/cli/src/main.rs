//! `shohin`: run, chat with, tokenize and inspect 1-bit / ternary GGUF LLMs.
//! Errors print as `error: <what, where>` and exit with code 1.

mod args;
mod bench;
mod bench_spec;
mod chat;
mod convert;
mod grammar;
mod info;
mod load;
mod lora;
mod perplexity;
mod pull;
mod quantize;
mod run;
mod serve;
mod spec;
mod tokenize;

use clap::Parser;

fn main() {
    let mut cli = args::Cli::parse_from(args::llama_cpp_spellings(std::env::args_os()));
    // `-m hf:owner/name[:FILE]` (and the default model): a cached path.
    if let Err(e) = pull::resolve_model_flags(&mut cli.command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let result = match cli.command {
        args::Command::Run(a) => run::run(a),
        args::Command::Chat(a) => chat::chat(a),
        args::Command::Tokenize(a) => tokenize::tokenize(a),
        args::Command::Info(a) => info::info(a),
        args::Command::Bench(a) => bench::bench(a),
        args::Command::Serve(a) => serve::serve(a),
        args::Command::Quantize(a) => quantize::quantize(a),
        args::Command::Perplexity(a) => perplexity::perplexity(a),
        args::Command::Convert(a) => convert::convert(a),
        args::Command::Pull(a) => pull::pull(a),
        args::Command::List(a) => pull::list(a),
        args::Command::Rm(a) => pull::rm(a),
        args::Command::ExportLora(a) => lora::export_lora(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
