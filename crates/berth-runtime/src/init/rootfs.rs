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
use crate::sys;

fn err(what: String, e: std::io::Error) -> RuntimeError {
    RuntimeError::sys(what, e)
}

/// Creates every missing directory of `path` inside `root` (resolved in-root) and returns an
/// O_PATH fd of `path`. With `file`, the last component is created as an empty file if missing.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, file: bool) -> Result<OwnedFd> {
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
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(err(
                    format!("create {} in the container", cur.display()),
                    e.into(),
                ))
            }
        }
        parent = sys::open_in_root(root, &cur, 0)
            .map_err(|e| err(format!("resolve {} in the container", cur.display()), e))?;
    }
    Ok(parent)
}

/// Bind-mount `source` onto `dest` inside the root, then apply the flags a bind cannot take at
/// first (ro, nosuid, ...) with a remount. Flags locked by a user namespace are kept.
fn bind(
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
    sys::mount(
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
        remount_bind(root, dest, remount | rec)?;
    }
    Ok(())
}

/// Remounts the bind mount at `dest` (in-root) with `flags`, keeping flags the kernel locked.
fn remount_bind(root: BorrowedFd<'_>, dest: &Path, flags: libc::c_ulong) -> Result<()> {
    let fd = sys::open_in_root(root, dest, 0)
        .map_err(|e| err(format!("resolve {} in the container", dest.display()), e))?;
    let p = sys::fd_path(fd.as_fd());
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match sys::mount(None, &p, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = locked_flags(&p);
            sys::mount(None, &p, None, base | flags | locked, None)
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
pub fn mount_one(ctx: &RootfsCtx<'_>, root: BorrowedFd<'_>, op: &MountOp) -> Result<()> {
    match &op.kind {
        MountKind::Bind { recursive } => {
            let src = op.source.as_deref().unwrap_or(Path::new(""));
            bind(root, src, &op.dest, *recursive, op.bind_remount_flags())?;
        }
        MountKind::Fs { fstype } => {
            let target = mkdir_all_in_root(root, &op.dest, false)?;
            let src = op.source.clone().unwrap_or_else(|| PathBuf::from(fstype));
            let flags = op.flags & !libc::MS_REMOUNT;
            let r = sys::mount(
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
                        root,
                        Path::new("/sys"),
                        &op.dest,
                        true,
                        flags | libc::MS_RDONLY,
                    )?;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) && fstype == "mqueue" => {
                    bind(root, Path::new("/dev/mqueue"), &op.dest, false, flags)?;
                }
                r => r.map_err(|e| err(format!("mount {fstype} on {}", op.dest.display()), e))?,
            }
        }
        MountKind::Cgroup => mount_cgroup(ctx, root, op)?,
    }
    if op.rec_attr_set != 0 || op.rec_attr_clr != 0 {
        set_rec_attr(root, &op.dest, op.rec_attr_set, op.rec_attr_clr)?;
    }
    for &p in &op.propagation {
        let fd = sys::open_in_root(root, &op.dest, 0)
            .map_err(|e| err(format!("resolve {}", op.dest.display()), e))?;
        sys::mount(None, &sys::fd_path(fd.as_fd()), None, p, None)
            .map_err(|e| err(format!("set propagation of {}", op.dest.display()), e))?;
    }
    Ok(())
}

