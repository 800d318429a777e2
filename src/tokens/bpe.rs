//! Byte-pair encoding over static vocabulary tables: the same merges, in the same order, as tiktoken.
//!
//! The tables are built by `build.rs` and read in place (little-endian words straight from the binary's
//! read-only data), so using one costs nothing up front; the pages a count touches are faulted in on
//! demand.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::phf;

pub(super) type Rank = u32;

/// One encoding's vocabulary: a perfect hash from token bytes to rank, over the concatenated bytes.
pub(super) struct Table {
    pub(super) seed: u64,
    pub(super) buckets: u32,
    pub(super) slots: u32,
    /// Every token's bytes, concatenated in rank order.
    pub(super) arena: &'static [u8],
    /// u64 LE × slots: `rank << 32 | len << 24 | offset` of the token in each slot, `u64::MAX` when
    /// empty. Holding the bytes' place in the slot saves a dependent load per lookup.
    pub(super) slot_entries: &'static [u8],
    /// u16 LE × buckets.
    pub(super) displacements: &'static [u8],
    /// u32 LE × 65536: the rank of each two-byte token, `u32::MAX` for pairs that are not tokens. Half
    /// of all lookups are of adjacent byte pairs (every merge starts from them); this skips their hash.
    pub(super) pairs: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/tables.rs"));

/// A slot's token: rank and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) rank: Rank,
    pub(super) offset: usize,
    pub(super) len: usize,
}

impl Table {
    /// The token in slot `i`, if any.
    #[inline]
    pub(super) fn entry(&self, i: usize) -> Option<Entry> {
        let b = &self.slot_entries[8 * i..8 * i + 8];
        let e = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        (e != u64::MAX).then_some(Entry {
            rank: (e >> 32) as Rank,
            offset: (e & 0xFF_FFFF) as usize,
            len: (e >> 24 & 0xFF) as usize,
        })
    }

