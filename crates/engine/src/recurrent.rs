//! The recurrent part of a hybrid (qwen35) sequence's cache: per Gated
//! DeltaNet layer, the last `d_conv - 1` inputs of the causal convolution
//! and one `d x d` delta-rule state per v head. Unlike key/value rows it is
//! a fixed size per sequence, whatever its length, and it summarises all
//! the positions before it: it is only valid at the exact position it was
//! computed for. Truncating a sequence into its middle therefore cannot
//! keep it; [`RecurrentCache::rewind`] falls back to the snapshot taken at
//! the end of the last prompt (or to the empty state), and the caller
//! re-evaluates the tokens in between (`Session` does it lazily).
//!
//! Speculative decoding verifies drafts as one span and may have to drop
//! some of them again: [`RecurrentCache::begin_verify`] keeps the state
//! from before the span as a checkpoint and has the span run the recurrence
//! token by token (as decoding does, so that every row and the state equal
//! those of evaluating the tokens one at a time); after a rejection the
//! caller restores the checkpoint ([`RecurrentCache::rollback`]) and
//! evaluates the kept tokens again, token by token.
//!
//! Layout of one layer's floats (llama.cpp keeps the same two tensors per
//! layer, `r` and `s`, in llama-memory-recurrent.cpp):
//! `conv[d_conv - 1][conv_dim]` (oldest input first), then
//! `delta[n_v_heads][d][d]` (`S[j][i]`: row `j` is value dim `j`, column
//! `i` key dim `i`, as ggml's gated_delta_net stores it).

/// All DeltaNet layers' states of one sequence, at one position.
#[derive(Clone, Debug)]
pub struct RecurrentState {
    /// `n_layers * per_layer` floats.
    data: Vec<f32>,
    per_layer: usize,
}

impl RecurrentState {
    fn new(n_layers: usize, per_layer: usize) -> Self {
        Self {
            data: vec![0.0; n_layers * per_layer],
            per_layer,
        }
    }

    /// Recurrent layer `i`'s floats (conv rows, then delta states).
    pub(crate) fn layer_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.per_layer..(i + 1) * self.per_layer]
    }

    fn clear(&mut self) {
        self.data.fill(0.0);
    }

    fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// The live state, valid at the cache's length, and one snapshot.
#[derive(Clone, Debug)]
pub struct RecurrentCache {
    pub(crate) state: RecurrentState,
    /// The state after the first `.0` positions (taken at the end of a
    /// prompt): where a later conversation turn that shares the prompt, but
    /// not what was generated after it, can resume.
    snapshot: Option<(usize, RecurrentState)>,
    /// The logits after the snapshot's position, when the caller kept
    /// them (the server: a request with the very same prompt resumes there
    /// without evaluating anything); empty otherwise.
    snapshot_logits: Vec<f32>,
    /// The state before a verified span, while one may be rolled back.
    checkpoint: Option<(usize, RecurrentState)>,
    /// Spans run the delta rule token by token (decode's form) instead of
    /// in chunks: set for speculative verification.
    pub(crate) token_by_token: bool,
}

impl RecurrentCache {
    pub(crate) fn new(n_layers: usize, per_layer: usize) -> Self {
        Self {
            state: RecurrentState::new(n_layers, per_layer),
            snapshot: None,
            snapshot_logits: Vec::new(),
            checkpoint: None,
            token_by_token: false,
        }
    }

    /// Before a verified span at position `pos`: keep the live state as the
    /// checkpoint (reusing its memory) and run spans token by token.
    pub(crate) fn begin_verify(&mut self, pos: usize) {
        match &mut self.checkpoint {
            Some((p, s)) => {
                *p = pos;
                s.data.copy_from_slice(&self.state.data);
            }
            None => self.checkpoint = Some((pos, self.state.clone())),
        }
        self.token_by_token = true;
    }

    /// Back to the state of the last [`Self::begin_verify`]; returns its
    /// position (`None`: no checkpoint).
    pub(crate) fn rollback(&mut self) -> Option<usize> {
        let (p, s) = self.checkpoint.as_ref()?;
        self.state.data.copy_from_slice(&s.data);
        Some(*p)
    }

    /// Remember the live state as the state at position `pos`, and the
    /// logits after it (empty: not kept).
    pub(crate) fn save_with_logits(&mut self, pos: usize, logits: &[f32]) {
        self.save(pos);
        self.snapshot_logits.extend_from_slice(logits);
    }

    /// The logits kept with a snapshot at exactly `pos`.
    pub(crate) fn snapshot_logits(&self, pos: usize) -> Option<&[f32]> {
        (self.snapshot_at() == Some(pos) && !self.snapshot_logits.is_empty())
            .then_some(&self.snapshot_logits[..])
    }

    /// Remember the live state as the state at position `pos`.
    pub(crate) fn save(&mut self, pos: usize) {
        self.snapshot_logits.clear();
        match &mut self.snapshot {
            Some((p, s)) => {
                *p = pos;
                s.data.copy_from_slice(&self.state.data);
            }
            None => self.snapshot = Some((pos, self.state.clone())),
        }
    }

    /// Make the live state the one at the latest known position `<= len`
    /// (the snapshot, or the empty state at 0) and return that position.
    /// A snapshot beyond `len` describes tokens about to be replaced and
    /// is dropped.
    pub(crate) fn rewind(&mut self, len: usize) -> usize {
        match &self.snapshot {
            Some((p, s)) if *p <= len => {
                self.state.data.copy_from_slice(&s.data);
                *p
            }
            _ => {
                self.snapshot = None;
                self.snapshot_logits.clear();
                self.state.clear();
                0
            }
        }
    }

    /// The state of `src` at position `n`, if `src` knows it (its live
    /// state at `src_len`, or its snapshot); else the empty state. Returns
    /// the position the copied state is at.
    pub(crate) fn copy_from(&mut self, src: &RecurrentCache, src_len: usize, n: usize) -> usize {
        self.snapshot = None;
        self.snapshot_logits.clear();
        if n == src_len {
            self.state.data.copy_from_slice(&src.state.data);
            return n;
        }
        match &src.snapshot {
            Some((p, s)) if *p <= n => {
                self.state.data.copy_from_slice(&s.data);
                self.snapshot = Some((*p, s.clone()));
                *p
            }
            _ => {
                self.state.clear();
                0
            }
        }
    }

    /// The position of the snapshot, if any.
    pub(crate) fn snapshot_at(&self) -> Option<usize> {
        self.snapshot.as_ref().map(|(p, _)| *p)
    }

    /// Bytes held (live state and snapshot).
    pub fn bytes(&self) -> usize {
        self.state.bytes()
            + self.snapshot.as_ref().map_or(0, |(_, s)| s.bytes())
            + self.checkpoint.as_ref().map_or(0, |(_, s)| s.bytes())
            + self.snapshot_logits.len() * 4
    }
}
