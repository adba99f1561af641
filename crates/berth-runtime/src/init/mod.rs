//! The container's init: the code that runs in the cloned child, from clone to execve. It joins
//! namespaces, builds the root filesystem, waits for `start`, and becomes the user's process.
//!
//! It runs single-threaded in a forked copy of the runtime: no threads, no tracing, no locks held
//! across the fork. It is non-dumpable until execve, so the container cannot reach the runtime's
//! memory or binary through /proc/PID (CVE-2019-5736).

pub mod process;
pub mod rootfs;
pub mod sync;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;

use crate::cgroups::CgroupMount;
use crate::error::{Result, RuntimeError};
use crate::plan::{DeviceNode, MountOp, NsPlan};
use process::ProcessPlan;
use sync::{Channel, Msg};

/// Everything the init needs, prepared by the runtime before clone.
pub struct InitConfig {
    pub rootfs: PathBuf,
    pub ns: NsPlan,
    /// Open namespace files to join, in join order.
    pub join_fds: Vec<(String, OwnedFd)>,
    pub propagation: libc::c_ulong,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceNode>,
    pub cgroup_mounts: Vec<CgroupMount>,
    pub masked: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub readonly_root: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctls: Vec<(String, String)>,
    pub process: ProcessPlan,
    /// The runc console socket, already connected by the runtime.
    pub console_socket: Option<OwnedFd>,
    /// The container's state directory, holding exec.fifo; None for `run` without the fifo.
    pub state_dir: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The parent waits to run createRuntime/prestart hooks between mounts and pivot_root.
    pub parent_hooks: bool,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// The state JSON hooks receive on stdin (pid filled in by the child).
    pub hook_state: serde_json::Value,
}

/// Set once the init told the parent "created" (the init is single-threaded).
static CREATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The init's entry point in the child; never returns.
pub fn run(cfg: InitConfig, chan: Channel) -> ! {
    let e = match setup(&cfg, &chan) {
        Ok(e) | Err(e) => e,
    };
    // Until "created" the parent reports our error (one line) or is failing with its own; after
    // it, the parent is gone, so say it where the container's output goes.
    let _ = chan.send(&Msg::Error(e.to_string()));
    if CREATED.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = sys_write_stderr(&format!("berth-runc init: {e}\n"));
    }
    crate::sys::exit_now(127)
}

fn sys_write_stderr(s: &str) -> std::io::Result<()> {
    crate::sys::write_all(rustix::stdio::stderr(), s.as_bytes())
}

