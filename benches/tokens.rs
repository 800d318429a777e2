//! Token counting: steady-state speed on typical texts, and the cost of the first count in a new process
//! (what `prompt diff` of an edited file pays), against tiktoken-rs for reference.
//!
//! Run with `cargo bench --bench tokens`. The `new_process` benches run this binary again in a one-shot
//! mode that counts one text and exits; `new_process_no_count` is the same process doing nothing, so the
//! difference between them is the load plus first-count cost.

use std::process::{Command, Stdio};
use std::time::Instant;

use divan::{Bencher, black_box};
use promptctl::tokens::Encoding;

const ONE_SHOT: &str = "PROMPTCTL_BENCH_ONE_SHOT";

fn main() {
    if let Ok(spec) = std::env::var(ONE_SHOT) {
        // `MODE[:TEXT[:REPEAT]]`. Also prints the first and the last count's times, for running by hand
        // (`PROMPTCTL_BENCH_ONE_SHOT=o200k target/release/deps/tokens-…`); under callgrind, the
        // difference in instructions between REPEAT 11 and 1 is ten warm counts.
        let mut parts = spec.split(':');
        let mode = parts.next().unwrap_or_default().to_string();
        let text =
            parts.next().map_or_else(support_prompt, |name| texts().into_iter().find(|(n, _)| *n == name).unwrap().1);
        let repeat: usize = parts.next().map_or(2, |r| r.parse().unwrap());
        let count = || match mode.as_str() {
            "none" => 0,
            "o200k" => Encoding::O200kBase.count(black_box(&text)),
            "cl100k" => Encoding::Cl100kBase.count(black_box(&text)),
            "tiktoken-o200k" => tiktoken_rs::o200k_base_singleton().encode_with_special_tokens(black_box(&text)).len(),
            "tiktoken-cl100k" => {
                tiktoken_rs::cl100k_base_singleton().encode_with_special_tokens(black_box(&text)).len()
            }
            other => panic!("unknown mode {other}"),
        };
        let start = Instant::now();
        let n = black_box(count());
        let first = start.elapsed();
        let mut last = first;
        for _ in 1..repeat {
            let start = Instant::now();
            black_box(count());
            last = start.elapsed();
        }
        println!("{spec}: {n} tokens; first count {first:?}, last {last:?}");
        return;
    }
    divan::main();
}

/// The rules of benches/startup.rs's support prompt, 3.2 KB.
fn support_prompt() -> String {
    let mut text = String::from("You are the support agent for Acme.\n");
    for i in 0..30 {
        text.push_str(&format!(
            "- Rule {i}: when the customer mentions topic {i}, answer with the policy for topic {i} and link the help page.\n"
        ));
    }
    text
}

fn code() -> String {
    include_str!("../src/cli/prompt/diff.rs").to_string()
}

fn json() -> String {
    let mut text = String::from("[");
    for i in 0..60 {
        text.push_str(&format!(
            r#"{{"id":"req-{i:04}","model":"gpt-4o-mini","usage":{{"prompt_tokens":{},"completion_tokens":{}}},"ok":true}},"#,
            1000 + i * 37,
            i * 13
        ));
    }
    text.push(']');
    text
}

fn cjk() -> String {
    "日本語のテキストです。東京は晴れ、気温は二十度。中文文本，包括标点符号！한국어 텍스트입니다. ".repeat(30)
}

fn texts() -> [(&'static str, String); 4] {
    [("support_prompt", support_prompt()), ("code", code()), ("json", json()), ("cjk", cjk())]
}

#[divan::bench(args = ["support_prompt", "code", "json", "cjk"])]
fn count_o200k(bencher: Bencher, which: &str) {
    let text = texts().into_iter().find(|(n, _)| *n == which).unwrap().1;
    bencher.counter(divan::counter::BytesCount::of_str(&text)).bench(|| Encoding::O200kBase.count(black_box(&text)));
}

#[divan::bench(args = ["support_prompt", "code", "json", "cjk"])]
fn count_cl100k(bencher: Bencher, which: &str) {
    let text = texts().into_iter().find(|(n, _)| *n == which).unwrap().1;
    bencher.counter(divan::counter::BytesCount::of_str(&text)).bench(|| Encoding::Cl100kBase.count(black_box(&text)));
}

/// The reference, tables already built.
#[divan::bench(args = ["support_prompt", "code", "json", "cjk"])]
fn count_tiktoken_rs_o200k(bencher: Bencher, which: &str) {
    let text = texts().into_iter().find(|(n, _)| *n == which).unwrap().1;
    let bpe = tiktoken_rs::o200k_base_singleton();
    bencher
        .counter(divan::counter::BytesCount::of_str(&text))
        .bench(|| bpe.encode_with_special_tokens(black_box(&text)).len());
}

fn one_shot(mode: &str) {
    let status =
        Command::new(std::env::current_exe().unwrap()).env(ONE_SHOT, mode).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn new_process_no_count() {
    one_shot("none");
}

#[divan::bench(sample_count = 20, sample_size = 1, args = ["o200k", "cl100k"])]
fn new_process_first_count(mode: &str) {
    one_shot(mode);
}

/// Slow (most of a second each): few samples.
#[divan::bench(sample_count = 3, sample_size = 1, args = ["tiktoken-o200k", "tiktoken-cl100k"])]
fn new_process_first_count_tiktoken_rs(mode: &str) {
    one_shot(mode);
}
