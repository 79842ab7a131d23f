//! CPU backend: rows of a matrix split across a rayon pool of `-t` threads.
//! Decode (one token) is a GEMV: each row is one `vec_dot`. Prompt batches
//! use `vec_dot_multi`, which decodes each weight block once for a tile of
//! tokens instead of once per token.

use super::Backend;
use crate::error::{EngineError, Result};
use crate::weights::{MatRef, Matrix};
use rayon::prelude::*;
use shohin_quant::packed::{PackedMatrix, ROWS};
use shohin_quant::{kernels, row_bytes};
use std::sync::Mutex;

/// Tokens per `vec_dot_multi` call: enough to amortize decoding a weight
/// block, few enough that the accumulators stay in registers.
const TOKEN_TILE: usize = 8;
/// Tasks per thread and matrix: balances load without per-row overhead.
const TASKS_PER_THREAD: usize = 8;

/// The most threads `-t` may ask for: ggml's `GGML_MAX_N_THREADS` (ggml.h).
/// Thousands of pool threads on a few cores take minutes to start and to
/// synchronise, which looks like a hang.
pub const MAX_THREADS: usize = 512;

#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    /// Repack 1-bit / ternary matrices at load (`SHOHIN_REPACK=0` keeps
    /// the file's layout, like llama.cpp's `--no-repack`).
    repack: bool,
    /// Reused buffers (quantized activations, transposed output), so that a
    /// decode step does not allocate once they reached their size.
    scratch: Mutex<Scratch>,
}

#[derive(Debug, Default)]
struct Scratch {
    xq: Vec<u8>,
    tmp: Vec<f32>,
}

