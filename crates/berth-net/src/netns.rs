//! Network namespaces kept alive by a bind mount of their nsfs file, so that a container's
//! network can be prepared before its init exists and survives berthd.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType, UnshareFlags};

use crate::link::nl;
use crate::NetError;

/// Creates a new, empty network namespace bound at `path` (parent directories created, mode
/// 0755), with `lo` up. Runs the unshare in a short-lived thread (never a tokio worker) that
/// exits afterwards. An existing file at `path` is an error (the caller removes stale ones).
pub fn create(path: &Path) -> Result<(), NetError> {
    let err = |source: io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(err)?;
        }
    }
    // The mount point: an empty file, made here so that an existing one is an error.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(err)?;
    let target = path.to_path_buf();
    let made = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || -> io::Result<()> {
            // SAFETY: only CLONE_NEWNET is unshared, which changes this thread's network
            // namespace and nothing that other threads share (no fd table, no fs struct);
            // the thread ends right after, so no other code ever runs in that namespace.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }?;
            mount_bind("/proc/thread-self/ns/net", &target)?;
            lo_up()
        })
        .map_err(err)?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")));
    if let Err(e) = made {
        let _ = unmount(path, UnmountFlags::DETACH);
        let _ = std::fs::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}

/// Brings `lo` up in the calling thread's namespace (a new one: lo is index 1).
fn lo_up() -> io::Result<()> {
    let mut s = nl::Socket::open()?;
    let m = nl::Msg::new(nl::RTM_NEWLINK, 0, "set lo up").ifinfo(
        nl::AF_UNSPEC,
        1,
        nl::IFF_UP,
        nl::IFF_UP,
    );
    s.request(m).map_err(|e| e.err)
}

/// Unmounts (lazily) and unlinks a namespace file. A missing file is not an error; the
/// kernel destroys the namespace (and the veth peers in it) once the last process leaves.
pub fn remove(path: &Path) -> Result<(), NetError> {
    let err = |source: io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    match unmount(path, UnmountFlags::DETACH) {
        // EINVAL: not a mount point (a create that failed half-way, or already unmounted).
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(err(e.into())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Runs `f` on a fresh thread that has joined the network namespace at `path`; the thread
/// exits afterwards, so no thread of the caller ever changes namespace. Sockets made inside
/// `f` stay bound to that namespace (how the DNS server and netlink reach into one).
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetError> {
    let err = |source: io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    let ns = std::fs::File::open(path).map_err(err)?;
    let joined = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || -> io::Result<T> {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
            drop(ns);
            Ok(f())
        })
        .map_err(err)?
        .join();
    match joined {
        Ok(r) => r.map_err(err),
        Err(_) => Err(err(io::Error::other(
            "the thread in the namespace panicked",
        ))),
    }
}

/// The namespace files under `dir` (names only), for cleanup after a crash.
pub fn list(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_of_a_missing_dir_is_empty() {
        assert!(list(Path::new("/nonexistent/berth-netns-test")).is_empty());
    }

    #[test]
    fn remove_of_a_missing_file_is_ok() {
        remove(Path::new("/nonexistent/berth-netns-test/x")).unwrap();
    }

    #[test]
    fn run_in_a_file_that_is_no_namespace_fails() {
        let f = std::env::temp_dir().join(format!("berth-netns-unit-{}", std::process::id()));
        std::fs::write(&f, b"").unwrap();
        let r = run_in(&f, || 1);
        let _ = std::fs::remove_file(&f);
        assert!(matches!(r, Err(NetError::Netns { .. })));
    }
}
