//! The content-addressed blob store: manifests, configs and compressed layers under
//! `<root>/blobs/sha256/<hex>`.
//!
//! A blob becomes visible only complete and verified: ingest writes to a fresh file under
//! `<root>/tmp`, hashes while writing, fsyncs, checks digest and size, and only then renames into
//! place without replacing (two ingests of the same blob store it once). This module must never
//! leave a partial or unverified file under `blobs/`, and never builds a path from anything but a
//! validated [`Digest`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::{Algorithm, Digest};
use sha2::{Digest as _, Sha256};

/// What went wrong in the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    #[error("blob digest mismatch: expected {expected}, the data hashes to {actual}; the source is corrupt or lies, so nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got only {actual} before the stream ended; nothing was stored")]
    ShortRead {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "blob {digest}: expected {expected} bytes but the stream is longer; nothing was stored"
    )]
    TooLong { digest: String, expected: u64 },
    #[error("blob {digest} already stored with {actual} bytes, but {expected} were announced")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("digest algorithm {0} is not supported by the content store: only sha256")]
    UnsupportedAlgorithm(Algorithm),
    #[error("unexpected file {0:?} in the content store: remove it or run a store check")]
    StrayFile(PathBuf),
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the blob stream: {0}")]
    Read(#[source] io::Error),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Digest and size of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// A handle on the blob store of one data root.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`: `root/blobs/sha256` and `root/tmp`.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let blobs = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        fs::create_dir_all(&blobs).map_err(io_err("create directory", &blobs))?;
        fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
        Ok(Self { blobs, tmp })
    }

    /// Where the blob `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> Result<PathBuf, ContentError> {
        if d.algorithm() != Algorithm::Sha256 {
            return Err(ContentError::UnsupportedAlgorithm(d.algorithm()));
        }
        // `Digest` guarantees `hex()` is exactly 64 lowercase hex digits: one safe path component.
        Ok(self.blobs.join(d.hex()))
    }

    /// Whether the blob is stored.
    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).map(|p| p.is_file()).unwrap_or(false)
    }

    /// The stored size of a blob.
    pub fn size(&self, d: &Digest) -> Result<u64, ContentError> {
        let p = self.path(d)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(d.clone())),
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        let p = self.path(d)?;
        match File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(d.clone())),
            Err(e) => Err(io_err("open", &p)(e)),
        }
    }

    /// Reads a whole blob (for manifests and configs; stream layers with [`Self::open_blob`]).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut f = self.open_blob(d)?;
        let mut v = Vec::new();
        let p = self.path(d)?;
        f.read_to_end(&mut v).map_err(io_err("read", &p))?;
        Ok(v)
    }

    /// Removes a blob; `Ok(false)` when it was not there.
    pub fn delete(&self, d: &Digest) -> Result<bool, ContentError> {
        let p = self.path(d)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &p)(e)),
        }
    }

    /// All stored blobs, sorted. A file whose name is not a digest is an error naming it.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.blobs).map_err(io_err("read directory", &self.blobs))? {
            let ent = ent.map_err(io_err("read directory", &self.blobs))?;
            let name = ent.file_name();
            let d = name
                .to_str()
                .and_then(|n| Digest::from_hex(Algorithm::Sha256, n).ok())
                .ok_or_else(|| ContentError::StrayFile(ent.path()))?;
            out.push(d);
        }
        out.sort();
        Ok(out)
    }

    /// Stores what `r` yields, verifying it against `expected` digest and `expected_size` when
    /// given. On any error nothing new is visible under `blobs/`.
    ///
    /// If the expected blob is already stored the reader is not read at all. Concurrent ingests of
    /// the same content each write their own temp file; the first rename wins and the others are
    /// discarded, so the blob is stored once.
    pub fn ingest<R: Read>(
        &self,
        mut r: R,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo, ContentError> {
        if let Some(d) = expected {
            let p = self.path(d)?;
            if let Ok(m) = fs::metadata(&p) {
                if let Some(size) = expected_size {
                    if m.len() != size {
                        return Err(ContentError::SizeMismatch {
                            digest: d.clone(),
                            expected: size,
                            actual: m.len(),
                        });
                    }
                }
                return Ok(BlobInfo {
                    digest: d.clone(),
                    size: m.len(),
                });
            }
        }
        let mut w = self.writer(expected, expected_size)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ContentError::Read(e)),
            };
            w.write(buf.get(..n).unwrap_or(&[]))?;
        }
        w.finish()?.commit()
    }

    /// A writer for one new blob, for callers that hold the data in chunks already (the registry
    /// client writes network buffers as they arrive, without copying them through a reader).
    /// Nothing is visible until [`BlobWriter::finish`] verified it and [`StagedBlob::commit`]
    /// renamed it in; dropped before that, the temp file is removed. Unlike [`Self::ingest`] it
    /// does not look for an already stored blob first.
    pub fn writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, ContentError> {
        if let Some(d) = expected {
            // Refuse an unsupported algorithm before writing anything.
            self.path(d)?;
        }
        // The temp file is removed when dropped unless persisted.
        let tmp = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.tmp)
            .map_err(io_err("create temp file in", &self.tmp))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            hasher: Sha256::new(),
            total: 0,
            written_back: 0,
            expected: expected.cloned(),
            expected_size,
        })
    }

    /// fsyncs the blob directory: makes the renames of [`StagedBlob::commit_after_sync`] durable.
    pub fn sync_blob_dir(&self) -> Result<(), ContentError> {
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &self.blobs))
    }

    /// Stores a byte slice (manifests, configs): shorthand for [`Self::ingest`].
    pub fn ingest_bytes(
        &self,
        data: &[u8],
        expected: Option<&Digest>,
    ) -> Result<BlobInfo, ContentError> {
        self.ingest(data, expected, Some(data.len() as u64))
    }
}

