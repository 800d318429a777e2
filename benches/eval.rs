//! The eval runner end to end, through the release binary, against `promptctl sim serve` on 127.0.0.1
//! (budgets: DESIGN.md; figures: docs/performance.md).
//!
//! Run with `cargo bench --bench eval`. Each benchmark starts a simulator process, writes a suite, and
//! times `promptctl eval run` as a process (start-up, the run, the final write and the report). Besides
//! divan's timing it prints what the budgets are about: the request span (first request start to last
//! request end, from the stored rows), start-up plus final write (wall − span), samples per second, and
//! the process's peak RSS.
//!
//! With `PROMPTFOO="NODE_BIN PATH/TO/promptfoo/dist/src/entrypoint.js"` set, the same workloads also run
//! through promptfoo (`promptfoo eval --repeat K -j C --no-cache`) against the same simulator, for the
//! comparison the budgets are stated against.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use divan::Bencher;

fn main() {
    divan::main();
}

const BIN: &str = env!("CARGO_BIN_EXE_promptctl");

const SYSTEM: &str = "You are the first-line support agent for Acme, an online store for home and kitchen goods. \
Reply in a friendly, concise tone, in the customer's language. Never promise a refund amount or a delivery date \
you cannot see in the order data. For refunds, explain the 30-day return policy and link \
https://acme.example/returns. If the customer is angry, acknowledge the problem in one sentence before solving it. \
If you need an order number and do not have one, ask for it.";

const REPLY: &str = "Thanks for reaching out! I'm sorry about the trouble with your order. Anything bought in the \
last 30 days can be returned: start at https://acme.example/returns and print the prepaid label, and your refund \
is issued once the parcel reaches our warehouse.";

