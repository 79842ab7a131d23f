//! Runs the prompt ids of a golden file (then optionally N golden greedy ids)
//! through shohin and writes the logits after each step as raw f32 to
//! `$SHOHIN_DRIFT_DIR/logits.bin` ([steps+1][n_vocab]).
//! usage: drift-probe MODEL.gguf PROMPT_IDS(comma) [FED_IDS(comma)]
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;

fn parse(s: &str) -> Vec<u32> {
    s.split(',').filter(|x| !x.is_empty()).map(|x| x.parse().unwrap()).collect()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let f = shohin_gguf::GgufFile::open(std::path::Path::new(&a[1])).unwrap();
    let m = Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap();
    let prompt = parse(&a[2]);
    let fed = a.get(3).map(|s| parse(s)).unwrap_or_default();
    let mut s = Session::new(&m, 256);
    let mut out: Vec<u8> = Vec::new();
    s.prompt(&prompt).unwrap();
    let dir = std::env::var("SHOHIN_DRIFT_DIR").unwrap_or_else(|_| ".".into());
    // With the temporary probe hook (README.md), stop dumping intermediates
    // after the prompt: decode steps would overwrite them.
    std::env::remove_var("SHOHIN_DRIFT_DIR");
    for v in s.logits() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for &id in &fed {
        s.step(id).unwrap();
        for v in s.logits() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(format!("{dir}/logits.bin"), out).unwrap();
}