    /// The rank of the token whose bytes are `bytes`, if there is one.
    #[inline]
    pub(super) fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        if let &[a, b] = bytes {
            let rank = self.pair_rank(a, b);
            return (rank != Rank::MAX).then_some(rank);
        }
        let h = phf::hash(bytes, self.seed);
        let b = phf::bucket(h, self.buckets) as usize;
        let d = u16::from_le_bytes([self.displacements[2 * b], self.displacements[2 * b + 1]]);
        let e = self.entry(phf::slot(h, d, self.slots) as usize)?;
        // A perfect hash places every token but says nothing of other strings: compare the bytes.
        if e.len != bytes.len() {
            return None;
        }
        let token = &self.arena[e.offset..e.offset + e.len];
        // Most lookups are short: one word each instead of a call to memcmp.
        let equal = if bytes.len() <= 8 { phf::word(token) == phf::word(bytes) } else { token == bytes };
        equal.then_some(e.rank)
    }

    #[inline]
    fn pair_rank(&self, a: u8, b: u8) -> Rank {
        let i = 4 * (usize::from(a) << 8 | usize::from(b));
        let w = &self.pairs[i..i + 4];
        u32::from_le_bytes([w[0], w[1], w[2], w[3]])
    }

    #[inline]
    fn rank_or_max(&self, bytes: &[u8]) -> Rank {
        self.rank(bytes).unwrap_or(Rank::MAX)
    }

    /// Splits one pre-tokenized piece into tokens, calling `emit` with each token's bytes in order.
    /// `parts` is scratch space, kept by the caller so that a count allocates once, not per piece.
    ///
    /// Mirrors tiktoken's `CoreBPE::encode` and `byte_pair_encode` step for step (a whole piece that is a
    /// token is one token; under 100 bytes the quadratic merge, else the heap merge) so that the result
    /// is tiktoken's even where two merge orders could tie.
    pub(super) fn split(&self, piece: &[u8], parts: &mut Vec<(u32, Rank)>, mut emit: impl FnMut(&[u8])) {
        if piece.len() <= 1 || self.rank(piece).is_some() {
            // Every single byte is a token.
            emit(piece);
        } else if piece.len() < 100 {
            self.merge_small(piece, parts, emit);
        } else {
            self.merge_large(piece, emit);
        }
    }

    /// tiktoken's `_byte_pair_merge`: repeatedly merge the lowest-ranked adjacent pair (the leftmost of
    /// equals). `parts[i]` is where part `i` starts and the rank of merging parts `i` and `i + 1`.
    fn merge_small(&self, piece: &[u8], parts: &mut Vec<(u32, Rank)>, mut emit: impl FnMut(&[u8])) {
        parts.clear();
        let mut min = (Rank::MAX, usize::MAX);
        for i in 0..piece.len() - 1 {
            let rank = self.pair_rank(piece[i], piece[i + 1]);
            if rank < min.0 {
                min = (rank, i);
            }
            parts.push((i as u32, rank));
        }
        parts.push(((piece.len() - 1) as u32, Rank::MAX));
        parts.push((piece.len() as u32, Rank::MAX));

        // The rank of merging parts i, i+1 and i+2 (part i+1 is about to be removed).
        let rank_after = |parts: &[(u32, Rank)], i: usize| {
            if i + 3 < parts.len() {
                self.rank_or_max(&piece[parts[i].0 as usize..parts[i + 3].0 as usize])
            } else {
                Rank::MAX
            }
        };
        while min.0 != Rank::MAX {
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = rank_after(parts, i - 1);
            }
            parts[i].1 = rank_after(parts, i);
            parts.remove(i + 1);

            min = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
        }
        for w in parts.windows(2) {
            emit(&piece[w[0].0 as usize..w[1].0 as usize]);
        }
    }

    /// tiktoken's `_byte_pair_merge_large`: the same merges kept in a heap, O(n log n) for long pieces
    /// (a long run of spaces or digits-free symbols is one piece).
    fn merge_large(&self, piece: &[u8], mut emit: impl FnMut(&[u8])) {
        struct State {
            prev: usize,
            end: usize,
            next_end: usize,
            next_rank: Rank,
        }
        let mut state = Vec::with_capacity(piece.len());
        state.push(State { prev: usize::MAX, end: 1, next_end: 2, next_rank: Rank::MAX });
        let mut heap = BinaryHeap::with_capacity(piece.len());
        for i in 0..piece.len() - 1 {
            if let Some(rank) = self.rank(&piece[i..i + 2]) {
                heap.push(Merge { start: i, rank });
                state[i].next_rank = rank;
            }
            state.push(State { prev: i, end: i + 2, next_end: i + 3, next_rank: Rank::MAX });
        }

        // Records the merge of the token at `start` with the one ending at `next_end`, if it is a token.
        let potential_merge = |state: &mut Vec<State>, heap: &mut BinaryHeap<Merge>, start: usize, next_end: usize| {
            state[start].next_end = next_end;
            state[start].next_rank = Rank::MAX;
            if next_end <= piece.len()
                && let Some(rank) = self.rank(&piece[start..next_end])
            {
                heap.push(Merge { start, rank });
                state[start].next_rank = rank;
            }
        };
        while let Some(left) = heap.pop() {
            if left.rank != state[left.start].next_rank {
                continue; // superseded by an earlier merge
            }
            let left_start = left.start;
            let right_start = state[left_start].end;
            let right_end = state[left_start].next_end;
            let right_next_end = state[right_start].next_end;
            state[left_start].end = right_end;
            potential_merge(&mut state, &mut heap, left_start, right_next_end);
            if right_end < state.len() {
                state[right_end].prev = left_start;
            }
            if left_start > 0 {
                let prev_start = state[left_start].prev;
                potential_merge(&mut state, &mut heap, prev_start, right_end);
            }
            state[right_start].next_rank = Rank::MAX;
        }
        let mut i = 0;
        while i < state.len() {
            emit(&piece[i..state[i].end]);
            i = state[i].end;
        }
    }
}

/// A candidate merge; the heap pops the lowest rank, then the leftmost start (as tiktoken's does).
#[derive(PartialEq, Eq)]
struct Merge {
    start: usize,
    rank: Rank,
}

impl Ord for Merge {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then_with(|| other.start.cmp(&self.start))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
