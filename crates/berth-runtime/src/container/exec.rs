//! `exec`: runs another process in a running container: in all its namespaces and its cgroup,
//! with the same security setup (capabilities, no_new_privs, seccomp) as the container's init.

use std::os::fd::AsFd;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use crate::error::{Result, RuntimeError};
use crate::init::process::ProcessPlan;
use crate::init::sync::{Channel, Msg};
use crate::plan::ns_flag;
use crate::sys::{self, Forked};

use super::create::write_pid_file;
use super::Container;

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOpts {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

impl Container {
    /// Starts `opts.process` in the container and returns its host pid (a child of the caller).
    pub fn exec(&self, opts: &ExecOpts) -> Result<i32> {
        let status = self.status();
        if !status.can_exec() {
            return Err(self.bad_state(status, "exec needs a created or running container"));
        }
        let spec = self.spec()?;
        let seccomp = spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(crate::seccomp::compile)
            .transpose()?;
        let plan = ProcessPlan::from_spec(&opts.process, seccomp, opts.preserve_fds)?;
        if plan.terminal && opts.console_socket.is_none() {
            return Err(RuntimeError::Invalid(
                "a terminal was asked for but no --console-socket was given".into(),
            ));
        }
        let console = opts
            .console_socket
            .as_deref()
            .map(|p| {
                std::os::unix::net::UnixStream::connect(p)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|e| RuntimeError::io("cannot connect to console socket", p, e))
            })
            .transpose()?;
        // Open the init's namespaces in join order (user first, mnt last).
        let mut fds = Vec::new();
        for kind in ["user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt"] {
            if !self.state.ns.has(kind) {
                continue;
            }
            let path = format!("/proc/{}/ns/{kind}", self.state.pid);
            let fd = sys::open(std::path::Path::new(&path), libc::O_RDONLY, 0)
                .map_err(|e| RuntimeError::io("cannot open namespace", path, e))?;
            fds.push((kind, fd));
        }
        if let Some((_, fd)) = fds.iter().find(|(k, _)| *k == "pid") {
            sys::setns(fd.as_fd(), libc::CLONE_NEWPID)
                .map_err(|e| RuntimeError::sys("join the container's pid namespace", e))?;
        }
        let (parent, child) = Channel::pair()?;
        let pid = match sys::clone3(0, None).map_err(|e| RuntimeError::sys("fork", e))? {
            Forked::Child => {
                drop(parent);
                let e = match exec_child(&fds, &plan, console.as_ref(), &child) {
                    Ok(e) | Err(e) => e,
                };
                let _ = child.send(&Msg::Error(e.to_string()));
                sys::exit_now(127)
            }
            Forked::Parent(pid) => pid,
        };
        drop(child);
        let fail = |e: RuntimeError| {
            // SAFETY: kill/waitpid take plain integers; `pid` is our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            e
        };
        if let Some(cg) = &self.state.cgroup {
            cg.add_task(pid).map_err(|e| fail(e.into()))?;
        }
        parent.send(&Msg::Go).map_err(fail)?;
        match parent.recv().map_err(fail)? {
            None => {}
            Some(Msg::Error(e)) => return Err(fail(RuntimeError::Init(e))),
            Some(m) => return Err(fail(RuntimeError::Init(format!("unexpected {m:?}")))),
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        Ok(pid)
    }
}

fn exec_child(
    fds: &[(&str, std::os::fd::OwnedFd)],
    plan: &ProcessPlan,
    console: Option<&std::os::fd::OwnedFd>,
    chan: &Channel,
) -> Result<RuntimeError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| RuntimeError::sys("make exec non-dumpable", e))?;
    chan.expect(&Msg::Go)?;
    for (kind, fd) in fds {
        if *kind == "pid" {
            continue;
        }
        sys::setns(fd.as_fd(), ns_flag(kind))
            .map_err(|e| RuntimeError::sys(format!("join the container's {kind} namespace"), e))?;
    }
    let _ = rustix::process::setsid();
    plan.apply_limits()?;
    if let Some(sock) = console {
        crate::init::exec_terminal(sock, plan.console_size)?;
    }
    let program = plan.resolve_program()?;
    Ok(plan.exec(&program))
}
