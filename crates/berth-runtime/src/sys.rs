//! Thin, safe wrappers over the system calls container creation needs that rustix does not offer
//! in the shape we need (clone3, mount(2) with a data string, close_range, keyctl, setns by fd).
//!
//! Every function here is allocation-light and thread-free, so it may run in the child between
//! clone and exec. Nothing here decides policy: `plan` and `init` do.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `CLONE_INTO_CGROUP`; libc's constant has the wrong type, so define it as the u64 clone3 takes.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The privileged operations of building a root filesystem: the seam between deciding what to
/// mount (testable without root, against a tempdir, with a recording implementation) and doing
/// it. Path resolution (openat2 in-root, mkdirat) stays real: it needs no privilege.
pub trait Syscall {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// Creates device node `node` as `name` in `dir`, with its exact mode and owner.
    fn mknod(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        node: &crate::plan::DeviceNode,
    ) -> io::Result<()>;
    /// mount_setattr(2) with AT_RECURSIVE on the mount at `fd`.
    fn mount_setattr(&self, fd: BorrowedFd<'_>, set: u64, clr: u64) -> io::Result<()>;
}

/// The real system calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linux;

impl Syscall for Linux {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        mount(source, target, fstype, flags, data)
    }

    fn mknod(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        node: &crate::plan::DeviceNode,
    ) -> io::Result<()> {
        let _ = rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty());
        let kind = match node.kind {
            libc::S_IFBLK => rustix::fs::FileType::BlockDevice,
            libc::S_IFIFO => rustix::fs::FileType::Fifo,
            _ => rustix::fs::FileType::CharacterDevice,
        };
        let dev = rustix::fs::makedev(node.major as u32, node.minor as u32);
        rustix::fs::mknodat(
            dir,
            name,
            kind,
            rustix::fs::Mode::from_bits_truncate(node.mode),
            dev,
        )?;
        // mknod honours the umask: set the mode exactly, then the owner (no symlink follow: the
        // node was just made by us in a directory resolved inside the root).
        rustix::fs::chmodat(
            dir,
            name,
            rustix::fs::Mode::from_bits_truncate(node.mode),
            rustix::fs::AtFlags::empty(),
        )?;
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::process::Uid::from_raw(node.uid)),
            Some(rustix::process::Gid::from_raw(node.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    fn mount_setattr(&self, fd: BorrowedFd<'_>, set: u64, clr: u64) -> io::Result<()> {
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clr,
            propagation: 0,
            userns_fd: 0,
        };
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
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The result of [`clone3`]: which side of the fork we are on.
pub enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// Forks with clone3(2) and the given `CLONE_NEW*` flags (no CLONE_VM: the child gets a copy of
/// the address space, like fork). `cgroup_fd`, when set, places the child into that cgroup v2
/// directory atomically (CLONE_INTO_CGROUP).
///
/// The caller must be single-threaded: the child continues with only the calling thread.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Forked> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets its own copy of memory and
    // returns 0 here. `args` is a valid, fully initialised clone_args of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// mount(2) with optional source, fstype and data string.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype
        .map(|s| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
        .transpose()?;
    let data = data
        .filter(|d| !d.is_empty())
        .map(|s| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
        .transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or points at a NUL-terminated string that outlives the
    // call; mount(2) does not retain them.
    check(unsafe {
        libc::mount(
            p(&source),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data) as *const libc::c_void,
        )
    })
    .map(drop)
}

/// umount2(2).
pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: `t` is a valid NUL-terminated path for the duration of the call.
    check(unsafe { libc::umount2(t.as_ptr(), flags) }).map(drop)
}

/// setns(2) on an open namespace file.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns only reads the fd number and flag.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// unshare(2).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes a flag word and touches no memory of ours.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// Marks every fd from `first` up as close-on-exec (close_range with CLOSE_RANGE_CLOEXEC), so
/// that nothing of the runtime's leaks into the container (CVE-2024-21626).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOEXEC only changes fd flags; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_ulong,
            libc::c_ulong::from(u32::MAX),
            libc::c_ulong::from(CLOSE_RANGE_CLOEXEC),
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd and set FD_CLOEXEC one by one.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as RawFd)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(F_SETFD) only changes the flags of an fd number; a stale number (the
        // read_dir fd, already closed) fails harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Joins a fresh, anonymous session keyring so the container does not share the host's.
pub fn join_session_keyring() -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks the kernel for an anonymous keyring; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// pivot_root(2).
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: both are valid NUL-terminated paths for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens `path` with the given flags (always O_CLOEXEC).
pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: `p` is a valid NUL-terminated path; the returned fd is owned by us alone.
    let fd =
        check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    // SAFETY: `fd` was just returned by open and is not owned by anything else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat(2) relative to `dir` (always O_CLOEXEC).
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open fd for the duration of the call.
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by openat and is not owned by anything else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resolves `path` inside the directory `root` as if `root` were `/` (openat2 RESOLVE_IN_ROOT,
/// no magic links), returning an O_PATH fd. Symlinks, absolute or relative, can never lead out.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, extra: libc::c_int) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let p = cstr(path)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | extra) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `p` is NUL-terminated, `how` is a valid open_how of the size passed, `root` is an
        // open directory fd for the duration of the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                p.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd to us alone.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = io::Error::last_os_error();
        // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
}

/// The path through which a mount can target an fd: `/proc/self/fd/N`.
pub fn fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS, `name` as the payload (runc's console
/// socket protocol: the payload is the terminal's name).
pub fn send_fd(sock: BorrowedFd<'_>, name: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    let payload = if name.is_empty() {
        b"/dev/console".as_slice()
    } else {
        name
    };
    sendmsg(
        sock,
        &[io::IoSlice::new(payload)],
        &mut anc,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Writes all of `buf` to `fd`, retrying on EINTR.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Exits immediately without running destructors or atexit handlers (the child side of a fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), used to tell a
/// process from a later one that reused its pid; None when the process is gone.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The one-letter state of `pid` (field 3 of /proc/PID/stat): R, S, D, Z, T, ...
pub fn pid_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable_and_state_running() {
        let me = std::process::id() as i32;
        let a = pid_start_time(me).unwrap();
        assert_eq!(pid_start_time(me), Some(a));
        assert!(matches!(pid_state(me), Some('R' | 'S')));
        assert_eq!(pid_start_time(i32::MAX), None);
    }

    #[test]
    fn open_in_root_keeps_symlinks_inside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("inside")).unwrap();
        std::fs::create_dir(d.path().join("inside/etc")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("inside/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", d.path().join("inside/rel")).unwrap();
        let root = open(
            &d.path().join("inside"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        for link in ["abs", "rel"] {
            let fd = open_in_root(root.as_fd(), Path::new(link), 0).unwrap();
            let target = std::fs::read_link(fd_path(fd.as_fd())).unwrap();
            assert_eq!(target, d.path().join("inside/etc"), "{link}");
        }
    }

    use std::os::fd::AsFd;
}
