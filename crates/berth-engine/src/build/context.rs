//! The build context: the client's tar (plain or gzip, detected by its magic bytes) unpacked
//! into a fresh directory of the build. The tar is hostile: names with `..` or a leading `/` are
//! refused, every directory on the way to an entry is opened with `O_NOFOLLOW` (an entry that
//! would go through a symlink or a file is refused, so nothing is ever written outside the
//! directory), symlinks are stored as symlinks and never followed, hard links may only name
//! entries already inside, and device nodes are refused.
//!
//! The files keep their permission bits and modification times (COPY keeps them); owners are
//! not applied (COPY gives files to root unless `--chown` says otherwise).

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

/// Why a context could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("the build context is not a valid tar archive: {0}")]
    Tar(#[source] io::Error),
    #[error("the build context is compressed with {0}, which berth does not read: send a plain or gzip-compressed tar")]
    Compression(&'static str),
    #[error("the build context has an unsafe entry {name:?}: {why}")]
    Unsafe { name: String, why: &'static str },
    #[error("the build context has a device node {0:?}: device nodes are refused")]
    Device(String),
    #[error("unpack the build context entry {name:?} into {dir}: {op}: {source}")]
    Io {
        dir: PathBuf,
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

/// The compression of a stream, from its first bytes.
fn compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else {
        None
    }
}

/// Unpacks the context tar read from `r` into the existing, empty directory `dest`.
pub fn extract(r: impl Read, dest: &Path) -> Result<Stats, ContextError> {
    let mut br = BufReader::with_capacity(256 << 10, r);
    let head = br.fill_buf().map_err(ContextError::Tar)?;
    match compression(head) {
        None => unpack(br, dest),
        Some("gzip") => unpack(flate2::bufread::MultiGzDecoder::new(br), dest),
        Some(other) => Err(ContextError::Compression(other)),
    }
}

/// The components of an entry name: `./a//b/` → `[a, b]`; refuses `..` and absolute names.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.first() == Some(&b'/') {
        return Err("absolute names are refused");
    }
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("names with '..' are refused"),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Unpacker<'a> {
    dest: &'a Path,
    root: OwnedFd,
    /// The directory of the last regular file and its components: files of one directory
    /// come in a row, each would otherwise walk from the root again.
    last_dir: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
}

impl Unpacker<'_> {
    fn io(&self, name: &str, op: &'static str) -> impl FnOnce(Errno) -> ContextError + '_ {
        let name = name.to_string();
        move |e| ContextError::Io {
            dir: self.dest.to_path_buf(),
            name,
            op,
            source: e.into(),
        }
    }

    /// Opens the directory holding the last of `comps`, creating missing directories on the
    /// way (`create`) and refusing to pass through anything but real directories.
    fn parent(&self, name: &str, comps: &[&[u8]], create: bool) -> Result<OwnedFd, ContextError> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut cur = rustix::fs::openat(self.root.as_fd(), ".", dir_flags, Mode::empty())
            .map_err(self.io(name, "open the context directory"))?;
        let Some((_, dirs)) = comps.split_last() else {
            return Ok(cur);
        };
        for c in dirs {
            let c = OsStr::from_bytes(c);
            let next = match rustix::fs::openat(cur.as_fd(), c, dir_flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(cur.as_fd(), c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io(name, "create a directory")(e)),
                    }
                    rustix::fs::openat(cur.as_fd(), c, dir_flags, Mode::empty())
                        .map_err(|e| self.refusal(name, e))?
                }
                Err(e) => return Err(self.refusal(name, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// [`Self::parent`] for regular files, reusing the directory of the previous file.
    fn file_parent(&mut self, name: &str, comps: &[&[u8]]) -> Result<Rc<OwnedFd>, ContextError> {
        let dirs = &comps[..comps.len().saturating_sub(1)];
        if let Some((c, fd)) = &self.last_dir {
            if c.len() == dirs.len() && c.iter().zip(dirs).all(|(a, b)| a == b) {
                return Ok(fd.clone());
            }
        }
        let fd = Rc::new(self.parent(name, comps, true)?);
        self.last_dir = Some((dirs.iter().map(|c| c.to_vec()).collect(), fd.clone()));
        Ok(fd)
    }

    /// A failed open of a directory on the way: a symlink or a file there is the archive's
    /// doing (refused), anything else an I/O error.
    fn refusal(&self, name: &str, e: Errno) -> ContextError {
        match e {
            Errno::LOOP | Errno::NOTDIR => ContextError::Unsafe {
                name: name.to_string(),
                why: "it goes through a symlink or a file",
            },
            Errno::NOENT => ContextError::Unsafe {
                name: name.to_string(),
                why: "a hard link to an entry that is not in the archive",
            },
            e => self.io(name, "open a directory")(e),
        }
    }

    /// Makes room for a new entry `last` in `dir`: removes a file or symlink there, or an empty
    /// directory unless the new entry is a directory too (then it is kept). Returns whether a
    /// directory is kept.
    fn clear(
        &self,
        dir: &OwnedFd,
        last: &OsStr,
        name: &str,
        is_dir: bool,
    ) -> Result<bool, ContextError> {
        match rustix::fs::statat(dir.as_fd(), last, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io(name, "stat")(e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if is_dir {
                    return Ok(true);
                }
                rustix::fs::unlinkat(dir.as_fd(), last, AtFlags::REMOVEDIR)
                    .map_err(self.io(name, "replace a directory"))?;
                Ok(false)
            }
            Ok(_) => {
                rustix::fs::unlinkat(dir.as_fd(), last, AtFlags::empty())
                    .map_err(self.io(name, "replace a file"))?;
                Ok(false)
            }
        }
    }
}

fn mtime_of(h: &tar::Header) -> Timestamps {
    let secs = h.mtime().unwrap_or(0).min(i64::MAX as u64) as i64;
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn unpack(r: impl Read, dest: &Path) -> Result<Stats, ContextError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ContextError::Io {
        dir: dest.to_path_buf(),
        name: ".".into(),
        op: "open",
        source: e.into(),
    })?;
    let mut u = Unpacker {
        dest,
        root,
        last_dir: None,
    };
    let mut stats = Stats::default();
    // Directory times are set last: adding entries changes them.
    let mut dir_times: Vec<(Vec<Vec<u8>>, Timestamps)> = Vec::new();
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries().map_err(ContextError::Tar)? {
        let mut entry = entry.map_err(ContextError::Tar)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps = components(&raw).map_err(|why| ContextError::Unsafe {
            name: name.clone(),
            why,
        })?;
        let kind = entry.header().entry_type();
        let mode = Mode::from_raw_mode(entry.header().mode().unwrap_or(0o644) & 0o7777);
        let times = mtime_of(entry.header());
        let Some(last) = comps.last().map(|c| OsStr::from_bytes(c)) else {
            // `./`: the context directory itself.
            continue;
        };
        if !matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        ) {
            // Anything else may change the directories on the way.
            u.last_dir = None;
        }
        match kind {
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(ContextError::Device(name));
            }
            tar::EntryType::Directory => {
                let dir = u.parent(&name, &comps, true)?;
                if !u.clear(&dir, last, &name, true)? {
                    rustix::fs::mkdirat(dir.as_fd(), last, mode)
                        .map_err(u.io(&name, "create a directory"))?;
                }
                rustix::fs::chmodat(dir.as_fd(), last, mode, AtFlags::empty())
                    .map_err(u.io(&name, "chmod"))?;
                dir_times.push((comps.iter().map(|c| c.to_vec()).collect(), times));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let dir = u.file_parent(&name, &comps)?;
                let create = || {
                    rustix::fs::openat(
                        dir.as_fd(),
                        last,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                };
                let fd = match create() {
                    Err(Errno::EXIST) => {
                        u.clear(&dir, last, &name, false)?;
                        create()
                    }
                    r => r,
                }
                .map_err(u.io(&name, "create"))?;
                let mut f = std::fs::File::from(fd);
                let n = io::copy(&mut entry, &mut f).map_err(|e| ContextError::Io {
                    dir: dest.to_path_buf(),
                    name: name.clone(),
                    op: "write",
                    source: e,
                })?;
                stats.bytes += n;
                rustix::fs::fchmod(&f, mode).map_err(u.io(&name, "chmod"))?;
                rustix::fs::futimens(&f, &times).map_err(u.io(&name, "set the times of"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let dir = u.parent(&name, &comps, true)?;
                u.clear(&dir, last, &name, false)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir.as_fd(), last)
                    .map_err(u.io(&name, "create a symlink"))?;
                let _ = rustix::fs::utimensat(dir.as_fd(), last, &times, AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let tcomps = components(&target).map_err(|why| ContextError::Unsafe {
                    name: name.clone(),
                    why,
                })?;
                let Some(tlast) = tcomps.last().map(|c| OsStr::from_bytes(c)) else {
                    return Err(ContextError::Unsafe {
                        name,
                        why: "a hard link to the context directory",
                    });
                };
                let src_dir = u.parent(&name, &tcomps, false)?;
                let dir = u.parent(&name, &comps, true)?;
                u.clear(&dir, last, &name, false)?;
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
                rustix::fs::linkat(src_dir.as_fd(), tlast, dir.as_fd(), last, AtFlags::empty())
                    .map_err(|e| match e {
                        Errno::NOENT => ContextError::Unsafe {
                            name: name.clone(),
                            why: "a hard link to an entry that is not in the archive",
                        },
                        e => u.io(&name, "create a hard link")(e),
                    })?;
            }
            // FIFOs and anything else a context has no use for.
            _ => continue,
        }
        stats.entries += 1;
    }
    for (comps, times) in dir_times.iter().rev() {
        let refs: Vec<&[u8]> = comps.iter().map(Vec::as_slice).collect();
        let Some(last) = refs.last().map(|c| OsStr::from_bytes(c)) else {
            continue;
        };
        if let Ok(dir) = u.parent("", &refs, false) {
            let _ = rustix::fs::utimensat(dir.as_fd(), last, times, AtFlags::SYMLINK_NOFOLLOW);
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_000_000);
        // set_path refuses `..` and absolute names: write the raw name field instead.
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        h
    }

    /// (type, name, data, link target)
    type Entry<'a> = (tar::EntryType, &'a str, &'a [u8], Option<&'a str>);

    fn tar_of(entries: &[Entry]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, data, link) in entries {
            let mut h = header(*kind, name, data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
                h.set_cksum();
            }
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        (t, ctx)
    }

    /// Everything under `dir` except `ctx`, to check nothing was written outside.
    fn outside(dir: &Path) -> Vec<PathBuf> {
        walk(dir)
            .into_iter()
            .filter(|p| !p.starts_with(dir.join("ctx")))
            .collect()
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.clone());
            if p.symlink_metadata().unwrap().is_dir() {
                out.extend(walk(&p));
            }
        }
        out
    }

    #[test]
    fn plain_and_gzip_contexts_unpack_with_modes_times_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let t = tar_of(&[
            (tar::EntryType::Directory, "./", b"", None),
            (
                tar::EntryType::Regular,
                "./Dockerfile",
                b"FROM scratch\n",
                None,
            ),
            (
                tar::EntryType::Regular,
                "sub/dir/run.sh",
                b"#!/bin/sh\n",
                None,
            ),
            (tar::EntryType::Symlink, "link", b"", Some("/etc/passwd")),
            (tar::EntryType::Link, "hard", b"", Some("Dockerfile")),
        ]);
        for (i, data) in [t.clone(), {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&t).unwrap();
            gz.finish().unwrap()
        }]
        .into_iter()
        .enumerate()
        {
            let (_t, ctx) = setup();
            let s = extract(&data[..], &ctx).unwrap_or_else(|e| panic!("{i}: {e}"));
            assert_eq!(s.entries, 4);
            assert_eq!(
                std::fs::read(ctx.join("Dockerfile")).unwrap(),
                b"FROM scratch\n"
            );
            assert_eq!(std::fs::read(ctx.join("hard")).unwrap(), b"FROM scratch\n");
            let m = std::fs::metadata(ctx.join("sub/dir/run.sh")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o644);
            assert_eq!(
                std::os::unix::fs::MetadataExt::mtime(&m),
                1_000_000,
                "mtime kept"
            );
            // Stored as a symlink, never followed.
            assert_eq!(
                std::fs::read_link(ctx.join("link")).unwrap(),
                Path::new("/etc/passwd")
            );
        }
    }

    #[test]
    fn hostile_names_are_refused_and_nothing_lands_outside() {
        let cases: Vec<Vec<Entry>> = vec![
            vec![(tar::EntryType::Regular, "../x", b"evil", None)],
            vec![(tar::EntryType::Regular, "a/../../x", b"evil", None)],
            vec![(tar::EntryType::Regular, "/etc/x", b"evil", None)],
            // A symlink out, then a file through it.
            vec![
                (tar::EntryType::Symlink, "out", b"", Some("..")),
                (tar::EntryType::Regular, "out/x", b"evil", None),
            ],
            vec![
                (tar::EntryType::Symlink, "abs", b"", Some("/tmp")),
                (tar::EntryType::Directory, "abs/d", b"", None),
            ],
            // A hard link to something outside.
            vec![(tar::EntryType::Link, "h", b"", Some("../outside-file"))],
            vec![(tar::EntryType::Link, "h", b"", Some("/etc/passwd"))],
        ];
        for (i, c) in cases.iter().enumerate() {
            let (t, ctx) = setup();
            std::fs::write(t.path().join("outside-file"), b"keep").unwrap();
            let before = outside(t.path());
            let e = extract(&tar_of(c)[..], &ctx).unwrap_err();
            assert!(matches!(e, ContextError::Unsafe { .. }), "case {i}: {e}");
            assert_eq!(outside(t.path()), before, "case {i} wrote outside");
            assert_eq!(
                std::fs::read(t.path().join("outside-file")).unwrap(),
                b"keep"
            );
        }
    }

    #[test]
    fn device_nodes_are_refused_and_other_compressions_named() {
        let (_t, ctx) = setup();
        let e = extract(
            &tar_of(&[(tar::EntryType::Char, "null", b"", None)])[..],
            &ctx,
        )
        .unwrap_err();
        assert!(
            matches!(e, ContextError::Device(ref n) if n == "null"),
            "{e}"
        );
        assert!(!ctx.join("null").exists());
        let e = extract(&b"BZh91AY&SY"[..], &ctx).unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
        let e = extract(
            &b"not a tar at all, just some text that is long enough"[..],
            &ctx,
        );
        assert!(e.is_err());
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let (_t, ctx) = setup();
        let t = tar_of(&[
            (tar::EntryType::Regular, "f", b"one", None),
            (tar::EntryType::Regular, "f", b"two", None),
            (tar::EntryType::Symlink, "g", b"", Some("f")),
            (tar::EntryType::Regular, "g", b"three", None),
        ]);
        extract(&t[..], &ctx).unwrap();
        assert_eq!(std::fs::read(ctx.join("f")).unwrap(), b"two");
        // The symlink was replaced, not written through.
        assert!(!ctx.join("g").symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read(ctx.join("g")).unwrap(), b"three");
    }

    #[test]
    fn names_split_into_components() {
        assert_eq!(components(b"./a//b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(components(b"./").unwrap().is_empty());
        assert!(components(b"a/../b").is_err());
        assert!(components(b"/a").is_err());
    }
}
