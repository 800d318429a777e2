//! The two pictures of a cost report, as one self-contained SVG: the conversation cost curve (cost
//! against turns, log–log, with the fitted power law) and the histogram of per-request cost (log bins,
//! with the median, mean and p99 marked). Written by hand: two charts do not need a plotting library,
//! and the file opens in any browser.

use std::fmt::Write;

use super::report::CostReport;
use crate::money::Usd;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 430.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 55.0;
/// Points drawn at most: beyond that a scatter is a blot, and the file grows for nothing.
const MAX_POINTS: usize = 4_000;
const BINS: usize = 40;

/// A log-scaled axis mapping `[lo, hi]` onto `[from, to]` pixels.
#[derive(Clone, Copy)]
struct LogAxis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl LogAxis {
    fn new(lo: f64, hi: f64, from: f64, to: f64) -> Self {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo / 2.0, lo * 2.0) };
        LogAxis { lo: lo.log10(), hi: hi.log10(), from, to }
    }

    fn px(&self, v: f64) -> f64 {
        self.from + (v.log10() - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    /// Ticks at 1, 2 and 5 times powers of ten inside the axis.
    fn ticks(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for decade in self.lo.floor() as i32..=self.hi.ceil() as i32 {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(decade);
                let l = v.log10();
                if l >= self.lo - 1e-9 && l <= self.hi + 1e-9 {
                    out.push(v);
                }
            }
        }
        out
    }
}

/// `$0.0012`, `$3.40`, `$1.2k`: enough digits to tell ticks apart.
fn money_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("${:.1}k", v / 1000.0)
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        let digits = (-v.log10()).ceil() as usize + 1;
        format!("${v:.digits$}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG document for a report.
pub fn svg(report: &CostReport) -> String {
    let height = 2.0 * PANEL + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    conversation_panel(&mut out, report, 0.0);
    histogram_panel(&mut out, report, PANEL + 20.0);
    out.push_str("</svg>\n");
    out
}

fn frame(out: &mut String, y0: f64, title: &str, x_label: &str, y_label: &str) {
    let (x1, x2) = (LEFT, WIDTH - RIGHT);
    let (y1, y2) = (y0 + TOP, y0 + PANEL - BOTTOM);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        LEFT,
        y0 + 28.0,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{x1}" y="{y1}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        x2 - x1,
        y2 - y1
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x1 + x2) / 2.0,
        y2 + 42.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
        22.0,
        (y1 + y2) / 2.0,
        22.0,
        (y1 + y2) / 2.0,
        escape(y_label)
    );
}

