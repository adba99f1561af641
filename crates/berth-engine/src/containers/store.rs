//! The container records in SQLite (`<data root>/containers.db`, WAL). SQLite keeps names
//! unique under concurrency (a UNIQUE column, not a check-then-insert) and answers in-use
//! questions for images.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::Record;
use crate::error::EngineError;

/// Errors of the store, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("container database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("container database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("container record {id} is corrupt: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("name {name:?} is in use by {id}")]
    NameInUse { name: String, id: String },
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NameInUse { name, id } => EngineError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            )),
            _ => EngineError::internal(e.to_string()),
        }
    }
}

fn encode(r: &Record) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Corrupt {
        id: r.id.clone(),
        source: e,
    })
}

/// A UNIQUE violation on the name becomes [`StoreError::NameInUse`] naming the holder.
fn name_conflict(db: &Connection, e: rusqlite::Error, name: &str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let id: Option<String> = db
                .query_row(
                    "SELECT id FROM containers WHERE name = ?1",
                    params![name],
                    |row| row.get(0),
                )
                .optional()
                .ok()
                .flatten();
            StoreError::NameInUse {
                name: name.to_string(),
                id: id.unwrap_or_default(),
            }
        }
        e => e.into(),
    }
}

/// The table of containers.
pub struct Store {
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
";

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = |e| StoreError::Open {
            path: path.display().to_string(),
            source: e,
        };
        let db = Connection::open(path).map_err(open)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open)?;
        db.execute_batch(SCHEMA).map_err(open)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a new record; a taken name is [`StoreError::NameInUse`].
    pub fn insert(&self, r: &Record) -> Result<(), StoreError> {
        let json = encode(r)?;
        let db = self.conn();
        let done = db
            .prepare_cached(
                "INSERT INTO containers (id, name, image_id, record) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![r.id, r.name, r.image_id, json]));
        match done {
            Ok(_) => Ok(()),
            Err(e) => Err(name_conflict(&db, e, &r.name)),
        }
    }

    /// Saves a changed record (its name included; a taken name is [`StoreError::NameInUse`]).
    pub fn update(&self, r: &Record) -> Result<(), StoreError> {
        let json = encode(r)?;
        let db = self.conn();
        let done = db
            .prepare_cached("UPDATE containers SET name = ?2, record = ?3 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![r.id, r.name, json]));
        match done {
            Ok(_) => Ok(()),
            Err(e) => Err(name_conflict(&db, e, &r.name)),
        }
    }

    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM containers WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    /// Every record, oldest first.
    pub fn all(&self) -> Result<Vec<Record>, StoreError> {
        let db = self.conn();
        let mut st = db.prepare_cached("SELECT id, record FROM containers ORDER BY rowid")?;
        let rows = st.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt { id, source: e })?,
            );
        }
        Ok(out)
    }
}