/// Sets the container up; on success execs and never returns, so `Ok` carries only the error
/// from a failed exec.
fn setup(cfg: &InitConfig, chan: &Channel) -> Result<RuntimeError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| RuntimeError::sys("make init non-dumpable", e))?;
    chan.expect(&Msg::Go)?;
    crate::timing::mark("init: go");

    for (kind, fd) in &cfg.join_fds {
        if kind == "pid" {
            continue; // joined by the parent before clone: pid namespaces apply to children
        }
        crate::sys::setns(fd.as_fd(), crate::plan::ns_flag(kind))
            .map_err(|e| RuntimeError::sys(format!("join the {kind} namespace"), e))?;
    }
    if cfg.ns.new_user() {
        // Become root of the new namespace (the parent wrote the maps).
        rustix::thread::set_thread_res_gid(
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
        )
        .map_err(|e| RuntimeError::sys("setgid 0 in the user namespace (is gid 0 mapped?)", e))?;
        rustix::thread::set_thread_res_uid(
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
        )
        .map_err(|e| RuntimeError::sys("setuid 0 in the user namespace (is uid 0 mapped?)", e))?;
    }
    let _ = rustix::process::setsid();
    if !cfg.no_new_keyring {
        if let Err(e) = crate::sys::join_session_keyring() {
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EDQUOT)
            ) {
                return Err(RuntimeError::sys("join a new session keyring", e));
            }
        }
    }
    cfg.process.apply_limits()?;

    // Root filesystem. Without a mount namespace of its own the container shares the host's
    // mount table: then nothing is mounted (that would change the host), the root is a chroot.
    let own_mounts = cfg.ns.has("mnt");
    if own_mounts {
        crate::sys::mount(None, Path::new("/"), None, cfg.propagation, None)
            .map_err(|e| RuntimeError::sys("set propagation of /", e))?;
        // pivot_root refuses a new root whose parent mount is shared, and an unbindable parent
        // cannot be bound (rootfsPropagation "shared"/"unbindable"): make that one mount
        // private; the host does not see it (our own namespace).
        if cfg.propagation & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 {
            if let Some(parent) = rootfs::mount_point_of(&cfg.rootfs) {
                crate::sys::mount(None, &parent, None, libc::MS_PRIVATE, None)
                    .map_err(|e| RuntimeError::io("cannot make private", &parent, e))?;
            }
        }
        crate::sys::mount(
            Some(&cfg.rootfs),
            &cfg.rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| RuntimeError::io("cannot bind-mount rootfs", &cfg.rootfs, e))?;
    }
    let root = crate::sys::open(&cfg.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::io("cannot open rootfs", &cfg.rootfs, e))?;
    let ctx = rootfs::RootfsCtx {
        rootfs: &cfg.rootfs,
        in_userns: cfg.ns.has("user"),
        new_cgroupns: cfg.ns.new_cgroup,
        cgroup_mounts: &cfg.cgroup_mounts,
    };
    let mut dev_is_tmpfs = false;
    // The parent sets the cgroup up while we mount; wait for it only where it matters: before
    // the cgroup filesystem is mounted, or before pivot_root at the latest.
    let mut in_cgroup = false;
    let join_cgroup = |in_cgroup: &mut bool| -> Result<()> {
        if *in_cgroup {
            return Ok(());
        }
        chan.expect(&Msg::CgroupReady)?;
        if cfg.ns.new_cgroup {
            crate::sys::unshare(libc::CLONE_NEWCGROUP)
                .map_err(|e| RuntimeError::sys("create the cgroup namespace", e))?;
        }
        *in_cgroup = true;
        Ok(())
    };
    let no_mounts: &[MountOp] = &[];
    let mounts = if own_mounts {
        &cfg.mounts[..]
    } else {
        no_mounts
    };
    for op in mounts {
        if op.kind == crate::plan::MountKind::Cgroup {
            join_cgroup(&mut in_cgroup)?;
        }
        rootfs::mount_one(&crate::sys::Linux, &ctx, root.as_fd(), op)?;
        if crate::timing::enabled() {
            crate::timing::mark(&format!("init: mounted {}", op.dest.display()));
        }
        if op.dest == Path::new("/dev") {
            dev_is_tmpfs = true;
        }
    }
    if !own_mounts {
        // Devices need mounts in a user namespace, and the host's /dev is not ours to change.
    } else if dev_is_tmpfs {
        rootfs::create_devices(
            &crate::sys::Linux,
            root.as_fd(),
            &cfg.devices,
            ctx.in_userns,
        )?;
    } else {
        // /dev is the rootfs's own: create only the spec's devices.
        let spec_only: Vec<DeviceNode> = cfg.devices.iter().skip(6).cloned().collect();
        if !spec_only.is_empty() {
            rootfs::create_devices(&crate::sys::Linux, root.as_fd(), &spec_only, ctx.in_userns)?;
        }
    }

    crate::timing::mark("init: mounts done");
    join_cgroup(&mut in_cgroup)?;
    crate::timing::mark("init: in cgroup");

    let mut state = cfg.hook_state.clone();
    state["pid"] = serde_json::json!(rustix::process::getpid().as_raw_nonzero().get());
    if cfg.parent_hooks {
        chan.send(&Msg::MountsReady)?;
        chan.expect(&Msg::HooksDone)?;
    }
    crate::hooks::run_all(&cfg.create_container_hooks, &state)?;

    if !own_mounts {
        rootfs::chroot(&cfg.rootfs)?;
    } else if cfg.no_pivot {
        rootfs::move_root(&cfg.rootfs)?;
    } else {
        rootfs::pivot(&cfg.rootfs)?;
        if cfg.propagation & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 {
            crate::sys::mount(None, Path::new("/"), None, cfg.propagation, None)
                .map_err(|e| RuntimeError::sys("set propagation of the new root", e))?;
        }
    }
    let root = crate::sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| RuntimeError::sys("open new root", e))?;
    if own_mounts {
        process::reopen_dev_null()?;
    }

    for (k, v) in &cfg.sysctls {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| RuntimeError::io("cannot set sysctl", path, e))?;
    }
    if let Some(h) = &cfg.hostname {
        rustix::system::sethostname(h.as_bytes())
            .map_err(|e| RuntimeError::sys(format!("set hostname {h:?}"), e))?;
    }
    if let Some(d) = &cfg.domainname {
        rustix::system::setdomainname(d.as_bytes())
            .map_err(|e| RuntimeError::sys(format!("set domainname {d:?}"), e))?;
    }
    if let Some(sock) = &cfg.console_socket {
        open_terminal(Some(root.as_fd()), sock, cfg.process.console_size)?;
    }
    if own_mounts {
        for p in &cfg.readonly_paths {
            rootfs::readonly(&crate::sys::Linux, root.as_fd(), p)?;
        }
        for p in &cfg.masked {
            rootfs::mask(&crate::sys::Linux, root.as_fd(), p)?;
        }
        if cfg.readonly_root {
            rootfs::readonly_root()?;
        }
    }

    crate::timing::mark("init: rootfs done");
    let program = cfg.process.resolve_program()?;
    if let Some(dir) = cfg
        .state_dir
        .as_ref()
        .filter(|_| cfg.start_container_hooks.is_empty())
    {
        // runc's order: all the process's set-up but no_new_privs (and a seccomp filter that
        // waits for it) is done before the start, so that the start only releases the exec
        // (installing a filter alone takes ~1 ms). The fifo is reached through an O_PATH fd
        // of its own, opened now: the user may lose access to the state directory.
        let fifo = crate::sys::openat(dir.as_fd(), c"exec.fifo", libc::O_PATH)
            .map_err(|e| RuntimeError::sys("open exec.fifo", e))?;
        let home = cfg.process.prepare()?;
        chan.send(&Msg::Created)?;
        CREATED.store(true, std::sync::atomic::Ordering::Relaxed);
        release_on_start(&fifo, dir)?;
        return cfg
            .process
            .exec_prepared(&program, home.as_ref())
            .map(|never| match never {});
    }
    chan.send(&Msg::Created)?;
    CREATED.store(true, std::sync::atomic::Ordering::Relaxed);

    if let Some(dir) = &cfg.state_dir {
        wait_for_start(dir)?;
    }
    crate::hooks::run_all(&cfg.start_container_hooks, &state)?;
    Ok(cfg.process.exec(&program))
}

