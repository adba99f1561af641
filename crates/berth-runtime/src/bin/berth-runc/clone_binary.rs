//! CVE-2019-5736: a container process must never be able to open the runtime's binary on the host
//! for writing through /proc/PID/exe. Before creating or entering a container, berth-runc re-execs
//! itself from a sealed, read-only memfd copy of its own binary, so /proc/PID/exe of any runtime
//! process inside a container is that copy, never the file on the host.

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

/// Re-execs from a sealed memfd copy unless already running from one.
pub fn ensure_sealed() -> std::io::Result<()> {
    let exe = std::fs::File::open("/proc/self/exe")?;
    let exe = OwnedFd::from(exe);
    if is_sealed(&exe) {
        return Ok(());
    }
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the fd it returns is ours alone.
    let raw = unsafe {
        libc::memfd_create(c"berth-runc".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
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
            libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), &mut off, len - off as usize)
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
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).to_vec();
            kv.push(b'=');
            kv.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    // SAFETY: argv/envp are null-terminated arrays of NUL-terminated strings that live across the
    // call; an empty path with AT_EMPTY_PATH executes the memfd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error())
}
