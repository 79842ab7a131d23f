//! CPU backend: rows of a matrix split across a rayon pool of `-t` threads;
//! each row is one `vec_dot` of the format's kernel.

use super::Backend;
use crate::error::{EngineError, Result};
use crate::weights::{MatRef, Matrix};
use rayon::prelude::*;
use shohin_quant::{kernels, row_bytes};

/// Output rows computed by one task: enough work to amortize scheduling.
const ROWS_PER_TASK: usize = 16;

#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// `n_threads == 0` means one per available core.
    pub fn new(n_threads: usize) -> Result<Self> {
        let n = if n_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            n_threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| EngineError::ThreadPool(e.to_string()))?;
        Ok(Self { pool })
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "CPU"
    }

    fn check(&self, _matrices: &mut dyn Iterator<Item = &Matrix>) -> Result<()> {
        // Every format in the type table has a scalar kernel.
        Ok(())
    }

    fn matmul(&self, w: MatRef<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]) {
        let vt = w.ty.vec_dot_type();
        // Shapes were validated at load (whole blocks); a failure here is a bug.
        let a_row = row_bytes(vt, w.cols).expect("activation row is whole blocks");
        let w_row = row_bytes(w.ty, w.cols).expect("weight row is whole blocks");
        assert_eq!(x.len(), n_tokens * w.cols);
        assert_eq!(out.len(), n_tokens * w.rows);
        assert_eq!(w.data.len(), w.rows * w_row);
        let quantize = kernels(vt).quantize;
        let dot = kernels(w.ty).vec_dot;

        let mut xq = vec![0u8; n_tokens * a_row];
        xq.par_chunks_mut(a_row)
            .zip(x.par_chunks(w.cols))
            .for_each(|(q, xr)| quantize(xr, q));

        if n_tokens == 1 {
            out.par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(ci, o)| {
                    let r0 = ci * ROWS_PER_TASK;
                    for (j, o) in o.iter_mut().enumerate() {
                        let r = r0 + j;
                        *o = dot(&w.data[r * w_row..(r + 1) * w_row], &xq);
                    }
                });
            return;
        }
        // Batched: each task reads its weight rows once for all tokens,
        // writing a [rows][tokens] tile that is transposed afterwards.
        let mut tmp = vec![0.0f32; w.rows * n_tokens];
        tmp.par_chunks_mut(ROWS_PER_TASK * n_tokens)
            .enumerate()
            .for_each(|(ci, tile)| {
                let r0 = ci * ROWS_PER_TASK;
                for (j, row_out) in tile.chunks_mut(n_tokens).enumerate() {
                    let r = r0 + j;
                    let wr = &w.data[r * w_row..(r + 1) * w_row];
                    for (t, o) in row_out.iter_mut().enumerate() {
                        *o = dot(wr, &xq[t * a_row..(t + 1) * a_row]);
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
