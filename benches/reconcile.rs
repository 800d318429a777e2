//! Reconciling one month of 1,000,000 traced requests with its invoice (budget: < 5 s, DESIGN.md).
//!
//! Run with `cargo bench --bench reconcile`. The month is the bundled scenario (both providers, every cause)
//! scaled up to about a million traced requests, generated once into a temporary directory: the invoice as
//! API pages and the traces as promptctl JSONL (≈ 0.5 GB).
//!
//! - `command_on_files`: `promptctl reconcile --invoice DIR --traces FILE --month 2026-10 --format json`
//!   through the release binary: reading the invoice, importing the traces on the fly, the waterfall,
//!   evidence and the per-conversation view — what a user waits for.
//! - `in_process_over_generated_rows` and `generating_rows_alone`: the library call over rows produced by
//!   the generator, and the generator by itself; their difference is the cost of reconciling rows that are
//!   already in memory (as when they come from the state).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;

use divan::Bencher;
use promptctl::pricing::PriceBook;
use promptctl::reconcile::generate::{self, Scenario};
use promptctl::reconcile::{self, Invoice, invoice};

fn main() {
    divan::main();
}

const BIN: &str = env!("CARGO_BIN_EXE_promptctl");
/// The bundled month has about 4,130 traced requests at scale 1.
const SCALE: f64 = 242.0;

/// The month's directory: removed after the run, or kept when asked for.
enum Kept {
    Temp(tempfile::TempDir),
    Dir(PathBuf),
}

impl From<PathBuf> for Kept {
    fn from(path: PathBuf) -> Self {
        Kept::Dir(path)
    }
}

impl Kept {
    fn path(&self) -> &std::path::Path {
        match self {
            Kept::Temp(dir) => dir.path(),
            Kept::Dir(path) => path,
        }
    }
}

struct Month {
    _dir: Kept,
    invoice_dir: PathBuf,
    traces: PathBuf,
    invoice: Invoice,
    scenario: Scenario,
}

static MONTH: LazyLock<Month> = LazyLock::new(|| {
    let book = PriceBook::embedded();
    // PROMPTCTL_BENCH_SCALE makes a smaller month (for instruction counts under callgrind).
    let scale = std::env::var("PROMPTCTL_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(SCALE);
    let scenario = Scenario { scale, ..Scenario::bundled() };
    // PROMPTCTL_BENCH_DIR keeps the generated month there (to measure memory with /usr/bin/time -v).
    let dir = match std::env::var_os("PROMPTCTL_BENCH_DIR") {
        Some(path) => tempfile::Builder::new().prefix("reconcile-month-").tempdir_in(path).unwrap().keep().into(),
        None => Kept::Temp(tempfile::tempdir().unwrap()),
    };
    let invoice_dir = dir.path().join("invoice");
    std::fs::create_dir_all(&invoice_dir).unwrap();
    let (files, _) = generate::invoice(&scenario, book);
    let mut parsed = Vec::new();
    for (i, (name, text)) in files.iter().enumerate() {
        std::fs::write(invoice_dir.join(name), text).unwrap();
        parsed.push(invoice::read(text, name, i).unwrap());
    }
    let invoice = invoice::combine(parsed, &scenario.window()).unwrap();
    let traces = dir.path().join("traces.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&traces).unwrap());
    let mut rows = 0u64;
    for row in generate::rows(&scenario, book) {
        out.write_all(generate::trace_jsonl_line(&row).as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        rows += 1;
    }
    out.flush().unwrap();
    let bytes = std::fs::metadata(&traces).unwrap().len();
    eprintln!(
        "month: {rows} traced requests, {:.0} MB of JSONL, {} invoice files in {}",
        bytes as f64 / 1e6,
        files.len(),
        dir.path().display()
    );
    Month { _dir: dir, invoice_dir, traces, invoice, scenario }
});

#[divan::bench(sample_count = 3, sample_size = 1)]
fn command_on_files(bencher: Bencher) {
    let month = &*MONTH;
    bencher.bench(|| {
        let output = Command::new(BIN)
            .args(["reconcile", "--invoice"])
            .arg(&month.invoice_dir)
            .arg("--traces")
            .arg(&month.traces)
            .args(["--month", "2026-10", "--format", "json", "--quiet"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(output.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout.len()
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn in_process_over_generated_rows(bencher: Bencher) {
    let month = &*MONTH;
    let book = PriceBook::embedded();
    bencher.bench(|| {
        let rows = generate::rows(&month.scenario, book);
        reconcile::reconcile(book, &month.invoice, rows, month.scenario.window()).unwrap().causes.len()
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn generating_rows_alone(bencher: Bencher) {
    let month = &*MONTH;
    let book = PriceBook::embedded();
    bencher.bench(|| generate::rows(&month.scenario, book).count());
}
