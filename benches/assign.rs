//! `portfolio assign` throughput (budgets in DESIGN.md and the issue: ≥ 5M hashes/s, ≥ 1M assignments/s
//! end to end through the binary to a file).
//!
//! Run with `cargo bench --bench assign`. The end-to-end case builds a temporary project (the repo's
//! prompts and `portfolios/support-reply.yaml`), writes 1,000,000 unit ids, and times the release
//! binary assigning them all with stdout redirected to a file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use promptctl::portfolio::assign::Assigner;
use promptctl::portfolio::spec::{ParsedFile, Portfolio};

fn main() {
    divan::main();
}

const UNITS: usize = 1_000_000;

fn portfolio() -> Portfolio {
    let text = std::fs::read_to_string(repo("portfolios/support-reply.yaml")).expect("example portfolio");
    let parsed = ParsedFile::parse(&text, "support-reply.yaml", false).expect("valid example");
    parsed.resolve(|_, r| Ok(format!("{r:0>12}"))).expect("resolves").0
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// In-process: segment given, hash and range lookup only.
#[divan::bench]
fn place_in_segment(bencher: Bencher) {
    let p = portfolio();
    let assigner = Assigner::new(&p).unwrap();
    let ids: Vec<String> = (0..100_000).map(|i| format!("u-{i:08}")).collect();
    bencher
        .counter(ItemsCount::new(ids.len()))
        .bench(|| ids.iter().filter_map(|id| assigner.place_in(1, black_box(id)).variant).sum::<usize>());
}

/// A project directory with an initialized state, committed prompts and the example portfolio.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo("prompts"), &dir.path().join("prompts"));
        copy_dir(&repo("portfolios"), &dir.path().join("portfolios"));
        let fixture = Fixture { dir };
        fixture.run(&["init"]);
        fixture.run(&["prompt", "commit"]);
        fixture.run(&["prompt", "label", "support-reply", "production"]);
        fixture.run(&["prompt", "label", "support-reply", "candidate"]);
        fixture.run(&["portfolio", "set", "portfolios/support-reply.yaml"]);
        let ids: String = (0..UNITS).map(|i| format!("user-{i:07}\n")).collect();
        std::fs::write(fixture.dir.path().join("units.txt"), ids).unwrap();
        fixture
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptctl"));
        cmd.current_dir(self.dir.path()).env("CI", "true").arg("--state").arg(self.dir.path().join("state.db"));
        cmd
    }

    fn run(&self, args: &[&str]) {
        let status = self.command().args(args).stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "promptctl {args:?}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// End to end: process start, state open, 1M lines read, hashed, written as JSONL to a file.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn binary_units_file_to_file(bencher: Bencher) {
    let fixture = Fixture::new();
    let out_path = fixture.dir.path().join("assignments.jsonl");
    bencher.counter(ItemsCount::new(UNITS)).bench(|| {
        let out = std::fs::File::create(&out_path).unwrap();
        let status = fixture
            .command()
            .args(["portfolio", "assign", "support-reply", "--units-file", "units.txt", "--attr", "plan=pro"])
            .stdout(out)
            .status()
            .unwrap();
        assert!(status.success());
    });
    let lines = std::fs::read_to_string(&out_path).unwrap().lines().count();
    assert_eq!(lines, UNITS);
}
