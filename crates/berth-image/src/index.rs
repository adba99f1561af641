//! The image index: which images exist, which names point at them, which layers they are made of,
//! and what uses them, in SQLite (`<root>/berth.db`, WAL).
//!
//! Relational state belongs here because its rules are relational: a name points at exactly one
//! image, tagging moves a name, a layer is shared by every image whose chain contains it, and an
//! image in use must not be removed. This module never touches blobs or layer directories; it tells
//! its caller which of them became unused, and the caller removes them.
//!
//! Schema changes are migrations numbered by SQLite's `user_version`; never edit a released one,
//! append a new one.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_types::{Digest, Reference, ReferenceError};
use rusqlite::{params, Connection, OptionalExtension};

/// What went wrong in the image index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no such image: {0}")]
    NotFound(String),
    #[error(
        "image id prefix {prefix:?} is ambiguous: it matches {count} images; give more digits"
    )]
    Ambiguous { prefix: String, count: usize },
    #[error("image {image} is in use by {users}: stop and remove those first, or force")]
    InUse { image: Digest, users: String },
    #[error(
        "image {image} refers to layer {layer}, which is not in the index: record the layer first"
    )]
    UnknownLayer { image: Digest, layer: Digest },
    #[error("layer {layer} is used by {count} images and cannot be removed")]
    LayerInUse { layer: Digest, count: u64 },
    #[error("the index holds an invalid value {value:?} in {column}: the database is corrupt, run a store check")]
    Corrupt { column: &'static str, value: String },
    #[error("the index database has schema version {found}, newer than this berth knows ({known}): upgrade berth")]
    TooNew { found: i64, known: i64 },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image index database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Migrations, applied in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: images, names, layers, and users of images.
    r#"
    CREATE TABLE images (
        id              TEXT PRIMARY KEY,      -- config digest
        manifest_digest TEXT,
        created         TEXT,                  -- the config's "created", as written there
        size            INTEGER NOT NULL,      -- sum of the unpacked sizes of its layers
        added_at        INTEGER NOT NULL       -- unix seconds when stored here
    ) STRICT;
    CREATE INDEX images_manifest ON images(manifest_digest);
    CREATE TABLE tags (
        reference TEXT PRIMARY KEY,            -- fully qualified: docker.io/library/busybox:latest
        image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id  TEXT NOT NULL,
        parent   TEXT REFERENCES layers(chain_id),
        size     INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,              -- 0 = bottom layer
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, position)
    ) STRICT;
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE TABLE image_users (
        user     TEXT NOT NULL,                 -- e.g. "container:<id>"
        image_id TEXT NOT NULL REFERENCES images(id),
        PRIMARY KEY (user, image_id)
    ) STRICT;
    CREATE INDEX image_users_image ON image_users(image_id);
    "#,
    // 2: images a store check found broken (a blob or layer directory they need is missing).
    r#"
    CREATE TABLE image_broken (
        image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        reason   TEXT NOT NULL,
        found_at INTEGER NOT NULL              -- unix seconds
    ) STRICT;
    "#,
    // 3: the digests an image has in the repositories it was pulled from or pushed to (Docker's
    // RepoDigests: set by pull and push only, never by tag, kept while the image exists).
    r#"
    CREATE TABLE repo_digests (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        repo     TEXT NOT NULL,                -- fully qualified: docker.io/library/busybox
        digest   TEXT NOT NULL,                -- the manifest (or manifest list) digest there
        PRIMARY KEY (image_id, repo)
    ) STRICT;
    "#,
    // 4: the image a build step's image was made from (Docker's `Parent`: docker history shows
    // every step's id through it). Images pulled, loaded or imported have none.
    r#"
    CREATE TABLE image_parents (
        image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        parent   TEXT NOT NULL
    ) STRICT;
    "#,
];

/// An image as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The config digest, which is the image id.
    pub id: Digest,
    pub manifest_digest: Option<Digest>,
    pub created: Option<String>,
    pub size: u64,
    /// Chain ids, bottom layer first.
    pub layers: Vec<Digest>,
    /// Unix seconds when the image was stored here.
    pub added_at: i64,
}

