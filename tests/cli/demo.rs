//! `promptctl demo` runs the whole tour offline and succeeds.

use crate::common::Project;

#[test]
fn the_demo_runs_every_step_and_succeeds() {
    let p = Project::empty();
    let (stdout, stderr) = p.run(&["demo"], 0);
    for marker in [
        "━━ 1. Version prompts",
        "committed  6be73ea5beac  support-reply",
        "tokens     312 → 376",
        "Sign off as Sam from the Acme support team.",
        "production: 6be73ea5beac →",
        "portfolio rebalance --apply (week 2)",
        "cohort_quarantine: exclude",
        "fewshot.tenant_overlap [ex-04]",
        "emitted to globex, initech after deploy (exposure)",
        "1,424 new row(s), 0 duplicate(s)",
        "What the duration hid",
        "super-linear",
        " 8  unexplained ",
        "gap                  +$22.03  100.0 %",
        "Done.",
    ] {
        assert!(stdout.contains(marker), "demo output lacks {marker:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    }
    assert!(!stdout.contains("sk-proj-Qx7Lm2Vb9TzR4pW8"), "the demo must not print the planted key");
    // Nothing is written outside the temporary project.
    assert_eq!(std::fs::read_dir(p.path()).unwrap().count(), 0);
}
