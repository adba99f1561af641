//! `create`: from a bundle to a container whose init waits for `start`.
//!
//! The runtime (this process, single-threaded) prepares everything that can fail cheaply first
//! (spec checks, seccomp compilation, the cgroup), then clones the init with its new namespaces,
//! writes its id maps, puts it in its cgroup, and waits for it to report "created". Any failure
//! removes what was made: the process, the cgroup and the state directory.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};
use crate::init::process::ProcessPlan;
use crate::init::sync::{Channel, Msg};
use crate::init::InitConfig;
use crate::plan;
use crate::spec::{load_bundle, Bundle};
use crate::sys::{self, Forked};

use super::{rfc3339_now, Container, ContainerState, Status};

/// Options of `create` (and of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Accept `slice:prefix:name` cgroup paths (runc's --systemd-cgroup).
    pub systemd_cgroup: bool,
    /// Start right away (`run`): no exec fifo, the init execs as soon as it is set up.
    pub start_now: bool,
}

/// Removes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: &'a Path,
    pid: Option<i32>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            // SAFETY: kill and waitpid take plain integers; the pid is our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

impl Container {
    /// Creates container `opts.id` under the runtime root `root`.
    pub fn create(root: &Path, opts: &CreateOpts) -> Result<Container> {
        Container::dir_of(root, &opts.id)?;
        let bundle = load_bundle(&opts.bundle)?;
        Container::create_from(root, opts, bundle)
    }