impl CpuBackend {
    /// `n_threads == 0` means one per available core; more than
    /// [`MAX_THREADS`] is an error.
    pub fn new(n_threads: usize) -> Result<Self> {
        if n_threads > MAX_THREADS {
            return Err(EngineError::ThreadPool(format!(
                "-t/--threads {n_threads} is too many (at most {MAX_THREADS}; 0 = one per core)"
            )));
        }
        let n = if n_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            n_threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| EngineError::ThreadPool(e.to_string()))?;
        Ok(Self {
            pool,
            repack: std::env::var("SHOHIN_REPACK").as_deref() != Ok("0"),
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// Whether to repack matrices at load (on by default; off keeps the
    /// file's layout, as `SHOHIN_REPACK=0` does).
    pub fn with_repack(mut self, on: bool) -> Self {
        self.repack &= on;
        self
    }

    fn rows_per_task(&self, rows: usize) -> usize {
        let tasks = self.pool.current_num_threads() * TASKS_PER_THREAD;
        rows.div_ceil(tasks).max(4)
    }

    /// The product with a repacked matrix: row groups of 16 split across
    /// the pool, each task filling a `[group][token][16]` band, scattered
    /// into `out` afterwards.
    fn matmul_packed(&self, p: &PackedMatrix, x: &[f32], n_tokens: usize, out: &mut [f32]) {
        let (cols, rows) = (p.cols, p.rows);
        let pa = p.act_row_bytes();
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let Scratch { xq, tmp } = &mut *guard;
        xq.resize(n_tokens * pa, 0);
        xq.par_chunks_mut(pa)
            .zip(x.par_chunks(cols))
            .for_each(|(q, xr)| p.quantize_act(xr, q));
        let xq = &xq[..];
        let n_groups = p.n_groups();
        let tasks = self.pool.current_num_threads() * TASKS_PER_THREAD;
        let per_task = n_groups.div_ceil(tasks);
        tmp.resize(n_groups * n_tokens * ROWS, 0.0);
        tmp.par_chunks_mut(per_task * n_tokens * ROWS)
            .enumerate()
            .for_each(|(ci, band)| {
                let g0 = ci * per_task;
                let ng = band.len() / (n_tokens * ROWS);
                p.matmul_groups(xq, pa, n_tokens, g0..g0 + ng, band);
            });
        if n_tokens == 1 {
            out.copy_from_slice(&tmp[..rows]);
            return;
        }
        for (g, grp) in tmp.chunks(n_tokens * ROWS).enumerate() {
            let r0 = g * ROWS;
            let nr = ROWS.min(rows - r0);
            for (t, v) in grp.chunks(ROWS).enumerate() {
                out[t * rows + r0..t * rows + r0 + nr].copy_from_slice(&v[..nr]);
            }
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "CPU"
    }

    fn check(&self, _matrices: &mut dyn Iterator<Item = &Matrix>) -> Result<()> {
        // Every format in the type table has at least a scalar kernel.
        Ok(())
    }

    fn pack(&self, m: MatRef<'_>) -> Option<PackedMatrix> {
        if !self.repack {
            return None;
        }
        self.pool
            .install(|| PackedMatrix::pack(m.ty, m.rows, m.cols, m.data))
    }

    fn matmul(&self, w: MatRef<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]) {
        assert_eq!(x.len(), n_tokens * w.cols);
        assert_eq!(out.len(), n_tokens * w.rows);
        if let Some(p) = w.packed {
            assert_eq!((p.rows, p.cols), (w.rows, w.cols));
            return self.matmul_packed(p, x, n_tokens, out);
        }
        let vt = w.ty.vec_dot_type();
        // Shapes were validated at load (whole blocks); a failure here is a bug.
        let a_row = row_bytes(vt, w.cols).expect("activation row is whole blocks");
        let w_row = row_bytes(w.ty, w.cols).expect("weight row is whole blocks");
        assert_eq!(w.data.len(), w.rows * w_row);
        let quantize = kernels(vt).quantize;
        let k = kernels(w.ty);
        let per_task = self.rows_per_task(w.rows);

        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let Scratch { xq, tmp } = &mut *guard;
        xq.resize(n_tokens * a_row, 0);
        xq.par_chunks_mut(a_row)
            .zip(x.par_chunks(w.cols))
            .for_each(|(q, xr)| quantize(xr, q));
        let xq = &xq[..];

        if n_tokens == 1 {
            out.par_chunks_mut(per_task)
                .enumerate()
                .for_each(|(ci, o)| {
                    let r0 = ci * per_task;
                    for (j, o) in o.iter_mut().enumerate() {
                        let r = r0 + j;
                        *o = (k.vec_dot)(&w.data[r * w_row..(r + 1) * w_row], xq);
                    }
                });
            return;
        }
        // Batched: each task takes a band of weight rows; for each tile of
        // tokens (kept in L1) it runs every row of the band (kept in L2)
        // through `vec_dot_multi`, filling a [rows][tokens] band that is
        // transposed afterwards.
        tmp.resize(w.rows * n_tokens, 0.0);
        tmp.par_chunks_mut(per_task * n_tokens)
            .enumerate()
            .for_each(|(ci, band)| {
                let r0 = ci * per_task;
                let rows = band.len() / n_tokens;
                for t0 in (0..n_tokens).step_by(TOKEN_TILE) {
                    let nt = TOKEN_TILE.min(n_tokens - t0);
                    let a = &xq[t0 * a_row..];
                    for j in 0..rows {
                        let r = r0 + j;
                        let wr = &w.data[r * w_row..(r + 1) * w_row];
                        let o = &mut band[j * n_tokens + t0..j * n_tokens + t0 + nt];
                        (k.vec_dot_multi)(wr, a, a_row, o);
                    }
                }
            });
        for (r, row) in tmp.chunks(n_tokens).enumerate() {
            for (t, v) in row.iter().enumerate() {
                out[t * w.rows + r] = *v;
            }
        }
    }

    fn install(&self, f: &mut (dyn FnMut() + Send)) {
        self.pool.install(f)
    }

    fn n_threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}
