//! `promptctl prompt …` through the binary: output snapshots, JSON contracts, bad input.

use crate::common::{Project, snapshot_settings};

fn committed() -> Project {
    let p = Project::with_prompts();
    p.run(&["init"], 0);
    p.run(&["prompt", "commit", "-m", "first version"], 0);
    p
}

/// Edits the support-reply working file and commits it as a second version.
fn with_second_version(p: &Project) {
    let text = p.read("prompts/support-reply.prompt").replace("concise tone", "concise, warm tone");
    p.write("prompts/support-reply.prompt", &text);
    p.run(&["prompt", "commit", "-m", "warmer tone"], 0);
}

#[test]
fn commit_log_show_and_label_human_output() {
    let p = committed();
    with_second_version(&p);
    p.run(&["prompt", "label", "support-reply@~1", "production", "--reason", "first release"], 0);
    let settings = snapshot_settings(&p);
    settings.bind(|| {
        insta::assert_snapshot!("prompt_log_human", p.run(&["prompt", "log", "support-reply"], 0).0);
        insta::assert_snapshot!("prompt_show_human", p.run(&["prompt", "show", "triage"], 0).0);
        insta::assert_json_snapshot!("prompt_log_json", p.json(&["prompt", "log", "support-reply"]));
        insta::assert_json_snapshot!("prompt_show_json", p.json(&["prompt", "show", "support-reply@production"]));
    });
}

#[test]
fn commit_skips_unchanged_files() {
    let p = committed();
    let report = p.json(&["prompt", "commit"]);
    assert_eq!(report["committed"].as_array().unwrap().len(), 0);
    assert_eq!(report["unchanged"].as_array().unwrap().len(), 3);
}

