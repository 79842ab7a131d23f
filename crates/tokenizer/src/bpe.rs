//! Byte-pair merging of one pre-tokenized word, by merge rank.
//!
//! Follows llama-vocab.cpp `llm_tokenizer_bpe_session::tokenize`: the word
//! starts as one symbol per byte (its byte-level code point); a priority queue
//! holds every adjacent pair that has a merge, ordered by (rank, left
//! position); the best pair is merged unless it went stale, and the new
//! neighbours are queued. llama.cpp keys merges by strings; here symbols carry
//! token ids and merges are keyed by `(left id, right id)`, which is the same
//! thing because token texts are unique and every merge result is a token
//! (both checked when the vocabulary is built).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::fxhash::FxBuildHasher;

/// `(left id, right id)` → `(rank, merged id)`.
pub(crate) type MergeMap = HashMap<u64, (u32, u32), FxBuildHasher>;

pub(crate) fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// Marks a symbol with no token (a byte whose byte-level character is not in
/// the vocabulary); it never merges and produces no output, as in llama.cpp.
pub(crate) const NO_TOKEN: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    alive: bool,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// A queued adjacent pair. The derived order is lexicographic in field order,
/// so the min-heap pops the lowest rank, then the leftmost pair (llama.cpp
/// `llm_bigram_bpe::comparator`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
    merged: u32,
}

/// Reusable buffers for [`merge_word`].
#[derive(Default)]
pub(crate) struct BpeScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<Bigram>>,
}

impl BpeScratch {
    fn push_pair(&mut self, merges: &MergeMap, left: usize, right: usize) {
        if left == NIL || right == NIL {
            return;
        }
        let (l, r) = (self.syms[left].id, self.syms[right].id);
        if l == NO_TOKEN || r == NO_TOKEN {
            return;
        }
        if let Some(&(rank, merged)) = merges.get(&pair_key(l, r)) {
            self.heap.push(Reverse(Bigram {
                rank,
                left,
                right,
                left_id: l,
                right_id: r,
                merged,
            }));
        }
    }
}

/// Merge the symbols `initial` (one token id per byte, or [`NO_TOKEN`]) and
/// append the resulting token ids to `out`.
pub(crate) fn merge_word(
    merges: &MergeMap,
    initial: &[u32],
    s: &mut BpeScratch,
    out: &mut Vec<u32>,
) {
    if initial.len() == 1 {
        if initial[0] != NO_TOKEN {
            out.push(initial[0]);
        }
        return;
    }
    s.syms.clear();
    s.heap.clear();
    let n = initial.len();
    for (i, &id) in initial.iter().enumerate() {
        let prev = if i == 0 { NIL } else { i - 1 };
        let next = if i + 1 == n { NIL } else { i + 1 };
        s.syms.push(Sym {
            id,
            alive: true,
            prev,
            next,
        });
    }
    for i in 1..n {
        s.push_pair(merges, i - 1, i);
    }
    while let Some(Reverse(Bigram {
        left,
        right,
        left_id,
        right_id,
        merged,
        ..
    })) = s.heap.pop()
    {
        let (ls, rs) = (s.syms[left], s.syms[right]);
        // stale: either side was merged away or has grown since it was queued
        // (llama.cpp: `left_token + right_token != bigram.text`)
        if !ls.alive || !rs.alive || ls.id != left_id || rs.id != right_id {
            continue;
        }
        s.syms[left].id = merged;
        s.syms[left].next = rs.next;
        s.syms[right].alive = false;
        if rs.next != NIL {
            s.syms[rs.next].prev = left;
        }
        s.push_pair(merges, ls.prev, left);
        s.push_pair(merges, left, rs.next);
    }
    out.extend(
        s.syms
            .iter()
            .filter(|x| x.alive && x.id != NO_TOKEN)
            .map(|x| x.id),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Toy vocabulary: a=0 b=1 c=2 ab=3 bc=4 abc=5; merges "a b" (rank 0),
    /// "b c" (rank 1), "ab c" (rank 2).
    fn toy() -> MergeMap {
        let mut m = MergeMap::default();
        m.insert(pair_key(0, 1), (0, 3));
        m.insert(pair_key(1, 2), (1, 4));
        m.insert(pair_key(3, 2), (2, 5));
        m
    }

    fn run(m: &MergeMap, ids: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        merge_word(m, ids, &mut BpeScratch::default(), &mut out);
        out
    }

    #[test]
    fn merges_by_rank() {
        let m = toy();
        assert_eq!(run(&m, &[0, 1, 2]), [5]); // a b c -> ab c -> abc
        assert_eq!(run(&m, &[1, 2]), [4]);
        assert_eq!(run(&m, &[0, 1, 0, 1]), [3, 3]);
        assert_eq!(run(&m, &[2, 1, 2]), [2, 4]);
        // equal ranks resolve leftmost first: "b c b c" -> bc bc
        assert_eq!(run(&m, &[1, 2, 1, 2]), [4, 4]);
    }

    #[test]
    fn missing_bytes_are_dropped_and_block_merges() {
        let m = toy();
        assert_eq!(run(&m, &[0, NO_TOKEN, 1]), [0, 1]);
        assert_eq!(run(&m, &[NO_TOKEN]), Vec::<u32>::new());
    }
}
