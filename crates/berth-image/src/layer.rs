//! Applying a layer tar (plain, gzip or zstd) into an unpacked layer directory, and the store of
//! unpacked layers under `<root>/layers/<chain-id>/diff`, shared by every image whose chain
//! contains them.
//!
//! Layer tars are hostile input. This module must never write outside the directory it unpacks
//! into: every name is cleaned lexically (`..` past the root is an error), the parent directory
//! of every entry is resolved inside the layer with `openat2(RESOLVE_IN_ROOT)` (so symlinks in
//! the layer resolve as they would inside the container, never to the host), and the final
//! component is created with `*at` calls that never follow a symlink. It never calls
//! `tar::Archive::unpack`. A layer becomes visible under `layers/` only complete and verified
//! (diff id checked when known), by one rename from `<root>/tmp`.
//!
//! In the unpacked directory, OCI whiteouts become what overlayfs reads as deletions: `.wh.NAME`
//! → a 0:0 character device `NAME`, `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use berth_types::{Algorithm, Digest};
use pathrs::Root;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

/// What went wrong applying or storing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(
        "layer entry {0:?} climbs out of the layer with '..': the layer is hostile or corrupt"
    )]
    Breakout(String),
    #[error("layer entry {path:?} is a hardlink to {target:?}, which is outside the layer")]
    HardlinkOutside { path: String, target: String },
    #[error("layer entry {path:?} is a hardlink to {target:?}, which is not an earlier entry of the layer: {source}")]
    HardlinkTarget {
        path: String,
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {0:?} is a device node, and device nodes are refused here")]
    DeviceRefused(String),
    #[error("layer entry {path:?} has unsupported type {kind}: only files, dirs, links, devices and fifos are allowed")]
    UnsupportedEntry { path: String, kind: String },
    #[error("layer entry {0:?} is a malformed whiteout")]
    BadWhiteout(String),
    #[error("layer entry {path:?} replaces the layer root with a non-directory")]
    RootNotDir { path: String },
    #[error("layer entry {path:?} has owner id {id}, which is out of range")]
    BadOwner { path: String, id: u64 },
    #[error("layer diff id mismatch: expected {expected}, the uncompressed stream hashes to {actual}; nothing was stored")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("layer stream starts with bytes {0:02x?}: not a tar, gzip or zstd stream (bzip2 and xz layers are not supported)")]
    UnknownCompression(Vec<u8>),
    #[error("reading the layer stream (truncated or corrupt archive?): {0}")]
    Read(#[source] io::Error),
    #[error("layer entry {path:?}: {op}: {source}")]
    Entry {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {path:?}: resolving inside the layer: {source}")]
    Resolve {
        path: String,
        #[source]
        source: pathrs::error::Error,
    },
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What to do with device nodes in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePolicy {
    /// Create them (inside the layer only), as Docker does when running as root.
    #[default]
    Allow,
    /// Leave them out silently, as rootless engines do.
    Skip,
    /// Fail the whole layer.
    Refuse,
}

/// How to apply a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub devices: DevicePolicy,
    /// When known, the uncompressed stream must hash to this, or the layer is refused.
    pub expected_diff_id: Option<Digest>,
    /// Apply the numeric uid/gid of entries (needs root; default: when running as root).
    pub same_owner: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            devices: DevicePolicy::Allow,
            expected_diff_id: None,
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of regular-file content written.
    pub size: u64,
    /// Tar entries seen.
    pub entries: u64,
}

/// The compression of a layer stream, detected by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Reads a stream while hashing it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or(&[]));
        Ok(n)
    }
}

