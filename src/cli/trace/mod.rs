//! `promptctl trace …`: import exports, statistics, the streaming tail taxonomy, synthetic traffic.

mod generate;
mod import;
mod stats;
mod tails;

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;

use super::context::Context;
use super::error::{CliError, CmdResult};
use crate::trace::records::RequestFilter;

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    Import(import::ImportArgs),
    Stats(stats::StatsArgs),
    Tails(tails::TailsArgs),
    Generate(generate::GenerateArgs),
}

pub fn run(ctx: &mut Context, command: TraceCommand) -> CmdResult {
    match command {
        TraceCommand::Import(args) => import::run(ctx, args),
        TraceCommand::Stats(args) => stats::run(ctx, args),
        TraceCommand::Tails(args) => tails::run(ctx, args),
        TraceCommand::Generate(args) => generate::run(ctx, args),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Rows imported from trace exports
    Import,
    /// Rows recorded by `eval run`
    Eval,
}

/// Which stored requests an analysis reads; shared by `trace stats`, `trace tails` and `cost …`.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Only requests that started at or after T: RFC 3339, a UTC date (2026-10-01), or a span back from
    /// now (24h, 7d)
    #[arg(long, value_name = "T", value_parser = parse_time_arg)]
    pub since: Option<Timestamp>,

    /// Only requests that started before T (same forms as --since)
    #[arg(long, value_name = "T", value_parser = parse_time_arg)]
    pub until: Option<Timestamp>,

    /// Only requests to this model (MODEL or PROVIDER:MODEL, as requested)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// Only requests made with this prompt (by name)
    #[arg(long, value_name = "NAME")]
    pub prompt: Option<String>,

    /// Only rows from trace imports or from eval runs [default: both]
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub source: Option<SourceArg>,
}

impl SelectArgs {
    pub fn filter(&self) -> Result<RequestFilter, CliError> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(CliError::input(format!("--since {since} is not before --until {until}")));
        }
        Ok(RequestFilter {
            since: self.since,
            until: self.until,
            source: self.source.map(|s| match s {
                SourceArg::Import => "import".to_string(),
                SourceArg::Eval => "eval".to_string(),
            }),
            model: self.model.clone(),
            prompt: self.prompt.clone(),
        })
    }

    /// Says what the selection was, for "no requests" messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.since {
            parts.push(format!("since {s}"));
        }
        if let Some(u) = self.until {
            parts.push(format!("until {u}"));
        }
        if let Some(m) = &self.model {
            parts.push(format!("model {m}"));
        }
        if let Some(p) = &self.prompt {
            parts.push(format!("prompt {p}"));
        }
        if parts.is_empty() { "in the state file".to_string() } else { parts.join(", ") }
    }
}

/// `2026-10-01T12:00:00Z`, `2026-10-01` (00:00 UTC) or `24h` / `7d` / `90m` back from now.
pub fn parse_time_arg(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|e| e.to_string());
    }
    let unit_ms = match text.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    if unit_ms > 0
        && let Ok(n) = text[..text.len() - 1].parse::<i64>()
    {
        let now = Timestamp::now().as_millisecond();
        return Timestamp::from_millisecond(now - n * unit_ms).map_err(|e| e.to_string());
    }
    Err(format!("`{text}` is not a time: use RFC 3339 (2026-10-01T12:00:00Z), a date (2026-10-01) or a span (24h, 7d)"))
}

pub use crate::numbers::thousands;

/// `12.3%`
pub fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.001 { "<0.1%".to_string() } else { format!("{:.1}%", share * 100.0) }
}

/// A duration in ms for tables: `—` when unknown.
pub fn ms(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |v| format!("{v:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_their_three_forms() {
        assert_eq!(parse_time_arg("2026-10-01T12:00:00+02:00").unwrap().to_string(), "2026-10-01T10:00:00Z");
        assert_eq!(parse_time_arg("2026-10-01").unwrap().to_string(), "2026-10-01T00:00:00Z");
        let day_ago = parse_time_arg("1d").unwrap().as_millisecond();
        assert!((Timestamp::now().as_millisecond() - day_ago - 86_400_000).abs() < 60_000);
        assert!(parse_time_arg("yesterday").is_err());
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(percent(0.00001), "<0.1%");
    }
}
