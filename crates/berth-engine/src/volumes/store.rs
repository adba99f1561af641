//! Volume records in SQLite (`volumes.db`, WAL): one row per volume, names unique, the record
//! itself as JSON so that new fields need no migration. The data lives under
//! `<data root>/volumes/<name>/_data`; this file only keeps the records.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use super::{VolRecord, VolumeError};

pub struct Store {
    db: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, VolumeError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS volumes (
                 name TEXT PRIMARY KEY,
                 body TEXT NOT NULL
             );",
        )?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Result<Vec<VolRecord>, VolumeError> {
        let db = self.conn();
        let mut st = db.prepare("SELECT body FROM volumes ORDER BY name")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            match serde_json::from_str(&body?) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("skipping an unreadable volume record: {e}"),
            }
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Option<VolRecord>, VolumeError> {
        let db = self.conn();
        let mut st = db.prepare("SELECT body FROM volumes WHERE name = ?1")?;
        let mut rows = st.query_map(params![name], |r| r.get::<_, String>(0))?;
        match rows.next() {
            Some(body) => Ok(serde_json::from_str(&body?).ok()),
            None => Ok(None),
        }
    }

    /// Inserts a new record; false if the name is taken.
    pub fn insert(&self, r: &VolRecord) -> Result<bool, VolumeError> {
        let body = serde_json::to_string(r).map_err(|e| VolumeError::Internal(e.to_string()))?;
        match self.conn().execute(
            "INSERT INTO volumes (name, body) VALUES (?1, ?2)",
            params![r.name, body],
        ) {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn delete(&self, name: &str) -> Result<(), VolumeError> {
        self.conn()
            .execute("DELETE FROM volumes WHERE name = ?1", params![name])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_are_unique_and_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("volumes.db")).unwrap();
        let r = VolRecord {
            name: "data".into(),
            driver: "local".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            labels: BTreeMap::from([("a".into(), "b".into())]),
            options: BTreeMap::new(),
        };
        assert!(s.insert(&r).unwrap());
        assert!(!s.insert(&r).unwrap());
        assert_eq!(s.get("data").unwrap().unwrap().labels["a"], "b");
        assert_eq!(s.all().unwrap().len(), 1);
        s.delete("data").unwrap();
        assert!(s.get("data").unwrap().is_none());
    }
}
