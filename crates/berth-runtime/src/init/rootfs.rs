//! The container's root filesystem: propagation, the spec's mounts (every target resolved inside
//! the root with openat2(RESOLVE_IN_ROOT) and mounted through its fd, so a symlink swapped in by
//! the container cannot redirect a mount onto the host: CVE-2021-30465), /dev, pivot_root, masked
//! and read-only paths.
//!
//! Runs in the container's init between clone and exec: single-threaded, no tracing.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::cgroups::CgroupMount;
use crate::error::{Result, RuntimeError};
use crate::plan::{DeviceNode, MountKind, MountOp, DEV_SYMLINKS};
use crate::sys::{self, Syscall};

fn err(what: String, e: std::io::Error) -> RuntimeError {
    RuntimeError::sys(what, e)
}

/// Creates every missing directory of `path` inside `root` (resolved in-root) and returns an
/// O_PATH fd of `path`. With `file`, the last component is created as an empty file if missing.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, file: bool) -> Result<OwnedFd> {
    mkdir_all_depth(root, path, file, 0)
}

/// A dangling symlink on the way is followed inside the root (its target is created there, as
/// runc does); `depth` bounds how many such links one path may go through.
fn mkdir_all_depth(root: BorrowedFd<'_>, path: &Path, file: bool, depth: u32) -> Result<OwnedFd> {
    match sys::open_in_root(root, path, 0) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => {
            return Err(err(
                format!("resolve {} in the container", path.display()),
                e,
            ))
        }
    }
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut parent = sys::open_in_root(root, &cur, libc::O_DIRECTORY)
        .map_err(|e| err("open the container's root".into(), e))?;
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match sys::open_in_root(root, &cur, 0) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(err(
                    format!("resolve {} in the container", cur.display()),
                    e,
                ))
            }
        }
        let name = CString::new(c.as_bytes())
            .map_err(|_| RuntimeError::Invalid(format!("path {} has a NUL", path.display())))?;
        let r = if last && file {
            rustix::fs::openat(
                parent.as_fd(),
                name.as_c_str(),
                rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CLOEXEC
                    | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(
                parent.as_fd(),
                name.as_c_str(),
                rustix::fs::Mode::from_bits_truncate(0o755),
            )
        };
        match r {
            Ok(()) | Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::LOOP) => {}
            Err(e) => {
                return Err(err(
                    format!("create {} in the container", cur.display()),
                    e.into(),
                ))
            }
        }
        match sys::open_in_root(root, &cur, 0) {
            Ok(fd) => parent = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // `cur` exists but does not resolve: a dangling symlink. Continue at its
                // target, taken relative to the root (absolute) or to its directory.
                let target = rustix::fs::readlinkat(parent.as_fd(), name.as_c_str(), Vec::new())
                    .map_err(|e| {
                        err(
                            format!("resolve {} in the container", cur.display()),
                            e.into(),
                        )
                    })?;
                if depth >= 40 {
                    return Err(err(
                        format!("resolve {} in the container", path.display()),
                        std::io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                let mut next = cur.parent().unwrap_or(Path::new("/")).join(target);
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                return mkdir_all_depth(root, &next, file, depth + 1);
            }
            Err(e) => {
                return Err(err(
                    format!("resolve {} in the container", cur.display()),
                    e,
                ))
            }
        }
    }
    Ok(parent)
}

/// Bind-mount `source` onto `dest` inside the root, then apply the flags a bind cannot take at
/// first (ro, nosuid, ...) with a remount. Flags locked by a user namespace are kept.
fn bind<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    source: &Path,
    dest: &Path,
    recursive: bool,
    remount: libc::c_ulong,
) -> Result<()> {
    let is_file = std::fs::metadata(source)
        .map_err(|e| RuntimeError::io("bind mount source", source, e))?
        .is_file()
        || std::fs::symlink_metadata(source).is_ok_and(|m| !m.is_dir() && !m.is_symlink());
    let target = mkdir_all_in_root(root, dest, is_file)?;
    let rec = if recursive { libc::MS_REC } else { 0 };
    s.mount(
        Some(source),
        &sys::fd_path(target.as_fd()),
        None,
        libc::MS_BIND | rec,
        None,
    )
    .map_err(|e| {
        err(
            format!("bind {} onto {}", source.display(), dest.display()),
            e,
        )
    })?;
    if remount != 0 {
        remount_bind(s, root, dest, remount | rec)?;
    }
    Ok(())
}