    /// Creates container `opts.id` from an already loaded bundle (`opts.bundle` is not read).
    pub fn create_from(root: &Path, opts: &CreateOpts, bundle: Bundle) -> Result<Container> {
        let dir = Container::dir_of(root, &opts.id)?;
        crate::timing::mark("create");
        let spec = &bundle.spec;
        let proc_spec = spec.process().as_ref().ok_or_else(|| RuntimeError::Spec {
            path: bundle.dir.join("config.json"),
            msg: "process is missing: a container needs a process to run".into(),
        })?;
        crate::timing::mark("spec loaded");
        let ns = plan::namespaces(spec)?;
        if !rustix::process::geteuid().is_root() && !ns.new_user() {
            return Err(RuntimeError::NeedPrivilege(
                "berth-runc is not running as root".into(),
            ));
        }
        let linux = spec.linux().clone().unwrap_or_default();
        let mounts = spec
            .mounts()
            .iter()
            .flatten()
            .map(plan::mount_op)
            .collect::<Result<Vec<_>>>()?;
        let devices = plan::devices(spec)?;
        let propagation = plan::rootfs_propagation(spec)?;
        let mut sysctls: Vec<(String, String)> = linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        sysctls.sort();
        for (k, _) in &sysctls {
            plan::check_sysctl(k, &ns)?;
        }
        // A filter berthd precompiled for this very section saves compiling it here.
        let seccomp = linux
            .seccomp()
            .as_ref()
            .map(|s| crate::seccomp::cache::load_or_compile(&bundle.dir, s))
            .transpose()?;
        let process = ProcessPlan::from_spec(proc_spec, seccomp, opts.preserve_fds)?;
        if process.terminal && opts.console_socket.is_none() {
            return Err(RuntimeError::Invalid(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        let hooks = spec.hooks().clone().unwrap_or_default();
        let mut parent_hooks = hooks.prestart().clone().unwrap_or_default();
        parent_hooks.extend(hooks.create_runtime().clone().unwrap_or_default());

        // Join namespaces by path: open them now, while the paths resolve on the host.
        let mut join_fds = Vec::new();
        for (kind, path) in &ns.join {
            let fd = sys::open(path, libc::O_RDONLY, 0)
                .map_err(|e| RuntimeError::io("cannot open namespace", path, e))?;
            join_fds.push((kind.clone(), fd));
        }
        let console_socket = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;

        // From here on, things exist on the system: the cleanup guard removes them on error.
        std::fs::create_dir_all(root)
            .map_err(|e| RuntimeError::io("cannot create state root", root, e))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(opts.id.clone()))
            }
            Err(e) => return Err(RuntimeError::io("cannot create state directory", &dir, e)),
        }
        let mut guard = Cleanup {
            dir: &dir,
            pid: None,
            cgroup: None,
            armed: true,
        };
        std::fs::copy(bundle.dir.join("config.json"), dir.join("config.json"))
            .map_err(|e| RuntimeError::io("cannot copy config.json to", &dir, e))?;
        let state_dir = if opts.start_now {
            None
        } else {
            let fifo = dir.join("exec.fifo");
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::Mode::from_bits_truncate(0o622),
            )
            .map_err(|e| RuntimeError::io("cannot create", &fifo, e.into()))?;
            // Writable by the container's root whatever our umask (as runc): in a user namespace the
            // init opens it as a mapped, unprivileged host uid.
            rustix::fs::chmod(&fifo, rustix::fs::Mode::from_bits_truncate(0o622))
                .map_err(|e| RuntimeError::io("cannot chmod", &fifo, e.into()))?;
            Some(
                sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| RuntimeError::io("cannot open", &dir, e))?,
            )
        };

        // Resolve the cgroup now (cheap, and the init needs its mount layout); create it while
        // the init builds its root filesystem.
        let cgroup = resolve_cgroup(&opts.id, spec, opts.systemd_cgroup, ns.new_user())?;
        let cgroup_mounts = cgroup
            .as_ref()
            .map(|c| c.container_mounts())
            .unwrap_or_default();

        let mut state = ContainerState {
            id: opts.id.clone(),
            pid: 0,
            pid_start: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: rfc3339_now(),
            started: opts.start_now,
            has_poststart: hooks.poststart().as_ref().is_some_and(|h| !h.is_empty()),
            has_poststop: hooks.poststop().as_ref().is_some_and(|h| !h.is_empty()),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: cgroup.clone(),
            ns: ns.clone(),
            owner: String::new(),
        };
        let container = Container {
            dir: dir.clone(),
            state: state.clone(),
        };
        let cfg = InitConfig {
            rootfs: bundle.rootfs.clone(),
            ns: ns.clone(),
            join_fds,
            propagation,
            mounts,
            devices,
            cgroup_mounts,
            masked: paths(linux.masked_paths()),
            readonly_paths: paths(linux.readonly_paths()),
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
            sysctls,
            process,
            console_socket,
            state_dir,
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            parent_hooks: !parent_hooks.is_empty(),
            create_container_hooks: hooks.create_container().clone().unwrap_or_default(),
            start_container_hooks: hooks.start_container().clone().unwrap_or_default(),
            hook_state: container.hook_state(Status::Created),
        };

        crate::timing::mark("prepared");
        let (parent_end, child_end) = Channel::pair()?;
        if let Some((_, fd)) = cfg.join_fds.iter().find(|(k, _)| k == "pid") {
            // A pid namespace applies to children: enter it here, before clone.
            sys::setns(fd.as_fd(), libc::CLONE_NEWPID)
                .map_err(|e| RuntimeError::sys("join the pid namespace", e))?;
        }
        let pid = match sys::clone3(ns.clone_flags, None).map_err(|e| {
            RuntimeError::sys(
                "clone the container process (are these namespaces supported?)",
                e,
            )
        })? {
            Forked::Child => {
                drop(parent_end);
                crate::init::run(cfg, child_end)
            }
            Forked::Parent(pid) => pid,
        };
        drop(child_end);
        drop(cfg);
        guard.pid = Some(pid);

        if ns.new_user() {
            write_id_maps(pid, &bundle)?;
        }
        parent_end.send(&Msg::Go)?;
        let rootless = ns.new_user() && !rustix::process::geteuid().is_root();
        if let Some(cg) = cgroup.clone() {
            guard.cgroup = Some(cg.clone());
            match setup_cgroup(&cg, spec).and_then(|()| {
                crate::timing::mark("cgroup configured");
                Ok(cg.add_task(pid)?)
            }) {
                Ok(()) => {}
                // Rootless: no writable cgroup hierarchy is normal; run without one unless the
                // spec asks for limits, which would then silently not hold.
                Err(_) if rootless && !asks_for_limits(spec) => {
                    let _ = cg.destroy();
                    guard.cgroup = None;
                    state.cgroup = None;
                }
                Err(e) => return Err(e),
            }
        }
        parent_end.send(&Msg::CgroupReady)?;
        crate::timing::mark("cgroup ready");
        state.pid = pid;
        let container = Container {
            dir: dir.clone(),
            state,
        };
        if !parent_hooks.is_empty() {
            parent_end.expect(&Msg::MountsReady)?;
            crate::hooks::run_all(&parent_hooks, &container.hook_state(Status::Created))?;
            parent_end.send(&Msg::HooksDone)?;
        }
        parent_end.expect(&Msg::Created)?;
        crate::timing::mark("created");

        let mut container = container;
        container.state.pid_start = sys::pid_start_time(pid).unwrap_or(0);
        container.save()?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        guard.armed = false;
        if opts.start_now {
            container.run_poststart()?;
        }
        Ok(container)
    }
}