/// Detects the compression of `r` and returns a reader of the uncompressed stream.
pub fn decompress<'a, R: Read + 'a>(r: R) -> Result<(Compression, Box<dyn Read + 'a>), LayerError> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    // Usually the first read holds the magic bytes: peek at them and let the decoder read
    // straight from this buffer (flate2's `read` decoder would copy into a 32 KiB one of its own).
    let first = br.fill_buf().map_err(LayerError::Read)?;
    if let [a, b, c, d, ..] = *first {
        let magic = [a, b, c, d];
        return match magic {
            [0x1f, 0x8b, ..] => Ok((
                Compression::Gzip,
                Box::new(flate2::bufread::MultiGzDecoder::new(br)),
            )),
            [0x28, 0xb5, 0x2f, 0xfd] => {
                let d = zstd::stream::read::Decoder::with_buffer(br).map_err(LayerError::Read)?;
                Ok((Compression::Zstd, Box::new(d)))
            }
            _ => finish_detect(&magic, Box::new(br)),
        };
    }
    // Take the 4 magic bytes (fewer if the stream is shorter), however the reads split them.
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let buf = br.fill_buf().map_err(LayerError::Read)?;
        if buf.is_empty() {
            break;
        }
        let take = (4 - head.len()).min(buf.len());
        head.extend_from_slice(buf.get(..take).unwrap_or(&[]));
        br.consume(take);
    }
    let r: Box<dyn Read + 'a> = Box::new(io::Cursor::new(head.clone()).chain(br));
    finish_detect(&head, r)
}

fn finish_detect<'a>(
    magic: &[u8],
    r: Box<dyn Read + 'a>,
) -> Result<(Compression, Box<dyn Read + 'a>), LayerError> {
    match magic {
        [0x1f, 0x8b, ..] => Ok((
            Compression::Gzip,
            Box::new(flate2::read::MultiGzDecoder::new(r)),
        )),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let d = zstd::stream::read::Decoder::new(r).map_err(LayerError::Read)?;
            Ok((Compression::Zstd, Box::new(d)))
        }
        [b'B', b'Z', b'h', ..] | [0xfd, b'7', b'z', b'X', ..] => {
            Err(LayerError::UnknownCompression(magic.to_vec()))
        }
        // Anything else is read as tar; the tar reader rejects what is not.
        _ => Ok((Compression::None, r)),
    }
}

/// Cleans an entry name lexically: drops `/` and `.`, resolves `..`, errors if `..` climbs past
/// the root. `None` is the layer root itself.
fn clean_name(raw: &Path) -> Result<Option<PathBuf>, LayerError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(LayerError::Breakout(raw.display().to_string()));
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Metadata applied to directories at the end, deepest first, so that creating children does
/// not disturb their mtime and a read-only mode does not block their creation.
struct DirMeta {
    mode: u32,
    mtime: u64,
}

/// Files at least this large have their writeback started as soon as they are written.
const WRITEBACK_MIN: u64 = 256 * 1024;

/// The state of one apply: the layer root and what is left for the end.
struct Applier<'o> {
    root: Root,
    root_path: PathBuf,
    opts: &'o ApplyOptions,
    dirs: HashMap<PathBuf, DirMeta>,
    root_meta: Option<DirMeta>,
    size: u64,
}