/// An unpacked layer as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: u64,
}

/// What removing an image left behind for the caller to clean up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<String>,
    /// Layers no image uses any more (top first): their directories can go, then
    /// [`ImageIndex::remove_layer`].
    pub unused_layers: Vec<Digest>,
}

/// A connection to the image index.
pub struct ImageIndex {
    conn: Connection,
}

fn digest_col(column: &'static str, s: String) -> Result<Digest, IndexError> {
    Digest::parse(&s).map_err(|_| IndexError::Corrupt { column, value: s })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(i64::MAX)
}

impl ImageIndex {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// An index in memory, for tests.
    pub fn open_in_memory() -> Result<Self, IndexError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, IndexError> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let known = MIGRATIONS.len() as i64;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(IndexError::TooNew {
                found: version,
                known,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(Self { conn })
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Records an unpacked layer (idempotent).
    pub fn add_layer(&mut self, l: &LayerRecord) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO layers (chain_id, diff_id, parent, size) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(chain_id) DO NOTHING",
            params![
                l.chain_id.to_string(),
                l.diff_id.to_string(),
                l.parent.as_ref().map(|p| p.to_string()),
                l.size as i64
            ],
        )?;
        Ok(())
    }

    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>, IndexError> {
        let row = self
            .conn
            .query_row(
                "SELECT chain_id, diff_id, parent, size FROM layers WHERE chain_id = ?1",
                [chain_id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(c, d, p, s)| {
            Ok(LayerRecord {
                chain_id: digest_col("layers.chain_id", c)?,
                diff_id: digest_col("layers.diff_id", d)?,
                parent: p.map(|p| digest_col("layers.parent", p)).transpose()?,
                size: s.max(0) as u64,
            })
        })
        .transpose()
    }

    /// How many images use a layer.
    pub fn layer_refcount(&self, chain_id: &Digest) -> Result<u64, IndexError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM image_layers WHERE chain_id = ?1",
            [chain_id.to_string()],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Layers recorded but used by no image, children before parents.
    pub fn unused_layers(&self) -> Result<Vec<Digest>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT chain_id FROM layers l
             WHERE NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.chain_id = l.chain_id)
               AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent = l.chain_id)
             ORDER BY chain_id",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(digest_col("layers.chain_id", r?)?);
        }
        Ok(out)
    }

    /// Forgets a layer no image uses (after its directory was removed).
    pub fn remove_layer(&mut self, chain_id: &Digest) -> Result<(), IndexError> {
        let count = self.layer_refcount(chain_id)?;
        if count > 0 {
            return Err(IndexError::LayerInUse {
                layer: chain_id.clone(),
                count,
            });
        }
        self.conn.execute(
            "DELETE FROM layers WHERE chain_id = ?1",
            [chain_id.to_string()],
        )?;
        Ok(())
    }

    /// Records an image whose layers are already recorded. Adding an image that exists updates
    /// nothing and is not an error (the same config pulled twice is the same image).
    pub fn add_image(&mut self, img: &ImageRecord) -> Result<(), IndexError> {
        let tx = self.conn.transaction()?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                [img.id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO images (id, manifest_digest, created, size, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                img.id.to_string(),
                img.manifest_digest.as_ref().map(|d| d.to_string()),
                img.created,
                img.size as i64,
                if img.added_at == 0 { now() } else { img.added_at },
            ],
        )?;
        for (pos, layer) in img.layers.iter().enumerate() {
            let known: bool = tx
                .query_row(
                    "SELECT 1 FROM layers WHERE chain_id = ?1",
                    [layer.to_string()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Err(IndexError::UnknownLayer {
                    image: img.id.clone(),
                    layer: layer.clone(),
                });
            }
            tx.execute(
                "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?1, ?2, ?3)",
                params![img.id.to_string(), pos as i64, layer.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The image with exactly this id.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>, IndexError> {
        load_image(&self.conn, &id.to_string())
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM images ORDER BY added_at DESC, id")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(img) = load_image(&self.conn, &id)? {
                out.push(img);
            }
        }
        Ok(out)
    }

    /// Points `reference` at `image`, moving it from any image it pointed at before; returns that
    /// previous image. A bare name gets `:latest`.
    pub fn tag(
        &mut self,
        reference: &Reference,
        image: &Digest,
    ) -> Result<Option<Digest>, IndexError> {
        let key = reference.clone().with_default_tag().to_string();
        let tx = self.conn.transaction()?;
        if load_image(&tx, &image.to_string())?.is_none() {
            return Err(IndexError::NotFound(image.to_string()));
        }
        let prev: Option<String> = tx
            .query_row(
                "SELECT image_id FROM tags WHERE reference = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
             ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id",
            params![key, image.to_string()],
        )?;
        tx.commit()?;
        let prev = prev.map(|p| digest_col("tags.image_id", p)).transpose()?;
        Ok(prev.filter(|p| p != image))
    }

    /// Removes a name; `Ok(false)` when it did not exist.
    pub fn untag(&mut self, reference: &Reference) -> Result<bool, IndexError> {
        let key = reference.clone().with_default_tag().to_string();
        let n = self
            .conn
            .execute("DELETE FROM tags WHERE reference = ?1", [key])?;
        Ok(n > 0)
    }

    /// Records `parent` as the image `image` was built from (a build step).
    pub fn set_parent(&mut self, image: &Digest, parent: &Digest) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO image_parents (image_id, parent) VALUES (?1, ?2)",
            params![image.to_string(), parent.to_string()],
        )?;
        Ok(())
    }

    /// The image `image` was built from, if a build recorded one and it still exists.
    pub fn parent_of(&self, image: &Digest) -> Result<Option<Digest>, IndexError> {
        let p: Option<String> = self
            .conn
            .query_row(
                "SELECT p.parent FROM image_parents p JOIN images i ON i.id = p.parent \
                 WHERE p.image_id = ?1",
                [image.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        p.map(|p| digest_col("image_parents.parent", p)).transpose()
    }

    /// Whether some image records `image` as its parent.
    pub fn has_children(&self, image: &Digest) -> Result<bool, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM image_parents WHERE parent = ?1 LIMIT 1",
                [image.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records that `image` has `digest` in repository `repo` (pull and push do; a later pull or
    /// push of the same repository replaces it).
    pub fn add_repo_digest(
        &mut self,
        image: &Digest,
        repo: &str,
        digest: &Digest,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO repo_digests (image_id, repo, digest) VALUES (?1, ?2, ?3)",
            params![image.to_string(), repo, digest.to_string()],
        )?;
        Ok(())
    }

    /// The (repository, digest) pairs recorded for `image`, by repository.
    pub fn repo_digests_of(&self, image: &Digest) -> Result<Vec<(String, Digest)>, IndexError> {
        let mut st = self.conn.prepare_cached(
            "SELECT repo, digest FROM repo_digests WHERE image_id = ?1 ORDER BY repo",
        )?;
        let rows = st.query_map(params![image.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (repo, d) = row?;
            out.push((repo, digest_col("repo_digests.digest", d)?));
        }
        Ok(out)
    }

    /// The names of an image, sorted.
    pub fn tags_of(&self, image: &Digest) -> Result<Vec<Reference>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference")?;
        let rows = stmt.query_map([image.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let s = r?;
            out.push(
                Reference::parse_normalized(&s).map_err(|_| IndexError::Corrupt {
                    column: "tags.reference",
                    value: s,
                })?,
            );
        }
        Ok(out)
    }

    /// The image a name points at.
    pub fn by_reference(&self, reference: &Reference) -> Result<Option<ImageRecord>, IndexError> {
        let key = reference.docker_ref().to_string();
        let id: Option<String> = self
            .conn
            .prepare_cached("SELECT image_id FROM tags WHERE reference = ?1")?
            .query_row([&key], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            return load_image(&self.conn, &id);
        }
        // name@digest also finds an image of that name pulled by its manifest digest.
        if let Some(d) = reference.digest() {
            let prefix = format!("{}:", reference.name());
            let id: Option<String> = self
                .conn
                .query_row(
                    "SELECT i.id FROM images i JOIN tags t ON t.image_id = i.id
                     WHERE i.manifest_digest = ?1 AND substr(t.reference, 1, length(?2)) = ?2
                     LIMIT 1",
                    params![d.to_string(), prefix],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                return load_image(&self.conn, &id);
            }
        }
        Ok(None)
    }

    /// The one image whose id starts with `prefix` (hex digits, with or without `sha256:`).
    pub fn by_id_prefix(&self, prefix: &str) -> Result<ImageRecord, IndexError> {
        let hex = prefix.strip_prefix("sha256:").unwrap_or(prefix);
        if hex.is_empty()
            || hex.len() > 64
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(IndexError::NotFound(prefix.to_string()));
        }
        let pattern = format!("sha256:{hex}");
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM images WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 2",
        )?;
        let ids: Vec<String> = stmt
            .query_map([&pattern], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(IndexError::NotFound(prefix.to_string())),
            [one] => {
                load_image(&self.conn, one)?.ok_or_else(|| IndexError::NotFound(prefix.to_string()))
            }
            _ => {
                let count: i64 = self.conn.query_row(
                    "SELECT count(*) FROM images WHERE substr(id, 1, length(?1)) = ?1",
                    [&pattern],
                    |r| r.get(0),
                )?;
                Err(IndexError::Ambiguous {
                    prefix: prefix.to_string(),
                    count: count.max(0) as usize,
                })
            }
        }
    }

    /// Finds an image the way `docker image inspect` does: a full or short id (with or without
    /// `sha256:`), or a name (`busybox` means `docker.io/library/busybox:latest`).
    pub fn resolve(&self, s: &str) -> Result<ImageRecord, IndexError> {
        if s.starts_with("sha256:") {
            return self.by_id_prefix(s);
        }
        let is_hex = !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_hex && s.len() == 64 {
            return self.by_id_prefix(s);
        }
        match Reference::parse_normalized(s) {
            Ok(r) => {
                if let Some(img) = self.by_reference(&r)? {
                    return Ok(img);
                }
            }
            Err(e) if !is_hex => return Err(e.into()),
            Err(_) => {}
        }
        if is_hex {
            return self.by_id_prefix(s);
        }
        Err(IndexError::NotFound(s.to_string()))
    }

    /// Records that `user` (e.g. `container:<id>`) uses an image, so it cannot be removed.
    pub fn add_user(&mut self, user: &str, image: &Digest) -> Result<(), IndexError> {
        if load_image(&self.conn, &image.to_string())?.is_none() {
            return Err(IndexError::NotFound(image.to_string()));
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO image_users (user, image_id) VALUES (?1, ?2)",
            params![user, image.to_string()],
        )?;
        Ok(())
    }

    /// Forgets every use by `user`.
    pub fn remove_user(&mut self, user: &str) -> Result<(), IndexError> {
        self.conn
            .execute("DELETE FROM image_users WHERE user = ?1", [user])?;
        Ok(())
    }

    /// Who uses an image, sorted.
    pub fn users_of(&self, image: &Digest) -> Result<Vec<String>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT user FROM image_users WHERE image_id = ?1 ORDER BY user")?;
        let rows = stmt.query_map([image.to_string()], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes an image and its names. Refused while something uses it, unless `force` (then the
    /// uses are forgotten too). Returns the names removed and the layers nothing uses any more.
    pub fn remove_image(&mut self, id: &Digest, force: bool) -> Result<Removed, IndexError> {
        let tx = self.conn.transaction()?;
        if load_image(&tx, &id.to_string())?.is_none() {
            return Err(IndexError::NotFound(id.to_string()));
        }
        let users: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT user FROM image_users WHERE image_id = ?1 ORDER BY user")?;
            let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if !users.is_empty() && !force {
            return Err(IndexError::InUse {
                image: id.clone(),
                users: users.join(", "),
            });
        }
        let untagged: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference",
            )?;
            let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let layers = image_layers(&tx, &id.to_string())?;
        tx.execute(
            "DELETE FROM image_users WHERE image_id = ?1",
            [id.to_string()],
        )?;
        tx.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
        let mut unused = Vec::new();
        for l in layers.iter().rev() {
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM image_layers WHERE chain_id = ?1",
                [l.to_string()],
                |r| r.get(0),
            )?;
            if n == 0 {
                unused.push(l.clone());
            }
        }
        tx.commit()?;
        Ok(Removed {
            untagged,
            unused_layers: unused,
        })
    }
}

// Queries for garbage collection, store checks and disk usage (used by `gc.rs`).
impl ImageIndex {
    /// Every recorded layer, sorted by chain id.
    pub fn all_layers(&self) -> Result<Vec<LayerRecord>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT chain_id, diff_id, parent, size FROM layers ORDER BY chain_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (c, d, p, s) = row?;
            out.push(LayerRecord {
                chain_id: digest_col("layers.chain_id", c)?,
                diff_id: digest_col("layers.diff_id", d)?,
                parent: p.map(|p| digest_col("layers.parent", p)).transpose()?,
                size: s.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Layers recorded with `chain_id` as their parent, sorted.
    pub fn layer_children(&self, chain_id: &Digest) -> Result<Vec<Digest>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT chain_id FROM layers WHERE parent = ?1 ORDER BY chain_id")?;
        let rows = stmt.query_map([chain_id.to_string()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(digest_col("layers.chain_id", r?)?);
        }
        Ok(out)
    }

    /// Every (user, image) pair, sorted by user.
    pub fn all_users(&self) -> Result<Vec<(String, Digest)>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT user, image_id FROM image_users ORDER BY user, image_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (u, i) = r?;
            out.push((u, digest_col("image_users.image_id", i)?));
        }
        Ok(out)
    }

    /// Records that an image is broken and why (replacing an earlier reason).
    pub fn mark_broken(&mut self, image: &Digest, reason: &str) -> Result<(), IndexError> {
        if load_image(&self.conn, &image.to_string())?.is_none() {
            return Err(IndexError::NotFound(image.to_string()));
        }
        self.conn.execute(
            "INSERT INTO image_broken (image_id, reason, found_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(image_id) DO UPDATE SET reason = excluded.reason",
            params![image.to_string(), reason, now()],
        )?;
        Ok(())
    }

    /// Forgets that an image was broken; `Ok(false)` when it was not marked.
    pub fn clear_broken(&mut self, image: &Digest) -> Result<bool, IndexError> {
        let n = self.conn.execute(
            "DELETE FROM image_broken WHERE image_id = ?1",
            [image.to_string()],
        )?;
        Ok(n > 0)
    }

    /// Images marked broken, with the reason, sorted by id.
    pub fn broken_images(&self) -> Result<Vec<(Digest, String)>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT image_id, reason FROM image_broken ORDER BY image_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (i, why) = r?;
            out.push((digest_col("image_broken.image_id", i)?, why));
        }
        Ok(out)
    }
}

