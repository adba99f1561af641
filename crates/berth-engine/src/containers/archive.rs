//! `docker cp`'s half in the daemon: stat a path in a container, tar it out, extract a tar into
//! a directory of it (the `/containers/{id}/archive` endpoints), running or stopped.
//!
//! The container's files are hostile. This module must never reach outside the container's
//! root or the host source of one of its mounts: every path is resolved inside that root with
//! `openat2(RESOLVE_IN_ROOT)` (via `pathrs`), never by string concatenation, and the walk below
//! a resolved directory goes fd by fd with `O_NOFOLLOW` (CVE-2018-15664: a symlink swapped
//! during the copy lands inside the root, never on the host). It must never load anything from
//! the container into berthd (CVE-2019-14271): no chroot, no NSS lookups; owners are numeric,
//! tar headers carry no user or group names.
//!
//! Paths under a bind mount of the container resolve in the mount's host source, as Docker's
//! cp does; symlinks are resolved within whichever root the lexical path falls in (a link in
//! the rootfs pointing into a mount destination reaches the rootfs's own directory there).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pathrs::Root;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::sync::Arc;

use berth_types::ContainerId;
use serde::Serialize;

use super::{Entry, Status};
use crate::daemon::Daemon;
use crate::error::EngineError;

/// What went wrong in a cp operation.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("extraction point is not a directory")]
    NotDir,
    #[error("container rootfs is marked read-only")]
    RootfsReadOnly,
    #[error("mounted volume is marked read-only")]
    MountReadOnly,
    #[error("invalid tar entry {0:?}: it climbs out of the extraction directory")]
    Breakout(String),
    #[error("cannot overwrite directory {0:?} with non-directory")]
    DirNonDir(String),
    #[error("tar entry {path:?} has unsupported type {kind}")]
    Unsupported { path: String, kind: String },
    #[error("tar entry {path:?} has owner id {id}, which is out of range")]
    BadOwner { path: String, id: u64 },
    #[error("reading the archive (truncated or corrupt?): {0}")]
    Read(#[source] io::Error),
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
    #[error("{path:?}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path:?}: resolving inside the container: {source}")]
    Resolve {
        path: String,
        #[source]
        source: pathrs::error::Error,
    },
}

fn errno<'a>(path: &'a str, op: &'static str) -> impl FnOnce(Errno) -> ArchiveError + 'a {
    move |e| ArchiveError::Io {
        path: path.to_string(),
        op,
        source: e.into(),
    }
}

/// A mount of the container that cp sees through: its destination in the container and its
/// host source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Cleaned, absolute, inside the container.
    pub dest: PathBuf,
    /// Absolute on the host (chosen by the user who created the container: trusted).
    pub source: PathBuf,
    pub read_only: bool,
}

/// The mounts of a record that cp resolves into: `HostConfig.Binds`, `HostConfig.Mounts` of
/// type bind, and the engine's own /etc/{hosts,hostname,resolv.conf} when they exist.
///
/// Named and anonymous volumes (and `--volumes-from` binds) come from the record's resolved
/// `volumes`, with the volume's host directory as the source.
pub fn mount_points(
    hc: &berth_types::api::HostConfig,
    volumes: &[crate::volumes::VolumeMount],
    container_dir: &Path,
) -> Vec<MountPoint> {
    let mut out = Vec::new();
    for v in volumes {
        if !v.source.starts_with('/') || !v.destination.starts_with('/') {
            continue;
        }
        out.push(MountPoint {
            dest: clean_abs(&v.destination),
            source: PathBuf::from(&v.source),
            read_only: !v.rw,
        });
    }
    for f in ["resolv.conf", "hostname", "hosts"] {
        let src = container_dir.join(f);
        if src.is_file() {
            out.push(MountPoint {
                dest: PathBuf::from("/etc").join(f),
                source: src,
                read_only: false,
            });
        }
    }
    for b in hc.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => continue,
        };
        if !src.starts_with('/') {
            continue; // named volumes: in the record's `volumes`
        }
        out.push(MountPoint {
            dest: clean_abs(dst),
            source: PathBuf::from(src),
            read_only: opts.split(',').any(|o| o == "ro"),
        });
    }
    for m in hc.mounts.iter().flatten() {
        if m.typ != Some(berth_types::api::MountType::BIND) {
            continue; // volumes: in the record's `volumes`; tmpfs lives only in the running container
        }
        let (Some(src), Some(dst)) = (&m.source, &m.target) else {
            continue;
        };
        out.push(MountPoint {
            dest: clean_abs(dst),
            source: PathBuf::from(src),
            read_only: m.read_only == Some(true),
        });
    }
    out
}

