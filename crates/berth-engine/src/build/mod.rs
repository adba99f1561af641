//! Dockerfile builds in berthd: the engine's side of berth-build's [`berth_build::Backend`]
//! seam. The executor (berth-build) walks the Dockerfile; this module gives it images (resolved
//! or pulled), read-only views of their root filesystems, new images committed through the image
//! store, RUN steps as real containers of the engine, and a persistent build cache.
//!
//! - [`cache`]: the cache database (`<data root>/buildcache.db`);
//! - [`context`]: the client's context tar, unpacked safely;
//! - [`backend`]: `impl Backend` over the daemon;
//! - [`rootfs`]: read-only overlay views; [`fetch`]: `ADD <url>`; [`output`]: the JSON stream;
//! - [`usage`]: the cache in `system df`, `builder prune`.
//!
//! Everything a build writes lives under `<data root>/builds/<id>/` (context, executor temp
//! files, views, secrets) and goes when the build ends, whatever way it ends; a directory left
//! by a crash is removed at the next start. Persistent state: the cache database and the cache
//! mount directories (`<data root>/buildcache/mounts/`). This module never touches HTTP.

pub mod backend;
pub mod cache;
pub mod context;
pub mod fetch;
pub mod output;
pub mod rootfs;
pub mod usage;

use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::EngineError;

/// The build service of the daemon.
pub struct Builds {
    /// `<data root>/builds`: one directory per running build.
    root: PathBuf,
    /// `<data root>/buildcache/mounts`: `RUN --mount=type=cache` directories.
    pub mounts: PathBuf,
    pub cache: cache::BuildCache,
    fetcher: OnceLock<fetch::Fetcher>,
    /// The ids of the builds running now.
    active: Arc<Mutex<HashSet<String>>>,
    /// Whether the containers of builds a crash interrupted were removed.
    swept: AtomicBool,
}

fn mkdir_private(p: &Path) -> Result<(), EngineError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| EngineError::internal(format!("create {}: {e}", p.display())))
}

impl Builds {
    /// Opens the cache database and removes what builds interrupted by a crash left.
    pub fn open(data_root: &Path) -> Result<Self, EngineError> {
        let root = data_root.join("builds");
        let mounts = data_root.join("buildcache").join("mounts");
        mkdir_private(&root)?;
        mkdir_private(&mounts)?;
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            cleanup(&e.path());
        }
        let cache = cache::BuildCache::open(&data_root.join("buildcache.db"))
            .map_err(|e| EngineError::internal(e.to_string()))?;
        Ok(Self {
            root,
            mounts,
            cache,
            fetcher: OnceLock::new(),
            active: Arc::default(),
            swept: AtomicBool::new(false),
        })
    }

    /// A new build's directory (removed when the returned value drops).
    pub fn new_dir(&self) -> Result<BuildDir, EngineError> {
        let id = crate::containers::new_id();
        let path = self.root.join(&id[..16]);
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        let dir = BuildDir {
            id,
            path,
            active: self.active.clone(),
        };
        for d in [dir.context(), dir.tmp(), dir.views(), dir.secrets()] {
            mkdir_private(&d)?;
        }
        Ok(dir)
    }

    /// Whether `id` is a build running now.
    pub fn is_active(&self, id: &str) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// The download client, made on first use.
    pub fn fetcher(&self) -> &fetch::Fetcher {
        self.fetcher.get_or_init(fetch::Fetcher::new)
    }

    /// The persistent directory of a cache mount id.
    pub fn cache_mount_dir(&self, id: &str) -> Result<PathBuf, EngineError> {
        let p = self.mounts.join(safe_name(id));
        std::fs::create_dir_all(&p)
            .map_err(|e| EngineError::internal(format!("create {}: {e}", p.display())))?;
        Ok(p)
    }
}

/// One build's directory.
pub struct BuildDir {
    /// The build's id (64 hex), also the `berth.build` label of its containers.
    pub id: String,
    pub path: PathBuf,
    active: Arc<Mutex<HashSet<String>>>,
}

