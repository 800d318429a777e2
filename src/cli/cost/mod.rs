//! `promptctl cost …`: the cost of the distribution served, and routing simulations.

mod report;
mod route;

use clap::Subcommand;

use super::context::Context;
use super::error::CmdResult;

#[derive(Debug, Subcommand)]
pub enum CostCommand {
    Report(report::ReportArgs),
    Route(route::RouteArgs),
}

pub fn run(ctx: &mut Context, command: CostCommand) -> CmdResult {
    match command {
        CostCommand::Report(args) => report::run(ctx, args),
        CostCommand::Route(args) => route::run(ctx, args),
    }
}

/// `$0.000123`, `$12.34`, `$1,234.56`: readable at every scale.
pub fn usd(value: f64) -> String {
    let abs = value.abs();
    let sign = if value < 0.0 { "-" } else { "" };
    if abs >= 1000.0 {
        let whole = format!("{abs:.2}");
        let (int, frac) = whole.split_once('.').unwrap_or((&whole, "00"));
        let int = super::trace::thousands(int.parse().unwrap_or(0));
        format!("{sign}${int}.{frac}")
    } else if abs >= 1.0 || abs == 0.0 {
        format!("{sign}${abs:.2}")
    } else if abs >= 0.01 {
        format!("{sign}${abs:.4}")
    } else {
        let digits = (-abs.log10()).ceil() as usize + 2;
        format!("{sign}${abs:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn dollars_for_people() {
        assert_eq!(usd(1234.5), "$1,234.50");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(0.000123), "$0.000123");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(-0.5), "-$0.5000");
        assert_eq!(usd(0.0123), "$0.0123");
    }
}