/// Cleans a container path lexically, as inside a root: `..` stops at `/`.
pub fn clean_abs(p: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Docker's `filepath.Base` of the asked path (`/a/b/.` → `.`, `/` → `/`).
pub fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Whether the asked path ends with `/` or `/.` (then its last symlink is followed).
fn follows_last(p: &str) -> bool {
    p.ends_with('/') || p.ends_with("/.") || p == "."
}

/// The filesystem view of one container: its mounted rootfs and its mounts.
pub struct ContainerFs {
    pub rootfs: PathBuf,
    pub mounts: Vec<MountPoint>,
    pub readonly_rootfs: bool,
}

/// A path located in one root (the rootfs or a mount's source).
struct Located {
    root: Root,
    /// Relative to `root`; empty for the root itself.
    rel: PathBuf,
    /// The container path of `root`.
    root_in_container: PathBuf,
    mount: Option<MountPoint>,
}

fn open_root(p: &Path, display: &str) -> Result<Root, ArchiveError> {
    Root::open(p).map_err(|source| ArchiveError::Resolve {
        path: display.to_string(),
        source,
    })
}

impl ContainerFs {
    fn locate(&self, path: &str) -> Result<Located, ArchiveError> {
        let clean = clean_abs(path);
        let best = self
            .mounts
            .iter()
            .filter(|m| clean.starts_with(&m.dest))
            .max_by_key(|m| m.dest.components().count());
        let Some(m) = best else {
            return Ok(Located {
                root: open_root(&self.rootfs, path)?,
                rel: clean.strip_prefix("/").unwrap_or(&clean).to_path_buf(),
                root_in_container: PathBuf::from("/"),
                mount: None,
            });
        };
        let rest = clean
            .strip_prefix(&m.dest)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        if m.source.is_dir() {
            return Ok(Located {
                root: open_root(&m.source, path)?,
                rel: rest,
                root_in_container: m.dest.clone(),
                mount: Some(m.clone()),
            });
        }
        // A file mount: its parent directory is the root, the file the only thing in it.
        if !rest.as_os_str().is_empty() {
            return Err(ArchiveError::NotFound(path.to_string()));
        }
        let parent = m.source.parent().unwrap_or(Path::new("/"));
        let name = m.source.file_name().unwrap_or_default();
        Ok(Located {
            root: open_root(parent, path)?,
            rel: PathBuf::from(name),
            root_in_container: m.dest.parent().unwrap_or(Path::new("/")).to_path_buf(),
            mount: Some(m.clone()),
        })
    }

    /// Resolves `path` to an `O_PATH` fd: symlinks of every component but the last are
    /// followed inside the root; the last one too when the path ends in `/` or `/.` or
    /// `follow` is set.
    fn resolve(&self, path: &str, follow: bool) -> Result<(Located, OwnedFd), ArchiveError> {
        let loc = self.locate(path)?;
        let h = if loc.rel.as_os_str().is_empty() {
            loc.root.resolve(".")
        } else if follow || follows_last(path) {
            loc.root.resolve(&loc.rel)
        } else {
            loc.root.resolve_nofollow(&loc.rel)
        };
        match h {
            Ok(h) => Ok((loc, OwnedFd::from(h))),
            Err(e)
                if matches!(
                    e.kind(),
                    pathrs::error::ErrorKind::OsError(Some(
                        libc::ENOENT | libc::ENOTDIR | libc::ELOOP
                    ))
                ) =>
            {
                Err(ArchiveError::NotFound(path.to_string()))
            }
            Err(source) => Err(ArchiveError::Resolve {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// `HEAD /containers/{id}/archive`: what Docker puts in `X-Docker-Container-Path-Stat`.
    pub fn stat(&self, path: &str) -> Result<PathStat, ArchiveError> {
        let (loc, fd) = self.resolve(path, false)?;
        let st = rustix::fs::fstat(&fd).map_err(errno(path, "stat"))?;
        let mut link_target = String::new();
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            link_target = match loc.root.resolve(&loc.rel) {
                Ok(h) => container_path_of(&loc, OwnedFd::from(h).as_fd()).unwrap_or_default(),
                Err(_) => String::new(),
            };
            if link_target.is_empty() {
                // Dangling: the target as the container would read it.
                let t = loc.root.readlink(&loc.rel).unwrap_or_default();
                let parent = clean_abs(path);
                let parent = parent.parent().unwrap_or(Path::new("/"));
                link_target = clean_abs(&parent.join(t).to_string_lossy())
                    .to_string_lossy()
                    .into_owned();
            }
        }
        Ok(PathStat {
            name: base_name(path),
            size: st.st_size,
            mode: go_file_mode(st.st_mode),
            mtime: berth_image::image::config::rfc3339(
                st.st_mtime,
                u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            ),
            link_target,
        })
    }

    /// `GET /containers/{id}/archive`: a tar of `path` with entry names rebased on its base
    /// name, as Docker's `archive.TarResourceRebase`.
    pub fn tar<W: Write>(&self, path: &str, w: W) -> Result<W, ArchiveError> {
        let (_loc, fd) = self.resolve(path, false)?;
        let base = base_name(path);
        let name = if base == "/" { ".".to_string() } else { base };
        let mut t = Tarrer {
            b: tar::Builder::new(w),
            links: HashMap::new(),
        };
        t.b.mode(tar::HeaderMode::Complete);
        t.b.follow_symlinks(false);
        // The top entry: its parent is not ours, so it is reopened through its O_PATH fd.
        let st = rustix::fs::fstat(&fd).map_err(errno(path, "stat"))?;
        t.entry_from_pathfd(fd.as_fd(), &st, Path::new(&name), path)?;
        t.b.into_inner().map_err(ArchiveError::Write)
    }

    /// `PUT /containers/{id}/archive`: extracts `r` (a tar, maybe gzip or zstd) into the
    /// directory `path`.
    pub fn extract<R: Read>(
        &self,
        path: &str,
        r: R,
        opts: &ExtractOptions,
    ) -> Result<(), ArchiveError> {
        let loc = self.locate(path)?;
        match &loc.mount {
            Some(m) if m.read_only => return Err(ArchiveError::MountReadOnly),
            None if self.readonly_rootfs => return Err(ArchiveError::RootfsReadOnly),
            _ => {}
        }
        let (_, fd) = self.resolve(path, true)?;
        let st = rustix::fs::fstat(&fd).map_err(errno(path, "stat"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(ArchiveError::NotDir);
        }
        // The extraction directory becomes the root: nothing of the archive lands outside it.
        let dir = rustix::fs::openat(
            &fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(path, "open"))?;
        extract_into(Root::from_fd(dir), r, opts)
    }
}

/// The container path of an fd inside a located root (via /proc/self/fd, which names the
/// inode's current path on the host).
fn container_path_of(loc: &Located, fd: BorrowedFd<'_>) -> Option<String> {
    let host = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let root_host = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        loc.root.resolve(".").ok().map(OwnedFd::from)?.as_raw_fd()
    ))
    .ok()?;
    let rel = host.strip_prefix(&root_host).ok()?;
    Some(
        loc.root_in_container
            .join(rel)
            .to_string_lossy()
            .into_owned(),
    )
}

/// Docker's `container.PathStat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The header value: base64 of the JSON.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A unix `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(m: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHARDEV: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut out = m & 0o777;
    out |= match FileType::from_raw_mode(m) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHARDEV,
        FileType::Fifo => PIPE,
        FileType::Socket => SOCKET,
        _ => 0,
    };
    if m & 0o4000 != 0 {
        out |= SETUID;
    }
    if m & 0o2000 != 0 {
        out |= SETGID;
    }
    if m & 0o1000 != 0 {
        out |= STICKY;
    }
    out
}

/// Writes tar entries from fds, never following a symlink.
struct Tarrer<W: Write> {
    b: tar::Builder<W>,
    /// Hard links: (dev, ino) → the first name written.
    links: HashMap<(u64, u64), PathBuf>,
}

fn header_for(st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Appends an entry under exactly `name` (Docker keeps `./` prefixes and ends directory names
/// with `/`; the tar crate's path setters would normalize them away), with GNU long-name
/// entries for names or link targets over 100 bytes.
fn append_raw<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    fn long<W: Write>(b: &mut tar::Builder<W>, kind: u8, bytes: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let tag = b"././@LongLink";
        if let Some(dst) = h.as_old_mut().name.get_mut(..tag.len()) {
            dst.copy_from_slice(tag);
        }
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(bytes.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        b.append(&h, bytes.chain(&[0u8][..]))
    }
    if name.len() > 100 {
        long(b, b'L', name)?;
    }
    if let Some(l) = link.filter(|l| l.len() > 100) {
        long(b, b'K', l)?;
    }
    let old = h.as_old_mut();
    old.name = [0; 100];
    let n = name.len().min(100);
    if let (Some(dst), Some(src)) = (old.name.get_mut(..n), name.get(..n)) {
        dst.copy_from_slice(src);
    }
    if let Some(l) = link {
        old.linkname = [0; 100];
        let n = l.len().min(100);
        if let (Some(dst), Some(src)) = (old.linkname.get_mut(..n), l.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
    h.set_cksum();
    b.append(h, data)
}

impl<W: Write> Tarrer<W> {
    /// The top entry, from its O_PATH fd.
    fn entry_from_pathfd(
        &mut self,
        fd: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        name: &Path,
        display: &str,
    ) -> Result<(), ArchiveError> {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let dir = rustix::fs::openat(
                    fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno(display, "open directory"))?;
                self.dir(dir, st, name, display)
            }
            FileType::RegularFile => {
                let f = rustix::fs::openat(
                    rustix::fs::CWD,
                    format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(errno(display, "open"))?;
                self.file(f, name, display)
            }
            FileType::Symlink => {
                // readlinkat with an empty name reads the O_PATH symlink itself.
                let target = rustix::fs::readlinkat(fd, "", Vec::new())
                    .map_err(errno(display, "read link"))?;
                let mut h = header_for(st, tar::EntryType::Symlink);
                append_raw(
                    &mut self.b,
                    &mut h,
                    name.as_os_str().as_bytes(),
                    Some(target.as_bytes()),
                    io::empty(),
                )
                .map_err(ArchiveError::Write)
            }
            _ => self.special(st, name),
        }
    }

    fn file(&mut self, fd: OwnedFd, name: &Path, display: &str) -> Result<(), ArchiveError> {
        let st = rustix::fs::fstat(&fd).map_err(errno(display, "stat"))?;
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = header_for(&st, tar::EntryType::Link);
                let first = first.clone();
                return append_raw(
                    &mut self.b,
                    &mut h,
                    name.as_os_str().as_bytes(),
                    Some(first.as_os_str().as_bytes()),
                    io::empty(),
                )
                .map_err(ArchiveError::Write);
            }
            self.links.insert(key, name.to_path_buf());
        }
        let mut h = header_for(&st, tar::EntryType::Regular);
        let size = u64::try_from(st.st_size).unwrap_or(0);
        h.set_size(size);
        // Exactly `size` bytes, whatever the file does meanwhile (zero padding if it shrank).
        let r = File::from(fd).take(size).chain(io::repeat(0)).take(size);
        append_raw(&mut self.b, &mut h, name.as_os_str().as_bytes(), None, r)
            .map_err(ArchiveError::Write)
    }

    fn special(&mut self, st: &rustix::fs::Stat, name: &Path) -> Result<(), ArchiveError> {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => tar::EntryType::Char,
            FileType::BlockDevice => tar::EntryType::Block,
            FileType::Fifo => tar::EntryType::Fifo,
            // Sockets are left out, as Docker does.
            _ => return Ok(()),
        };
        let mut h = header_for(st, kind);
        let rdev = st.st_rdev;
        let _ = h.set_device_major(rustix::fs::major(rdev));
        let _ = h.set_device_minor(rustix::fs::minor(rdev));
        append_raw(
            &mut self.b,
            &mut h,
            name.as_os_str().as_bytes(),
            None,
            io::empty(),
        )
        .map_err(ArchiveError::Write)
    }

    fn dir(
        &mut self,
        dir: OwnedFd,
        st: &rustix::fs::Stat,
        name: &Path,
        display: &str,
    ) -> Result<(), ArchiveError> {
        let mut h = header_for(st, tar::EntryType::Directory);
        let mut dname = name.as_os_str().as_bytes().to_vec();
        if !dname.ends_with(b"/") {
            dname.push(b'/');
        }
        append_raw(&mut self.b, &mut h, &dname, None, io::empty()).map_err(ArchiveError::Write)?;
        let mut names: Vec<OsString> = Vec::new();
        let mut it = rustix::fs::Dir::read_from(&dir).map_err(errno(display, "read directory"))?;
        for ent in it.by_ref() {
            let ent = ent.map_err(errno(display, "read directory"))?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            names.push(OsStr::from_bytes(n).to_os_string());
        }
        names.sort();
        for n in names {
            let child = name.join(&n);
            let cdisplay = child.display().to_string();
            let st = match rustix::fs::statat(&dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // removed meanwhile
                Err(e) => return Err(errno(&cdisplay, "stat")(e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let d = match rustix::fs::openat(
                        &dir,
                        n.as_os_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(d) => d,
                        // Swapped for a symlink or removed meanwhile: not followed.
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                        Err(e) => return Err(errno(&cdisplay, "open directory")(e)),
                    };
                    let st = rustix::fs::fstat(&d).map_err(errno(&cdisplay, "stat"))?;
                    self.dir(d, &st, &child, &cdisplay)?;
                }
                FileType::RegularFile => {
                    let f = match rustix::fs::openat(
                        &dir,
                        n.as_os_str(),
                        OFlags::RDONLY
                            | OFlags::NOFOLLOW
                            | OFlags::NONBLOCK
                            | OFlags::NOCTTY
                            | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(f) => f,
                        Err(Errno::NOENT | Errno::LOOP) => continue,
                        Err(e) => return Err(errno(&cdisplay, "open")(e)),
                    };
                    let fst = rustix::fs::fstat(&f).map_err(errno(&cdisplay, "stat"))?;
                    if FileType::from_raw_mode(fst.st_mode) != FileType::RegularFile {
                        continue; // swapped meanwhile
                    }
                    self.file(f, &child, &cdisplay)?;
                }
                FileType::Symlink => {
                    let target = match rustix::fs::readlinkat(&dir, n.as_os_str(), Vec::new()) {
                        Ok(t) => t,
                        Err(Errno::NOENT | Errno::INVAL) => continue,
                        Err(e) => return Err(errno(&cdisplay, "read link")(e)),
                    };
                    let mut h = header_for(&st, tar::EntryType::Symlink);
                    append_raw(
                        &mut self.b,
                        &mut h,
                        child.as_os_str().as_bytes(),
                        Some(target.as_bytes()),
                        io::empty(),
                    )
                    .map_err(ArchiveError::Write)?;
                }
                _ => self.special(&st, &child)?,
            }
        }
        Ok(())
    }
}

/// How to extract.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory (`noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Owner of every entry (`copyUIDGID` with the container's user); `None`: the headers'.
    pub chown: Option<(u32, u32)>,
}

/// Cleans an entry name: leading `/` and `.` dropped, `..` resolved, an error if it climbs out.
fn clean_entry(raw: &Path) -> Result<Option<PathBuf>, ArchiveError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return Err(ArchiveError::Breakout(raw.display().to_string()));
            }
            _ => {}
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
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