/// Remounts the bind mount at `dest` (in-root) with `flags`, keeping flags the kernel locked.
fn remount_bind<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    dest: &Path,
    flags: libc::c_ulong,
) -> Result<()> {
    let fd = sys::open_in_root(root, dest, 0)
        .map_err(|e| err(format!("resolve {} in the container", dest.display()), e))?;
    let p = sys::fd_path(fd.as_fd());
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match s.mount(None, &p, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = locked_flags(&p);
            s.mount(None, &p, None, base | flags | locked, None)
                .map_err(|e| err(format!("remount {}", dest.display()), e))
        }
        r => r.map_err(|e| err(format!("remount {}", dest.display()), e)),
    }
}

/// The mount flags of the mount holding `p` that a user namespace may not clear.
fn locked_flags(p: &Path) -> libc::c_ulong {
    let Ok(st) = rustix::fs::statvfs(p) else {
        return 0;
    };
    use rustix::fs::StatVfsMountFlags as F;
    let f = st.f_flag;
    let mut out = 0;
    for (sf, mf) in [
        (F::RDONLY, libc::MS_RDONLY),
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(sf) {
            out |= mf;
        }
    }
    out
}

/// What the rootfs code needs to know about the container.
pub struct RootfsCtx<'a> {
    pub rootfs: &'a Path,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    pub cgroup_mounts: &'a [CgroupMount],
}

/// Makes one of the spec's mounts.
pub fn mount_one<S: Syscall>(
    s: &S,
    ctx: &RootfsCtx<'_>,
    root: BorrowedFd<'_>,
    op: &MountOp,
) -> Result<()> {
    match &op.kind {
        MountKind::Bind { recursive } => {
            let src = op.source.as_deref().unwrap_or(Path::new(""));
            bind(s, root, src, &op.dest, *recursive, op.bind_remount_flags())?;
        }
        MountKind::Fs { fstype } => {
            let target = mkdir_all_in_root(root, &op.dest, false)?;
            let src = op.source.clone().unwrap_or_else(|| PathBuf::from(fstype));
            let flags = op.flags & !libc::MS_REMOUNT;
            let r = s.mount(
                Some(&src),
                &sys::fd_path(target.as_fd()),
                Some(fstype),
                flags,
                Some(&op.data),
            );
            match r {
                // sysfs and mqueue cannot always be mounted afresh from a user namespace (sysfs
                // needs a network namespace we own): fall back to a bind of the host's, as runc.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) && fstype == "sysfs" => {
                    bind(
                        s,
                        root,
                        Path::new("/sys"),
                        &op.dest,
                        true,
                        flags | libc::MS_RDONLY,
                    )?;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) && fstype == "mqueue" => {
                    bind(s, root, Path::new("/dev/mqueue"), &op.dest, false, flags)?;
                }
                r => r.map_err(|e| err(format!("mount {fstype} on {}", op.dest.display()), e))?,
            }
        }
        MountKind::Cgroup => mount_cgroup(s, ctx, root, op)?,
    }
    if op.rec_attr_set != 0 || op.rec_attr_clr != 0 {
        set_rec_attr(s, root, &op.dest, op.rec_attr_set, op.rec_attr_clr)?;
    }
    for &p in &op.propagation {
        let fd = sys::open_in_root(root, &op.dest, 0)
            .map_err(|e| err(format!("resolve {}", op.dest.display()), e))?;
        s.mount(None, &sys::fd_path(fd.as_fd()), None, p, None)
            .map_err(|e| err(format!("set propagation of {}", op.dest.display()), e))?;
    }
    Ok(())
}

fn set_rec_attr<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    dest: &Path,
    set: u64,
    clr: u64,
) -> Result<()> {
    let fd = sys::open_in_root(root, dest, 0)
        .map_err(|e| err(format!("resolve {}", dest.display()), e))?;
    s.mount_setattr(fd.as_fd(), set, clr).map_err(|e| {
        err(
            format!("set recursive mount attributes on {}", dest.display()),
            e,
        )
    })
}

