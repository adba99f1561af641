//! Where a saved archive goes: a tar stream with fixed, deterministic headers, or a directory
//! (an OCI layout on disk). Both take archive names that berth itself composed, never names read
//! from input, and write each name once.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::ArchiveError;

/// A destination for the members of an archive.
pub(crate) trait Sink {
    /// Adds a regular file of exactly `size` bytes; a name already written is skipped (blobs are
    /// shared between images). Returns whether it was written.
    fn file(&mut self, name: &str, size: u64, r: &mut dyn Read) -> Result<bool, ArchiveError>;
    /// Adds a directory (and is a no-op when it exists).
    fn dir(&mut self, name: &str) -> Result<(), ArchiveError>;
    /// Whether a name was written already.
    fn has(&self, name: &str) -> bool;
}

/// A tar stream: mode 0644/0755, owner 0:0, mtime 0, so the same images give the same bytes.
pub(crate) struct TarSink<W: Write> {
    b: tar::Builder<W>,
    written: BTreeSet<String>,
}

impl<W: Write> TarSink<W> {
    pub(crate) fn new(w: W) -> Self {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Deterministic);
        Self {
            b,
            written: BTreeSet::new(),
        }
    }

    pub(crate) fn finish(self) -> Result<W, ArchiveError> {
        self.b.into_inner().map_err(ArchiveError::Write)
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

impl<W: Write> Sink for TarSink<W> {
    fn file(&mut self, name: &str, size: u64, r: &mut dyn Read) -> Result<bool, ArchiveError> {
        if !self.written.insert(name.to_string()) {
            return Ok(false);
        }
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        // Exactly `size` bytes, or an error: the header must not lie.
        let mut data = Exact {
            inner: r.take(size),
            left: size,
        };
        self.b
            .append_data(&mut h, name, &mut data)
            .map_err(ArchiveError::Write)?;
        Ok(true)
    }

    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let name = format!("{}/", name.trim_end_matches('/'));
        if !self.written.insert(name.clone()) {
            return Ok(());
        }
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        self.b
            .append_data(&mut h, &name, io::empty())
            .map_err(ArchiveError::Write)
    }

    fn has(&self, name: &str) -> bool {
        self.written.contains(name)
    }
}

struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a blob got shorter while it was being written",
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// A directory: files are written to a temp name and renamed, so a crash never leaves a blob
/// with a wrong digest under its name.
pub(crate) struct DirSink {
    root: PathBuf,
    written: BTreeSet<String>,
}

impl DirSink {
    pub(crate) fn new(root: &Path) -> Result<Self, ArchiveError> {
        let io = |op: &'static str| {
            let path = root.to_path_buf();
            move |source| ArchiveError::Io { op, path, source }
        };
        fs::create_dir_all(root).map_err(io("create directory"))?;
        if fs::read_dir(root)
            .map_err(io("read directory"))?
            .next()
            .is_some()
        {
            return Err(ArchiveError::OutputNotEmpty(root.to_path_buf()));
        }
        Ok(Self {
            root: root.to_path_buf(),
            written: BTreeSet::new(),
        })
    }
}

impl Sink for DirSink {
    fn file(&mut self, name: &str, size: u64, r: &mut dyn Read) -> Result<bool, ArchiveError> {
        if !self.written.insert(name.to_string()) {
            return Ok(false);
        }
        let dest = self.root.join(name);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ArchiveError::Io { op, path, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&parent)
            .map_err(io("create temp file in", &parent))?;
        let mut data = Exact {
            inner: r.take(size),
            left: size,
        };
        io::copy(&mut data, tmp.as_file_mut()).map_err(io("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io("fsync", tmp.path()))?;
        tmp.persist(&dest)
            .map_err(|e| io("rename into", &dest)(e.error))?;
        Ok(true)
    }

    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let p = self.root.join(name);
        fs::create_dir_all(&p).map_err(|source| ArchiveError::Io {
            op: "create directory",
            path: p,
            source,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.written.contains(name)
    }
}