/// Extracts a tar (plain, gzip or zstd) into `root`, every name resolved inside it.
pub fn extract_into<R: Read>(root: Root, r: R, opts: &ExtractOptions) -> Result<(), ArchiveError> {
    let (_, plain) =
        berth_image::layer::decompress(r).map_err(|e| ArchiveError::Read(io::Error::other(e)))?;
    let mut archive = tar::Archive::new(plain);
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        if let Some(d) = extract_entry(&root, &mut entry, opts)? {
            dirs.push(d);
        }
    }
    // The reader stops at the first end-of-archive block: read the rest of the body (the
    // second block, a tar's record padding), or the client's write breaks on a closed socket.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(ArchiveError::Read)?;
    // Directory mtimes last, deepest first (creating children changed them).
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, mtime) in dirs {
        if let Ok(h) = root.resolve_nofollow(&p) {
            if let Ok(fd) = rustix::fs::openat(
                OwnedFd::from(h),
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                let _ = rustix::fs::futimens(&fd, &times(mtime));
            }
        }
    }
    Ok(())
}

fn owner_of(
    h: &tar::Header,
    display: &str,
    opts: &ExtractOptions,
) -> Result<(rustix::fs::Uid, rustix::fs::Gid), ArchiveError> {
    let (uid, gid) = match opts.chown {
        Some((u, g)) => (u64::from(u), u64::from(g)),
        None => (
            h.uid().map_err(ArchiveError::Read)?,
            h.gid().map_err(ArchiveError::Read)?,
        ),
    };
    let check = |id: u64| {
        u32::try_from(id)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or(ArchiveError::BadOwner {
                path: display.to_string(),
                id,
            })
    };
    Ok((
        rustix::fs::Uid::from_raw(check(uid)?),
        rustix::fs::Gid::from_raw(check(gid)?),
    ))
}

