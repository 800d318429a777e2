//! The hash and slot functions of the perfect hash from token bytes to rank.
//!
//! Shared word for word by `build.rs` (which builds the tables) and the tokenizer (which reads them):
//! both include this file, so the two cannot disagree. Hash-and-displace (CHD): a key's hash picks a
//! bucket; the bucket's displacement, found at build time, sends every key of the bucket to a free slot.

/// A 64-bit hash of a token's bytes. Tokens are at most 128 bytes and mostly under 8, so it reads whole
/// words and ends with a strong finalizer rather than being clever per byte.
#[inline]
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    // The length goes in first so that a tail padded with zeros differs from a longer key.
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        h = (h ^ word).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(buf)).wrapping_mul(0x94D0_49BB_1331_11EB).rotate_left(29);
    }
    mix(h)
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