/// The parts of a tar header an entry needs, taken out before its data is read.
struct EntryInfo {
    display: String,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    dev_major: u32,
    dev_minor: u32,
    link: Option<PathBuf>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Applies the layer tar `r` (plain, gzip or zstd) into the existing directory `dir`.
///
/// `dir` should be empty or hold earlier entries of the same layer; whiteouts are recorded as
/// overlay whiteouts, not applied to lower layers. On error, `dir` may hold a partial layer: the
/// caller unpacks into a temporary directory and discards it (see [`LayerStore::apply`]).
pub fn apply_layer<R: Read>(
    dir: &Path,
    r: R,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let (_compression, plain) = decompress(r)?;
    let hashing = HashingReader {
        inner: plain,
        hasher: Sha256::new(),
    };
    let root = Root::open(dir).map_err(|source| LayerError::Resolve {
        path: dir.display().to_string(),
        source,
    })?;
    let mut ap = Applier {
        root,
        root_path: dir.to_path_buf(),
        opts,
        dirs: HashMap::new(),
        root_meta: None,
        size: 0,
    };
    let mut archive = tar::Archive::new(hashing);
    let mut entries: u64 = 0;
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        entries += 1;
        ap.apply_entry(&mut entry)?;
    }
    // The tar reader stops at the end-of-archive blocks; the diff id covers the whole stream.
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(LayerError::Read)?;
    let out: [u8; 32] = hashing.hasher.finalize().into();
    let diff_id = Digest::sha256_from_bytes(&out);
    if let Some(expected) = &opts.expected_diff_id {
        if *expected != diff_id {
            return Err(LayerError::DiffIdMismatch {
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    ap.finish_dirs()?;
    Ok(ApplyStats {
        diff_id,
        size: ap.size,
        entries,
    })
}

fn errno_err<'a>(path: &'a str, op: &'static str) -> impl FnOnce(Errno) -> LayerError + 'a {
    move |e| LayerError::Entry {
        path: path.to_string(),
        op,
        source: e.into(),
    }
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw_path = entry.path().map_err(LayerError::Read)?.into_owned();
        let display = raw_path.display().to_string();
        let h = entry.header();
        let kind = h.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let mut info = EntryInfo {
            display: display.clone(),
            mode: h.mode().map_err(LayerError::Read)? & 0o7777,
            uid: h.uid().map_err(LayerError::Read)?,
            gid: h.gid().map_err(LayerError::Read)?,
            mtime: h.mtime().unwrap_or(0),
            dev_major: h.device_major().ok().flatten().unwrap_or(0),
            dev_minor: h.device_minor().ok().flatten().unwrap_or(0),
            link: entry
                .link_name()
                .map_err(LayerError::Read)?
                .map(|l| l.into_owned()),
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().map_err(LayerError::Read)? {
            for ext in exts {
                let ext = ext.map_err(LayerError::Read)?;
                if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    // Overlay's own xattrs would change how the layer stack reads
                    // (opaque dirs, redirects): only whiteout markers may set them.
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        continue;
                    }
                    info.xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        let Some(path) = clean_name(&raw_path)? else {
            // The layer root itself: only a directory may describe it.
            if kind == tar::EntryType::Directory {
                self.root_meta = Some(DirMeta {
                    mode: info.mode,
                    mtime: info.mtime,
                });
                return Ok(());
            }
            return Err(LayerError::RootNotDir { path: display });
        };
        let base = path.file_name().map(OsStr::to_owned).unwrap_or_default();
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();

        // Whiteouts.
        if let Some(rest) = base.as_bytes().strip_prefix(b".wh.") {
            return self.whiteout(&parent, rest, &display);
        }

        let parent_fd = self.parent_dir(&parent, &display)?;
        match kind {
            tar::EntryType::Directory => {
                self.make_dir(&parent_fd, &base, &path, &info)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(&parent_fd, &base, &path, &display)?;
                let fd = rustix::fs::openat(
                    &parent_fd,
                    base.as_os_str(),
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno_err(&display, "create file"))?;
                let mut f = File::from(fd);
                // Large writes: io::copy alone writes 8 KiB at a time.
                let cap = usize::try_from(entry.size())
                    .unwrap_or(usize::MAX)
                    .clamp(8 * 1024, 1024 * 1024);
                let mut w = io::BufWriter::with_capacity(cap, &mut f);
                let n = io::copy(entry, &mut w).map_err(LayerError::Read)?;
                io::Write::flush(&mut w).map_err(LayerError::Read)?;
                drop(w);
                if n >= WRITEBACK_MIN {
                    // Start the disk writes now, so that the sync before the layer is renamed
                    // in waits for little; small files are left to that sync.
                    crate::content::start_writeback(&f, 0, n);
                }
                self.size += n;
                self.own_and_mode(f.as_fd(), &info)?;
                for (k, v) in &info.xattrs {
                    rustix::fs::fsetxattr(&f, k.as_slice(), v, rustix::fs::XattrFlags::empty())
                        .map_err(errno_err(&display, "set xattr"))?;
                }
                rustix::fs::futimens(&f, &times(info.mtime))
                    .map_err(errno_err(&display, "set times"))?;
            }
            tar::EntryType::Symlink => {
                let target = info.link.clone().unwrap_or_default();
                if target.as_os_str().is_empty() {
                    return Err(LayerError::UnsupportedEntry {
                        path: display,
                        kind: "symlink with an empty target".into(),
                    });
                }
                self.clear(&parent_fd, &base, &path, &display)?;
                // The target is stored verbatim: it is resolved inside the root wherever it is
                // followed (here by RESOLVE_IN_ROOT, in the container by its own root).
                rustix::fs::symlinkat(target.as_os_str(), &parent_fd, base.as_os_str())
                    .map_err(errno_err(&display, "create symlink"))?;
                self.finish_special(&parent_fd, &base, &info, false)?;
            }
            tar::EntryType::Link => {
                let raw_target = info.link.clone().unwrap_or_default();
                let target = match clean_name(&raw_target) {
                    Ok(Some(t)) => t,
                    Ok(None) | Err(_) => {
                        return Err(LayerError::HardlinkOutside {
                            path: display,
                            target: raw_target.display().to_string(),
                        })
                    }
                };
                let tdisplay = raw_target.display().to_string();
                let handle = self.root.resolve_nofollow(&target).map_err(|e| {
                    LayerError::HardlinkTarget {
                        path: display.clone(),
                        target: tdisplay.clone(),
                        source: io::Error::other(e.to_string()),
                    }
                })?;
                if target == path {
                    return Ok(());
                }
                self.clear(&parent_fd, &base, &path, &display)?;
                // Link the very inode we resolved inside the root (never a path re-walked).
                let proc_path = format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd());
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc_path.as_str(),
                    &parent_fd,
                    base.as_os_str(),
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(|e| LayerError::HardlinkTarget {
                    path: display.clone(),
                    target: tdisplay.clone(),
                    source: e.into(),
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo {
                    match self.opts.devices {
                        DevicePolicy::Allow => {}
                        DevicePolicy::Skip => return Ok(()),
                        DevicePolicy::Refuse => return Err(LayerError::DeviceRefused(display)),
                    }
                }
                self.clear(&parent_fd, &base, &path, &display)?;
                let dev = rustix::fs::makedev(info.dev_major, info.dev_minor);
                rustix::fs::mknodat(
                    &parent_fd,
                    base.as_os_str(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(errno_err(&display, "create device node or fifo"))?;
                self.finish_special(&parent_fd, &base, &info, true)?;
            }
            other => {
                return Err(LayerError::UnsupportedEntry {
                    path: display,
                    kind: format!("{other:?}"),
                })
            }
        }
        Ok(())
    }

    /// Opens (creating with 0755 if missing) the parent directory of an entry, resolved inside
    /// the layer.
    fn parent_dir(&self, parent: &Path, display: &str) -> Result<OwnedFd, LayerError> {
        let h = if parent.as_os_str().is_empty() {
            self.root.resolve(".")
        } else {
            self.root.mkdir_all(parent, &Permissions::from_mode(0o755))
        }
        .map_err(|source| LayerError::Resolve {
            path: display.to_string(),
            source,
        })?;
        Ok(OwnedFd::from(h))
    }

    /// Removes whatever this layer already has at `parent/base` (a later entry replaces an
    /// earlier one), never following a symlink.
    fn clear(
        &self,
        parent_fd: &OwnedFd,
        base: &OsStr,
        path: &Path,
        display: &str,
    ) -> Result<(), LayerError> {
        match rustix::fs::statat(parent_fd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_err(display, "inspect existing entry")(e)),
            Ok(st) => {
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    self.root
                        .remove_all(path)
                        .map_err(|source| LayerError::Resolve {
                            path: display.to_string(),
                            source,
                        })
                } else {
                    rustix::fs::unlinkat(parent_fd, base, AtFlags::empty())
                        .map_err(errno_err(display, "replace existing entry"))
                }
            }
        }
    }

    fn make_dir(
        &mut self,
        parent_fd: &OwnedFd,
        base: &OsStr,
        path: &Path,
        info: &EntryInfo,
    ) -> Result<(), LayerError> {
        let display = info.display.as_str();
        let is_dir = matches!(
            rustix::fs::statat(parent_fd, base, AtFlags::SYMLINK_NOFOLLOW),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory
        );
        if !is_dir {
            self.clear(parent_fd, base, path, display)?;
            rustix::fs::mkdirat(parent_fd, base, Mode::from_raw_mode(0o700))
                .map_err(errno_err(display, "create directory"))?;
        }
        let fd = rustix::fs::openat(
            parent_fd,
            base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_err(display, "open directory"))?;
        if self.opts.same_owner {
            chown_fd(fd.as_fd(), info)?;
        }
        for (k, v) in &info.xattrs {
            rustix::fs::fsetxattr(&fd, k.as_slice(), v, rustix::fs::XattrFlags::empty())
                .map_err(errno_err(display, "set xattr"))?;
        }
        self.dirs.insert(
            path.to_path_buf(),
            DirMeta {
                mode: info.mode,
                mtime: info.mtime,
            },
        );
        Ok(())
    }

    /// Owner, mode, xattrs and mtime of a symlink, device or fifo just created at `parent/base`.
    fn finish_special(
        &self,
        parent_fd: &OwnedFd,
        base: &OsStr,
        info: &EntryInfo,
        chmod: bool,
    ) -> Result<(), LayerError> {
        let display = info.display.as_str();
        if self.opts.same_owner {
            let (uid, gid) = owner(info)?;
            rustix::fs::chownat(
                parent_fd,
                base,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno_err(display, "set owner"))?;
        }
        if chmod {
            // Not a symlink (we just created it), so chmodat cannot be redirected.
            rustix::fs::chmodat(
                parent_fd,
                base,
                Mode::from_raw_mode(info.mode),
                AtFlags::empty(),
            )
            .map_err(errno_err(display, "set mode"))?;
        }
        if !info.xattrs.is_empty() {
            // No *at xattr call: name the entry through its pinned parent directory. The last
            // component is not followed (lsetxattr).
            let p = format!("/proc/self/fd/{}", parent_fd.as_raw_fd());
            let p = Path::new(&p).join(base);
            for (k, v) in &info.xattrs {
                rustix::fs::lsetxattr(&p, k.as_slice(), v, rustix::fs::XattrFlags::empty())
                    .map_err(errno_err(display, "set xattr"))?;
            }
        }
        rustix::fs::utimensat(
            parent_fd,
            base,
            &times(info.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_err(display, "set times"))?;
        Ok(())
    }

    fn own_and_mode(&self, fd: BorrowedFd<'_>, info: &EntryInfo) -> Result<(), LayerError> {
        if self.opts.same_owner {
            chown_fd(fd, info)?;
        }
        // After chown, which clears setuid/setgid.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(info.mode))
            .map_err(errno_err(&info.display, "set mode"))
    }

    /// `.wh.NAME` → a 0:0 character device `NAME`; `.wh..wh..opq` → the parent is opaque.
    fn whiteout(&mut self, parent: &Path, rest: &[u8], display: &str) -> Result<(), LayerError> {
        let parent_fd = self.parent_dir(parent, display)?;
        if rest == b".wh..opq" {
            rustix::fs::fsetxattr(
                rustix::fs::openat(
                    &parent_fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_err(display, "open opaque directory"))?,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(errno_err(display, "mark directory opaque (needs root)"))?;
            return Ok(());
        }
        if rest.starts_with(b".wh.") {
            // Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): ignored, as Docker does.
            return Ok(());
        }
        if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
            return Err(LayerError::BadWhiteout(display.to_string()));
        }
        let name = OsStr::from_bytes(rest);
        let target = parent.join(name);
        self.clear(&parent_fd, name, &target, display)?;
        self.dirs.remove(&target);
        rustix::fs::mknodat(
            &parent_fd,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(errno_err(display, "create whiteout device (needs root)"))?;
        Ok(())
    }

    /// Modes and mtimes of directories, deepest first, then of the root.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_by(|a, b| {
            b.0.components()
                .count()
                .cmp(&a.0.components().count())
                .then_with(|| a.0.cmp(&b.0))
        });
        for (path, meta) in dirs {
            let display = path.display().to_string();
            let h = match self.root.resolve_nofollow(&path) {
                Ok(h) => h,
                // Replaced or removed by a later entry: nothing to do.
                Err(_) => continue,
            };
            let fd = match rustix::fs::openat(
                &h,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // A later entry turned it into a non-directory.
                Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(errno_err(&display, "reopen directory")(e)),
            };
            set_dir_meta(&fd, &meta, &display)?;
        }
        if let Some(meta) = self.root_meta.take() {
            let fd = rustix::fs::open(
                &self.root_path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| LayerError::Io {
                op: "open",
                path: self.root_path.clone(),
                source: e.into(),
            })?;
            set_dir_meta(&fd, &meta, "/")?;
        }
        Ok(())
    }
}

fn set_dir_meta(fd: &OwnedFd, meta: &DirMeta, display: &str) -> Result<(), LayerError> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
        .map_err(errno_err(display, "set mode"))?;
    rustix::fs::futimens(fd, &times(meta.mtime)).map_err(errno_err(display, "set times"))
}

fn owner(info: &EntryInfo) -> Result<(rustix::fs::Uid, rustix::fs::Gid), LayerError> {
    let check = |id: u64| -> Result<u32, LayerError> {
        u32::try_from(id)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or(LayerError::BadOwner {
                path: info.display.clone(),
                id,
            })
    };
    let uid = check(info.uid)?;
    let gid = check(info.gid)?;
    Ok((
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    ))
}

fn chown_fd(fd: BorrowedFd<'_>, info: &EntryInfo) -> Result<(), LayerError> {
    let (uid, gid) = owner(info)?;
    rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(errno_err(&info.display, "set owner"))
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The chain id of a layer on top of `parent` (OCI image spec): the diff id for a bottom layer,
/// else sha256 of `"<parent chain id> <diff id>"`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => {
            let out: [u8; 32] = Sha256::digest(format!("{p} {diff_id}").as_bytes()).into();
            Digest::sha256_from_bytes(&out)
        }
    }
}

/// An unpacked layer in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: u64,
}

/// The unpacked layers of one data root: `<root>/layers/<chain-id hex>/{diff/,layer.json}`.
#[derive(Debug, Clone)]
pub struct LayerStore {
    layers: PathBuf,
    tmp: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |source| LayerError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl LayerStore {
    /// Opens (creating if needed) `root/layers` and `root/tmp`.
    pub fn open(root: &Path) -> Result<Self, LayerError> {
        let layers = root.join("layers");
        let tmp = root.join("tmp");
        fs::create_dir_all(&layers).map_err(io_err("create directory", &layers))?;
        fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
        Ok(Self { layers, tmp })
    }

    fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        // A validated digest's hex is one safe path component.
        self.layers.join(chain_id.hex())
    }

