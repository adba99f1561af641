//! Helpers shared by the crate tests: building layer tars (including hostile ones that the tar
//! crate's own builder refuses to write), sandboxes with canaries, root checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const MTIME: u64 = 1_600_000_000;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Returns true (and says why) when a test needs root and we are not.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        false
    } else {
        eprintln!("skipping {test}: needs root (mknod, chown, trusted.* xattrs, mounts)");
        true
    }
}

/// A layer tar under construction. Names and link names are written raw into the header, so
/// `..` and absolute names go in exactly as an attacker would write them.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        dev: Option<(u32, u32)>,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        if !xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = name.as_bytes();
            assert!(n.len() <= old.name.len(), "test name too long: {name}");
            old.name[..n.len()].copy_from_slice(n);
            if let Some(l) = link {
                let l = l.as_bytes();
                old.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        if let Some((maj, min)) = dev {
            h.set_device_major(maj).unwrap();
            h.set_device_minor(min).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Regular,
            None,
            data,
            0o644,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn file_mode(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Regular,
            None,
            data,
            mode,
            uid,
            gid,
            None,
            &[],
        )
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Directory,
            None,
            b"",
            0o755,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn dir_mode(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Directory,
            None,
            b"",
            mode,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Symlink,
            Some(target),
            b"",
            0o777,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Link,
            Some(target),
            b"",
            0o644,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn chardev(&mut self, name: &str, maj: u32, min: u32) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Char,
            None,
            b"",
            0o666,
            0,
            0,
            Some((maj, min)),
            &[],
        )
    }

    pub fn fifo(&mut self, name: &str) -> &mut Self {
        self.raw(
            name,
            tar::EntryType::Fifo,
            None,
            b"",
            0o600,
            0,
            0,
            None,
            &[],
        )
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// What a path is, for tree comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    Char {
        rdev: u64,
        mode: u32,
    },
    Block {
        rdev: u64,
    },
    Fifo {
        mode: u32,
    },
}

/// Every path under `dir` (relative), with what it is. Does not follow symlinks.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let ft = m.file_type();
        let mode = m.mode() & 0o7777;
        let node = if ft.is_dir() {
            Node::Dir {
                mode,
                uid: m.uid(),
                gid: m.gid(),
            }
        } else if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(e.path()).unwrap(),
            }
        } else if ft.is_file() {
            Node::File {
                mode,
                uid: m.uid(),
                gid: m.gid(),
                data: fs::read(e.path()).unwrap(),
            }
        } else if ft.is_char_device() {
            Node::Char {
                rdev: m.rdev(),
                mode,
            }
        } else if ft.is_block_device() {
            Node::Block { rdev: m.rdev() }
        } else {
            Node::Fifo { mode }
        };
        out.insert(rel, node);
    }
    out
}

/// A tempdir with a data root and, next to it, a canary directory that no layer may touch.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("canary");
        fs::create_dir_all(canary.join("etc")).unwrap();
        fs::write(canary.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(canary.join("x"), b"canary").unwrap();
        fs::create_dir_all(dir.path().join("root")).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The whole sandbox except the committed layers: must not change when a layer is applied.
    pub fn outside(&self) -> BTreeMap<PathBuf, Node> {
        let layers = PathBuf::from("root/layers");
        tree(self.dir.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with(&layers) || p == &layers)
            .collect()
    }

    pub fn layers(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.root().join("layers")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn tmp_entries(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.root().join("tmp")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}