/// A `promptctl sim serve` process.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(latency_ms: u64) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario.yaml");
        std::fs::write(&scenario, format!("default: {REPLY:?}\n")).unwrap();
        let mut child = Command::new(BIN)
            .args(["sim", "serve", "--port", "0", "--format", "json", "--latency", &latency_ms.to_string()])
            .arg("--scenario")
            .arg(&scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
        Server { url: ready["base_url"].as_str().unwrap().to_string(), child, _dir: dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workload: `cases` × `samples` at `concurrency`.
#[derive(Clone, Copy)]
struct Workload {
    cases: usize,
    samples: u32,
    concurrency: u32,
    stream: bool,
}

fn message(i: usize) -> String {
    format!("Hello, this is ticket {i}: my order #{} arrived with a cracked jar. Can I return it?", 4000 + i)
}

fn write_suite(dir: &Path, url: &str, w: Workload) -> PathBuf {
    let mut suite = format!(
        "name: bench\nprompt: {{ inline: {:?} }}\nprovider:\n  id: sim:gpt-4o-mini\n  base_url: {url}\n  stream: {}\n\
         samples: {}\nrequire: {}\nconcurrency: {}\nassert:\n  - {{ type: icontains, value: returns }}\n  \
         - {{ type: not-contains, value: \"as an AI\" }}\ncases:\n",
        format!("::: system\n{SYSTEM}\n::: user\n{{{{ message }}}}"),
        w.stream,
        w.samples,
        w.samples,
        w.concurrency
    );
    for i in 0..w.cases {
        suite.push_str(&format!("  - id: t{i}\n    vars: {{ message: {:?} }}\n", message(i)));
    }
    let path = dir.join("bench.yaml");
    std::fs::write(&path, suite).unwrap();
    path
}

/// What one measured run gave.
struct Measured {
    wall: Duration,
    span_ms: u64,
    /// Median over cases of each case's median request latency: what the server really took.
    latency_p50_ms: f64,
    samples: u64,
    peak_rss_kib: u64,
}

/// Waits for the child, sampling its peak RSS (VmHWM) until it exits.
fn wait_with_peak_rss(mut child: Child) -> (std::process::ExitStatus, u64, String) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak, reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_promptctl(dir: &Path, suite: &Path) -> Measured {
    let state = dir.join(format!("state-{}.db", rand_suffix()));
    let status = Command::new(BIN)
        .current_dir(dir)
        .arg("--state")
        .arg(&state)
        .arg("init")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let child = Command::new(BIN)
        .current_dir(dir)
        .env("CI", "true")
        .arg("--state")
        .arg(&state)
        .args(["eval", "run"])
        .arg(suite)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak, stdout) = wait_with_peak_rss(child);
    let wall = started.elapsed();
    assert_eq!(status.code(), Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let summary = &report["summary"];
    assert_eq!(summary["samples_done"], summary["samples_total"], "every sample persisted");
    let _ = std::fs::remove_file(&state);
    let mut p50s: Vec<f64> =
        report["cases"].as_array().unwrap().iter().filter_map(|c| c["latency_ms"]["p50"].as_f64()).collect();
    p50s.sort_by(f64::total_cmp);
    Measured {
        wall,
        latency_p50_ms: p50s.get(p50s.len() / 2).copied().unwrap_or(0.0),
        span_ms: summary["request_span_ms"].as_u64().unwrap(),
        samples: summary["samples_done"].as_u64().unwrap(),
        peak_rss_kib: peak,
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn report(label: &str, w: Workload, latency_ms: u64, m: &Measured) {
    let total = (w.cases as u64) * u64::from(w.samples);
    let ideal = total.div_ceil(u64::from(w.concurrency)) * latency_ms;
    let wall_ms = m.wall.as_secs_f64() * 1000.0;
    let mut line = format!(
        "{label}: {} samples · wall {wall_ms:.0} ms · request span {} ms · start-up + final write {:.0} ms · {:.0} samples/s · peak RSS {:.1} MiB",
        m.samples,
        m.span_ms,
        wall_ms - m.span_ms as f64,
        m.samples as f64 / m.wall.as_secs_f64(),
        m.peak_rss_kib as f64 / 1024.0,
    );
    if latency_ms > 0 {
        let waves = total.div_ceil(u64::from(w.concurrency)) as f64;
        line.push_str(&format!(
            " · span/ideal {:.3} (ideal {ideal} ms) · request p50 {:.0} ms, span/(waves × p50) {:.3}",
            m.span_ms as f64 / ideal as f64,
            m.latency_p50_ms,
            m.span_ms as f64 / (waves * m.latency_p50_ms)
        ));
    }
    eprintln!("\n{line}");
}

fn bench_promptctl(bencher: Bencher, label: &'static str, latency_ms: u64, w: Workload) {
    let server = Server::start(latency_ms);
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &server.url, w);
    bencher.bench_local(|| {
        let m = run_promptctl(dir.path(), &suite);
        report(label, w, latency_ms, &m);
    });
}

const LATENCY_100: Workload = Workload { cases: 20, samples: 5, concurrency: 8, stream: false };

#[divan::bench(sample_count = 5, sample_size = 1)]
fn latency_100ms_20x5_c8(bencher: Bencher) {
    bench_promptctl(bencher, "100 ms, 20×5, c=8", 100, LATENCY_100);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn latency_100ms_20x5_c8_streamed(bencher: Bencher) {
    bench_promptctl(bencher, "100 ms, 20×5, c=8, streamed", 100, Workload { stream: true, ..LATENCY_100 });
}

const ZERO_2000: Workload = Workload { cases: 200, samples: 10, concurrency: 32, stream: false };

#[divan::bench(sample_count = 3, sample_size = 1)]
fn zero_latency_2000_c32(bencher: Bencher) {
    bench_promptctl(bencher, "0 ms, 2,000 samples, c=32", 0, ZERO_2000);
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn zero_latency_2000_c32_streamed(bencher: Bencher) {
    bench_promptctl(bencher, "0 ms, 2,000 samples, c=32, streamed", 0, Workload { stream: true, ..ZERO_2000 });
}

#[divan::bench(sample_count = 2, sample_size = 1)]
fn zero_latency_10000_c64(bencher: Bencher) {
    let w = Workload { cases: 1000, samples: 10, concurrency: 64, stream: false };
    bench_promptctl(bencher, "0 ms, 10,000 samples, c=64", 0, w);
}

#[divan::bench(sample_count = 2, sample_size = 1)]
fn zero_latency_10000_c64_streamed(bencher: Bencher) {
    let w = Workload { cases: 1000, samples: 10, concurrency: 64, stream: true };
    bench_promptctl(bencher, "0 ms, 10,000 samples, c=64, streamed", 0, w);
}

// --- promptfoo on the same workloads (only with PROMPTFOO set) -------------------------------------

fn promptfoo_command() -> Option<Vec<String>> {
    let text = std::env::var("PROMPTFOO").ok()?;
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

fn write_promptfoo_config(dir: &Path, url: &str, w: Workload) -> PathBuf {
    let prompt = serde_json::to_string(&serde_json::json!([
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "{{ message }}"}
    ]))
    .unwrap();
    let mut config = format!(
        "prompts:\n  - {prompt:?}\nproviders:\n  - id: openai:chat:gpt-4o-mini\n    config:\n      apiBaseUrl: {url}\n      \
         apiKey: sk-none\ndefaultTest:\n  assert:\n    - {{ type: icontains, value: returns }}\n    \
         - {{ type: not-contains, value: \"as an AI\" }}\ntests:\n"
    );
    for i in 0..w.cases {
        config.push_str(&format!("  - vars: {{ message: {:?} }}\n", message(i)));
    }
    let path = dir.join("promptfooconfig.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

fn bench_promptfoo(bencher: Bencher, label: &'static str, latency_ms: u64, w: Workload) {
    let Some(command) = promptfoo_command() else {
        eprintln!("\n{label}: skipped (set PROMPTFOO to measure promptfoo)");
        return;
    };
    let server = Server::start(latency_ms);
    let dir = tempfile::tempdir().unwrap();
    let config = write_promptfoo_config(dir.path(), &server.url, w);
    bencher.bench_local(|| {
        let started = Instant::now();
        let output = Command::new(&command[0])
            .args(&command[1..])
            .args(["eval", "-c"])
            .arg(&config)
            .args(["--repeat", &w.samples.to_string(), "-j", &w.concurrency.to_string()])
            .args(["--no-cache", "--no-table", "--no-progress-bar", "--no-share"])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("PROMPTFOO_CONFIG_DIR", dir.path().join(".promptfoo"))
            .env("PROMPTFOO_DISABLE_TELEMETRY", "1")
            .env("PROMPTFOO_DISABLE_UPDATE", "1")
            .env("OPENAI_API_KEY", "sk-none")
            .output()
            .unwrap();
        let wall = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let samples = (w.cases as u64) * u64::from(w.samples);
        let passed =
            stdout.lines().find(|l| l.contains("Successes") || l.contains("passed")).unwrap_or("").trim().to_string();
        eprintln!(
            "\n{label}: {samples} samples · wall {:.0} ms · {:.0} samples/s · exit {:?} · {passed}",
            wall.as_secs_f64() * 1000.0,
            samples as f64 / wall.as_secs_f64(),
            output.status.code()
        );
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn promptfoo_latency_100ms_20x5_c8(bencher: Bencher) {
    bench_promptfoo(bencher, "promptfoo 100 ms, 20×5, c=8", 100, LATENCY_100);
}

#[divan::bench(sample_count = 2, sample_size = 1)]
fn promptfoo_zero_latency_2000_c32(bencher: Bencher) {
    bench_promptfoo(bencher, "promptfoo 0 ms, 2,000 samples, c=32", 0, ZERO_2000);
}
