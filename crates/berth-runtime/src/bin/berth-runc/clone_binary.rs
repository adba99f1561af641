//! CVE-2019-5736: a container process must never be able to open the runtime's binary on the host
//! for writing through /proc/PID/exe. Before creating or entering a container, berth-runc re-execs
//! itself from a read-only view of its own binary, so /proc/PID/exe of any runtime process inside
//! a container is a file that cannot be written:
//!
//! - preferably a read-only bind mount of the binary, detached right after opening it (no copy:
//!   the re-exec costs one execve, about 0.5 ms);
//! - where mounting is not allowed, a sealed memfd copy (about 2.5 ms for our binary).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether `fd` is a memfd carrying all our seals.
fn is_sealed(fd: &OwnedFd) -> bool {
    // SAFETY: fcntl(F_GET_SEALS) only reads the fd's seals.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Whether `fd` lives on a read-only mount.
fn is_readonly_mount(fd: &OwnedFd) -> bool {
    rustix::fs::fstatvfs(fd).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Opens our binary through a private read-only bind mount that is detached at once: the fd
/// keeps the mount alive, nothing stays visible in the mount table.
fn readonly_view() -> std::io::Result<OwnedFd> {
    let dir = std::env::temp_dir();
    let tmp = dir.join(format!(".berth-runc-exe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let result = (|| {
        let exe = std::path::Path::new("/proc/self/exe");
        berth_runtime::sys::mount(Some(exe), &tmp, None, libc::MS_BIND, None)?;
        let r = berth_runtime::sys::mount(
            None,
            &tmp,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
        .and_then(|()| berth_runtime::sys::open(&tmp, libc::O_PATH, 0));
        let _ = berth_runtime::sys::umount2(&tmp, libc::MNT_DETACH);
        r
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Re-execs from a read-only view of our binary unless already running from one.
pub fn ensure_sealed() -> std::io::Result<()> {
    let exe = std::fs::File::open("/proc/self/exe")?;
    let exe = OwnedFd::from(exe);
    if is_sealed(&exe) || is_readonly_mount(&exe) {
        return Ok(());
    }
    berth_runtime::timing::mark("reexec: start");
    match readonly_view() {
        Ok(view) => {
            berth_runtime::timing::mark("reexec: view ready");
            drop(exe);
            return reexec(&view);
        }
        Err(_) => {
            // Not allowed to mount here (e.g. rootless): fall back to a sealed copy.
        }
    }
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the fd it returns is ours alone.
    let raw = unsafe {
        libc::memfd_create(
            c"berth-runc".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by memfd_create and is owned by nothing else.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = std::fs::metadata("/proc/self/exe")?.len() as usize;
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: both fds are open; `off` is a valid offset variable the kernel updates.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                &mut off,
                len - off as usize,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
    }
    // SAFETY: fcntl(F_ADD_SEALS) on our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    reexec(&memfd)
}

/// execveat(fd) with our own argv and environment; returns only on failure.
fn reexec(fd: &OwnedFd) -> std::io::Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| {
            CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).unwrap_or_default()
        })
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).to_vec();
            kv.push(b'=');
            kv.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // SAFETY: argv/envp are null-terminated arrays of NUL-terminated strings that live across the
    // call; an empty path with AT_EMPTY_PATH executes the memfd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error())
}
