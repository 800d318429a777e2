//! Exact arithmetic for the waterfall: token quantities by class, unit prices and valuations.
//!
//! Money stays integral end to end. Shares of a billed total (the traced part of a cell, one group's part
//! of a cost line) make token counts fractional, so quantities are kept in micro-tokens and unit prices in
//! atto-dollars per token; a valuation is then an integer product rounded once to a pico-dollar.

use std::ops::{Add, AddAssign, Sub};

use crate::money::{PerMTok, Usd};
use crate::pricing::TokenClass;
use crate::trace::model::Usage;

/// The token classes a bill distinguishes, in the order of every `[_; 5]` below. Reasoning tokens are
/// billed as output by every provider and are counted there.
pub const CLASSES: [TokenClass; 5] =
    [TokenClass::Input, TokenClass::CacheRead, TokenClass::CacheWrite5m, TokenClass::CacheWrite1h, TokenClass::Output];
/// Indices of the input classes (uncached, cache read, cache writes) in [`CLASSES`].
pub const INPUT: std::ops::Range<usize> = 0..4;
/// Index of output in [`CLASSES`].
pub const OUTPUT: usize = 4;

const MICRO: i128 = 1_000_000;
/// Atto-dollars per pico-dollar.
const ATTO_PER_PICO: i128 = 1_000_000;

/// Whole tokens by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Counts(pub [u64; 5]);

impl Counts {
    pub fn from_usage(usage: &Usage) -> Counts {
        Counts([usage.input_uncached, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h, usage.output_total])
    }

    pub fn input(&self) -> u64 {
        self.0[INPUT].iter().sum()
    }

    pub fn output(&self) -> u64 {
        self.0[OUTPUT]
    }

    pub fn cache_write(&self) -> u64 {
        self.0[2] + self.0[3]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&t| t == 0)
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, rhs: Counts) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a += b;
        }
    }
}

/// Micro-tokens by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Qty(pub [i128; 5]);

impl Qty {
    pub fn from_counts(counts: &Counts) -> Qty {
        Qty(counts.0.map(|t| t as i128 * MICRO))
    }

    pub fn input(&self) -> i128 {
        self.0[INPUT].iter().sum()
    }

    pub fn output(&self) -> i128 {
        self.0[OUTPUT]
    }

    /// This quantity times `num / den` (zero when `den` is zero).
    pub fn scaled(&self, num: i128, den: i128) -> Qty {
        Qty(self.0.map(|q| mul_div(q, num, den)))
    }

    /// With the input classes replaced by `input` (a quantity whose output is ignored).
    pub fn with_input(&self, input: &Qty) -> Qty {
        let mut q = *self;
        q.0[INPUT].copy_from_slice(&input.0[INPUT]);
        q
    }

    pub fn with_output(&self, output: i128) -> Qty {
        let mut q = *self;
        q.0[OUTPUT] = output;
        q
    }

    /// `total` micro-tokens of input split in the proportions of `split`'s input classes; the remainder of
    /// the rounding goes to the largest class so that the total is exact.
    pub fn input_split_like(split: &Qty, total: i128) -> Qty {
        let whole = split.input();
        let mut q = Qty::default();
        if whole == 0 {
            q.0[0] = total;
            return q;
        }
        for class in INPUT {
            q.0[class] = mul_div(split.0[class], total, whole);
        }
        let largest = INPUT.max_by_key(|&c| split.0[c]).unwrap_or(0);
        q.0[largest] += total - q.input();
        q
    }

    /// Whole tokens, rounded, for display.
    pub fn tokens(&self, class: usize) -> i128 {
        round_div(self.0[class], MICRO)
    }

    pub fn input_tokens(&self) -> i128 {
        round_div(self.input(), MICRO)
    }
}

impl Add for Qty {
    type Output = Qty;
    fn add(mut self, rhs: Qty) -> Qty {
        self += rhs;
        self
    }
}

impl AddAssign for Qty {
    fn add_assign(&mut self, rhs: Qty) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a += b;
        }
    }
}

impl Sub for Qty {
    type Output = Qty;
    fn sub(mut self, rhs: Qty) -> Qty {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a -= b;
        }
        self
    }
}

/// Atto-dollars (1e-18 USD) per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnitPrice(pub i128);

impl UnitPrice {
    pub fn from_per_mtok(price: PerMTok) -> UnitPrice {
        UnitPrice(price.0 as i128 * ATTO_PER_PICO)
    }

