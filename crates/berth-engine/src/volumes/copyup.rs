//! Docker's copy-up: the first container to mount an empty volume fills it with the image's
//! content at the mount's destination — modes, owners, symlinks, device nodes and extended
//! attributes kept.
//!
//! The source is resolved inside the container's rootfs with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink planted in the image (`/data -> /etc`) resolves to the rootfs' own /etc, never the
//! host's; below it every entry is opened `O_NOFOLLOW` relative to its parent, and symlinks are
//! copied as links, never followed. The destination is the volume's directory, written only
//! through `*at` calls relative to it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// How deep a copied tree may nest (a hostile image cannot exhaust the daemon's stack).
const MAX_DEPTH: usize = 128;

/// Copies `rootfs`/`dest` (resolved inside `rootfs`) into `volume` if `volume` is empty and the
/// source is a directory. Nothing happens when the path is absent from the image.
pub fn copy_up(rootfs: &Path, dest: &str, volume: &Path) -> io::Result<()> {
    let vol = rustix::fs::open(
        volume,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !is_empty(&vol)? {
        return Ok(());
    }
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = dest.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    let src = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    copy_dir(&src, &vol, 0)?;
    copy_meta(&src, &vol)
}

fn is_empty(dir: &OwnedFd) -> io::Result<bool> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("directory tree nested too deep"));
    }
    let mut d = rustix::fs::Dir::read_from(src)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        let st = rustix::fs::statat(src, &*name, AtFlags::SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, &*name, Mode::from_raw_mode(0o700))?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let s = rustix::fs::openat(src, &*name, flags, Mode::empty())?;
                let t = rustix::fs::openat(dst, &*name, flags, Mode::empty())?;
                copy_dir(&s, &t, depth + 1)?;
                copy_meta(&s, &t)?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    &*name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let t = rustix::fs::openat(
                    dst,
                    &*name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut sf = File::from(s);
                let mut tf = File::from(t);
                io::copy(&mut sf, &mut tf)?;
                copy_meta(&sf, &tf)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, &*name, Vec::new())?;
                rustix::fs::symlinkat(&*target, dst, &*name)?;
                rustix::fs::chownat(
                    dst,
                    &*name,
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            FileType::Fifo
            | FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Socket => {
                let ft = FileType::from_raw_mode(st.st_mode);
                rustix::fs::mknodat(dst, &*name, ft, mode, st.st_rdev)?;
                rustix::fs::chownat(
                    dst,
                    &*name,
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                rustix::fs::chmodat(dst, &*name, mode, AtFlags::empty())?;
            }
            FileType::Unknown => {}
        }
    }
    Ok(())
}

/// Owner, mode (after the owner: chown clears set-id bits) and extended attributes of `src`
/// onto `dst`, both open descriptors.
fn copy_meta(src: &impl AsFd, dst: &impl AsFd) -> io::Result<()> {
    let (s, t): (BorrowedFd, BorrowedFd) = (src.as_fd(), dst.as_fd());
    let st = rustix::fs::fstat(s)?;
    rustix::fs::fchown(
        t,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(t, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    copy_xattrs(s, t)
}

fn copy_xattrs(s: BorrowedFd, t: BorrowedFd) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(s, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(rustix::io::Errno::RANGE) => {
            names = vec![0u8; 65536];
            rustix::fs::flistxattr(s, &mut names[..])?
        }
        Err(e) => return Err(e.into()),
    };
    let mut value = vec![0u8; 65536];
    for name in names[..n.min(names.len())]
        .split(|b| *b == 0)
        .filter(|x| !x.is_empty())
    {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let len = match rustix::fs::fgetxattr(s, &*cname, &mut value[..]) {
            Ok(l) => l,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::fsetxattr(
            t,
            &*cname,
            &value[..len.min(value.len())],
            rustix::fs::XattrFlags::empty(),
        ) {
            // A namespace the volume's filesystem refuses (e.g. trusted.* without the
            // capability) is skipped, as Docker's copy does.
            Ok(()) | Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn copies_the_tree_keeping_links_and_modes() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/f"), b"hello").unwrap();
        std::fs::set_permissions(data.join("sub/f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        symlink("/etc/passwd", data.join("link")).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o751)).unwrap();
        copy_up(root.path(), "/data", vol.path()).unwrap();
        assert_eq!(std::fs::read(vol.path().join("sub/f")).unwrap(), b"hello");
        let m = std::fs::metadata(vol.path().join("sub/f")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(std::fs::metadata(vol.path()).unwrap().mode() & 0o777, 0o751);
        // Not empty any more: a second copy-up leaves it alone.
        std::fs::write(data.join("new"), b"x").unwrap();
        copy_up(root.path(), "/data", vol.path()).unwrap();
        assert!(!vol.path().join("new").exists());
    }

    #[test]
    fn a_planted_symlink_resolves_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/inside"), b"1").unwrap();
        symlink("/etc", root.path().join("data")).unwrap();
        copy_up(root.path(), "/data", vol.path()).unwrap();
        assert!(vol.path().join("inside").exists());
        // The host's /etc was never read.
        assert!(!vol.path().join("passwd").exists());
        // Absent paths copy nothing.
        let vol2 = tempfile::tempdir().unwrap();
        copy_up(root.path(), "/nope/x", vol2.path()).unwrap();
        assert!(is_empty(
            &rustix::fs::open(
                vol2.path(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty()
            )
            .unwrap()
        )
        .unwrap());
    }
}