    /// The unpacked directory of a layer: an overlay lowerdir.
    pub fn diff_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layer_path(chain_id).join("diff")
    }

    /// Whether a layer is stored (complete: only complete layers are ever renamed in).
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.diff_dir(chain_id).is_dir()
    }

    /// The stored record of a layer.
    pub fn get(&self, chain_id: &Digest) -> Result<Layer, LayerError> {
        let p = self.layer_path(chain_id).join("layer.json");
        let data = fs::read(&p).map_err(io_err("read", &p))?;
        serde_json::from_slice(&data).map_err(|e| LayerError::Io {
            op: "parse",
            path: p,
            source: io::Error::other(e),
        })
    }

    /// All stored layers' chain ids (names that are not digests are ignored: they are not ours).
    pub fn list(&self) -> Result<Vec<Digest>, LayerError> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.layers).map_err(io_err("read directory", &self.layers))? {
            let ent = ent.map_err(io_err("read directory", &self.layers))?;
            if let Some(d) = ent
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(Algorithm::Sha256, n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Applies a layer stream on top of `parent` (a chain id, `None` for the bottom layer).
    ///
    /// With a known diff id and the layer already stored, the stream is not read. Otherwise it is
    /// unpacked into a fresh directory under `tmp/`, verified, and renamed to
    /// `layers/<chain-id>`; on any error that directory is removed and nothing is visible.
    pub fn apply<R: Read>(
        &self,
        parent: Option<&Digest>,
        r: R,
        opts: &ApplyOptions,
    ) -> Result<Layer, LayerError> {
        self.apply_staged(parent, r, opts)?.commit()
    }

    /// [`Self::apply`] up to the rename: the layer is unpacked and verified in a temp directory
    /// but neither durable nor visible until [`StagedLayer::commit`] (dropped before, it is
    /// removed). A layer already stored comes back as a staged layer whose commit does nothing.
    pub fn apply_staged<R: Read>(
        &self,
        parent: Option<&Digest>,
        r: R,
        opts: &ApplyOptions,
    ) -> Result<StagedLayer, LayerError> {
        if let Some(diff_id) = &opts.expected_diff_id {
            let cid = chain_id(parent, diff_id);
            if self.exists(&cid) {
                return Ok(StagedLayer {
                    store: self.clone(),
                    layer: self.get(&cid)?,
                    tmp: None,
                });
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&self.tmp)
            .map_err(io_err("create temp directory in", &self.tmp))?;
        let diff = tmp.path().join("diff");
        fs::create_dir(&diff).map_err(io_err("create directory", &diff))?;
        fs::set_permissions(&diff, Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &diff))?;
        let stats = apply_layer(&diff, r, opts)?;
        let cid = chain_id(parent, &stats.diff_id);
        let layer = Layer {
            chain_id: cid.clone(),
            diff_id: stats.diff_id,
            parent: parent.cloned(),
            size: stats.size,
        };
        let meta = tmp.path().join("layer.json");
        let json = serde_json::to_vec(&layer).map_err(|e| LayerError::Io {
            op: "encode",
            path: meta.clone(),
            source: io::Error::other(e),
        })?;
        fs::write(&meta, json).map_err(io_err("write", &meta))?;
        Ok(StagedLayer {
            store: self.clone(),
            layer,
            tmp: Some(tmp),
        })
    }

    /// fsyncs `layers/`: makes the renames of [`StagedLayer::commit_after_sync`] durable.
    pub fn sync_layer_dir(&self) -> Result<(), LayerError> {
        File::open(&self.layers)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &self.layers))
    }

    /// Removes a stored layer; `Ok(false)` when it was not there. The caller checks no image uses
    /// it. The directory is first renamed out of `layers/` so a crash never leaves half a layer
    /// visible.
    pub fn remove(&self, chain_id: &Digest) -> Result<bool, LayerError> {
        let p = self.layer_path(chain_id);
        let trash = self.tmp.join(format!("remove-{}", chain_id.hex()));
        // A removal interrupted by a crash leaves its trash behind: finish it first.
        match fs::remove_dir_all(&trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &trash)(e)),
        }
        match fs::rename(&p, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("rename", &p)(e)),
        }
        fs::remove_dir_all(&trash).map_err(io_err("remove", &trash))?;
        Ok(true)
    }
}

