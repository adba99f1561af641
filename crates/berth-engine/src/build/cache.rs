//! The build cache: which image a build step produced, by the step's cache key (computed by the
//! executor from the parent image, the instruction and the files it reads). Kept in its own
//! SQLite database, `<data root>/buildcache.db` (WAL), so that it survives daemon restarts and
//! never contends with the image index's lock.
//!
//! A cache entry only points at an image; the image store owns the image. An entry whose image
//! is gone is a miss (and is forgotten). This module never deletes images: pruning does that in
//! the API layer, through the image service's removal and garbage collection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Errors of the cache database.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("build cache database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("build cache database {0}: a thread panicked while holding it")]
    Poisoned(PathBuf),
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: String,
    /// `sha256:<hex>`.
    pub image: String,
    /// Unix seconds.
    pub created: i64,
    pub last_used: i64,
    pub usage: i64,
}

/// The cache database.
pub struct BuildCache {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cache (
    key       TEXT PRIMARY KEY,
    image     TEXT NOT NULL,
    created   INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    usage     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cache_image ON cache(image);
";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl BuildCache {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, CacheError> {
        let db = |source| CacheError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        // WAL with synchronous=NORMAL: a commit is a write to the log, no fsync per cache hit.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, CacheError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| CacheError::Db {
            path: path.clone(),
            source,
        })?;
        conn.execute_batch(SCHEMA)
            .map_err(|source| CacheError::Db {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CacheError> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| CacheError::Poisoned(self.path.clone()))?;
        f(&mut c).map_err(|source| CacheError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// The image recorded for `key`; counts the use.
    pub fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let t = now();
        self.with(|c| {
            c.prepare_cached(
                "UPDATE cache SET last_used = ?2, usage = usage + 1 WHERE key = ?1 RETURNING image",
            )?
            .query_row(params![key, t], |r| r.get::<_, String>(0))
            .optional()
        })
    }

    /// Records that `key` produced `image` (replacing what it produced before).
    pub fn put(&self, key: &str, image: &str) -> Result<(), CacheError> {
        let t = now();
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO cache (key, image, created, last_used, usage) VALUES (?1, ?2, ?3, ?3, 0)
                 ON CONFLICT(key) DO UPDATE SET image = excluded.image, created = excluded.created,
                 last_used = excluded.last_used",
            )?
            .execute(params![key, image, t])
            .map(drop)
        })
    }

    /// Forgets entries by key.
    pub fn forget(&self, keys: &[String]) -> Result<(), CacheError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached("DELETE FROM cache WHERE key = ?1")?;
                for k in keys {
                    st.execute([k])?;
                }
            }
            tx.commit()
        })
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT key, image, created, last_used, usage FROM cache ORDER BY created, key",
            )?;
            let rows = st.query_map([], |r| {
                Ok(CacheEntry {
                    key: r.get(0)?,
                    image: r.get(1)?,
                    created: r.get(2)?,
                    last_used: r.get(3)?,
                    usage: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The images some entry points at.
    pub fn images(&self) -> Result<HashSet<String>, CacheError> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT DISTINCT image FROM cache")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_across_reopen_and_count_their_uses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buildcache.db");
        {
            let c = BuildCache::open(&path).unwrap();
            assert_eq!(c.get("k1").unwrap(), None);
            c.put("k1", "sha256:aa").unwrap();
            c.put("k2", "sha256:bb").unwrap();
            assert_eq!(c.get("k1").unwrap().as_deref(), Some("sha256:aa"));
            assert_eq!(c.get("k1").unwrap().as_deref(), Some("sha256:aa"));
        }
        let c = BuildCache::open(&path).unwrap();
        let e = c.entries().unwrap();
        assert_eq!(e.len(), 2);
        let k1 = e.iter().find(|e| e.key == "k1").unwrap();
        assert_eq!(k1.usage, 2);
        assert!(k1.last_used >= k1.created && k1.created > 0);
        // A new result for the same key replaces the old one.
        c.put("k1", "sha256:cc").unwrap();
        assert_eq!(c.get("k1").unwrap().as_deref(), Some("sha256:cc"));
        assert_eq!(
            c.images().unwrap(),
            HashSet::from(["sha256:cc".to_string(), "sha256:bb".to_string()])
        );
        c.forget(&["k1".to_string()]).unwrap();
        assert_eq!(c.get("k1").unwrap(), None);
        assert_eq!(c.entries().unwrap().len(), 1);
    }

    #[test]
    fn in_memory_database_works_the_same() {
        let c = BuildCache::open_in_memory().unwrap();
        c.put("a", "sha256:1").unwrap();
        assert_eq!(c.get("a").unwrap().as_deref(), Some("sha256:1"));
        assert!(c.get("b").unwrap().is_none());
    }
}