fn mount_cgroup<S: Syscall>(
    s: &S,
    ctx: &RootfsCtx<'_>,
    root: BorrowedFd<'_>,
    op: &MountOp,
) -> Result<()> {
    let flags = op.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    let is_v2 = ctx
        .cgroup_mounts
        .iter()
        .any(|m| matches!(m, CgroupMount::V2));
    if is_v2 || ctx.cgroup_mounts.is_empty() {
        // With a cgroup namespace the mount shows the container's own cgroup as its root.
        let target = mkdir_all_in_root(root, &op.dest, false)?;
        return s
            .mount(
                Some(Path::new("cgroup2")),
                &sys::fd_path(target.as_fd()),
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(|e| err(format!("mount cgroup2 on {}", op.dest.display()), e));
    }
    // v1: a tmpfs holding one directory per hierarchy. The tmpfs is fresh and the container
    // does not run yet, so its directories are made and opened relative to its root fd.
    let target = mkdir_all_in_root(root, &op.dest, false)?;
    s.mount(
        Some(Path::new("tmpfs")),
        &sys::fd_path(target.as_fd()),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(|e| err(format!("mount tmpfs on {}", op.dest.display()), e))?;
    drop(target);
    let tmpfs = sys::open_in_root(root, &op.dest, libc::O_DIRECTORY)
        .map_err(|e| err(format!("resolve {}", op.dest.display()), e))?;
    let mut bound = Vec::new();
    for m in ctx.cgroup_mounts {
        let CgroupMount::V1 {
            dir,
            options,
            source: host_path,
            links,
        } = m
        else {
            continue;
        };
        let sub = op.dest.join(dir);
        let name = CString::new(dir.as_bytes())
            .map_err(|_| RuntimeError::Invalid(format!("cgroup directory {dir:?} has a NUL")))?;
        match rustix::fs::mkdirat(
            tmpfs.as_fd(),
            name.as_c_str(),
            rustix::fs::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(format!("create {}", sub.display()), e.into())),
        }
        let t = rustix::fs::openat(
            tmpfs.as_fd(),
            name.as_c_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| err(format!("open {}", sub.display()), e.into()))?;
        let r = if ctx.new_cgroupns {
            s.mount(
                Some(Path::new("cgroup")),
                &sys::fd_path(t.as_fd()),
                Some("cgroup"),
                flags,
                Some(options),
            )
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        };
        if r.is_err() {
            s.mount(
                Some(host_path),
                &sys::fd_path(t.as_fd()),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| {
                err(
                    format!("bind cgroup {} on {}", host_path.display(), sub.display()),
                    e,
                )
            })?;
            bound.push(sub);
        }
        for link in links.iter().filter(|l| *l != dir) {
            let lname = CString::new(link.as_bytes()).unwrap_or_default();
            let _ = rustix::fs::symlinkat(dir.as_str(), tmpfs.as_fd(), lname.as_c_str());
        }
    }
    // The flags (ro, nosuid, ...) for the whole tree at once: one recursive mount_setattr
    // instead of a remount per bind; per-mount remounts where mount_setattr is missing.
    const ATTRS: [(libc::c_ulong, u64); 4] = [
        (libc::MS_RDONLY, 0x1),
        (libc::MS_NOSUID, 0x2),
        (libc::MS_NODEV, 0x4),
        (libc::MS_NOEXEC, 0x8),
    ];
    let attr = ATTRS
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .fold(0u64, |acc, (_, a)| acc | a);
    if attr != 0 && s.mount_setattr(tmpfs.as_fd(), attr, 0).is_err() {
        for sub in &bound {
            remount_bind(s, root, sub, flags | libc::MS_REC)?;
        }
        if flags & libc::MS_RDONLY != 0 {
            s.mount(
                None,
                &sys::fd_path(tmpfs.as_fd()),
                None,
                libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                Some("mode=755"),
            )
            .map_err(|e| err(format!("remount {} read-only", op.dest.display()), e))?;
        }
    }
    Ok(())
}

/// Creates the device nodes (mknod, or a bind of the host's node inside a user namespace) and
/// the /dev links.
pub fn create_devices<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    devices: &[DeviceNode],
    in_userns: bool,
) -> Result<()> {
    for d in devices {
        let parent_path = d.path.parent().unwrap_or(Path::new("/dev"));
        let parent = mkdir_all_in_root(root, parent_path, false)?;
        let name = CString::new(d.path.file_name().map(|n| n.as_bytes()).unwrap_or_default())
            .unwrap_or_default();
        if in_userns {
            bind(s, root, &d.path, &d.path, false, 0).or_else(|e| {
                // The host may lack the node (e.g. /dev/fuse): skip it rather than fail, as runc.
                if d.path.exists() {
                    Err(e)
                } else {
                    Ok(())
                }
            })?;
            continue;
        }
        let _ = rustix::fs::unlinkat(
            parent.as_fd(),
            name.as_c_str(),
            rustix::fs::AtFlags::empty(),
        );
        s.mknod(parent.as_fd(), name.as_c_str(), d)
            .map_err(|e| err(format!("mknod {}", d.path.display()), e))?;
    }
    let dev = mkdir_all_in_root(root, Path::new("/dev"), false)?;
    let mut links: Vec<(&str, &str)> = DEV_SYMLINKS.to_vec();
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        let name = CString::new(link.trim_start_matches("/dev/")).unwrap_or_default();
        match rustix::fs::symlinkat(target, dev.as_fd(), name.as_c_str()) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(format!("symlink {link}"), e.into())),
        }
    }
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root (the "pivot_root(".", ".")" idiom, which
/// needs no directory for the old root inside the container).
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(|e| err("open /".into(), e))?;
    let new = sys::open(rootfs, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(|e| RuntimeError::io("cannot open rootfs", rootfs, e))?;
    rustix::process::fchdir(&new).map_err(|e| err("chdir into rootfs".into(), e.into()))?;
    sys::pivot_root(Path::new("."), Path::new("."))
        .map_err(|e| RuntimeError::io("pivot_root into", rootfs, e))?;
    rustix::process::fchdir(&old).map_err(|e| err("chdir to old root".into(), e.into()))?;
    // Keep the unmount of the old root from propagating to the host.
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(|e| err("make old root a slave".into(), e))?;
    sys::umount2(Path::new("."), libc::MNT_DETACH).map_err(|e| err("detach old root".into(), e))?;
    std::env::set_current_dir("/").map_err(|e| err("chdir /".into(), e))?;
    Ok(())
}

/// Without a mount namespace: chroot into the rootfs, mounting nothing.
pub fn chroot(rootfs: &Path) -> Result<()> {
    rustix::process::chroot(rootfs)
        .map_err(|e| RuntimeError::io("cannot chroot into", rootfs, e.into()))?;
    std::env::set_current_dir("/").map_err(|e| err("chdir /".into(), e))?;
    Ok(())
}

/// The mount point holding `path` (the longest mount point in /proc/self/mountinfo that is a
/// prefix of it).
pub fn mount_point_of(path: &Path) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(std::ffi::OsStr::from_bytes(&out)))
}

