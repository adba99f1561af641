//! `docker diff`: what a container changed in its filesystem, from its overlay upper dir and its
//! image's layer dirs, as `A /path` (added), `C /path` (changed), `D /path` (deleted) lines.
//!
//! It exists because the engine's `GET /containers/{id}/changes` and `berth diff` need Docker's
//! exact answer, which is not the same as the layer tar of [`crate::diff`]: Docker reports a
//! deletion once at the top of what was deleted, a changed directory as `C` whenever something
//! below it was added or deleted, a directory that only copy-up touched (same size, mode and
//! mtime as below) not at all, and a replaced directory (overlay's opaque dir) as `C` with all of
//! its new contents as `A`. Lines come in the order of a depth-first walk, names in byte order.
//!
//! It only reads: never the merged view (so a running container's mounts are not seen), never
//! following a symlink of the upper or of a layer, and never writing anything.

use std::cmp::Ordering;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What went wrong listing changes.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("walking the upper directory {path:?}: {source}; is the container's snapshot intact?")]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The kind of a change; the numbers are the `Kind` of Docker's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute inside the container: `/etc/passwd`.
    pub path: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    matches!(xattr::get(path, OPAQUE_XATTR), Ok(Some(v)) if v.as_slice() == b"y")
}

/// The metadata of `rel` as the merged lower layers (`lowers`, top first) show it: `None` when
/// no layer has it, a higher layer whites it out, or a higher layer hides it behind a non-dir or
/// an opaque dir. Walks component by component with lstat, so no symlink is ever followed.
fn lower_lookup(lowers: &[PathBuf], rel: &Path) -> Option<Metadata> {
    let comps: Vec<_> = rel.components().collect();
    for lower in lowers {
        let mut cur = lower.clone();
        let mut hidden_below = false;
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let Ok(m) = fs::symlink_metadata(&cur) else {
                break; // not in this layer: look below, unless an opaque dir here hides it
            };
            if is_whiteout(&m) {
                return None;
            }
            if i + 1 == comps.len() {
                return Some(m);
            }
            if !m.is_dir() {
                return None;
            }
            if is_opaque(&cur) {
                hidden_below = true;
            }
        }
        if hidden_below {
            return None;
        }
    }
    None
}

/// Docker's `sameFsTime`: equal seconds, and equal nanoseconds unless one side has none.
fn same_mtime(a: &Metadata, b: &Metadata) -> bool {
    a.mtime() == b.mtime()
        && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0)
}

/// Orders paths as a depth-first walk with names in byte order visits them.
fn walk_order(a: &str, b: &str) -> Ordering {
    Path::new(a).components().cmp(Path::new(b).components())
}

fn abs(rel: &Path) -> String {
    let mut s = String::from("/");
    s.push_str(&rel.to_string_lossy());
    s
}

/// The changes recorded in the overlay upper dir `upper` over the image layers `lowers` (diff
/// dirs, top first, as the snapshot mounts them), in `docker diff`'s order.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ChangesError> {
    let mut out: Vec<Change> = Vec::new();
    let mut recorded_dirs: std::collections::HashSet<PathBuf> = Default::default();
    let mut opaque_dirs: Vec<PathBuf> = Vec::new();
    let walker = walkdir::WalkDir::new(upper)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for ent in walker {
        let ent = ent.map_err(|source| ChangesError::Walk {
            path: upper.to_path_buf(),
            source,
        })?;
        let Ok(rel) = ent.path().strip_prefix(upper) else {
            continue;
        };
        let rel = rel.to_path_buf();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let m = fs::symlink_metadata(ent.path()).map_err(|source| ChangesError::Io {
            op: "stat",
            path: ent.path().to_path_buf(),
            source,
        })?;
        let in_opaque = opaque_dirs.iter().any(|o| rel.starts_with(o) && rel != *o);

        let kind = if is_whiteout(&m) {
            if in_opaque {
                continue; // meaningless inside a replaced directory
            }
            ChangeKind::Deleted
        } else if in_opaque {
            ChangeKind::Added
        } else {
            match lower_lookup(lowers, &rel) {
                None => ChangeKind::Added,
                Some(low) => {
                    if m.is_dir() && is_opaque(ent.path()) {
                        ChangeKind::Modified
                    } else if m.is_dir()
                        && low.is_dir()
                        && m.len() == low.len()
                        && m.mode() == low.mode()
                        && same_mtime(&m, &low)
                    {
                        // Only copied up to hold a change below: reported when one is.
                        continue;
                    } else {
                        ChangeKind::Modified
                    }
                }
            }
        };
        if m.is_dir() {
            if is_opaque(ent.path()) && !in_opaque {
                opaque_dirs.push(rel.clone());
            }
            recorded_dirs.insert(rel.clone());
        }
        if matches!(kind, ChangeKind::Added | ChangeKind::Deleted) {
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                if recorded_dirs.insert(parent.to_path_buf()) {
                    out.push(Change {
                        kind: ChangeKind::Modified,
                        path: abs(parent),
                    });
                }
            }
        }
        out.push(Change {
            kind,
            path: abs(&rel),
        });
    }
    // Already in walk order; the sort keeps that promise should the walk ever change.
    out.sort_by(|a, b| walk_order(&a.path, &b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_is_depth_first() {
        let mut v = vec!["/a.txt", "/a/b", "/a", "/b"];
        v.sort_by(|a, b| walk_order(a, b));
        assert_eq!(v, vec!["/a", "/a/b", "/a.txt", "/b"]);
    }

    #[test]
    fn plain_changes_without_root() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        let upper = dir.path().join("upper");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), b"root").unwrap();
        fs::create_dir_all(lower.join("usr/lib")).unwrap();
        fs::write(lower.join("usr/lib/x"), b"x").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), b"root+user").unwrap();
        fs::write(upper.join("etc/new"), b"n").unwrap();
        fs::create_dir_all(upper.join("home/u")).unwrap();
        let got: Vec<String> = changes(&upper, &[lower])
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "C /etc",
                "A /etc/new",
                "C /etc/passwd",
                "A /home",
                "A /home/u"
            ]
        );
    }

    #[test]
    fn lower_lookup_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(&lower).unwrap();
        fs::create_dir_all(dir.path().join("outside/secret")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), lower.join("lib")).unwrap();
        assert!(lower_lookup(std::slice::from_ref(&lower), Path::new("lib/secret")).is_none());
        assert!(lower_lookup(&[lower], Path::new("lib")).is_some());
    }

    #[test]
    fn missing_upper_is_an_error_that_names_it() {
        let e = changes(Path::new("/nonexistent/berth/upper"), &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/berth/upper"), "{e}");
    }
}
