//! Loading the reference vectors, and checking that the in-repo copy is the shared original.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The files the tests read, relative to `tests/vectors/` (and to `../shared/vectors/`).
const FILES: [&str; 6] = [
    "README.md",
    "stats.json",
    "growthbook/README.md",
    "growthbook/LICENSE",
    "growthbook/cases.json",
    "growthbook/nonascii.json",
];

fn in_repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Where the project's shared folder keeps the originals, when this checkout sits beside it.
fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors")
}

pub fn load(relative: &str) -> Value {
    let path = in_repo_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn in_repo_copy_is_unchanged_from_the_shared_vectors() {
    let shared = shared_dir();
    if !shared.is_dir() {
        eprintln!("{} is absent; only the in-repo copy is checked", shared.display());
        return;
    }
    for file in FILES {
        let ours = std::fs::read(in_repo_dir().join(file)).unwrap();
        let original = std::fs::read(shared.join(file)).unwrap();
        assert!(ours == original, "tests/vectors/{file} differs from the shared original");
    }
}