/// An unpacked, verified layer in the store's temp directory, not yet visible: see
/// [`LayerStore::apply_staged`].
pub struct StagedLayer {
    store: LayerStore,
    layer: Layer,
    /// `None` when the layer was already stored.
    tmp: Option<tempfile::TempDir>,
}

impl StagedLayer {
    /// The layer's record.
    pub fn layer(&self) -> &Layer {
        &self.layer
    }

    /// Makes the layer durable (syncfs), renames it into `layers/` and fsyncs that directory.
    pub fn commit(self) -> Result<Layer, LayerError> {
        if let Some(tmp) = &self.tmp {
            sync_tree(tmp.path())?;
        }
        let store = self.store.clone();
        let (layer, renamed) = self.rename_in()?;
        if renamed {
            let _ = store.sync_layer_dir();
        }
        Ok(layer)
    }

    /// Renames the layer into `layers/` without syncing it, for a caller that stages many
    /// layers and blobs and makes all of them durable with one `syncfs` of the store's
    /// filesystem: only after such a syncfs that began after [`LayerStore::apply_staged`]
    /// returned, and followed by [`LayerStore::sync_layer_dir`]. (Renaming an unsynced tree in
    /// could leave a visible layer with missing files after a crash.)
    pub fn commit_after_sync(self) -> Result<Layer, LayerError> {
        self.rename_in().map(|(l, _)| l)
    }

