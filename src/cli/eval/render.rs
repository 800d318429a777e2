//! Human output of eval reports: the case table, the summary and the gate.

use comfy_table::{Cell, CellAlignment, Color};

use super::super::context::Context;
use super::super::output::{Style, table, table_text};
use crate::eval::export::{format_ms, format_usd, outcome_strip, status_label};
use crate::eval::report::{CaseReport, EvalReport};
use crate::eval::stats::CaseStatus;

pub(super) fn status_color(status: CaseStatus) -> Color {
    match status {
        CaseStatus::Pass => Color::Green,
        CaseStatus::PassFlaky | CaseStatus::FailFlaky => Color::Yellow,
        CaseStatus::Fail => Color::Red,
        CaseStatus::Error => Color::Magenta,
    }
}

pub(super) fn status_style(status: CaseStatus) -> Style {
    match status {
        CaseStatus::Pass => Style::Green,
        CaseStatus::PassFlaky | CaseStatus::FailFlaky => Style::Yellow,
        CaseStatus::Fail | CaseStatus::Error => Style::Red,
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn header(report: &EvalReport) -> String {
    let prompt = report.prompt.as_ref().map_or(String::new(), |p| format!(" · {}@{}", p.name, p.version));
    let regrade = report.regraded_from.as_ref().map_or(String::new(), |r| format!(" · regrade of {r}"));
    format!(
        "{} · run {}{prompt} · {} · {}-of-{} required{regrade}",
        report.suite, report.run_id, report.provider, report.require, report.samples
    )
}

pub(super) fn print_report(ctx: &mut Context, report: &EvalReport) -> std::io::Result<()> {
    let color = ctx.out.color;
    ctx.out.line(&ctx.out.paint(Style::Bold, &header(report)))?;
    ctx.out.line("")?;
    let mut t =
        table(&["case", "status", "samples", "passed", "pass@1", "95% CI", "retries", "cost", "p50 latency"], color);
    for c in &report.cases {
        t.add_row(case_row(report, c, color));
    }
    for i in [3, 4, 6] {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    ctx.out.line(&table_text(&t))?;
    ctx.out.line("")?;
    let s = &report.summary;
    ctx.out.line(&format!(
        "{} cases: {} pass · {} pass-flaky · {} fail-flaky · {} fail (deterministic) · {} error",
        s.cases, s.pass, s.pass_flaky, s.fail_flaky, s.fail, s.error
    ))?;
    let judged = s.samples_done - s.sample_errors;
    let rate = match (s.sample_pass_rate, s.wilson) {
        (Some(r), Some(w)) => {
            format!("{} passed ({}, 95% CI {}–{})", (r * judged as f64).round(), pct(r), pct(w.lower), pct(w.upper))
        }
        _ => "none with a verdict".into(),
    };
    let cost = match (s.cost_usd, s.usage_missing) {
        (c, 0) => format_usd(c),
        (c, n) => format!("{} + {n} calls without usage", format_usd(c)),
    };
    let span = s.request_span_ms.map_or(String::new(), |ms| format!(" (requests {})", format_ms(ms)));
    ctx.out.line(&format!(
        "samples: {}/{} done, {rate}{} · {} · {} · {cost} · {}{span}",
        s.samples_done,
        s.samples_total,
        if s.sample_errors > 0 { format!(", {} provider errors", s.sample_errors) } else { String::new() },
        count(s.requests, "request", "requests"),
        count(s.retries, "retry", "retries"),
        format_ms(s.wall_ms),
    ))?;
    let gate = if report.gate.passed {
        ctx.out.paint(Style::Green, "gate: passed")
    } else {
        let reason = report.gate.reason.as_deref().unwrap_or("");
        ctx.out.paint(Style::Red, &format!("gate: FAILED — {reason}"))
    };
    ctx.out.line(&gate)?;
    for c in report.failing_cases() {
        let advice = match c.status {
            CaseStatus::Fail => "no sample passed: deterministic, rerunning will not help".to_string(),
            CaseStatus::FailFlaky => {
                format!("{} of {} passed: flaky, fix it rather than rerun it", c.passed, report.samples)
            }
            _ if c.errors > 0 => format!("{} samples ended in provider errors: undecided", c.errors),
            _ => format!("{} samples not run: undecided", c.missing),
        };
        let label = ctx.out.paint(status_style(c.status), status_label(c.status));
        ctx.out.line(&format!("  {label} {}: {advice}", c.id))?;
    }
    if report.cases.iter().any(|c| !c.status.meets_requirement() || c.status == CaseStatus::PassFlaky) {
        ctx.out.line(&ctx.out.paint(
            Style::Dim,
            &format!("  see a case's samples side by side: promptctl eval show {} --case ID", report.run_id),
        ))?;
    }
    Ok(())
}

fn case_row(report: &EvalReport, c: &CaseReport, color: bool) -> Vec<Cell> {
    let mut status = Cell::new(status_label(c.status));
    if color {
        status = status.fg(status_color(c.status));
    }
    let cost = match (c.cost_usd, c.usage_missing) {
        (cost, 0) => format_usd(cost),
        (cost, n) => format!("{} (+{n} no usage)", format_usd(cost)),
    };
    vec![
        Cell::new(&c.id),
        status,
        Cell::new(outcome_strip(c)),
        Cell::new(format!("{}/{}", c.passed, report.samples)),
        Cell::new(c.pass_at_k.get(1).map_or("-".into(), |v| format!("{v:.2}"))),
        Cell::new(c.wilson.map_or("-".into(), |w| format!("{}–{}", pct(w.lower), pct(w.upper)))),
        Cell::new(c.retries),
        Cell::new(cost),
        Cell::new(c.latency_ms.p50.map_or("-".into(), |ms| format_ms(ms.round() as u64))),
    ]
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
