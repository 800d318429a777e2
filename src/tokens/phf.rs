//! The hash and slot functions of the perfect hash from token bytes to rank.
//!
//! Shared word for word by `build.rs` (which builds the tables) and the tokenizer (which reads them):
//! both include this file, so the two cannot disagree. Hash-and-displace (CHD): a key's hash picks a
//! bucket; the bucket's displacement, found at build time, sends every key of the bucket to a free slot.

/// A 64-bit hash of a token's bytes. Tokens are at most 128 bytes and most lookups are of 2 to 8
/// bytes, so short keys are read as one word (no loop, no copy) and everything ends in a strong finalizer.
#[inline]
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    // The length goes in first: `word` reads a key's bytes only together with its length.
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    if bytes.len() <= 8 {
        h = (h ^ word(bytes)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    } else {
        let mut chunks = bytes[..bytes.len() - 1].chunks_exact(8);
        for chunk in &mut chunks {
            h = (h ^ u64_le(chunk)).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(29);
        }
        // The last 8 bytes, overlapping the chunks read above.
        h = (h ^ u64_le(&bytes[bytes.len() - 8..])).wrapping_mul(0x94D0_49BB_1331_11EB);
    }
    mix(h)
}

/// Up to 8 bytes as one word, with overlapping reads instead of a copy. For a given length the word
/// determines the bytes (4 to 8: the first and last four cover them all; 1 to 3: the first, middle and
/// last byte are all of them), so equal lengths and equal words mean equal keys.
#[inline]
pub fn word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        u64::from(u32_le(&bytes[..4])) << 32 | u64::from(u32_le(&bytes[n - 4..]))
    } else if n > 0 {
        u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16
    } else {
        0
    }
}

#[inline]
fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
fn u64_le(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The murmur3 64-bit finalizer: a bijection that spreads every input bit over the output.
#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Maps `x` uniformly onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
fn reduce(x: u32, n: u32) -> u32 {
    ((u64::from(x) * u64::from(n)) >> 32) as u32
}

/// The bucket of a key: taken from the hash's low half.
#[inline]
pub fn bucket(h: u64, buckets: u32) -> u32 {
    reduce(h as u32, buckets)
}

/// The slot of a key under displacement `d`. The hash is re-mixed with `d` (not just offset by it) so
/// that two keys of one bucket land on unrelated slots for every `d`, and some `d` separates them.
#[inline]
pub fn slot(h: u64, d: u16, slots: u32) -> u32 {
    reduce((mix(h ^ u64::from(d).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32, slots)
}