    /// Renames into place without replacing; `true` when this call stored the layer.
    fn rename_in(self) -> Result<(Layer, bool), LayerError> {
        let Some(tmp) = self.tmp else {
            return Ok((self.layer, false));
        };
        let cid = &self.layer.chain_id;
        let dest = self.store.layer_path(cid);
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp.path(),
            rustix::fs::CWD,
            &dest,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                let _kept = tmp.keep();
                Ok((self.layer, true))
            }
            // Applied by someone else meanwhile: theirs is identical (same chain id); ours goes.
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => Ok((self.store.get(cid)?, false)),
            Err(e) => Err(io_err("rename into", &dest)(e.into())),
        }
    }
}

/// fsyncs every regular file and directory of a freshly unpacked layer before it is renamed in.
fn sync_tree(dir: &Path) -> Result<(), LayerError> {
    // One syncfs covers the whole filesystem the layer is on, far cheaper than a walk.
    let f = File::open(dir).map_err(io_err("open", dir))?;
    rustix::fs::syncfs(&f).map_err(|e| io_err("syncfs", dir)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_names() {
        let c = |s: &str| clean_name(Path::new(s)).map(|o| o.map(|p| p.display().to_string()));
        assert_eq!(c("a/b").unwrap().as_deref(), Some("a/b"));
        assert_eq!(c("/etc/x").unwrap().as_deref(), Some("etc/x"));
        assert_eq!(c("./a/./b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(c("a/../b").unwrap().as_deref(), Some("b"));
        assert_eq!(c("./").unwrap(), None);
        assert_eq!(c("/").unwrap(), None);
        assert!(c("../x").is_err());
        assert!(c("a/../../x").is_err());
        assert!(c("/../x").is_err());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        assert_eq!(chain_id(None, &a), a);
        let want: [u8; 32] = Sha256::digest(format!("{a} {b}").as_bytes()).into();
        assert_eq!(chain_id(Some(&a), &b), Digest::sha256_from_bytes(&want));
    }

    #[test]
    fn detects_compression() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, b"hello").unwrap();
        let gz = gz.finish().unwrap();
        let (c, mut r) = decompress(&gz[..]).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");

        let zs = zstd::encode_all(&b"hello"[..], 1).unwrap();
        let (c, mut r) = decompress(&zs[..]).unwrap();
        assert_eq!(c, Compression::Zstd);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");

        let (c, _) = decompress(&b"plain tar"[..]).unwrap();
        assert_eq!(c, Compression::None);
        assert!(matches!(
            decompress(&b"BZh91AY"[..]),
            Err(LayerError::UnknownCompression(_))
        ));
    }

    #[test]
    fn short_first_reads_still_detect() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.split_first() {
                    Some((b, rest)) if !buf.is_empty() => {
                        buf[0] = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let zs = zstd::encode_all(&b"hello"[..], 1).unwrap();
        let (c, mut r) = decompress(OneByte(&zs)).unwrap();
        assert_eq!(c, Compression::Zstd);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }
}