/// One entry; a directory comes back with its mtime, to set at the end.
fn extract_entry<R: Read>(
    root: &Root,
    entry: &mut tar::Entry<'_, R>,
    opts: &ExtractOptions,
) -> Result<Option<(PathBuf, u64)>, ArchiveError> {
    let raw = entry.path().map_err(ArchiveError::Read)?.into_owned();
    let display = raw.display().to_string();
    let kind = entry.header().entry_type();
    if matches!(
        kind,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        return Ok(None);
    }
    let h = entry.header().clone();
    let mode = h.mode().map_err(ArchiveError::Read)? & 0o7777;
    let mtime = h.mtime().unwrap_or(0);
    let link = entry
        .link_name()
        .map_err(ArchiveError::Read)?
        .map(|l| l.into_owned());
    let Some(path) = clean_entry(&raw)? else {
        return Ok(None); // "." : the extraction directory itself is left as it is (Docker)
    };
    let base = path.file_name().map(OsStr::to_owned).unwrap_or_default();
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let parent_fd: OwnedFd = if parent.as_os_str().is_empty() {
        root.resolve(".")
    } else {
        root.mkdir_all(&parent, &Permissions::from_mode(0o755))
    }
    .map_err(|source| ArchiveError::Resolve {
        path: display.clone(),
        source,
    })?
    .into();
    let (uid, gid) = owner_of(&h, &display, opts)?;

    // What is there already: a directory stays for a directory; anything else is replaced.
    let existing = match rustix::fs::statat(&parent_fd, &base, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(errno(&display, "stat")(e)),
    };
    let is_dir_entry = kind == tar::EntryType::Directory;
    if existing == Some(FileType::Directory) && !is_dir_entry {
        if opts.no_overwrite_dir_non_dir {
            return Err(ArchiveError::DirNonDir(display));
        }
        root.remove_all(&path)
            .map_err(|source| ArchiveError::Resolve {
                path: display.clone(),
                source,
            })?;
    } else if existing.is_some() && existing != Some(FileType::Directory) {
        // A hardlink onto itself is a no-op, handled below.
        if kind != tar::EntryType::Link {
            rustix::fs::unlinkat(&parent_fd, &base, AtFlags::empty())
                .map_err(errno(&display, "replace"))?;
        }
    }

    match kind {
        tar::EntryType::Directory => {
            if existing != Some(FileType::Directory) {
                if existing.is_some() {
                    rustix::fs::unlinkat(&parent_fd, &base, AtFlags::empty())
                        .map_err(errno(&display, "replace"))?;
                }
                rustix::fs::mkdirat(&parent_fd, &base, Mode::from_raw_mode(0o700))
                    .map_err(errno(&display, "create directory"))?;
            }
            let fd = rustix::fs::openat(
                &parent_fd,
                &base,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno(&display, "open directory"))?;
            rustix::fs::fchown(&fd, Some(uid), Some(gid)).map_err(errno(&display, "set owner"))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(errno(&display, "set mode"))?;
            return Ok(Some((path, mtime)));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let fd = rustix::fs::openat(
                &parent_fd,
                &base,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(errno(&display, "create file"))?;
            let mut f = File::from(fd);
            io::copy(entry, &mut f).map_err(ArchiveError::Read)?;
            rustix::fs::fchown(&f, Some(uid), Some(gid)).map_err(errno(&display, "set owner"))?;
            // After chown, which clears setuid/setgid.
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))
                .map_err(errno(&display, "set mode"))?;
            rustix::fs::futimens(&f, &times(mtime)).map_err(errno(&display, "set times"))?;
        }
        tar::EntryType::Symlink => {
            let target = link.unwrap_or_default();
            if target.as_os_str().is_empty() {
                return Err(ArchiveError::Unsupported {
                    path: display,
                    kind: "symlink with an empty target".into(),
                });
            }
            // Docker refuses a relative target that climbs above the extraction directory.
            if target.is_relative() && clean_entry(&parent.join(&target)).is_err() {
                return Err(ArchiveError::Breakout(format!(
                    "{display} -> {}",
                    target.display()
                )));
            }
            // Stored verbatim, never followed here; resolved inside a root wherever it is.
            rustix::fs::symlinkat(target.as_os_str(), &parent_fd, &base)
                .map_err(errno(&display, "create symlink"))?;
            rustix::fs::chownat(
                &parent_fd,
                &base,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno(&display, "set owner"))?;
            let _ =
                rustix::fs::utimensat(&parent_fd, &base, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        }
        tar::EntryType::Link => {
            let raw_target = link.unwrap_or_default();
            let target = match clean_entry(&raw_target) {
                Ok(Some(t)) => t,
                _ => {
                    return Err(ArchiveError::Breakout(format!(
                        "{display} => {}",
                        raw_target.display()
                    )))
                }
            };
            if target == path {
                return Ok(None);
            }
            let handle =
                root.resolve_nofollow(&target)
                    .map_err(|source| ArchiveError::Resolve {
                        path: display.clone(),
                        source,
                    })?;
            if existing.is_some() && existing != Some(FileType::Directory) {
                rustix::fs::unlinkat(&parent_fd, &base, AtFlags::empty())
                    .map_err(errno(&display, "replace"))?;
            }
            // Link the very inode resolved inside the root, never a path walked again.
            let proc_path = format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path.as_str(),
                &parent_fd,
                &base,
                AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(errno(&display, "create hard link"))?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let ft = match kind {
                tar::EntryType::Char => FileType::CharacterDevice,
                tar::EntryType::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let dev = rustix::fs::makedev(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            );
            rustix::fs::mknodat(&parent_fd, &base, ft, Mode::from_raw_mode(0o600), dev)
                .map_err(errno(&display, "create device node or fifo"))?;
            rustix::fs::chownat(
                &parent_fd,
                &base,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno(&display, "set owner"))?;
            // Just created by us, not a symlink: chmodat cannot be redirected.
            rustix::fs::chmodat(
                &parent_fd,
                &base,
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(errno(&display, "set mode"))?;
            let _ =
                rustix::fs::utimensat(&parent_fd, &base, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        }
        other => {
            return Err(ArchiveError::Unsupported {
                path: display,
                kind: format!("{other:?}"),
            })
        }
    }
    Ok(None)
}

// ------------------------------------------------------------------ the daemon's side

/// A container's filesystem made reachable for one cp: its rootfs mounted (temporarily for a
/// stopped container, unmounted on drop) while the container's `op` lock is held, so that it
/// never starts, stops or goes away meanwhile.
pub struct CpSession {
    pub fs: ContainerFs,
    /// The user of `copyUIDGID`, as in the container's config.
    pub user: String,
    mounted_here: Option<(berth_image::Snapshotter, ContainerId)>,
}

impl Drop for CpSession {
    fn drop(&mut self) {
        if let Some((snap, cid)) = self.mounted_here.take() {
            if snap.unmount(&cid, false).is_err() {
                let _ = snap.unmount(&cid, true);
            }
        }
    }
}

/// Docker's not-found answer of the archive endpoints.
pub fn file_not_found(path: &str, container: &str) -> EngineError {
    EngineError::not_found(format!(
        "Could not find the file {path} in container {container}"
    ))
}

/// The engine error of an archive error (`key` is the container as the client named it).
pub fn engine_error(e: ArchiveError, path: &str, key: &str) -> EngineError {
    match e {
        ArchiveError::NotFound(_) => file_not_found(path, key),
        ArchiveError::NotDir
        | ArchiveError::RootfsReadOnly
        | ArchiveError::MountReadOnly
        | ArchiveError::Breakout(_)
        | ArchiveError::DirNonDir(_)
        | ArchiveError::Unsupported { .. }
        | ArchiveError::BadOwner { .. }
        | ArchiveError::Read(_)
        // A name that cannot be resolved inside the root (a link dangling out of it, say).
        | ArchiveError::Resolve { .. } => EngineError::invalid(e.to_string()),
        other => EngineError::internal(other.to_string()),
    }
}

impl Daemon {
    /// Runs `f` on container `key`'s filesystem with its `op` lock held. Blocking.
    pub fn with_container_fs<T>(
        &self,
        key: &str,
        f: impl FnOnce(&CpSession) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.blocking_lock();
        let s = self.cp_session_locked(&e)?;
        f(&s)
    }

    fn cp_session_locked(&self, e: &Arc<Entry>) -> Result<CpSession, EngineError> {
        let rec = e.snapshot();
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(EngineError::conflict(format!(
                "container {} is marked for removal",
                rec.id
            )));
        }
        let cid = ContainerId::new(&rec.id).map_err(|e| EngineError::internal(e.to_string()))?;
        let snap = self.containers.snapshotter.paths(&cid);
        let mut mounted_here = None;
        if !berth_image::snapshot::is_mount_point(&snap.rootfs) {
            let image =
                self.images
                    .get_by_id(&rec.image_id.parse().map_err(|_| {
                        EngineError::internal(format!("bad image id {}", rec.image_id))
                    })?)
                    .map_err(|_| EngineError::not_found(format!("No such image: {}", rec.image)))?;
            let lowers = self.images.lower_dirs(&image);
            self.containers
                .snapshotter
                .prepare(&cid, &lowers)
                .map_err(|e| EngineError::internal(format!("mount the container's rootfs: {e}")))?;
            mounted_here = Some((self.containers.snapshotter.clone(), cid));
        }
        Ok(CpSession {
            fs: ContainerFs {
                rootfs: snap.rootfs,
                mounts: mount_points(
                    &rec.host_config,
                    &rec.volumes,
                    &self.containers.dir(&rec.id),
                ),
                readonly_rootfs: rec.host_config.readonly_rootfs == Some(true),
            },
            user: rec.config.user.clone().unwrap_or_default(),
            mounted_here,
        })
    }
}

impl CpSession {
    /// The owner `copyUIDGID` gives extracted files: the container's user, looked up in its
    /// own /etc/passwd and /etc/group read as files inside its root (never through NSS).
    pub fn copy_owner(&self) -> Result<Option<(u32, u32)>, EngineError> {
        if self.user.is_empty() {
            return Ok(None);
        }
        let u = super::spec::resolve_user(&self.fs.rootfs, &self.user)?;
        Ok(Some((u.uid, u.gid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_modes_as_docker() {
        assert_eq!(base_name("/a/b"), "b");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/a/b/."), ".");
        assert_eq!(base_name("/"), "/");
        assert_eq!(clean_abs("/../../etc/./x"), PathBuf::from("/etc/x"));
        assert_eq!(go_file_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
    }

    fn fs_of(root: &Path) -> ContainerFs {
        ContainerFs {
            rootfs: root.to_path_buf(),
            mounts: Vec::new(),
            readonly_rootfs: false,
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "mine").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("x")).unwrap();
        let fs = fs_of(&root);
        let st = fs.stat("/evil/passwd").unwrap();
        assert_eq!(st.size, 4);
        let st = fs.stat("/x/passwd").unwrap();
        assert_eq!(st.size, 4);
        let st = fs.stat("/evil").unwrap();
        assert_eq!(st.link_target, "/etc");
        assert!(matches!(fs.stat("/nope"), Err(ArchiveError::NotFound(_))));
        let tar = fs.tar("/evil/passwd", Vec::new()).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap(), Path::new("passwd"));
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "mine");
        // `/.` rebases on "." and keeps the `./` prefix, as Docker's tar.
        let tar = fs.tar("/etc/.", Vec::new()).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        assert_eq!(names, ["./", "./passwd"]);
        let long = "d".repeat(150);
        std::fs::write(root.join("etc").join(&long), "x").unwrap();
        let tar = fs.tar("/etc", Vec::new()).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        assert!(a
            .entries()
            .unwrap()
            .any(|e| e.unwrap().path().unwrap() == Path::new("etc").join(&long)));
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    // Raw names: set_path refuses `..`, which is what we test.
                    let n = h.as_old_mut();
                    n.name[..name.len()].copy_from_slice(name.as_bytes());
                    n.linkname[..data.len()].copy_from_slice(data.as_bytes());
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    let n = h.as_old_mut();
                    n.name[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn hostile_tars_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let canary = t.path().join("canary");
        std::fs::create_dir_all(root.join("dst")).unwrap();
        std::fs::create_dir_all(&canary).unwrap();
        let fs = fs_of(&root);
        let o = ExtractOptions::default();
        let bad = tar_of(&[("../escape", tar::EntryType::Regular, "x")]);
        assert!(matches!(
            fs.extract("/dst", &bad[..], &o),
            Err(ArchiveError::Breakout(_))
        ));
        let link = format!("{}", canary.display());
        let through = tar_of(&[
            ("l", tar::EntryType::Symlink, &link),
            ("l/owned", tar::EntryType::Regular, "x"),
        ]);
        // A link to a host path dangles inside the root: writing through it is refused.
        assert!(fs.extract("/dst", &through[..], &o).is_err());
        assert!(std::fs::read_dir(&canary).unwrap().next().is_none());
        // An absolute link resolves inside the extraction root; absolute names land inside.
        let inside = tar_of(&[
            ("d", tar::EntryType::Directory, ""),
            ("l2", tar::EntryType::Symlink, "/d"),
            ("l2/f", tar::EntryType::Regular, "x"),
            ("/abs", tar::EntryType::Regular, "y"),
        ]);
        fs.extract("/dst", &inside[..], &o).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("dst/d/f")).unwrap(), "x");
        assert_eq!(std::fs::read_to_string(root.join("dst/abs")).unwrap(), "y");
        assert!(!Path::new("/d/f").exists());
        let up = tar_of(&[("u", tar::EntryType::Symlink, "../../../x")]);
        assert!(matches!(
            fs.extract("/dst", &up[..], &o),
            Err(ArchiveError::Breakout(_))
        ));
        assert!(matches!(
            fs.extract("/nope", &through[..], &o),
            Err(ArchiveError::NotFound(_))
        ));
    }
}