fn set_rec_attr(root: BorrowedFd<'_>, dest: &Path, set: u64, clr: u64) -> Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let fd = sys::open_in_root(root, dest, 0)
        .map_err(|e| err(format!("resolve {}", dest.display()), e))?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    use std::os::fd::AsRawFd;
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is empty and
    // AT_EMPTY_PATH makes the call act on `fd` itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(err(
            format!("set recursive mount attributes on {}", dest.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn mount_cgroup(ctx: &RootfsCtx<'_>, root: BorrowedFd<'_>, op: &MountOp) -> Result<()> {
    let flags = op.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    let is_v2 = ctx
        .cgroup_mounts
        .iter()
        .any(|m| matches!(m, CgroupMount::V2));
    if is_v2 || ctx.cgroup_mounts.is_empty() {
        // With a cgroup namespace the mount shows the container's own cgroup as its root.
        let target = mkdir_all_in_root(root, &op.dest, false)?;
        return sys::mount(
            Some(Path::new("cgroup2")),
            &sys::fd_path(target.as_fd()),
            Some("cgroup2"),
            flags,
            None,
        )
        .map_err(|e| err(format!("mount cgroup2 on {}", op.dest.display()), e));
    }
    // v1: a tmpfs holding one directory per hierarchy.
    let target = mkdir_all_in_root(root, &op.dest, false)?;
    sys::mount(
        Some(Path::new("tmpfs")),
        &sys::fd_path(target.as_fd()),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(|e| err(format!("mount tmpfs on {}", op.dest.display()), e))?;
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
        let t = mkdir_all_in_root(root, &sub, false)?;
        let r = if ctx.new_cgroupns {
            sys::mount(
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
            sys::mount(
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
            if flags != 0 {
                remount_bind(root, &sub, flags | libc::MS_REC)?;
            }
        }
        for link in links {
            let l = op.dest.join(link);
            let parent = mkdir_all_in_root(root, l.parent().unwrap_or(Path::new("/")), false)?;
            let name = l
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            let name = CString::new(name).unwrap_or_default();
            let _ = rustix::fs::symlinkat(dir.as_str(), parent.as_fd(), name.as_c_str());
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let fd = sys::open_in_root(root, &op.dest, 0)
            .map_err(|e| err(format!("resolve {}", op.dest.display()), e))?;
        sys::mount(
            None,
            &sys::fd_path(fd.as_fd()),
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(|e| err(format!("remount {} read-only", op.dest.display()), e))?;
    }
    Ok(())
}

/// Creates the device nodes (mknod, or a bind of the host's node inside a user namespace) and
/// the /dev links.
pub fn create_devices(root: BorrowedFd<'_>, devices: &[DeviceNode], in_userns: bool) -> Result<()> {
    for d in devices {
        let parent_path = d.path.parent().unwrap_or(Path::new("/dev"));
        let parent = mkdir_all_in_root(root, parent_path, false)?;
        let name = CString::new(d.path.file_name().map(|n| n.as_bytes()).unwrap_or_default())
            .unwrap_or_default();
        if in_userns {
            bind(root, &d.path, &d.path, false, 0).or_else(|e| {
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
        let dev = rustix::fs::makedev(d.major as u32, d.minor as u32);
        let kind = match d.kind {
            libc::S_IFBLK => rustix::fs::FileType::BlockDevice,
            libc::S_IFIFO => rustix::fs::FileType::Fifo,
            _ => rustix::fs::FileType::CharacterDevice,
        };
        rustix::fs::mknodat(
            parent.as_fd(),
            name.as_c_str(),
            kind,
            rustix::fs::Mode::from_bits_truncate(d.mode),
            dev,
        )
        .map_err(|e| err(format!("mknod {}", d.path.display()), e.into()))?;
        // mknod honours the umask: set the mode exactly, then the owner.
        let node = sys::open_in_root(root, &d.path, 0)
            .map_err(|e| err(format!("resolve {}", d.path.display()), e))?;
        let p = sys::fd_path(node.as_fd());
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(d.mode))
            .map_err(|e| err(format!("chmod {}", d.path.display()), e))?;
        std::os::unix::fs::chown(&p, Some(d.uid), Some(d.gid))
            .map_err(|e| err(format!("chown {}", d.path.display()), e))?;
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
pub fn mask(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match sys::open_in_root(root, path, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("resolve masked path {}", path.display()), e)),
    };
    let p = sys::fd_path(fd.as_fd());
    let is_dir = std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false);
    let r = if is_dir {
        sys::mount(
            Some(Path::new("tmpfs")),
            &p,
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
    } else {
        sys::mount(Some(Path::new("/dev/null")), &p, None, libc::MS_BIND, None)
    };
    r.map_err(|e| err(format!("mask {}", path.display()), e))
}

/// Makes a path read-only (a recursive bind onto itself, remounted read-only). Missing paths are
/// skipped.
pub fn readonly(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match sys::open_in_root(root, path, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err(format!("resolve read-only path {}", path.display()), e)),
    };
    let p = sys::fd_path(fd.as_fd());
    sys::mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| err(format!("bind {} read-only", path.display()), e))?;
    drop(fd);
    remount_bind(
        root,
        path,
        libc::MS_RDONLY | libc::MS_REC | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .or_else(|_| remount_bind(root, path, libc::MS_RDONLY | libc::MS_REC))
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
