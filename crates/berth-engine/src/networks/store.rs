//! Network records in SQLite (`networks.db`, WAL): one row per network, names unique, the
//! record itself as JSON so that new fields need no migration.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use super::NetRecord;
use crate::error::EngineError;

pub struct Store {
    db: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> EngineError {
    EngineError::internal(format!("network database: {e}"))
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let db = Connection::open(path).map_err(db_err)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS networks (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 body TEXT NOT NULL
             );",
        )
        .map_err(db_err)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Result<Vec<NetRecord>, EngineError> {
        let db = self.conn();
        let mut st = db.prepare("SELECT body FROM networks").map_err(db_err)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        let mut out = Vec::new();
        for body in rows {
            let body = body.map_err(db_err)?;
            match serde_json::from_str(&body) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("skipping an unreadable network record: {e}"),
            }
        }
        Ok(out)
    }

    /// Inserts a new record; a name in use is Docker's conflict.
    pub fn insert(&self, r: &NetRecord) -> Result<(), EngineError> {
        let body = serde_json::to_string(r).map_err(|e| EngineError::internal(e.to_string()))?;
        match self.conn().execute(
            "INSERT INTO networks (id, name, body) VALUES (?1, ?2, ?3)",
            params![r.id, r.name, body],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(EngineError::conflict(format!(
                    "network with name {} already exists",
                    r.name
                )))
            }
            Err(e) => Err(db_err(e)),
        }
    }

    pub fn update(&self, r: &NetRecord) -> Result<(), EngineError> {
        let body = serde_json::to_string(r).map_err(|e| EngineError::internal(e.to_string()))?;
        self.conn()
            .execute(
                "UPDATE networks SET body = ?2 WHERE id = ?1",
                params![r.id, body],
            )
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<(), EngineError> {
        self.conn()
            .execute("DELETE FROM networks WHERE id = ?1", params![id])
            .map_err(db_err)?;
        Ok(())
    }
}
