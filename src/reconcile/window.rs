//! The reconciliation window: a half-open span of UTC time, usually one calendar month.

use std::fmt;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

/// Seconds in a UTC day; invoices and cells work in whole UTC days.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("`{0}` is not a month; write YYYY-MM, e.g. 2026-10")]
    BadMonth(String),
    #[error(
        "`{0}` is not a time; write an RFC 3339 time with its offset (2026-10-01T00:00:00Z) or a date (2026-10-01, read as UTC midnight)"
    )]
    BadTime(String),
    #[error("the window is empty: --until ({until}) is not after --since ({since})")]
    Empty { since: Timestamp, until: Timestamp },
}

impl Window {
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Window, WindowError> {
        if end <= start {
            return Err(WindowError::Empty { since: start, until: end });
        }
        Ok(Window { start, end })
    }

    /// A calendar month in UTC: `2026-10` is `[2026-10-01T00:00Z, 2026-11-01T00:00Z)`.
    pub fn month(text: &str) -> Result<Window, WindowError> {
        let bad = || WindowError::BadMonth(text.to_string());
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        let year: i16 = year.parse().map_err(|_| bad())?;
        let month: i8 = month.parse().map_err(|_| bad())?;
        let first = Date::new(year, month, 1).map_err(|_| bad())?;
        let next = first.checked_add(1.month()).map_err(|_| bad())?;
        Window::new(utc_midnight(first), utc_midnight(next))
    }

    /// `--since`/`--until`: RFC 3339 times (any offset, normalized to UTC) or dates (UTC midnight).
    pub fn between(since: &str, until: &str) -> Result<Window, WindowError> {
        Window::new(parse_bound(since)?, parse_bound(until)?)
    }

    pub fn contains(&self, ts: Timestamp) -> bool {
        self.start <= ts && ts < self.end
    }

    pub fn contains_seconds(&self, seconds: i64) -> bool {
        self.start.as_second() <= seconds && seconds < self.end.as_second()
    }

    /// The last UTC day that the window touches: the day whose list prices a tracing dashboard would show.
    pub fn last_day(&self) -> Date {
        let last_instant = self.end.as_second() - 1;
        day_date(last_instant.div_euclid(SECONDS_PER_DAY) as i32)
    }

    /// Whole UTC days in the window (rounded up).
    pub fn days(&self) -> i64 {
        (self.end.as_second() - self.start.as_second() + SECONDS_PER_DAY - 1) / SECONDS_PER_DAY
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} – {}", self.start, self.end)
    }
}

fn parse_bound(text: &str) -> Result<Timestamp, WindowError> {
    let trimmed = text.trim();
    if let Ok(ts) = trimmed.parse::<Timestamp>() {
        return Ok(ts);
    }
    trimmed.parse::<Date>().map(utc_midnight).map_err(|_| WindowError::BadTime(text.to_string()))
}

/// Midnight UTC at the start of `date`.
pub fn utc_midnight(date: Date) -> Timestamp {
    let days = date.since(Date::new(1970, 1, 1).expect("epoch")).map(|s| s.get_days() as i64).unwrap_or(0);
    Timestamp::from_second(days * SECONDS_PER_DAY).expect("a civil date is a valid timestamp")
}

/// The UTC day number (days since 1970-01-01) of an instant.
pub fn day_of(ts: Timestamp) -> i32 {
    ts.as_second().div_euclid(SECONDS_PER_DAY) as i32
}

/// The calendar date of a UTC day number.
pub fn day_date(day: i32) -> Date {
    let epoch = Date::new(1970, 1, 1).expect("epoch");
    epoch.checked_add((day as i64).days()).unwrap_or(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_half_open_in_utc() {
        let w = Window::month("2026-10").unwrap();
        assert_eq!(w.start.to_string(), "2026-10-01T00:00:00Z");
        assert_eq!(w.end.to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(w.last_day(), Date::new(2026, 10, 31).unwrap());
        assert_eq!(w.days(), 31);
        assert!(w.contains("2026-10-31T23:59:59.999Z".parse().unwrap()));
        assert!(!w.contains("2026-11-01T00:00:00Z".parse().unwrap()));
        let december = Window::month("2026-12").unwrap();
        assert_eq!(december.end.to_string(), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn bounds_accept_offsets_and_dates() {
        let w = Window::between("2026-10-01T02:00:00+02:00", "2026-10-15").unwrap();
        assert_eq!(w.start.to_string(), "2026-10-01T00:00:00Z");
        assert_eq!(w.end.to_string(), "2026-10-15T00:00:00Z");
        assert!(matches!(Window::between("2026-10-15", "2026-10-01"), Err(WindowError::Empty { .. })));
        assert!(matches!(Window::month("2026-13"), Err(WindowError::BadMonth(_))));
        assert!(matches!(Window::between("yesterday", "2026-10-01"), Err(WindowError::BadTime(_))));
    }

    #[test]
    fn days_round_trip() {
        let ts: Timestamp = "2026-10-05T13:00:00Z".parse().unwrap();
        assert_eq!(day_date(day_of(ts)), Date::new(2026, 10, 5).unwrap());
        assert_eq!(day_of(utc_midnight(Date::new(2026, 10, 5).unwrap())), day_of(ts));
    }
}