#[test]
fn refs_resolve_labels_tilde_and_prefixes() {
    let p = committed();
    with_second_version(&p);
    let latest = p.json(&["prompt", "show", "support-reply"])["version"].as_str().unwrap().to_string();
    let previous = p.json(&["prompt", "show", "support-reply@~1"])["version"].as_str().unwrap().to_string();
    assert_ne!(latest, previous);
    assert_eq!(p.json(&["prompt", "show", "support-reply@~0"])["version"], latest.as_str());
    assert_eq!(p.json(&["prompt", "show", &format!("support-reply@{}", &previous[..6])])["version"], previous.as_str());
    p.run(&["prompt", "label", "support-reply@~1", "production"], 0);
    assert_eq!(p.json(&["prompt", "show", "support-reply@production"])["version"], previous.as_str());
    let (_, stderr) = p.run(&["prompt", "show", "support-reply@~5"], 2);
    assert!(stderr.contains("goes back too far"), "{stderr}");
    let (_, stderr) = p.run(&["prompt", "show", "support-reply@prodution"], 2);
    assert!(stderr.contains("did you mean the label `production`"), "{stderr}");
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let p = Project::empty();
    p.run(&["init"], 0);
    // 17 versions cannot all start with different hex digits.
    for i in 0..17 {
        p.write(
            "prompts/faq.prompt",
            &format!("---\nmodel: openai:gpt-4o-mini\n---\n::: user\nQuestion {i}: {{{{ q }}}}\n"),
        );
        p.run(&["prompt", "commit"], 0);
    }
    let log = p.json(&["prompt", "log", "faq"]);
    let ids: Vec<&str> = log["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    let prefix = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|id| id.starts_with(d.as_str())).count() >= 2)
        .unwrap();
    let (_, stderr) = p.run(&["prompt", "show", &format!("faq@{prefix}")], 2);
    assert!(stderr.contains("is ambiguous"), "{stderr}");
    for id in ids.iter().filter(|id| id.starts_with(prefix.as_str())) {
        assert!(stderr.contains(id), "{stderr} should list {id}");
    }
}

#[test]
fn label_history_records_who_when_from_and_to() {
    let p = committed();
    with_second_version(&p);
    p.run(&["prompt", "label", "support-reply@~1", "production"], 0);
    let moved = p.json(&["prompt", "label", "support-reply", "production", "--reason", "warmer tone tested"]);
    assert_eq!(moved["changed"], true);
    let again = p.json(&["prompt", "label", "support-reply", "production"]);
    assert_eq!(again["changed"], false);
    let log = p.json(&["prompt", "log", "support-reply"]);
    let events = log["label_events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["actor"], "tester@acme.example");
    assert_eq!(events[0]["reason"], "warmer tone tested");
    assert_eq!(events[0]["from_version"], events[1]["to_version"]);
    let (_, stderr) = p.run(&["prompt", "label", "support-reply", "9lives"], 2);
    assert!(stderr.contains("not a valid label"), "{stderr}");
}

#[test]
fn render_human_and_json() {
    let p = committed();
    let settings = snapshot_settings(&p);
    let args = ["prompt", "render", "support-reply", "--var", "message=Where is my parcel?", "--var", "order_id=5521"];
    settings.bind(|| {
        insta::assert_snapshot!("prompt_render_human", p.run(&args, 0).0);
        insta::assert_json_snapshot!("prompt_render_json", p.json(&args));
    });
}

#[test]
fn render_reads_a_vars_file_and_working_files() {
    let p = committed();
    p.write("vars.yaml", "subject: Blender sparks\nbody: It smelled of smoke and the cord is hot.\n");
    let doc = p.json(&["prompt", "render", "prompts/triage.prompt", "--vars", "vars.yaml"]);
    assert_eq!(doc["version"], "working");
    assert!(doc["messages"][1]["content"].as_str().unwrap().contains("cord is hot"));
}

#[test]
fn render_names_a_missing_variable() {
    let p = committed();
    let (stdout, stderr) = p.run(&["prompt", "render", "triage", "--var", "subject=hi"], 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("prompts/triage.prompt:21:4: undefined variable `body`"), "{stderr}");
}

#[test]
fn diff_between_versions_matches_the_contract() {
    let p = committed();
    let text = p
        .read("prompts/support-reply.prompt")
        .replace("model: openai:gpt-4o-mini", "model: openai:gpt-4.1-mini")
        .replace("concise tone", "concise tone.\nSign off as \"{{ agent_name }}\"");
    p.write("prompts/support-reply.prompt", &text);
    let examples = p.read("prompts/support-reply.examples.yaml")
        + "- id: ex-04\n  input: \"Is the warranty transferable?\"\n  output: \"Yes, with the original receipt.\"\n";
    p.write("prompts/support-reply.examples.yaml", &examples);
    p.run(&["prompt", "commit", "-m", "bigger model"], 0);
    let doc = p.json(&["prompt", "diff", "support-reply@~1", "support-reply@~0"]);
    assert_eq!(doc["schema"], "promptctl.prompt-diff/v1");
    assert_eq!(doc["variables"]["added"], serde_json::json!(["agent_name"]));
    assert_eq!(doc["params"][0]["key"], "model");
    assert_eq!(doc["params"][0]["to"], "openai:gpt-4.1-mini");
    assert_eq!(doc["examples"]["added"], serde_json::json!(["ex-04"]));
    assert_eq!(doc["tokens"]["encoding"], "o200k_base");
    let delta = doc["tokens"]["delta"].as_i64().unwrap();
    assert_eq!(delta, doc["tokens"]["to"].as_i64().unwrap() - doc["tokens"]["from"].as_i64().unwrap());
    assert!(delta > 0);
    let settings = snapshot_settings(&p);
    settings.bind(|| {
        insta::assert_snapshot!(
            "prompt_diff_human",
            p.run(&["prompt", "diff", "support-reply@~1", "support-reply@~0"], 0).0
        );
        insta::assert_json_snapshot!("prompt_diff_json", doc);
    });
}

#[test]
fn diff_of_a_version_with_itself_is_empty() {
    let p = committed();
    let doc = p.json(&["prompt", "diff", "triage@~0", "triage@~0"]);
    assert_eq!(doc["text"], "");
    assert_eq!(doc["tokens"]["delta"], 0);
    p.run(&["prompt", "diff", "triage", "--exit-code"], 0);
}

#[test]
fn diff_of_the_working_file_uses_production_then_says_it_fell_back() {
    let p = committed();
    let text = p.read("prompts/triage.prompt").replace("Acme", "Acme Home");
    p.write("prompts/triage.prompt", &text);
    let (stdout, stderr) = p.run(&["prompt", "diff", "triage", "--format", "json"], 0);
    assert!(stderr.contains("no `production` label"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["to"]["version"], "working");
    p.run(&["prompt", "label", "triage", "production"], 0);
    let doc = p.json(&["prompt", "diff", "triage"]);
    assert_eq!(doc["from"]["label"], "production");
    p.run(&["prompt", "diff", "triage", "--exit-code"], 1);
}

/// Each bad file: exit 2, the position in the message, and nothing committed.
#[test]
fn bad_prompt_files_are_rejected_with_positions_and_nothing_is_written() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("malformed yaml", b"---\nname: bad\nparams: { temperature: 0.2\n---\n::: user\nhi\n", "prompts/bad.prompt:4:"),
        (
            "no closing fence",
            b"---\nname: bad\nmodel: openai:gpt-4o\n::: user\nhi\n",
            "prompts/bad.prompt:1:1: the frontmatter opened on line 1 is never closed",
        ),
        (
            "unknown key",
            b"---\nname: bad\ntemperture: 0.3\n---\n::: user\nhi\n",
            "prompts/bad.prompt:3:1: unknown key `temperture`",
        ),
        (
            "name differs",
            b"---\nname: good\n---\n::: user\nhi\n",
            "prompts/bad.prompt:2:1: `name: good` differs from the file name `bad.prompt`",
        ),
        ("not utf-8", b"---\nname: bad\n---\n::: user\ncaf\xe9\n", "prompts/bad.prompt:5:4: not valid UTF-8"),
        ("empty", b"", "prompts/bad.prompt: the file is empty"),
        (
            "missing examples",
            b"---\nexamples: bad.examples.yaml\n---\n::: user\nhi\n",
            "prompts/bad.prompt:2:1: examples file `bad.examples.yaml` not found",
        ),
        ("unknown role", b"---\nname: bad\n---\n::: sytem\nhi\n", "prompts/bad.prompt:4:1: unknown role `sytem`"),
        ("template syntax", b"---\nname: bad\n---\n::: user\n{{ oops \n", "prompts/bad.prompt:5"),
    ];
    for (what, bytes, expected) in cases {
        let p = Project::with_prompts();
        p.run(&["init"], 0);
        p.write_bytes("prompts/bad.prompt", bytes);
        let (_, stderr) = p.run(&["prompt", "commit"], 2);
        assert!(stderr.contains(expected), "{what}: expected `{expected}` in\n{stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "{what}: one clear message\n{stderr}");
        let (_, stderr) = p.run(&["prompt", "log", "support-reply"], 2);
        assert!(stderr.contains("no committed versions"), "{what}: a bad file must commit nothing\n{stderr}");
    }
}

#[test]
fn unknown_frontmatter_key_names_the_nearest_valid_key() {
    let p = Project::empty();
    p.write("prompts/x.prompt", "---\nmodle: openai:gpt-4o\n---\n::: user\nhi\n");
    let (_, stderr) = p.run(&["prompt", "commit"], 2);
    assert!(stderr.contains("did you mean `model`?"), "{stderr}");
}
