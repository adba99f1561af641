//! `docker export`: a root filesystem directory (a container's merged overlay, or any unpacked
//! tree) written as one plain tar, deterministically (entries in byte order of their names), with
//! modes, owners, mtimes, symlinks, hardlinks, device nodes and xattrs preserved.
//!
//! It only reads: it never follows a symlink (a link is written as a link, and files are opened
//! with `O_NOFOLLOW`), never crosses into another filesystem mounted below the root (a container's
//! `/proc` or volumes are not its filesystem), and never writes overlay's private xattrs.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::diff::Exact;
use crate::image::open_nofollow;

/// What went wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("walking the root filesystem {path:?}: {source}")]
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
    #[error("{path:?} changed size while it was exported; export a stopped or paused container")]
    Changed { path: PathBuf },
    #[error("writing the export tar: {0}")]
    Write(#[source] io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub entries: u64,
    pub bytes: u64,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn header(m: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Writes the tree under `root` as a tar on `w` and returns `w`.
pub fn export_rootfs<W: Write>(root: &Path, w: W) -> Result<(W, ExportStats), ExportError> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut stats = ExportStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .same_file_system(true)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for ent in walker {
        let ent = ent.map_err(|source| ExportError::Walk {
            path: root.to_path_buf(),
            source,
        })?;
        let path = ent.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_path_buf();
        let m = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
        let ft = m.file_type();
        if ft.is_socket() {
            continue;
        }
        let mut xattrs = Vec::new();
        if !ft.is_symlink() {
            for name in xattr::list(path).map_err(io_err("list xattrs of", path))? {
                let n = name.as_bytes();
                if n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.") {
                    continue;
                }
                if let Some(v) = xattr::get(path, &name).map_err(io_err("read xattr of", path))? {
                    xattrs.push((format!("SCHILY.xattr.{}", name.to_string_lossy()), v));
                }
            }
        }
        if !xattrs.is_empty() {
            b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(ExportError::Write)?;
        }
        if ft.is_dir() {
            let mut h = header(&m, tar::EntryType::Directory);
            b.append_data(&mut h, &rel, io::empty())
                .map_err(ExportError::Write)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(io_err("read link", path))?;
            let mut h = header(&m, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel, &target)
                .map_err(ExportError::Write)?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    let mut h = header(&m, tar::EntryType::Link);
                    b.append_link(&mut h, &rel, first)
                        .map_err(ExportError::Write)?;
                    stats.entries += 1;
                    continue;
                }
                links.insert((m.dev(), m.ino()), rel.clone());
            }
            let f = open_nofollow(path).map_err(io_err("open", path))?;
            let mut h = header(&m, tar::EntryType::Regular);
            h.set_size(m.len());
            let mut data = Exact {
                inner: io::Read::take(f, m.len()),
                left: m.len(),
            };
            b.append_data(&mut h, &rel, &mut data).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ExportError::Changed {
                        path: path.to_path_buf(),
                    }
                } else {
                    ExportError::Write(e)
                }
            })?;
            stats.bytes += m.len();
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = header(&m, kind);
            if !ft.is_fifo() {
                h.set_device_major(rustix::fs::major(m.rdev()))
                    .map_err(ExportError::Write)?;
                h.set_device_minor(rustix::fs::minor(m.rdev()))
                    .map_err(ExportError::Write)?;
            }
            b.append_data(&mut h, &rel, io::empty())
                .map_err(ExportError::Write)?;
        } else {
            continue;
        }
        stats.entries += 1;
    }
    let w = b.into_inner().map_err(ExportError::Write)?;
    Ok((w, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn exports_links_modes_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("bin")).unwrap();
        fs::write(r.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(r.join("bin/tool"), r.join("bin/tool2")).unwrap();
        symlink("/etc/shadow", r.join("bin/escape")).unwrap();
        symlink("tool", r.join("bin/sh")).unwrap();
        let (a, stats) = export_rootfs(r, Vec::new()).unwrap();
        let (b, _) = export_rootfs(r, Vec::new()).unwrap();
        assert_eq!(a, b, "export is not deterministic");
        assert_eq!(stats.entries, 5);
        let mut ar = tar::Archive::new(&a[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mode = e.header().mode().unwrap();
            seen.push((name, kind, link, mode));
        }
        assert_eq!(seen[0].0, "bin");
        assert_eq!(
            seen[1],
            (
                "bin/escape".into(),
                tar::EntryType::Symlink,
                Some("/etc/shadow".into()),
                0o777
            )
        );
        assert_eq!(seen[2].1, tar::EntryType::Symlink);
        assert_eq!(
            seen[3],
            ("bin/tool".into(), tar::EntryType::Regular, None, 0o4755)
        );
        assert_eq!(
            seen[4],
            (
                "bin/tool2".into(),
                tar::EntryType::Link,
                Some("bin/tool".into()),
                0o4755
            )
        );
    }
}
