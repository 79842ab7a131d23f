//! Where the heavy arithmetic runs. The model is written once against this
//! trait; a backend that cannot run a tensor format says so at load
//! ([`Backend::check`]), never by falling back silently.

pub mod cpu;

use crate::error::Result;
use crate::weights::{MatRef, Matrix};
use shohin_quant::packed::PackedMatrix;

pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Short name shown in `info`/timings (e.g. "CPU").
    fn name(&self) -> &'static str;

    /// Fails naming the first matrix this backend cannot multiply.
    fn check(&self, matrices: &mut dyn Iterator<Item = &Matrix>) -> Result<()>;

    /// A repacked copy of `m` in a layout this backend multiplies faster,
    /// made once at load; `None` keeps the file's layout.
    fn pack(&self, _m: MatRef<'_>) -> Option<PackedMatrix> {
        None
    }

    /// Batched matrix product: for each of the `n_tokens` rows `x[t]`
    /// (`w.cols` floats each), `out[t][r] = dot(w[r], x[t])` (`w.rows`
    /// floats each). Activations are quantized to the weight format's
    /// `vec_dot_type` first, as ggml does.
    fn matmul(&self, w: MatRef<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]);

    /// Runs `f` inside the backend's thread pool, so that data-parallel
    /// loops of the model (attention over heads) use the same threads.
    fn install(&self, f: &mut (dyn FnMut() + Send));

    /// Threads used.
    fn n_threads(&self) -> usize;
}