/// Start writing back a blob's data to disk every this many bytes, so that the fsync at the end
/// finds most of it already written instead of waiting for all of it.
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` of `f` to disk, without waiting and
/// without any durability promise (the fsync or syncfs before a rename gives that): disk writes
/// then overlap with the hashing and unpacking still to do. Best effort.
pub(crate) fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the fd is open for the call.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A blob being written: hashed and size-checked as it is written. See [`ContentStore::writer`].
pub struct BlobWriter {
    store: ContentStore,
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    total: u64,
    written_back: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
}

impl BlobWriter {
    fn label(&self) -> String {
        self.expected
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "<unknown digest>".into())
    }

    /// Appends a chunk of the blob.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ContentError> {
        self.total += chunk.len() as u64;
        if let Some(size) = self.expected_size {
            if self.total > size {
                return Err(ContentError::TooLong {
                    digest: self.label(),
                    expected: size,
                });
            }
        }
        self.hasher.update(chunk);
        self.tmp
            .as_file_mut()
            .write_all(chunk)
            .map_err(io_err("write", self.tmp.path()))?;
        if self.total - self.written_back >= WRITEBACK_EVERY {
            start_writeback(
                self.tmp.as_file(),
                self.written_back,
                self.total - self.written_back,
            );
            self.written_back = self.total;
        }
        Ok(())
    }

    /// Checks size and digest: the blob is complete and verified, but not yet durable nor
    /// visible.
    pub fn finish(mut self) -> Result<StagedBlob, ContentError> {
        if let Some(size) = self.expected_size {
            if self.total < size {
                return Err(ContentError::ShortRead {
                    digest: self.label(),
                    expected: size,
                    actual: self.total,
                });
            }
        }
        let out: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let actual = Digest::sha256_from_bytes(&out);
        if let Some(d) = &self.expected {
            if *d != actual {
                return Err(ContentError::DigestMismatch {
                    expected: d.clone(),
                    actual,
                });
            }
        }
        if self.total > self.written_back {
            start_writeback(
                self.tmp.as_file(),
                self.written_back,
                self.total - self.written_back,
            );
        }
        Ok(StagedBlob {
            store: self.store,
            tmp: self.tmp,
            info: BlobInfo {
                digest: actual,
                size: self.total,
            },
        })
    }
}

/// A complete, verified blob in the store's temp directory, not yet visible. Dropped without a
/// commit, it is removed.
pub struct StagedBlob {
    store: ContentStore,
    tmp: tempfile::NamedTempFile,
    info: BlobInfo,
}

impl StagedBlob {
    /// Digest and size of the blob.
    pub fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// Makes the blob durable (fsync), renames it into `blobs/` and fsyncs that directory.
    pub fn commit(self) -> Result<BlobInfo, ContentError> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(io_err("fsync", self.tmp.path()))?;
        let store = self.store.clone();
        let (info, renamed) = self.rename_in()?;
        if renamed {
            // Make the rename durable.
            let _ = store.sync_blob_dir();
        }
        Ok(info)
    }

    /// Renames the blob into `blobs/` without an fsync of its own, for a caller that stages
    /// many blobs and makes all of them durable at once: only after an `fsync` of this file or a
    /// `syncfs` of the store's filesystem that began after [`BlobWriter::finish`] returned, and
    /// followed by [`ContentStore::sync_blob_dir`]. (Renaming an unsynced file in could leave a
    /// visible blob with missing data after a crash.)
    pub fn commit_after_sync(self) -> Result<BlobInfo, ContentError> {
        self.rename_in().map(|(info, _)| info)
    }

    /// Renames into place without replacing; `true` when this call stored the blob.
    fn rename_in(self) -> Result<(BlobInfo, bool), ContentError> {
        let dest = self.store.path(&self.info.digest)?;
        match self.tmp.persist_noclobber(&dest) {
            Ok(_) => Ok((self.info, true)),
            // Someone stored the same verified content first: keep theirs, drop ours.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                drop(e.file);
                Ok((self.info, false))
            }
            Err(e) => Err(io_err("rename into", &dest)(e.error)),
        }
    }
}

/// The sha256 digest of a byte slice.
pub fn sha256_digest(data: &[u8]) -> Digest {
    let out: [u8; 32] = Sha256::digest(data).into();
    Digest::sha256_from_bytes(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn tmp_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("tmp")).unwrap().next().is_none()
    }

    #[test]
    fn ingest_read_list_delete() {
        let (dir, s) = store();
        let d = sha256_digest(b"hello");
        let info = s.ingest(&b"hello"[..], Some(&d), Some(5)).unwrap();
        assert_eq!(
            info,
            BlobInfo {
                digest: d.clone(),
                size: 5
            }
        );
        assert!(s.exists(&d));
        assert_eq!(s.read(&d).unwrap(), b"hello");
        assert_eq!(s.size(&d).unwrap(), 5);
        assert_eq!(s.list().unwrap(), vec![d.clone()]);
        assert!(s.delete(&d).unwrap());
        assert!(!s.delete(&d).unwrap());
        assert!(matches!(s.read(&d), Err(ContentError::NotFound(_))));
        assert!(tmp_is_empty(dir.path()));
    }

    #[test]
    fn ingest_without_expectations_computes_the_digest() {
        let (_dir, s) = store();
        let info = s.ingest(&b"abc"[..], None, None).unwrap();
        assert_eq!(
            info.digest.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn mismatch_and_short_reads_leave_nothing() {
        let (dir, s) = store();
        let d = sha256_digest(b"hello");
        let e = s.ingest(&b"hellO"[..], Some(&d), None).unwrap_err();
        assert!(matches!(e, ContentError::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(&d.to_string()));
        let e = s.ingest(&b"hell"[..], Some(&d), Some(5)).unwrap_err();
        assert!(
            matches!(e, ContentError::ShortRead { actual: 4, .. }),
            "{e}"
        );
        let e = s.ingest(&b"hello!"[..], Some(&d), Some(5)).unwrap_err();
        assert!(matches!(e, ContentError::TooLong { .. }), "{e}");
        assert!(s.list().unwrap().is_empty());
        assert!(tmp_is_empty(dir.path()));
    }

    #[test]
    fn failing_reader_leaves_nothing() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("connection reset"));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let (dir, s) = store();
        let e = s.ingest(Broken(3), None, None).unwrap_err();
        assert!(e.to_string().contains("connection reset"), "{e}");
        assert!(s.list().unwrap().is_empty());
        assert!(tmp_is_empty(dir.path()));
    }

    #[test]
    fn existing_blob_is_not_read_again() {
        let (_dir, s) = store();
        let d = sha256_digest(b"x");
        s.ingest_bytes(b"x", Some(&d)).unwrap();
        struct Panics;
        impl Read for Panics {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("must not be read"))
            }
        }
        assert_eq!(s.ingest(Panics, Some(&d), Some(1)).unwrap().size, 1);
        assert!(matches!(
            s.ingest(Panics, Some(&d), Some(2)),
            Err(ContentError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn stray_files_are_named() {
        let (dir, s) = store();
        fs::write(dir.path().join("blobs/sha256/junk"), b"").unwrap();
        let e = s.list().unwrap_err();
        assert!(e.to_string().contains("junk"), "{e}");
    }
}
