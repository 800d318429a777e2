//! A temporary project with the repo's example prompts and its own state file.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project directory.
    pub fn empty() -> Project {
        Project { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A project with a copy of the repository's `prompts/`.
    pub fn with_prompts() -> Project {
        let project = Project::empty();
        copy_dir(&repo_path("prompts"), &project.path().join("prompts"));
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state.db")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    /// `promptctl` run in the project with its own state file and a clean environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("promptctl").expect("binary built");
        cmd.current_dir(self.path())
            .env_remove("PROMPTCTL_STATE")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .env("PROMPTCTL_ACTOR", "tester@acme.example")
            .arg("--state")
            .arg(self.state());
        cmd
    }

    /// Runs `args`, expects `code`, returns (stdout, stderr).
    pub fn run(&self, args: &[&str], code: i32) -> (String, String) {
        let output = self.cmd().args(args).output().expect("runs");
        let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
        let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
        assert_eq!(output.status.code(), Some(code), "promptctl {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        (stdout, stderr)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.json_allowing(args, 0)
    }

    /// `--format json` output of a command expected to exit with `code`.
    pub fn json_allowing(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let (stdout, _) = self.run(&all, code);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Insta settings that hide what changes from run to run: times and temporary paths.
pub fn snapshot_settings(project: &Project) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?", "[TIME]");
    let dir = project.path().to_string_lossy().into_owned();
    settings.add_filter(&regex_escape(&dir), "[PROJECT]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' { c.to_string() } else { format!("\\{c}") }
        })
        .collect()
}
