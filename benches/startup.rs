//! Start-up and `prompt diff` through the real binary (budget: < 10 ms wall per command, DESIGN.md).
//!
//! Run with `cargo bench --bench startup`. The project is a 4 KB prompt with 20 few-shot examples, committed
//! twice. `diff_uncached_tokens` edits the working file before every run, so its token count is not in the
//! state's cache and the tokenizer tables must be loaded: the cost of a first diff of new content.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use divan::Bencher;

fn main() {
    divan::main();
}

const BIN: &str = env!("CARGO_BIN_EXE_promptctl");

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("prompts")).unwrap();
    write_prompt(&root, "");
    run(&root, &["init"]);
    run(&root, &["prompt", "commit", "-m", "v1"]);
    run(&root, &["prompt", "label", "support-reply", "production"]);
    write_prompt(&root, "- Offer the order-tracking link when the customer asks where a parcel is.\n");
    run(&root, &["prompt", "commit", "-m", "v2"]);
    Project { _dir: dir, root }
}

/// About 4 KB of template and 20 examples, like a real support prompt.
fn write_prompt(root: &Path, extra_rule: &str) {
    let mut rules = String::new();
    for i in 0..30 {
        rules.push_str(&format!(
            "- Rule {i}: when the customer mentions topic {i}, answer with the policy for topic {i} and link the help page.\n"
        ));
    }
    let prompt = format!(
        "---\nname: support-reply\nmodel: openai:gpt-4o-mini\nparams: {{ temperature: 0.2, max_tokens: 400 }}\ninput:\n  message: string\nexamples: support-reply.examples.yaml\n---\n::: system\nYou are the support agent for Acme.\n{rules}{extra_rule}{{% for ex in examples %}}\n::: user\n{{{{ ex.input }}}}\n::: assistant\n{{{{ ex.output }}}}\n{{% endfor %}}\n::: user\n{{{{ message }}}}\n"
    );
    std::fs::write(root.join("prompts/support-reply.prompt"), prompt).unwrap();
    let mut examples = String::new();
    for i in 0..20 {
        examples.push_str(&format!(
            "- id: ex-{i:02}\n  input: \"Question {i}: my order #{} has a problem with item {i}.\"\n  output: \"Sorry about order #{}. Here is what we will do for item {i}: a replacement ships today.\"\n",
            4400 + i,
            4400 + i
        ));
    }
    std::fs::write(root.join("prompts/support-reply.examples.yaml"), examples).unwrap();
}

fn run(root: &Path, args: &[&str]) {
    let status = Command::new(BIN)
        .current_dir(root)
        .env_remove("PROMPTCTL_STATE")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "promptctl {args:?} failed");
}

#[divan::bench]
fn version(bencher: Bencher) {
    let p = project();
    bencher.bench(|| run(&p.root, &["--version"]));
}

#[divan::bench]
fn diff_two_versions(bencher: Bencher) {
    let p = project();
    bencher.bench(|| run(&p.root, &["prompt", "diff", "support-reply@~1", "support-reply@~0"]));
}

#[divan::bench]
fn diff_working_vs_production(bencher: Bencher) {
    let p = project();
    bencher.bench(|| run(&p.root, &["prompt", "diff", "support-reply"]));
}

#[divan::bench]
fn diff_uncached_tokens(bencher: Bencher) {
    let p = project();
    let counter = AtomicU64::new(0);
    bencher
        .with_inputs(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            write_prompt(&p.root, &format!("- Edit number {n}.\n"));
        })
        .bench_values(|_| run(&p.root, &["prompt", "diff", "support-reply"]));
}