/// Without pivot_root (e.g. a rootfs on ramfs): move the rootfs over / and chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    std::env::set_current_dir(rootfs)
        .map_err(|e| RuntimeError::io("cannot enter rootfs", rootfs, e))?;
    sys::mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)
        .map_err(|e| err("move rootfs to /".into(), e))?;
    rustix::process::chroot(".").map_err(|e| err("chroot".into(), e.into()))?;
    std::env::set_current_dir("/").map_err(|e| err("chdir /".into(), e))?;
    Ok(())
}

/// Masks a path: /dev/null over a file, an empty read-only tmpfs over a directory. Missing
/// paths are skipped.
pub fn mask<S: Syscall>(s: &S, root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match sys::open_in_root(root, path, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("resolve masked path {}", path.display()), e)),
    };
    let p = sys::fd_path(fd.as_fd());
    let is_dir = std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false);
    let r = if is_dir {
        s.mount(
            Some(Path::new("tmpfs")),
            &p,
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
    } else {
        s.mount(Some(Path::new("/dev/null")), &p, None, libc::MS_BIND, None)
    };
    r.map_err(|e| err(format!("mask {}", path.display()), e))
}

/// Makes a path read-only (a recursive bind onto itself, remounted read-only). Missing paths are
/// skipped.
pub fn readonly<S: Syscall>(s: &S, root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match sys::open_in_root(root, path, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("resolve read-only path {}", path.display()), e)),
    };
    let p = sys::fd_path(fd.as_fd());
    s.mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| err(format!("bind {} read-only", path.display()), e))?;
    drop(fd);
    remount_bind(
        s,
        root,
        path,
        libc::MS_RDONLY | libc::MS_REC | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .or_else(|_| remount_bind(s, root, path, libc::MS_RDONLY | libc::MS_REC))
}

