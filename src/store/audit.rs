//! The audit trail: who changed what, when, and why.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, now_rfc3339};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

impl Store {
    /// Appends an audit event in its own transaction.
    pub fn audit(
        &mut self,
        actor: &str,
        kind: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit_event (at, actor, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now, actor, kind, subject, detail.to_string()],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Events about `subject`, newest first.
    pub fn audit_events(&self, subject: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, kind, subject, detail FROM audit_event WHERE subject = ?1 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([subject], |r| {
                let detail: String = r.get(5)?;
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    kind: r.get(3)?,
                    subject: r.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
