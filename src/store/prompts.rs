//! Prompt versions, the commit log and labels.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{Store, StoreError, now_rfc3339};

/// A version as stored: the exact bytes it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredVersion {
    pub name: String,
    pub version_id: String,
    pub content_hash: String,
    pub path: String,
    pub source: String,
    pub examples_path: Option<String>,
    pub examples_source: Option<String>,
    pub created_at: String,
}

/// One entry of `prompt log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRecord {
    pub seq: i64,
    pub name: String,
    pub version_id: String,
    pub message: Option<String>,
    pub author: String,
    pub committed_at: String,
}

/// One move of a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelEvent {
    pub name: String,
    pub label: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub actor: String,
    pub at: String,
    pub reason: Option<String>,
}

/// A version to commit, with its commit message.
pub struct NewCommit<'a> {
    pub version: &'a StoredVersion,
    pub message: Option<&'a str>,
}

const COMMIT_COLUMNS: &str = "seq, name, version_id, message, author, committed_at";

fn commit_from_row(row: &Row<'_>) -> rusqlite::Result<CommitRecord> {
    Ok(CommitRecord {
        seq: row.get(0)?,
        name: row.get(1)?,
        version_id: row.get(2)?,
        message: row.get(3)?,
        author: row.get(4)?,
        committed_at: row.get(5)?,
    })
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<StoredVersion> {
    Ok(StoredVersion {
        name: row.get(0)?,
        version_id: row.get(1)?,
        content_hash: row.get(2)?,
        path: row.get(3)?,
        source: row.get(4)?,
        examples_path: row.get(5)?,
        examples_source: row.get(6)?,
        created_at: row.get(7)?,
    })
}

const VERSION_COLUMNS: &str =
    "name, version_id, content_hash, path, source, examples_path, examples_source, created_at";

impl Store {
    /// Records each version (if new) and a commit pointing at it, all in one transaction. Versions whose
    /// id equals their prompt's latest commit are skipped; returns the commits made.
    pub fn commit_versions(
        &mut self,
        commits: &[NewCommit<'_>],
        author: &str,
    ) -> Result<Vec<CommitRecord>, StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            let mut made = Vec::new();
            for commit in commits {
                let v = commit.version;
                let latest: Option<String> = tx
                    .query_row(
                        "SELECT version_id FROM prompt_commit WHERE name = ?1 ORDER BY seq DESC LIMIT 1",
                        [&v.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                if latest.as_deref() == Some(v.version_id.as_str()) {
                    continue;
                }
                tx.execute(
                    &format!("INSERT OR IGNORE INTO prompt_version ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![v.name, v.version_id, v.content_hash, v.path, v.source, v.examples_path, v.examples_source, now],
                )?;
                tx.execute(
                    "INSERT INTO prompt_commit (name, version_id, message, author, committed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![v.name, v.version_id, commit.message, author, now],
                )?;
                let seq = tx.last_insert_rowid();
                made.push(CommitRecord {
                    seq,
                    name: v.name.clone(),
                    version_id: v.version_id.clone(),
                    message: commit.message.map(str::to_string),
                    author: author.to_string(),
                    committed_at: now.clone(),
                });
            }
            Ok(made)
        })
    }

    /// Commits of `name`, newest first.
    pub fn prompt_log(&self, name: &str) -> Result<Vec<CommitRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COMMIT_COLUMNS} FROM prompt_commit WHERE name = ?1 ORDER BY seq DESC"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([name], commit_from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The commit `back` steps before the latest (`0` = latest).
    pub fn prompt_commit_back(&self, name: &str, back: u32) -> Result<Option<CommitRecord>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COMMIT_COLUMNS} FROM prompt_commit WHERE name = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2"
                ),
                params![name, back],
                commit_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn prompt_version(&self, name: &str, version_id: &str) -> Result<Option<StoredVersion>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {VERSION_COLUMNS} FROM prompt_version WHERE name = ?1 AND version_id = ?2"),
                [name, version_id],
                version_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Version ids of `name` starting with `prefix`.
    pub fn prompt_versions_with_prefix(&self, name: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT version_id FROM prompt_version WHERE name = ?1 AND substr(version_id, 1, length(?2)) = ?2 ORDER BY version_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([name, prefix], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Names of prompts with at least one commit.
    pub fn prompt_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT name FROM prompt_commit ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Which prompt names own a version with this exact id (to explain "that version belongs to …").
    pub fn prompts_owning_version(&self, version_id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM prompt_version WHERE version_id = ?1 ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([version_id], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Labels of `name` as (label, version id), sorted by label.
    pub fn labels(&self, name: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT label, version_id FROM label WHERE name = ?1 ORDER BY label")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn label(&self, name: &str, label: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT version_id FROM label WHERE name = ?1 AND label = ?2", [name, label], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Points `label` at `version_id` and records the move; returns the event (None when it already pointed
    /// there: nothing is written).
    pub fn set_label(
        &mut self,
        name: &str,
        label: &str,
        version_id: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<LabelEvent>, StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            let from: Option<String> = tx
                .query_row("SELECT version_id FROM label WHERE name = ?1 AND label = ?2", [name, label], |r| r.get(0))
                .optional()?;
            if from.as_deref() == Some(version_id) {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO label (name, label, version_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, label) DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
                params![name, label, version_id, now],
            )?;
            tx.execute(
                "INSERT INTO label_event (name, label, from_version, to_version, actor, at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![name, label, from, version_id, actor, now, reason],
            )?;
            Ok(Some(LabelEvent {
                name: name.into(),
                label: label.into(),
                from_version: from,
                to_version: version_id.into(),
                actor: actor.into(),
                at: now.clone(),
                reason: reason.map(str::to_string),
            }))
        })
    }

    /// Every move of every label of `name`, newest first.
    pub fn label_history(&self, name: &str) -> Result<Vec<LabelEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, label, from_version, to_version, actor, at, reason FROM label_event WHERE name = ?1 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([name], |r| {
                Ok(LabelEvent {
                    name: r.get(0)?,
                    label: r.get(1)?,
                    from_version: r.get(2)?,
                    to_version: r.get(3)?,
                    actor: r.get(4)?,
                    at: r.get(5)?,
                    reason: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str) -> StoredVersion {
        StoredVersion {
            name: "support-reply".into(),
            version_id: id.into(),
            content_hash: format!("{id}0000"),
            path: "prompts/support-reply.prompt".into(),
            source: format!("source {id}"),
            examples_path: None,
            examples_source: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn commits_skip_unchanged_and_allow_returning_to_old_content() {
        let mut store = Store::open_in_memory().unwrap();
        let (a, b) = (version("aaaaaaaaaaaa"), version("bbbbbbbbbbbb"));
        let made = store.commit_versions(&[NewCommit { version: &a, message: Some("first") }], "me").unwrap();
        assert_eq!(made.len(), 1);
        assert!(store.commit_versions(&[NewCommit { version: &a, message: None }], "me").unwrap().is_empty());
        store.commit_versions(&[NewCommit { version: &b, message: None }], "me").unwrap();
        store.commit_versions(&[NewCommit { version: &a, message: Some("revert") }], "me").unwrap();
        let log: Vec<String> = store.prompt_log("support-reply").unwrap().into_iter().map(|c| c.version_id).collect();
        assert_eq!(log, ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "aaaaaaaaaaaa"]);
        assert_eq!(store.prompt_commit_back("support-reply", 1).unwrap().unwrap().version_id, "bbbbbbbbbbbb");
        assert!(store.prompt_commit_back("support-reply", 3).unwrap().is_none());
    }

    #[test]
    fn labels_keep_history_and_skip_no_op_moves() {
        let mut store = Store::open_in_memory().unwrap();
        let (a, b) = (version("aaaaaaaaaaaa"), version("bbbbbbbbbbbb"));
        store
            .commit_versions(
                &[NewCommit { version: &a, message: None }, NewCommit { version: &b, message: None }],
                "me",
            )
            .unwrap();
        store.set_label("support-reply", "production", "aaaaaaaaaaaa", "me", None).unwrap().unwrap();
        assert!(store.set_label("support-reply", "production", "aaaaaaaaaaaa", "me", None).unwrap().is_none());
        let moved =
            store.set_label("support-reply", "production", "bbbbbbbbbbbb", "you", Some("fix")).unwrap().unwrap();
        assert_eq!(moved.from_version.as_deref(), Some("aaaaaaaaaaaa"));
        assert_eq!(store.label_history("support-reply").unwrap().len(), 2);
        assert_eq!(store.prompt_versions_with_prefix("support-reply", "bb").unwrap(), ["bbbbbbbbbbbb"]);
    }

    #[test]
    fn a_label_cannot_point_at_a_missing_version() {
        let mut store = Store::open_in_memory().unwrap();
        assert!(store.set_label("x", "production", "cccccccccccc", "me", None).is_err());
    }
}