/// [`wait_for_start`] through an O_PATH fd of the fifo (reopened by /proc/self/fd, which checks
/// only the fifo's own mode, 0622); through the state directory where the container has no
/// /proc.
fn release_on_start(fifo: &OwnedFd, dir: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let w = match crate::sys::open(Path::new(&path), libc::O_WRONLY, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return wait_for_start(dir),
        r => r.map_err(|e| RuntimeError::sys("open exec.fifo", e))?,
    };
    crate::sys::write_all(w.as_fd(), b"0").map_err(|e| RuntimeError::sys("write exec.fifo", e))
}

/// Blocks until `start` opens the exec fifo for reading, then writes one byte to it.
fn wait_for_start(dir: &OwnedFd) -> Result<()> {
    let fifo = crate::sys::openat(dir.as_fd(), c"exec.fifo", libc::O_WRONLY)
        .map_err(|e| RuntimeError::sys("open exec.fifo", e))?;
    crate::sys::write_all(fifo.as_fd(), b"0").map_err(|e| RuntimeError::sys("write exec.fifo", e))
}

/// Opens a terminal in the container's devpts, sends its master over the console socket, and
/// makes its slave the controlling terminal and stdio.
fn open_terminal(
    root: Option<std::os::fd::BorrowedFd<'_>>,
    sock: &OwnedFd,
    size: Option<(u16, u16)>,
) -> Result<()> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("open /dev/ptmx (is devpts mounted at /dev/pts?)", e))?;
    grantpt(&master).map_err(|e| RuntimeError::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| RuntimeError::sys("unlockpt", e))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| RuntimeError::sys("ptsname", e))?;
    let name_path = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    if let Some((rows, cols)) = size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(&master, ws);
    }
    let slave = crate::sys::open(&name_path, libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| RuntimeError::io("cannot open terminal", &name_path, e))?;
    if let Some(root) = root {
        rootfs::console(root, &name_path)?;
    }
    crate::sys::send_fd(sock.as_fd(), name.as_bytes(), master.as_fd())
        .map_err(|e| RuntimeError::sys("send the terminal over the console socket", e))?;
    drop(master);
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; `slave` stays open across the calls.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&slave), fd) } < 0 {
            return Err(RuntimeError::sys(
                "dup terminal to stdio",
                std::io::Error::last_os_error(),
            ));
        }
    }
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(|e| RuntimeError::sys("set controlling terminal", e))?;
    Ok(())
}

/// The terminal of an exec'd process: like the init's, without /dev/console.
pub(crate) fn exec_terminal(sock: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    open_terminal(None, sock, size)
}