    /// The average price of `qty` micro-tokens that cost `usd`: what an invoice implies.
    pub fn implied(usd: Usd, qty: i128) -> Option<UnitPrice> {
        (qty > 0).then(|| UnitPrice(mul_div(usd.0, ATTO_PER_PICO * MICRO, qty)))
    }

    /// This price times `num / den`.
    pub fn scaled(self, num: i128, den: i128) -> UnitPrice {
        UnitPrice(mul_div(self.0, num, den))
    }

    /// USD per million tokens, for evidence.
    pub fn usd_per_mtok(self) -> f64 {
        self.0 as f64 / 1e12
    }
}

/// A price for every class.
pub type Prices = [UnitPrice; 5];

/// The value of `qty` at `prices`, rounded once to a pico-dollar.
pub fn value(qty: &Qty, prices: &Prices) -> Usd {
    let atto_micro: i128 = qty.0.iter().zip(prices).map(|(q, p)| q * p.0).sum();
    Usd(round_div(atto_micro, ATTO_PER_PICO * MICRO))
}

/// The share `num / den` of an amount (zero when `den` is zero).
pub fn share(amount: Usd, num: i128, den: i128) -> Usd {
    Usd(mul_div(amount.0, num, den))
}

/// `a × b / d`, rounded half away from zero; zero when `d` is zero. Products beyond i128 (amounts far
/// beyond any invoice) lose precision rather than overflow.
pub fn mul_div(a: i128, b: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    match a.checked_mul(b) {
        Some(p) => round_div(p, d),
        None => {
            let (big, small) = if a.abs() >= b.abs() { (a, b) } else { (b, a) };
            round_div(big, d).saturating_mul(small)
        }
    }
}

/// `n / d` rounded half away from zero.
pub fn round_div(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d.abs() { q + (n.signum() * d.signum()) } else { q }
}

/// Splits `total` into parts proportional to `weights` (non-negative), exactly: the rounding remainder goes
/// to the parts with the largest fractional shares. All-zero weights split evenly.
pub fn allocate(total: i128, weights: &[i128]) -> Vec<i128> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: i128 = weights.iter().sum();
    let weights: Vec<i128> = if sum > 0 { weights.to_vec() } else { vec![1; weights.len()] };
    let sum: i128 = weights.iter().sum();
    let mut parts: Vec<i128> = weights.iter().map(|w| (total * w).div_euclid(sum)).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((total * weights[i]).rem_euclid(sum)));
    let missing = total - parts.iter().sum::<i128>();
    for &i in order.iter().take(missing.unsigned_abs() as usize) {
        parts[i] += missing.signum();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_price_values_whole_tokens_exactly() {
        let price = UnitPrice::from_per_mtok(PerMTok::from_usd_per_mtok("0.15").unwrap());
        let qty = Qty::from_counts(&Counts([412_000, 0, 0, 0, 0]));
        assert_eq!(value(&qty, &[price, price, price, price, price]), PerMTok(150_000).cost(412_000));
    }

    #[test]
    fn an_implied_price_gives_back_the_amount() {
        let qty = Qty::from_counts(&Counts([0, 0, 0, 0, 3]));
        let usd = Usd(1_000_000_000_000);
        let price = UnitPrice::implied(usd, qty.0[OUTPUT]).unwrap();
        let zero = UnitPrice::default();
        let back = value(&qty, &[zero, zero, zero, zero, price]);
        assert!((back.0 - usd.0).abs() <= 1, "{back:?}");
    }

    #[test]
    fn splitting_input_keeps_the_total() {
        let split = Qty::from_counts(&Counts([3, 5, 1, 0, 9]));
        let q = Qty::input_split_like(&split, 1_000_001);
        assert_eq!(q.input(), 1_000_001);
        assert_eq!(q.0[OUTPUT], 0);
    }

    #[test]
    fn allocation_is_exact_and_proportional() {
        assert_eq!(allocate(10, &[1, 1, 1]).iter().sum::<i128>(), 10);
        assert_eq!(allocate(-10, &[1, 1, 1]).iter().sum::<i128>(), -10);
        assert_eq!(allocate(100, &[1, 3]), vec![25, 75]);
        assert_eq!(allocate(7, &[0, 0]), vec![4, 3]);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_div(5, 10), 1);
        assert_eq!(round_div(-5, 10), -1);
        assert_eq!(round_div(4, 10), 0);
        assert_eq!(mul_div(7, 3, 2), 11);
    }
}