/// Remounts the root read-only.
pub fn readonly_root() -> Result<()> {
    let r = sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        None,
    );
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = locked_flags(Path::new("/"));
            sys::mount(
                None,
                Path::new("/"),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
                None,
            )
        }
        r => r,
    }
    .map_err(|e| err("remount / read-only".into(), e))
}

/// Binds the terminal's slave onto /dev/console, as runc does.
pub fn console(root: BorrowedFd<'_>, slave: &Path) -> Result<()> {
    let t = mkdir_all_in_root(root, Path::new("/dev/console"), true)?;
    sys::mount(
        Some(slave),
        &sys::fd_path(t.as_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| err("bind the terminal onto /dev/console".into(), e))
}

#[cfg(test)]
mod tests {
    //! The rootfs logic against a tempdir, with the privileged calls recorded instead of made:
    //! which mounts land where (always inside the root), in which order, with which flags.

    use super::*;
    use std::cell::RefCell;
    use std::ffi::CStr;
    use std::io;

    struct Recorder {
        root: PathBuf,
        calls: RefCell<Vec<String>>,
        /// mount(2) of this fstype fails with this errno.
        fail: Option<(&'static str, i32)>,
    }

    impl Recorder {
        fn new(root: &Path) -> Self {
            Self {
                root: root.canonicalize().unwrap(),
                calls: RefCell::new(Vec::new()),
                fail: None,
            }
        }
        /// A path as the container sees it ("/x"), or "HOST:/x" when outside the root.
        fn show(&self, p: &Path) -> String {
            let p = if p.starts_with("/proc/self/fd") {
                std::fs::read_link(p).unwrap_or_else(|_| p.to_path_buf())
            } else {
                p.to_path_buf()
            };
            match p.strip_prefix(&self.root) {
                Ok(rest) => format!("/{}", rest.display()),
                Err(_) => format!("HOST:{}", p.display()),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: libc::c_ulong,
            data: Option<&str>,
        ) -> io::Result<()> {
            self.calls.borrow_mut().push(format!(
                "mount {} {} {} {:#x} {}",
                source.map_or("-".into(), |s| self.show(s)),
                self.show(target),
                fstype.unwrap_or("-"),
                flags,
                data.filter(|d| !d.is_empty()).unwrap_or("-"),
            ));
            match self.fail {
                Some((t, errno)) if fstype == Some(t) => Err(io::Error::from_raw_os_error(errno)),
                _ => Ok(()),
            }
        }
        fn mknod(&self, dir: BorrowedFd<'_>, name: &CStr, node: &DeviceNode) -> io::Result<()> {
            rustix::fs::openat(
                dir,
                name,
                rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
                rustix::fs::Mode::from_bits_truncate(0o644),
            )?;
            self.calls.borrow_mut().push(format!(
                "mknod {} {}:{} {:o} {}:{}",
                node.path.display(),
                node.major,
                node.minor,
                node.mode,
                node.uid,
                node.gid
            ));
            Ok(())
        }
        fn mount_setattr(&self, fd: BorrowedFd<'_>, set: u64, clr: u64) -> io::Result<()> {
            let p = sys::fd_path(fd);
            self.calls
                .borrow_mut()
                .push(format!("setattr {} +{set:#x} -{clr:#x}", self.show(&p)));
            Ok(())
        }
    }

    struct Sandbox {
        _dir: tempfile::TempDir,
        root: PathBuf,
        host: PathBuf,
        fd: OwnedFd,
    }

    fn sandbox() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let host = dir.path().join("host");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        let fd = sys::open(&root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        Sandbox {
            _dir: dir,
            root,
            host,
            fd,
        }
    }

    fn op(json: serde_json::Value) -> MountOp {
        crate::plan::mount_op(&serde_json::from_value(json).unwrap()).unwrap()
    }

    fn ctx(rootfs: &Path) -> RootfsCtx<'_> {
        RootfsCtx {
            rootfs,
            in_userns: false,
            new_cgroupns: false,
            cgroup_mounts: &[],
        }
    }

    #[test]
    fn readonly_bind_is_a_bind_then_a_remount_inside_the_root() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let src = sb.host.join("data");
        std::fs::create_dir(&src).unwrap();
        let m = op(
            serde_json::json!({"destination": "/srv/data", "type": "bind",
            "source": src, "options": ["rbind", "ro", "nosuid"]}),
        );
        mount_one(&rec, &ctx(&sb.root), sb.fd.as_fd(), &m).unwrap();
        let host_src = rec.show(&src);
        assert_eq!(
            rec.calls(),
            vec![
                format!(
                    "mount {host_src} /srv/data - {:#x} -",
                    libc::MS_BIND | libc::MS_REC
                ),
                format!(
                    "mount - /srv/data - {:#x} -",
                    libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_REC
                ),
            ]
        );
        assert!(sb.root.join("srv/data").is_dir());
    }

    #[test]
    fn a_file_source_gets_a_file_target() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let src = sb.host.join("resolv.conf");
        std::fs::write(&src, "nameserver 127.0.0.1\n").unwrap();
        let m = op(
            serde_json::json!({"destination": "/etc/resolv.conf", "type": "bind",
            "source": src, "options": ["bind"]}),
        );
        mount_one(&rec, &ctx(&sb.root), sb.fd.as_fd(), &m).unwrap();
        assert!(sb.root.join("etc/resolv.conf").is_file());
        assert_eq!(rec.calls().len(), 1);
    }

    #[test]
    fn symlinked_destinations_never_leave_the_root() {
        // CVE-2021-30465: a destination through a symlink planted in the rootfs, absolute or
        // relative, resolves inside the root; nothing is created or mounted on the host side.
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let outside = sb.host.join("target");
        std::fs::create_dir_all(sb.root.join("mnt")).unwrap();
        std::os::unix::fs::symlink(&outside, sb.root.join("mnt/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../host/target", sb.root.join("mnt/rel")).unwrap();
        for dest in ["/mnt/abs/sub", "/mnt/rel/sub"] {
            let m = op(serde_json::json!({"destination": dest, "type": "tmpfs",
                "source": "tmpfs", "options": ["nosuid"]}));
            mount_one(&rec, &ctx(&sb.root), sb.fd.as_fd(), &m).unwrap();
        }
        let calls = rec.calls();
        assert_eq!(calls.len(), 2);
        for call in calls {
            let target = call.split(' ').nth(2).unwrap_or_default();
            assert!(
                target.starts_with('/') && !target.starts_with("HOST:"),
                "{call}"
            );
        }
        assert!(
            !outside.exists(),
            "a directory was created outside the root"
        );
    }

    #[test]
    fn sysfs_falls_back_to_a_readonly_bind_of_the_hosts() {
        let sb = sandbox();
        let mut rec = Recorder::new(&sb.root);
        rec.fail = Some(("sysfs", libc::EPERM));
        let m = op(
            serde_json::json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]}),
        );
        mount_one(&rec, &ctx(&sb.root), sb.fd.as_fd(), &m).unwrap();
        let calls = rec.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(
            calls[0].starts_with("mount HOST:sysfs /sys sysfs"),
            "{calls:?}"
        );
        assert_eq!(
            calls[1],
            format!(
                "mount HOST:/sys /sys - {:#x} -",
                libc::MS_BIND | libc::MS_REC
            )
        );
        assert!(calls[2].starts_with("mount - /sys -"), "{calls:?}");
    }

    #[test]
    fn masking_covers_files_with_dev_null_and_dirs_with_readonly_tmpfs() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        std::fs::create_dir_all(sb.root.join("proc/acpi")).unwrap();
        std::fs::write(sb.root.join("proc/kcore"), "").unwrap();
        for p in ["/proc/acpi", "/proc/kcore", "/proc/missing"] {
            mask(&rec, sb.fd.as_fd(), Path::new(p)).unwrap();
        }
        assert_eq!(
            rec.calls(),
            vec![
                format!("mount HOST:tmpfs /proc/acpi tmpfs {:#x} -", libc::MS_RDONLY),
                format!("mount HOST:/dev/null /proc/kcore - {:#x} -", libc::MS_BIND),
            ]
        );
    }

    #[test]
    fn devices_are_made_or_bound_and_dev_gets_its_links() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"devices": [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 432, "uid": 7, "gid": 8}]}
        }))
        .unwrap();
        let devs = crate::plan::devices(&spec).unwrap();
        create_devices(&rec, sb.fd.as_fd(), &devs, false).unwrap();
        let calls = rec.calls();
        assert!(
            calls.contains(&"mknod /dev/null 1:3 666 0:0".to_string()),
            "{calls:?}"
        );
        assert!(
            calls.contains(&"mknod /dev/net/tun 10:200 660 7:8".to_string()),
            "{calls:?}"
        );
        assert_eq!(
            std::fs::read_link(sb.root.join("dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        assert_eq!(
            std::fs::read_link(sb.root.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );

        // In a user namespace mknod is not allowed: the host's nodes are bound instead.
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        create_devices(&rec, sb.fd.as_fd(), &devs[..1], true).unwrap();
        assert_eq!(
            rec.calls(),
            vec![format!(
                "mount HOST:/dev/null /dev/null - {:#x} -",
                libc::MS_BIND
            )]
        );
    }

    #[test]
    fn recursive_attributes_and_propagation_follow_the_mount() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let src = sb.host.join("vol");
        std::fs::create_dir(&src).unwrap();
        let m = op(
            serde_json::json!({"destination": "/vol", "type": "bind", "source": src,
            "options": ["rbind", "rro", "rshared"]}),
        );
        mount_one(&rec, &ctx(&sb.root), sb.fd.as_fd(), &m).unwrap();
        let calls = rec.calls();
        assert_eq!(calls[1], "setattr /vol +0x1 -0x0");
        assert_eq!(
            calls[2],
            format!("mount - /vol - {:#x} -", libc::MS_SHARED | libc::MS_REC)
        );
    }

    #[test]
    fn v1_cgroups_without_a_namespace_bind_each_hierarchy_and_link_comounts() {
        let sb = sandbox();
        let rec = Recorder::new(&sb.root);
        let mounts = vec![CgroupMount::V1 {
            dir: "cpu,cpuacct".into(),
            options: "cpu,cpuacct".into(),
            links: vec!["cpu".into(), "cpuacct".into()],
            source: sb.host.join("cg/cpu,cpuacct/berth/c1"),
        }];
        let c = RootfsCtx {
            rootfs: &sb.root,
            in_userns: false,
            new_cgroupns: false,
            cgroup_mounts: &mounts,
        };
        let m = op(
            serde_json::json!({"destination": "/sys/fs/cgroup", "type": "cgroup",
            "source": "cgroup", "options": ["ro", "nosuid"]}),
        );
        mount_cgroup(&rec, &c, sb.fd.as_fd(), &m).unwrap();
        let calls = rec.calls();
        assert!(
            calls[0].starts_with("mount HOST:tmpfs /sys/fs/cgroup tmpfs"),
            "{calls:?}"
        );
        assert!(
            calls[1].starts_with("mount HOST:")
                && calls[1].contains("/sys/fs/cgroup/cpu,cpuacct -"),
            "{calls:?}"
        );
        assert_eq!(
            std::fs::read_link(sb.root.join("sys/fs/cgroup/cpu")).unwrap(),
            Path::new("cpu,cpuacct")
        );
        // One recursive mount_setattr makes the whole tree read-only and nosuid.
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[2], "setattr /sys/fs/cgroup +0x3 -0x0");
    }
}