impl BuildDir {
    pub fn context(&self) -> PathBuf {
        self.path.join("context")
    }
    pub fn tmp(&self) -> PathBuf {
        self.path.join("tmp")
    }
    pub fn views(&self) -> PathBuf {
        self.path.join("views")
    }
    pub fn secrets(&self) -> PathBuf {
        self.path.join("secrets")
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        cleanup(&self.path);
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Removes (killing if needed) the containers of builds that are not running in this daemon:
/// what a crash or a restart in the middle of a RUN step left. Once per daemon, at the first
/// build or builder prune (after the start's restore has re-attached every container).
pub async fn sweep_containers(d: &Arc<crate::daemon::Daemon>) {
    if d.builds.swept.swap(true, Ordering::SeqCst) {
        return;
    }
    for e in d.containers.list() {
        let rec = e.snapshot();
        let Some(build) = rec
            .config
            .labels
            .as_ref()
            .and_then(|l| l.get(backend::BUILD_LABEL))
        else {
            continue;
        };
        if d.builds.is_active(build) {
            continue;
        }
        if let Err(err) = d.container_remove_opts(&rec.id, true, true).await {
            tracing::warn!(
                "remove the container {} of an interrupted build: {}",
                rec.id,
                err.message
            );
        }
    }
}

/// Unmounts the views of a build directory, then removes it (nothing is removed while anything
/// is still mounted there).
fn cleanup(dir: &Path) {
    let views = dir.join("views");
    let mut busy = false;
    for e in std::fs::read_dir(&views).into_iter().flatten().flatten() {
        let p = e.path();
        if berth_image::snapshot::is_mount_point(&p) {
            rootfs::unmount(&p);
            busy |= berth_image::snapshot::is_mount_point(&p);
        }
    }
    if busy {
        tracing::warn!("build directory {} is still mounted: left", dir.display());
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("remove the build directory {}: {e}", dir.display());
        }
    }
}

/// A file name for an arbitrary id (cache mount ids, secret ids): the id itself when it is a
/// plain name, else `x` + its hex (shortened with a hash past 100 bytes).
pub fn safe_name(id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        return id.to_string();
    }
    let bytes = id.as_bytes();
    let hex: String = bytes.iter().take(50).map(|b| format!("{b:02x}")).collect();
    if bytes.len() <= 50 {
        return format!("x{hex}");
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("x{hex}-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_never_leave_their_directory() {
        assert_eq!(safe_name("go-build"), "go-build");
        for bad in ["..", ".", "", "a/b", "../../etc", "/abs", ".hidden"] {
            let n = safe_name(bad);
            assert!(
                !n.contains('/') && n != "." && n != ".." && !n.is_empty(),
                "{bad} → {n}"
            );
        }
        assert_ne!(safe_name("a/b"), safe_name("a_b"));
        let long = "é".repeat(80);
        let n = safe_name(&long);
        assert!(n.len() < 140, "{}", n.len());
        assert_ne!(n, safe_name(&"é".repeat(81)));
    }

    #[test]
    fn build_dirs_go_when_dropped_and_leftovers_at_open() {
        let t = tempfile::tempdir().unwrap();
        let b = Builds::open(t.path()).unwrap();
        let d = b.new_dir().unwrap();
        let p = d.path.clone();
        std::fs::write(d.context().join("f"), b"x").unwrap();
        assert!(p.is_dir());
        drop(d);
        assert!(!p.exists());
        // A directory a crash left behind.
        let left = t.path().join("builds").join("0123456789abcdef");
        std::fs::create_dir_all(left.join("context")).unwrap();
        drop(b);
        let _b = Builds::open(t.path()).unwrap();
        assert!(!left.exists());
        let m = _b.cache_mount_dir("../x").unwrap();
        assert!(m.starts_with(t.path().join("buildcache/mounts")));
    }
}
