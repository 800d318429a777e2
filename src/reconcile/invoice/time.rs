//! Times in invoice files, normalized to UTC.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::reconcile::window::{SECONDS_PER_DAY, utc_midnight};

/// A parsed bucket bound, and whether it was written as a bare date (a whole UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    pub ts: Timestamp,
    pub date_only: bool,
}

/// Unix seconds (OpenAI's `start_time`), RFC 3339 with any offset, or a bare date (UTC midnight). A time
/// of day without an offset is refused: guessing its zone would move usage between days.
pub fn parse(text: &str) -> Result<Instant, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the time is empty".into());
    }
    if let Ok(seconds) = t.parse::<i64>() {
        return unix_seconds(seconds).map(|ts| Instant { ts, date_only: false });
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(Instant { ts, date_only: false });
    }
    // jiff reads a date from a longer date-time too; only a bare date is a whole UTC day.
    if t.len() > 10 && t.parse::<jiff::civil::DateTime>().is_ok() {
        return Err(format!(
            "time `{t}` has no UTC offset; export with UTC times (…Z) or times with their offset (…+02:00)"
        ));
    }
    if let Ok(date) = t.parse::<Date>() {
        return Ok(Instant { ts: utc_midnight(date), date_only: true });
    }
    Err(format!("`{t}` is not a time (expected RFC 3339 such as 2026-10-01T00:00:00Z, a date, or Unix seconds)"))
}

pub fn unix_seconds(seconds: i64) -> Result<Timestamp, String> {
    Timestamp::from_second(seconds).map_err(|_| format!("{seconds} is out of range for Unix seconds"))
}

/// The end of a bucket whose file gives no end: the next UTC midnight for a date, else one day on.
pub fn default_end(start: Instant) -> Timestamp {
    Timestamp::from_second(start.ts.as_second() + SECONDS_PER_DAY).unwrap_or(start.ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalized_to_utc() {
        let a = parse("2026-10-01T02:00:00+02:00").unwrap();
        let b = parse("2026-10-01T00:00:00Z").unwrap();
        let c = parse("1790812800").unwrap();
        assert_eq!(a.ts, b.ts);
        assert_eq!(c.ts, b.ts);
        assert!(parse("2026-10-01").unwrap().date_only);
        assert_eq!(parse("2026-10-01").unwrap().ts, b.ts);
    }

    #[test]
    fn a_time_without_offset_is_refused() {
        let e = parse("2026-10-01 00:00:00").unwrap_err();
        assert!(e.contains("no UTC offset"), "{e}");
        assert!(parse("last tuesday").is_err());
    }
}