fn paths(list: &Option<Vec<String>>) -> Vec<PathBuf> {
    list.iter().flatten().map(PathBuf::from).collect()
}

/// Whether the spec sets any resource limit (devices rules alone do not count).
fn asks_for_limits(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return false;
    };
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// Resolves the container's cgroup. Inside a user namespace without root on the host, cgroups
/// are skipped (rootless containers may have no writable hierarchy).
fn resolve_cgroup(
    id: &str,
    spec: &oci_spec::runtime::Spec,
    systemd: bool,
    userns: bool,
) -> Result<Option<Cgroup>> {
    let linux = spec.linux().clone().unwrap_or_default();
    let path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.display().to_string());
    let rootless = userns && !rustix::process::geteuid().is_root();
    match Cgroup::new(path.as_deref(), id, systemd) {
        Ok(cg) => Ok(Some(cg)),
        Err(_) if rootless => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the cgroup and applies the spec's resources.
fn setup_cgroup(cg: &Cgroup, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    cg.create()?;
    crate::timing::mark("cgroup created");
    if let Some(r) = linux.resources() {
        let r = with_default_device_rules(r, linux.devices().as_deref().unwrap_or_default());
        cg.apply(&r)?;
    }
    Ok(())
}

/// The spec's device rules followed by what every container may use (as runc adds them): the
/// default devices, /dev/console, /dev/ptmx and the pty slaves, and the spec's own devices.
fn with_default_device_rules(
    r: &oci_spec::runtime::LinuxResources,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let mut r = r.clone();
    let mut rules = r.devices().clone().unwrap_or_default();
    let rule = |typ: LinuxDeviceType, major: i64, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(Some(major));
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    for (ma, mi) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(rule(LinuxDeviceType::C, ma, Some(mi), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, 136, None, "rwm"));
    for d in devices {
        rules.push(rule(d.typ(), d.major(), Some(d.minor()), "rwm"));
    }
    r.set_devices(Some(rules));
    r
}

/// Writes uid_map and gid_map of the new user namespace of `pid`.
fn write_id_maps(pid: i32, bundle: &Bundle) -> Result<()> {
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let uid = fmt(linux.uid_mappings());
    let gid = fmt(linux.gid_mappings());
    if !rustix::process::geteuid().is_root() {
        // An unprivileged writer may map only itself, and must deny setgroups first.
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
    }
    for (file, data) in [("uid_map", uid), ("gid_map", gid)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, data.as_bytes()).map_err(|e| {
            RuntimeError::io("cannot write the user namespace mapping", path.clone(), e)
        })?;
    }
    Ok(())
}

/// Connects to the console socket the caller listens on.
fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| RuntimeError::io("cannot connect to console socket", path, e))?;
    Ok(OwnedFd::from(s))
}

/// Writes the pid file atomically, as runc does (containerd reads it as soon as it appears).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path =
        std::path::absolute(path).map_err(|e| RuntimeError::io("bad pid file path", path, e))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .map_err(|e| RuntimeError::io("cannot write pid file", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::io("cannot write pid file", &path, e))
}
