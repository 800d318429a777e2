//! GrowthBook-compatible hashing of units into buckets.
//!
//! A unit id and a seed hash to a number in `[0, 1)` exactly as the GrowthBook JS SDK's `hash` does, so
//! a split computed here can be served by any GrowthBook SDK. The hash is 32-bit FNV-1a over the
//! **UTF-16 code units** of the strings (JavaScript's `charCodeAt`), not over UTF-8 bytes or code points:
//! the two differ for every non-ASCII id, and an emoji is two steps (one per surrogate).
//!
//! Assignment runs millions of times per second, so strings are hashed in place and concatenations are
//! expressed by chaining the hash state rather than by building the concatenated string.

const FNV_OFFSET_BASIS: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// GrowthBook's hashing algorithms. Experiments that do not name one use v1 in the SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashVersion {
    /// `fnv(value ‖ seed) mod 1000 / 1000`: 1/1000 resolution. Also what namespaces use.
    V1,
    /// `fnv(decimal(fnv(seed ‖ value))) mod 10000 / 10000`: the re-hash removes the bias v1 shows between
    /// experiments whose seeds share a prefix.
    V2,
}

impl HashVersion {
    /// The version with GrowthBook's number; other numbers are not versions (the SDK does not enroll).
    pub fn from_number(version: u32) -> Option<Self> {
        match version {
            1 => Some(HashVersion::V1),
            2 => Some(HashVersion::V2),
            _ => None,
        }
    }

    pub fn number(self) -> u32 {
        match self {
            HashVersion::V1 => 1,
            HashVersion::V2 => 2,
        }
    }
}

/// GrowthBook's `hash(seed, value, version)`: a bucket in `[0, 1)`, or `None` for an unknown version.
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    HashVersion::from_number(version).map(|v| bucket(seed, value, v))
}

/// The bucket in `[0, 1)` of `value` under `seed`, bit-for-bit the f64 the JS SDK computes.
pub fn bucket(seed: &str, value: &str, version: HashVersion) -> f64 {
    match version {
        HashVersion::V1 => bucket_v1(&[value, seed]),
        HashVersion::V2 => {
            let first = fnv1a_utf16_parts(&[seed, value]);
            let second = fnv1a_decimal(first);
            f64::from(second % 10_000) / 10_000.0
        }
    }
}

/// The v1 bucket of the concatenation of `parts`; namespaces hash `value ‖ "__" ‖ namespace` this way.
pub(crate) fn bucket_v1(parts: &[&str]) -> f64 {
    f64::from(fnv1a_utf16_parts(parts) % 1_000) / 1_000.0
}

/// 32-bit FNV-1a over the UTF-16 code units of `text`, as GrowthBook's `hashFnv32a`.
pub fn fnv1a_utf16(text: &str) -> u32 {
    fnv1a_utf16_parts(&[text])
}

/// FNV-1a of the concatenation of `parts`, without concatenating them.
fn fnv1a_utf16_parts(parts: &[&str]) -> u32 {
    parts.iter().fold(FNV_OFFSET_BASIS, |state, part| fnv1a_continue(state, part))
}

fn fnv1a_continue(state: u32, text: &str) -> u32 {
    // An ASCII byte is also its own UTF-16 code unit, and the byte loop is several times faster than
    // transcoding; ids are nearly always ASCII.
    if text.is_ascii() {
        text.bytes().fold(state, |h, byte| fnv1a_step(h, u16::from(byte)))
    } else {
        text.encode_utf16().fold(state, fnv1a_step)
    }
}

#[inline(always)]
fn fnv1a_step(state: u32, unit: u16) -> u32 {
    (state ^ u32::from(unit)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a of the decimal digits of `n` (v2's second round), formatted on the stack.
fn fnv1a_decimal(n: u32) -> u32 {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[start..].iter().fold(FNV_OFFSET_BASIS, |h, &digit| fnv1a_step(h, u16::from(digit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_values() {
        // Reference values of the FNV-1a 32-bit test suite (ASCII, so UTF-16 units equal the bytes).
        assert_eq!(fnv1a_utf16(""), 0x811C_9DC5);
        assert_eq!(fnv1a_utf16("a"), 0xE40C_292C);
        assert_eq!(fnv1a_utf16("foobar"), 0xBF9C_F968);
    }

    #[test]
    fn decimal_round_hashes_the_digits() {
        for n in [0, 7, 10, 4_294_967_295, 1_234_567_890] {
            assert_eq!(fnv1a_decimal(n), fnv1a_utf16(&n.to_string()));
        }
    }

    #[test]
    fn hashes_utf16_units_not_bytes() {
        // 😀 is the surrogate pair D83D DE00.
        let by_units = [0xD83Du16, 0xDE00].into_iter().fold(FNV_OFFSET_BASIS, fnv1a_step);
        assert_eq!(fnv1a_utf16("😀"), by_units);
        assert_eq!(fnv1a_utf16("é"), fnv1a_step(FNV_OFFSET_BASIS, 0xE9), "é is one unit, not its two UTF-8 bytes");
    }

    #[test]
    fn parts_hash_like_their_concatenation() {
        assert_eq!(fnv1a_utf16_parts(&["ab", "ü", "", "😀c"]), fnv1a_utf16("abü😀c"));
    }

    #[test]
    fn version_numbers() {
        assert_eq!(HashVersion::from_number(2), Some(HashVersion::V2));
        assert_eq!(HashVersion::from_number(0), None);
        assert_eq!(HashVersion::V1.number(), 1);
        assert_eq!(hash("abc", "def", 99), None);
    }
}
