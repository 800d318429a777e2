use std::collections::{BTreeSet, HashMap};

use super::*;
use crate::trace::generate::{GenerateConfig, GeneratedRequest, PlantRates, generate};
use crate::trace::model::RequestRow;
use crate::trace::records::{Chunk, with_checkpoints};

fn facts(status: RequestStatus) -> StreamFacts {
    StreamFacts {
        status,
        has_finish_reason: true,
        usage_reported: true,
        ttft_ms: Some(400),
        baseline_p95_ms: Some(450.0),
        judge_truncation: true,
    }
}

/// Chunks of `tokens` tokens at the given times.
fn chunks(times: &[u64], tokens: u32) -> Vec<Chunk> {
    times.iter().map(|&t_ms| Chunk { t_ms, tokens, text: None }).collect()
}

fn run(facts: &StreamFacts, chunks: Option<&[Chunk]>, text: &str) -> Vec<TailEvent> {
    let mut out = Vec::new();
    let cp = chunks.map(|c| Checkpoints { chunks: c, text });
    detect(facts, cp.as_ref(), &Thresholds::default(), &mut LoopDetector::default(), &mut out);
    out
}

fn even(n: usize, from: u64, step: u64) -> Vec<u64> {
    (0..n as u64).map(|i| from + i * step).collect()
}

#[test]
fn a_clean_stream_has_no_tail_events() {
    let c = chunks(&even(40, 400, 25), 2);
    assert_eq!(run(&facts(RequestStatus::Ok), Some(&c), ""), []);
}

#[test]
fn a_gap_above_two_seconds_is_a_stall_with_its_position() {
    let mut times = even(40, 400, 25);
    for t in &mut times[30..] {
        *t += 2_600;
    }
    let events = run(&facts(RequestStatus::Ok), Some(&chunks(&times, 2)), "");
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        TailEvent::Stall { gap_ms, at_ms, chunk, position, stalls } => {
            assert_eq!((*gap_ms, *at_ms, *chunk, *stalls), (2_625, 400 + 29 * 25, 30, 1));
            assert!((position - 0.75).abs() < 1e-9, "{position}");
        }
        other => panic!("{other:?}"),
    }
    // Exactly at the threshold is not a stall.
    let mut times = even(40, 400, 25);
    for t in &mut times[30..] {
        *t += 1_975;
    }
    assert_eq!(run(&facts(RequestStatus::Ok), Some(&chunks(&times, 2)), ""), []);
}

#[test]
fn ttft_is_judged_against_the_trailing_baseline_and_the_absolute_ceiling() {
    let mut f = facts(RequestStatus::Ok);
    f.ttft_ms = Some(901);
    assert!(matches!(run(&f, None, "")[..], [TailEvent::TtftRegression { threshold_ms, .. }] if threshold_ms == 900.0));
    f.ttft_ms = Some(899);
    assert_eq!(run(&f, None, ""), []);
    f.baseline_p95_ms = None;
    f.ttft_ms = Some(9_000);
    assert_eq!(run(&f, None, ""), [], "without a baseline only the absolute threshold applies");
    f.ttft_ms = Some(10_001);
    assert_eq!(run(&f, None, "").len(), 1);
}

#[test]
fn a_slowing_last_quarter_is_a_slow_tail_but_one_stall_is_not() {
    let mut times = even(40, 400, 25);
    for (i, t) in times.iter_mut().enumerate().skip(31) {
        *t += (i as u64 - 30) * 200;
    }
    let events = run(&facts(RequestStatus::Ok), Some(&chunks(&times, 2)), "");
    assert!(matches!(events[..], [TailEvent::SlowTail { ratio, .. }] if ratio < 0.25), "{events:?}");
}

#[test]
fn truncation_needs_the_missing_finish_reason_and_usage_and_aborts_are_their_own_kind() {
    let c = chunks(&even(20, 400, 25), 2);
    let mut f = facts(RequestStatus::Ok);
    f.has_finish_reason = false;
    assert_eq!(run(&f, Some(&c), ""), [], "usage alone shows the stream completed");
    f.usage_reported = false;
    assert!(matches!(run(&f, Some(&c), "")[..], [TailEvent::Truncated { chunks: 20, tokens_streamed: 40, .. }]));
    f.judge_truncation = false;
    assert_eq!(run(&f, Some(&c), ""), [], "a model whose streams never report either is not judged");
    let aborted = run(&facts(RequestStatus::Aborted), Some(&c), "");
    assert!(matches!(aborted[..], [TailEvent::Aborted { chunks: 20, .. }]));
    let broke = run(&facts(RequestStatus::Timeout), Some(&c), "");
    assert!(matches!(broke[..], [TailEvent::Truncated { cause: "timed out mid-stream", .. }]));
    assert_eq!(run(&facts(RequestStatus::Error), None, ""), [], "an error before any token is not a stream tail");
}

