//! The reverse of applying a layer: an overlay upper directory (what a container changed) back
//! into an OCI layer tar, for commit and export of changes.
//!
//! Overlay records a deletion as a 0:0 character device and a replaced directory as one with
//! `trusted.overlay.opaque=y`; the tar says the same with `.wh.NAME` and `.wh..wh..opq` entries.
//! The output is deterministic (entries in byte order of their names, fixed header fields), so the
//! same upper always gives the same diff id. This module only reads the upper dir; it never
//! follows a symlink in it and never emits overlay's private xattrs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What went wrong writing a diff.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("walking the upper directory {path:?}: {source}")]
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
    #[error("writing the layer tar: {0}")]
    Write(#[source] io::Error),
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What the diff wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffStats {
    pub entries: u64,
    pub whiteouts: u64,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DiffError + 'a {
    move |source| DiffError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether an xattr belongs in a layer: overlay's own bookkeeping does not.
fn exported_xattr(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

/// Writes the changes recorded in the overlay upper dir `upper` as an uncompressed OCI layer tar
/// to `w`, and returns `w`.
pub fn write_diff<W: Write>(upper: &Path, w: W) -> Result<(W, DiffStats), DiffError> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut stats = DiffStats::default();
    // (dev, ino) of files with several links → the first name written for them.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let walker = walkdir::WalkDir::new(upper)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for ent in walker {
        let ent = ent.map_err(|source| DiffError::Walk {
            path: upper.to_path_buf(),
            source,
        })?;
        let path = ent.path();
        let rel = match path.strip_prefix(upper) {
            Ok(r) => r.to_path_buf(),
            Err(_) => continue,
        };
        let m = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
        let ft = m.file_type();

        if ft.is_char_device() && m.rdev() == 0 {
            // An overlay whiteout: the name was deleted.
            let name = rel.file_name().map(OsString::from).unwrap_or_default();
            let mut wname = OsString::from(WHITEOUT_PREFIX);
            wname.push(&name);
            let wpath = rel
                .parent()
                .map(|p| p.join(&wname))
                .unwrap_or(PathBuf::from(wname));
            let mut h = base_header(&m, tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(0);
            b.append_data(&mut h, &wpath, io::empty())
                .map_err(DiffError::Write)?;
            stats.entries += 1;
            stats.whiteouts += 1;
            continue;
        }
        if ft.is_socket() {
            // Sockets are not layer content (Docker skips them too).
            continue;
        }

        let xattrs = read_xattrs(path)?;
        if !xattrs.is_empty() {
            let recs: Vec<(String, Vec<u8>)> = xattrs
                .iter()
                .map(|(k, v)| {
                    (
                        format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                        v.clone(),
                    )
                })
                .collect();
            b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(DiffError::Write)?;
        }

        if ft.is_dir() {
            let mut h = base_header(&m, tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, &rel, io::empty())
                .map_err(DiffError::Write)?;
            stats.entries += 1;
            let opaque = xattr::get(path, OPAQUE_XATTR)
                .map_err(io_err("read xattr of", path))?
                .is_some_and(|v| v == b"y");
            if opaque {
                let mut h = base_header(&m, tar::EntryType::Regular);
                h.set_mode(m.mode() & 0o777);
                h.set_size(0);
                b.append_data(&mut h, rel.join(OPAQUE_MARKER), io::empty())
                    .map_err(DiffError::Write)?;
                stats.entries += 1;
                stats.whiteouts += 1;
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(io_err("read link", path))?;
            let mut h = base_header(&m, tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &rel, &target)
                .map_err(DiffError::Write)?;
            stats.entries += 1;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    let mut h = base_header(&m, tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &rel, first)
                        .map_err(DiffError::Write)?;
                    stats.entries += 1;
                    continue;
                }
                links.insert((m.dev(), m.ino()), rel.clone());
            }
            let f = fs::File::open(path).map_err(io_err("open", path))?;
            let mut h = base_header(&m, tar::EntryType::Regular);
            h.set_size(m.len());
            // A file that changes size while being read would corrupt the tar: read exactly
            // the size in the header, and fail if the file got shorter.
            let mut data = Exact {
                inner: io::Read::take(f, m.len()),
                left: m.len(),
            };
            b.append_data(&mut h, &rel, &mut data)
                .map_err(DiffError::Write)?;
            stats.entries += 1;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = base_header(&m, kind);
            h.set_size(0);
            if !ft.is_fifo() {
                let dev = m.rdev();
                h.set_device_major(rustix::fs::major(dev))
                    .map_err(DiffError::Write)?;
                h.set_device_minor(rustix::fs::minor(dev))
                    .map_err(DiffError::Write)?;
            }
            b.append_data(&mut h, &rel, io::empty())
                .map_err(DiffError::Write)?;
            stats.entries += 1;
        }
    }
    let w = b.into_inner().map_err(DiffError::Write)?;
    Ok((w, stats))
}

/// Reads exactly `left` bytes, failing if the inner reader ends early (a file that shrank while
/// being read), so the tar never disagrees with its own header.
pub(crate) struct Exact<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// A GNU header (long names via GNU extensions) with the fields every entry carries.
fn base_header(m: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(u64::try_from(m.mtime()).unwrap_or(0));
    h
}

/// An xattr name and value.
type Xattr = (Vec<u8>, Vec<u8>);

/// The exported xattrs of a path (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<Xattr>, DiffError> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list xattrs of", path)(e)),
    };
    let mut out = Vec::new();
    for n in names {
        let nb = n.as_bytes().to_vec();
        if !exported_xattr(&nb) {
            continue;
        }
        if let Some(v) = xattr::get(path, &n).map_err(io_err("read xattr of", path))? {
            out.push((nb, v));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_xattrs_are_not_exported() {
        assert!(!exported_xattr(b"trusted.overlay.origin"));
        assert!(!exported_xattr(b"user.overlay.opaque"));
        assert!(exported_xattr(b"security.capability"));
        assert!(exported_xattr(b"user.mime"));
    }

    #[test]
    fn plain_dir_diffs_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("b/z"), b"z").unwrap();
        fs::write(dir.path().join("a"), b"a").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("c")).unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("d")).unwrap();
        let (t1, s) = write_diff(dir.path(), Vec::new()).unwrap();
        let (t2, _) = write_diff(dir.path(), Vec::new()).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(s.entries, 5);
        let mut ar = tar::Archive::new(&t1[..]);
        let names: Vec<(String, tar::EntryType)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("a".to_string(), tar::EntryType::Regular),
                ("b".to_string(), tar::EntryType::Directory),
                ("b/z".to_string(), tar::EntryType::Regular),
                ("c".to_string(), tar::EntryType::Symlink),
                ("d".to_string(), tar::EntryType::Link),
            ]
        );
    }
}