fn x_ticks(out: &mut String, axis: &LogAxis, y0: f64, label: impl Fn(f64) -> String) {
    let y = y0 + PANEL - BOTTOM;
    for v in axis.ticks() {
        let x = axis.px(v);
        let _ = writeln!(out, r##"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{}" stroke="#888"/>"##, y + 5.0);
        let _ = writeln!(out, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, y + 19.0, escape(&label(v)));
    }
}

fn y_ticks_log(out: &mut String, axis: &LogAxis, label: impl Fn(f64) -> String) {
    for v in axis.ticks() {
        let y = axis.px(v);
        let _ = writeln!(out, r##"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="#888"/>"##, LEFT - 5.0);
        let _ = writeln!(out, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##, WIDTH - RIGHT);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            escape(&label(v))
        );
    }
}

fn conversation_panel(out: &mut String, report: &CostReport, y0: f64) {
    let c = &report.conversations;
    let title = match &c.fit {
        Some(f) => format!(
            "Cost per conversation vs. turns: cost ≈ {} × turns^{:.2} (95% CI {:.2}–{:.2}, n = {})",
            money_label(f.scale_usd),
            f.exponent,
            f.exponent_ci95[0],
            f.exponent_ci95[1],
            f.n
        ),
        None => "Cost per conversation vs. turns".to_string(),
    };
    frame(out, y0, &title, "turns (calls per conversation, log scale)", "conversation cost (USD, log scale)");
    let points: Vec<(f64, f64)> = report
        .conversation_points
        .iter()
        .filter(|(t, usd)| *t > 0 && *usd > Usd::ZERO)
        .map(|(t, usd)| (*t as f64, usd.as_f64()))
        .collect();
    if points.is_empty() {
        empty(out, y0, "no conversations with a known cost");
        return;
    }
    let (tmin, tmax) = min_max(points.iter().map(|p| p.0));
    let (cmin, cmax) = min_max(points.iter().map(|p| p.1));
    let x = LogAxis::new(tmin.max(1.0), (tmax * 1.2).max(2.0), LEFT, WIDTH - RIGHT);
    let y = LogAxis::new(cmin / 1.5, cmax * 1.5, y0 + PANEL - BOTTOM, y0 + TOP);
    y_ticks_log(out, &y, money_label);
    x_ticks(out, &x, y0, |v| format!("{v}"));
    let stride = points.len().div_ceil(MAX_POINTS);
    out.push_str(r##"<g fill="#1f77b4" fill-opacity="0.3">"##);
    out.push('\n');
    for (t, cost) in points.iter().step_by(stride) {
        let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="2.2"/>"#, x.px(*t), y.px(*cost));
    }
    out.push_str("</g>\n");
    let means: Vec<String> = c
        .curve
        .iter()
        .filter(|b| b.mean_usd > 0.0)
        .map(|b| {
            let t = ((b.turns_from * b.turns_to) as f64).sqrt();
            format!("{:.1},{:.1}", x.px(t), y.px(b.mean_usd))
        })
        .collect();
    if means.len() > 1 {
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#ff7f0e" stroke-width="2.5"/>"##,
            means.join(" ")
        );
    }
    if let Some(f) = &c.fit {
        let at = |t: f64| f.scale_usd * t.powf(f.exponent);
        let (t1, t2) = (tmin.max(1.0), tmax);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/>"##,
            x.px(t1),
            y.px(at(t1)),
            x.px(t2),
            y.px(at(t2))
        );
    }
    legend(
        out,
        y0,
        &[
            ("#1f77b4", "one conversation"),
            ("#ff7f0e", "mean cost per turn-count bucket"),
            ("#d62728", "fitted power law (least squares on logs)"),
        ],
    );
}

fn histogram_panel(out: &mut String, report: &CostReport, y0: f64) {
    let p = &report.per_request;
    frame(
        out,
        y0,
        &format!("Cost per request ({} priced requests, log-spaced bins)", report.priced),
        "cost of one request (USD, log scale)",
        "requests",
    );
    let costs: Vec<f64> = report.request_costs.iter().filter(|c| **c > Usd::ZERO).map(|c| c.as_f64()).collect();
    if costs.is_empty() {
        empty(out, y0, "no priced requests");
        return;
    }
    let (lo, hi) = min_max(costs.iter().copied());
    let x = LogAxis::new(lo, hi * 1.0001, LEFT, WIDTH - RIGHT);
    let mut counts = [0u64; BINS];
    for c in &costs {
        let f = (c.log10() - x.lo) / (x.hi - x.lo);
        counts[((f * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let peak = *counts.iter().max().unwrap_or(&1) as f64;
    let (bottom, top) = (y0 + PANEL - BOTTOM, y0 + TOP + 10.0);
    let bar_w = (WIDTH - RIGHT - LEFT) / BINS as f64;
    for k in 0..=4 {
        let v = peak * k as f64 / 4.0;
        let yy = bottom - (bottom - top) * k as f64 / 4.0;
        let _ =
            writeln!(out, r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#eee"/>"##, WIDTH - RIGHT);
        let _ = writeln!(out, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 8.0, yy + 4.0, v.round());
    }
    out.push_str(r##"<g fill="#1f77b4">"##);
    out.push('\n');
    for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let h = (bottom - top) * *n as f64 / peak;
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{n} requests</title></rect>"#,
            LEFT + i as f64 * bar_w + 1.0,
            bottom - h,
            (bar_w - 2.0).max(1.0),
            h
        );
    }
    out.push_str("</g>\n");
    x_ticks(out, &x, y0, money_label);
    let mut marks = Vec::new();
    for (value, name, color) in [(p.p50, "median", "#2ca02c"), (p.mean, "mean", "#ff7f0e"), (p.p99, "p99", "#d62728")] {
        if let Some(v) = value.filter(|v| *v > 0.0) {
            let xx = x.px(v).clamp(LEFT, WIDTH - RIGHT);
            let _ = writeln!(
                out,
                r#"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{bottom}" stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>"#
            );
            marks.push((color, format!("{name} {}", money_label(v))));
        }
    }
    let labels: Vec<(&str, &str)> = marks.iter().map(|(c, t)| (*c, t.as_str())).collect();
    legend(out, y0, &labels);
}

fn legend(out: &mut String, y0: f64, items: &[(&str, &str)]) {
    let x = WIDTH - RIGHT - 300.0;
    for (i, (color, text)) in items.iter().enumerate() {
        let y = y0 + TOP + 18.0 + i as f64 * 18.0;
        let _ = writeln!(out, r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/>"#, y - 10.0);
        let _ = writeln!(out, r#"<text x="{}" y="{y}">{}</text>"#, x + 18.0, escape(text));
    }
}

fn empty(out: &mut String, y0: f64, text: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        y0 + PANEL / 2.0,
        escape(text)
    );
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{GroupBy, price_calls, report};
    use crate::pricing::PriceBook;
    use crate::trace::generate::{GenerateConfig, generate};
    use crate::trace::records::Calls;

    /// Checks that every tag opened is closed in order, attributes are quoted, and entities are escaped.
    fn well_formed(xml: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>").ok_or("no XML declaration")?;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            if text.contains('&')
                && !text.split('&').skip(1).all(|t| ["amp;", "lt;", "gt;", "quot;"].iter().any(|e| t.starts_with(e)))
            {
                return Err(format!("unescaped & in {text:?}"));
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if top != name {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else {
                elements += 1;
                if tag.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                if !tag.ends_with('/') {
                    stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
                }
            }
            rest = &rest[close + 1..];
        }
        if stack.is_empty() { Ok(elements) } else { Err(format!("unclosed {stack:?}")) }
    }

    #[test]
    fn the_svg_is_well_formed_and_shows_both_charts() {
        let rows: Vec<_> =
            generate(&GenerateConfig { conversations: 300, messages: false, ..GenerateConfig::default() })
                .map(|g| g.row)
                .collect();
        let calls = Calls::from_rows(&rows);
        let r = report(&calls, &price_calls(&calls, PriceBook::embedded()), GroupBy::Model, 10);
        let doc = svg(&r);
        let elements = well_formed(&doc).unwrap();
        assert!(elements > 300);
        assert_eq!(doc.matches("<circle").count(), r.conversations.conversations as usize);
        assert!(doc.contains("turns^"), "the fitted exponent is in the title");
        assert!(doc.contains("median $"));
        assert!(doc.contains("<polyline"));
    }

    #[test]
    fn an_empty_report_still_draws() {
        let calls = Calls::default();
        let r = report(&calls, &price_calls(&calls, PriceBook::embedded()), GroupBy::Model, 10);
        let doc = svg(&r);
        well_formed(&doc).unwrap();
        assert!(doc.contains("no priced requests"));
    }

    #[test]
    fn ticks_and_labels() {
        let a = LogAxis::new(0.001, 0.1, 0.0, 100.0);
        assert_eq!(a.ticks(), [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]);
        assert!((a.px(0.01) - 50.0).abs() < 1e-9);
        assert_eq!(money_label(0.0012), "$0.0012");
        assert_eq!(money_label(3.4), "$3.40");
        assert_eq!(money_label(1500.0), "$1.5k");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
