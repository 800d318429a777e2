//! The state file: creation, idempotence, refusals, and concurrent writers.

use crate::common::Project;

#[test]
fn init_is_idempotent() {
    let p = Project::empty();
    let first = p.json(&["init"]);
    assert_eq!(first["schema"], "promptctl.init/v1");
    assert_eq!(first["state_created"], true);
    assert_eq!(first["config_created"], true);
    let config = p.read("promptctl.toml");
    let second = p.json(&["init"]);
    assert_eq!(second["state_created"], false);
    assert_eq!(second["config_created"], false);
    assert_eq!(p.read("promptctl.toml"), config);
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let p = Project::empty();
    let mut cmd = p.cmd();
    let out = cmd.args(["--format", "json", "init"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("promptctl.init/v1"));
}

#[test]
fn default_state_lives_in_dot_promptctl_at_the_git_root() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path().join(".git")).unwrap();
    std::fs::create_dir_all(p.path().join("sub/dir")).unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("promptctl").unwrap();
    cmd.current_dir(p.path().join("sub/dir")).env_remove("PROMPTCTL_STATE").arg("init").assert().success();
    assert!(p.path().join(".promptctl/state.db").is_file());
}

#[test]
fn state_env_var_is_honoured() {
    let p = Project::empty();
    let mut cmd = assert_cmd::Command::cargo_bin("promptctl").unwrap();
    cmd.current_dir(p.path()).env("PROMPTCTL_STATE", p.path().join("env.db")).arg("init").assert().success();
    assert!(p.path().join("env.db").is_file());
}

#[test]
fn a_state_file_from_a_newer_promptctl_is_refused_with_exit_4() {
    let p = Project::empty();
    p.run(&["init"], 0);
    let conn = rusqlite::Connection::open(p.state()).unwrap();
    conn.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(conn);
    let (_, stderr) = p.run(&["prompt", "log", "x"], 4);
    assert!(stderr.contains("newer promptctl (schema 999"), "{stderr}");
    assert!(stderr.contains("hint: upgrade promptctl"), "{stderr}");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let p = Project::empty();
    let junk = "name,value\nthis is a CSV file that someone pointed --state at by mistake\n".repeat(20);
    std::fs::write(p.state(), &junk).unwrap();
    let (_, stderr) = p.run(&["init"], 4);
    assert!(stderr.contains("is not a promptctl state file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(p.state()).unwrap(), junk);
}

#[test]
fn a_state_path_in_a_missing_directory_is_refused() {
    let p = Project::empty();
    let mut cmd = p.cmd();
    let out = cmd.args(["init", "--state"]).arg(p.path().join("nope/state.db")).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!p.path().join("nope").exists());
}

#[test]
fn a_read_only_location_is_refused() {
    let p = Project::empty();
    // /proc refuses new files even for root, unlike permission bits.
    let out = p.cmd().args(["init", "--state", "/proc/promptctl-state.db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn commands_that_read_need_an_existing_state() {
    let p = Project::empty();
    let (_, stderr) = p.run(&["prompt", "log", "support-reply"], 4);
    assert!(stderr.contains("no state file"), "{stderr}");
    assert!(stderr.contains("promptctl init"), "{stderr}");
    assert!(!p.state().exists());
}

#[test]
fn concurrent_writers_on_a_fresh_state_file_both_succeed() {
    for round in 0..5 {
        let p = Project::with_prompts();
        let children: Vec<_> = (0..2)
            .map(|i| {
                let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("promptctl"));
                cmd.current_dir(p.path())
                    .env_remove("PROMPTCTL_STATE")
                    .args(["--state"])
                    .arg(p.state())
                    .args(["prompt", "commit", "-m", &format!("writer {i}")])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                cmd.spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
        // One writer committed the three prompts, the other found them unchanged: no duplicates.
        let log = p.json(&["prompt", "log", "support-reply"]);
        assert_eq!(log["versions"].as_array().unwrap().len(), 1, "round {round}");
    }
}
