//! Cached token counts, keyed by content hash and encoding.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    pub fn cached_token_count(&self, content_hash: &str, encoding: &str) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row(
                "SELECT tokens FROM token_count WHERE content_hash = ?1 AND encoding = ?2",
                [content_hash, encoding],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| n as u64))
            .map_err(|e| self.err(e))
    }

    pub fn cache_token_count(&mut self, content_hash: &str, encoding: &str, tokens: u64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO token_count (content_hash, encoding, tokens) VALUES (?1, ?2, ?3)",
                params![content_hash, encoding, tokens as i64],
            )?;
            Ok(())
        })
    }
}