#[test]
fn looping_text_is_found_in_the_chunk_texts() {
    let text = format!("Sure. {}", "I will escalate this to the shipping team right away. ".repeat(8));
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let mut at = 0u32;
    let c: Vec<Chunk> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let from = at;
            at += w.len() as u32;
            Chunk { t_ms: 400 + i as u64 * 20, tokens: 1, text: Some((from, at)) }
        })
        .collect();
    let events = run(&facts(RequestStatus::Ok), Some(&c), &text);
    match &events[..] {
        [TailEvent::Loop { repeated_words: Some(w), period_words: Some(10), sample, .. }] => {
            assert!(*w >= 60, "{w}");
            assert!(sample.contains("escalate"), "{sample}");
        }
        other => panic!("{other:?}"),
    }
}

/// Runs the taxonomy over generated rows, as `trace tails` does over stored ones.
fn analyze_rows(rows: &[RequestRow]) -> TailReport {
    let calls = Calls::from_rows(rows);
    analyze::<()>(&calls, &Thresholds::default(), 3, |ids, visit: &(dyn Fn(i64, Checkpoints<'_>) + Sync)| {
        for &id in ids {
            let row = &rows[id as usize - 1];
            if !row.stream.is_empty() {
                with_checkpoints(row, |cp| visit(id, cp));
            }
        }
        Ok(())
    })
    .unwrap()
}

fn generated(conversations: usize, plant: PlantRates, seed: u64) -> Vec<GeneratedRequest> {
    generate(&GenerateConfig { seed, conversations, plant, messages: false, ..GenerateConfig::default() }).collect()
}

#[test]
fn every_planted_tail_is_found_and_nothing_else() {
    let rates = PlantRates {
        ttft_regression: 0.03,
        stall: 0.03,
        r#loop: 0.03,
        truncated: 0.03,
        aborted: 0.03,
        slow_tail: 0.03,
    };
    let requests = generated(1_500, rates, 11);
    let rows: Vec<RequestRow> = requests.iter().map(|g| g.row.clone()).collect();
    let report = analyze_rows(&rows);
    let planted: BTreeSet<(i64, TailKind)> =
        requests.iter().enumerate().filter_map(|(i, g)| g.planted.map(|k| (i as i64 + 1, k))).collect();
    let found: BTreeSet<(i64, TailKind)> =
        report.flagged.iter().flat_map(|(id, events)| events.iter().map(move |e| (*id, e.kind()))).collect();
    let per_kind: HashMap<TailKind, usize> = planted.iter().fold(HashMap::new(), |mut m, (_, k)| {
        *m.entry(*k).or_default() += 1;
        m
    });
    for kind in TailKind::ALL {
        assert!(per_kind.get(&kind).copied().unwrap_or(0) >= 10, "too few planted {kind:?}: {per_kind:?}");
    }
    let missed: Vec<_> = planted.difference(&found).collect();
    let extra: Vec<_> = found.difference(&planted).collect();
    assert!(missed.is_empty(), "missed {missed:?}");
    assert!(extra.is_empty(), "found what was not planted: {extra:?}");
    assert_eq!(report.counts.get(TailKind::Stall), per_kind[&TailKind::Stall] as u64);
    assert!(report.hidden_by_duration.stall > 0, "some stalled requests must look normal by duration");
    assert!(report.examples.iter().any(|e| e.event.kind() == TailKind::Loop));
}

#[test]
fn a_clean_generated_set_has_no_tail_events() {
    let rows: Vec<RequestRow> = generated(1_500, PlantRates::NONE, 12).into_iter().map(|g| g.row).collect();
    let report = analyze_rows(&rows);
    assert!(report.streams > 3_000, "{}", report.streams);
    assert_eq!(report.with_tails, 0, "{:?}", report.flagged.first());
    assert_eq!(report.without_text, 0);
    assert!(report.truncation_not_judged.is_empty());
}