fn image_layers(conn: &Connection, id: &str) -> Result<Vec<Digest>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT chain_id FROM image_layers WHERE image_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(digest_col("image_layers.chain_id", r?)?);
    }
    Ok(out)
}

fn load_image(conn: &Connection, id: &str) -> Result<Option<ImageRecord>, IndexError> {
    let row = conn
        .prepare_cached(
            "SELECT id, manifest_digest, created, size, added_at FROM images WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((id, manifest, created, size, added_at)) = row else {
        return Ok(None);
    };
    let layers = image_layers(conn, &id)?;
    Ok(Some(ImageRecord {
        id: digest_col("images.id", id)?,
        manifest_digest: manifest
            .map(|m| digest_col("images.manifest_digest", m))
            .transpose()?,
        created,
        size: size.max(0) as u64,
        layers,
        added_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap()
    }

    fn layer(chain: u8, parent: Option<u8>) -> LayerRecord {
        LayerRecord {
            chain_id: d(chain),
            diff_id: d(chain),
            parent: parent.map(d),
            size: 10,
        }
    }

    fn image(id: u8, layers: &[u8]) -> ImageRecord {
        ImageRecord {
            id: d(id),
            manifest_digest: Some(d(id.wrapping_add(0x30))),
            created: Some("2024-01-01T00:00:00Z".into()),
            size: 10 * layers.len() as u64,
            layers: layers.iter().map(|l| d(*l)).collect(),
            added_at: 1000 + id as i64,
        }
    }

    fn index_with_two_images() -> ImageIndex {
        let mut ix = ImageIndex::open_in_memory().unwrap();
        ix.add_layer(&layer(1, None)).unwrap();
        ix.add_layer(&layer(2, Some(1))).unwrap();
        ix.add_layer(&layer(3, Some(1))).unwrap();
        ix.add_image(&image(0xa1, &[1, 2])).unwrap();
        ix.add_image(&image(0xa2, &[1, 3])).unwrap();
        ix
    }

    #[test]
    fn migrations_set_user_version_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berth.db");
        {
            let mut ix = ImageIndex::open(&p).unwrap();
            assert_eq!(ix.schema_version().unwrap(), MIGRATIONS.len() as i64);
            ix.add_layer(&layer(1, None)).unwrap();
            ix.add_image(&image(0xa1, &[1])).unwrap();
        }
        let ix = ImageIndex::open(&p).unwrap();
        assert_eq!(ix.images().unwrap().len(), 1);
        let mode: String = ix
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("berth.db");
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            ImageIndex::open(&p),
            Err(IndexError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn images_and_layers() {
        let ix = index_with_two_images();
        let img = ix.image(&d(0xa1)).unwrap().unwrap();
        assert_eq!(img.layers, vec![d(1), d(2)]);
        assert_eq!(img.manifest_digest, Some(d(0xd1)));
        assert_eq!(ix.layer_refcount(&d(1)).unwrap(), 2);
        assert_eq!(ix.layer_refcount(&d(2)).unwrap(), 1);
        assert_eq!(ix.layer(&d(2)).unwrap().unwrap().parent, Some(d(1)));
        // Newest first.
        let ids: Vec<_> = ix.images().unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![d(0xa2), d(0xa1)]);
    }

    #[test]
    fn image_needs_its_layers() {
        let mut ix = ImageIndex::open_in_memory().unwrap();
        let e = ix.add_image(&image(0xa1, &[9])).unwrap_err();
        assert!(matches!(e, IndexError::UnknownLayer { .. }), "{e}");
        assert!(ix.images().unwrap().is_empty());
    }

    #[test]
    fn tagging_moves_a_tag() {
        let mut ix = index_with_two_images();
        assert_eq!(ix.tag(&r("busybox"), &d(0xa1)).unwrap(), None);
        assert_eq!(ix.resolve("busybox").unwrap().id, d(0xa1));
        assert_eq!(ix.resolve("busybox:latest").unwrap().id, d(0xa1));
        assert_eq!(
            ix.resolve("docker.io/library/busybox:latest").unwrap().id,
            d(0xa1)
        );
        assert_eq!(
            ix.tag(&r("busybox:latest"), &d(0xa2)).unwrap(),
            Some(d(0xa1))
        );
        assert_eq!(ix.resolve("busybox").unwrap().id, d(0xa2));
        assert!(ix.tags_of(&d(0xa1)).unwrap().is_empty());
        assert_eq!(
            ix.tags_of(&d(0xa2)).unwrap(),
            vec![r("docker.io/library/busybox:latest")]
        );
        assert!(ix.untag(&r("busybox")).unwrap());
        assert!(!ix.untag(&r("busybox")).unwrap());
        assert!(matches!(
            ix.resolve("busybox"),
            Err(IndexError::NotFound(_))
        ));
        // Tagging an unknown image fails.
        assert!(matches!(
            ix.tag(&r("x"), &d(0xee)),
            Err(IndexError::NotFound(_))
        ));
    }

    #[test]
    fn lookups_by_id_and_prefix() {
        let mut ix = index_with_two_images();
        let full = d(0xa1).to_string();
        assert_eq!(ix.resolve(&full).unwrap().id, d(0xa1));
        assert_eq!(ix.resolve(d(0xa1).hex()).unwrap().id, d(0xa1));
        assert_eq!(ix.resolve("a1a1").unwrap().id, d(0xa1));
        assert_eq!(ix.resolve("sha256:a2").unwrap().id, d(0xa2));
        // "a" matches both.
        let e = ix.resolve("a").unwrap_err();
        assert!(matches!(e, IndexError::Ambiguous { count: 2, .. }), "{e}");
        assert!(e.to_string().contains("give more digits"));
        // A name that looks like hex wins over the id prefix, as in Docker.
        ix.tag(&r("a1"), &d(0xa2)).unwrap();
        assert_eq!(ix.resolve("a1").unwrap().id, d(0xa2));
        assert!(matches!(ix.resolve("ff"), Err(IndexError::NotFound(_))));
        assert!(matches!(
            ix.resolve("sha256:zz"),
            Err(IndexError::NotFound(_))
        ));
        assert!(matches!(
            ix.resolve("Bad/Name"),
            Err(IndexError::Reference(_))
        ));
    }

    #[test]
    fn lookup_by_name_and_manifest_digest() {
        let mut ix = index_with_two_images();
        ix.tag(&r("localhost:5000/app:v1"), &d(0xa1)).unwrap();
        let by_digest = format!("localhost:5000/app@{}", d(0xd1));
        assert_eq!(ix.resolve(&by_digest).unwrap().id, d(0xa1));
        let other = format!("localhost:5000/other@{}", d(0xd1));
        assert!(matches!(ix.resolve(&other), Err(IndexError::NotFound(_))));
    }

    #[test]
    fn in_use_images_are_kept_unless_forced() {
        let mut ix = index_with_two_images();
        ix.tag(&r("one"), &d(0xa1)).unwrap();
        ix.add_user("container:c1", &d(0xa1)).unwrap();
        let e = ix.remove_image(&d(0xa1), false).unwrap_err();
        assert!(e.to_string().contains("container:c1"), "{e}");
        assert!(ix.image(&d(0xa1)).unwrap().is_some());
        ix.remove_user("container:c1").unwrap();
        let removed = ix.remove_image(&d(0xa1), false).unwrap();
        assert_eq!(
            removed.untagged,
            vec!["docker.io/library/one:latest".to_string()]
        );
        // Layer 1 is still used by image a2; layer 2 is free.
        assert_eq!(removed.unused_layers, vec![d(2)]);
        assert_eq!(ix.unused_layers().unwrap(), vec![d(2)]);
        assert!(matches!(
            ix.remove_layer(&d(1)),
            Err(IndexError::LayerInUse { .. })
        ));
        ix.remove_layer(&d(2)).unwrap();
        assert!(ix.layer(&d(2)).unwrap().is_none());

        ix.add_user("container:c2", &d(0xa2)).unwrap();
        let removed = ix.remove_image(&d(0xa2), true).unwrap();
        assert_eq!(removed.unused_layers, vec![d(3), d(1)]);
        assert!(ix.users_of(&d(0xa2)).unwrap().is_empty());
        // Layer 1 is the parent of 3, so only 3 is removable first.
        assert_eq!(ix.unused_layers().unwrap(), vec![d(3)]);
    }

    #[test]
    fn adding_an_image_twice_is_harmless() {
        let mut ix = index_with_two_images();
        ix.add_image(&image(0xa1, &[1, 2])).unwrap();
        assert_eq!(ix.images().unwrap().len(), 2);
    }
}
