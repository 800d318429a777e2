//! Money as exact integers.
//!
//! Prices are per-token fractions of a cent, and a month of traffic sums millions of them, so floats would
//! drift by cents. Every amount is an integer count of pico-dollars (1e-12 USD): a price quoted in USD per
//! million tokens times a token count is then exact, and i128 sums cannot overflow in practice.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// An exact amount of money in pico-dollars (1e-12 USD). May be negative (a credit, a negative gap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Usd(pub i128);

/// Pico-dollars in one dollar.
pub const PICOS_PER_USD: i128 = 1_000_000_000_000;

/// A per-token price, stored as micro-dollars per million tokens (= pico-dollars per token).
/// `$0.15 / 1M tokens` is `PerMTok(150_000)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerMTok(pub i64);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub fn from_picos(picos: i128) -> Self {
        Usd(picos)
    }

    /// Whole micro-dollars, as provider APIs and CSV exports rarely go finer.
    pub fn from_micros(micros: i64) -> Self {
        Usd(micros as i128 * 1_000_000)
    }

    /// Parses a decimal string such as `"12.3456"`, `"-0.5"`, `"1e-3"` or `"1,234.50"` exactly.
    /// `scale` is a power of ten applied to the parsed number: 0 for dollars, -2 for cents.
    pub fn parse_decimal(text: &str, scale: i32) -> Result<Self, MoneyParseError> {
        parse_decimal_picos(text, scale).map(Usd)
    }

    /// For display and JSON only: never sum the result.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / PICOS_PER_USD as f64
    }

    /// Rounded to whole cents, half away from zero, as an f64 for JSON output.
    pub fn to_cents_f64(self) -> f64 {
        let cents = round_div(self.0, PICOS_PER_USD / 100);
        cents as f64 / 100.0
    }

    /// Rounded to `digits` decimal places (0..=12), half away from zero.
    pub fn round_to(self, digits: u32) -> f64 {
        let digits = digits.min(12);
        let unit = 10i128.pow(12 - digits);
        let n = round_div(self.0, unit);
        n as f64 / 10f64.powi(digits as i32)
    }

    pub fn abs(self) -> Usd {
        Usd(self.0.abs())
    }
}

impl PerMTok {
    /// The cost of `tokens` tokens at this price.
    pub fn cost(self, tokens: u64) -> Usd {
        Usd(self.0 as i128 * tokens as i128)
    }

    /// Parses a USD-per-token or USD-per-million-token decimal string exactly.
    pub fn from_usd_per_mtok(text: &str) -> Result<Self, MoneyParseError> {
        // USD per million tokens → micro-dollars per million tokens: scale by 1e6.
        let picos = parse_decimal_picos(text, 0)?;
        let micros = picos / 1_000_000;
        if picos % 1_000_000 != 0 {
            return Err(MoneyParseError::TooPrecise(text.to_string()));
        }
        i64::try_from(micros).map(PerMTok).map_err(|_| MoneyParseError::OutOfRange(text.to_string()))
    }

    pub fn usd_per_mtok(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

fn round_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d { q + n.signum() } else { q }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    #[error("`{0}` is not a decimal number")]
    Invalid(String),
    #[error("`{0}` has more precision than a pico-dollar")]
    TooPrecise(String),
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// Decimal text → pico-dollars, exactly. Accepts a sign, thousands separators (`,` between digit groups),
/// a fraction and an exponent (`1.5e-3`).
fn parse_decimal_picos(text: &str, scale: i32) -> Result<i128, MoneyParseError> {
    let invalid = || MoneyParseError::Invalid(text.to_string());
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = s[i + 1..].parse().map_err(|_| invalid())?;
            (&s[..i], exp)
        }
        None => (s, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    let int_digits: String = if int_part.contains(',') {
        let groups: Vec<&str> = int_part.split(',').collect();
        let well_grouped = !groups[0].is_empty() && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3);
        if !well_grouped {
            return Err(invalid());
        }
        groups.concat()
    } else {
        int_part.to_string()
    };
    if int_digits.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    if !int_digits.bytes().all(|b| b.is_ascii_digit()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits = format!("{int_digits}{frac_part}");
    // value = digits × 10^(exponent + scale − frac_len); in picos multiply by 10^12.
    let shift = exponent + scale - frac_part.len() as i32 + 12;
    let digits = digits.trim_start_matches('0');
    let mut value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| MoneyParseError::OutOfRange(text.to_string()))?
    };
    if shift >= 0 {
        let factor = 10i128.checked_pow(shift as u32).ok_or_else(|| MoneyParseError::OutOfRange(text.to_string()))?;
        value = value.checked_mul(factor).ok_or_else(|| MoneyParseError::OutOfRange(text.to_string()))?;
    } else {
        let divisor = 10i128.checked_pow((-shift) as u32);
        match divisor {
            Some(d) if value % d == 0 => value /= d,
            _ if value == 0 => {}
            _ => return Err(MoneyParseError::TooPrecise(text.to_string())),
        }
    }
    Ok(if negative { -value } else { value })
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0 + rhs.0)
    }
}
impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        self.0 += rhs.0;
    }
}
impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd(self.0 - rhs.0)
    }
}
impl SubAssign for Usd {
    fn sub_assign(&mut self, rhs: Usd) {
        self.0 -= rhs.0;
    }
}
impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(-self.0)
    }
}
impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

impl fmt::Display for Usd {
    /// Dollars with enough decimals to show small per-request amounts: `$0.000123`, `$12.34`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        let sign = if self.0 < 0 { "-" } else { "" };
        let digits = if abs >= 100 * PICOS_PER_USD as u128 {
            2
        } else if abs >= PICOS_PER_USD as u128 / 100 {
            4
        } else {
            6
        };
        write!(f, "{sign}${:.*}", digits, abs as f64 / PICOS_PER_USD as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(Usd::parse_decimal("12.5", 0).unwrap(), Usd(12_500_000_000_000));
        assert_eq!(Usd::parse_decimal("-0.000001", 0).unwrap(), Usd(-1_000_000));
        assert_eq!(Usd::parse_decimal("1,234.50", 0).unwrap(), Usd(1_234_500_000_000_000));
        assert_eq!(Usd::parse_decimal("1.5e-3", 0).unwrap(), Usd(1_500_000_000));
        // Anthropic cost reports: cents as decimal strings.
        assert_eq!(Usd::parse_decimal("123.4567", -2).unwrap(), Usd(1_234_567_000_000));
        assert!(Usd::parse_decimal("12,34", 0).is_err());
        assert!(Usd::parse_decimal("abc", 0).is_err());
        assert!(Usd::parse_decimal("", 0).is_err());
        assert!(Usd::parse_decimal("1e-20", 0).is_err());
    }

    #[test]
    fn per_token_prices_multiply_exactly() {
        let price = PerMTok::from_usd_per_mtok("0.15").unwrap();
        assert_eq!(price, PerMTok(150_000));
        assert_eq!(price.cost(412_000).to_cents_f64(), 0.06);
        assert_eq!(price.cost(1_000_000), Usd(150_000 * 1_000_000));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(Usd(5_000_000_000).to_cents_f64(), 0.01);
        assert_eq!(Usd(-5_000_000_000).to_cents_f64(), -0.01);
        assert_eq!(Usd(4_999_999_999).to_cents_f64(), 0.0);
    }
}
