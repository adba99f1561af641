//! The verbs of runc's command line, each a thin function over `berth_runtime::Container`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_runtime::container::{parse_signal, CreateOpts, ExecOpts};
use berth_runtime::Container;
use liboci_cli::{CommonCmd, StandardCmd};

use crate::console::{proxy, ConsoleListener};
use crate::Cmd;

pub struct Ctx {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

/// Runs a verb; the returned code is the process exit status.
pub fn dispatch(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Standard(c) => match *c {
            StandardCmd::Create(c) => {
                let opts = CreateOpts {
                    id: c.container_id,
                    bundle: c.bundle,
                    pid_file: c.pid_file,
                    console_socket: c.console_socket,
                    no_pivot: c.no_pivot,
                    no_new_keyring: c.no_new_keyring,
                    preserve_fds: c.preserve_fds.max(0) as u32,
                    systemd_cgroup: ctx.systemd_cgroup,
                    start_now: false,
                };
                Container::create(&ctx.root, &opts)?;
                Ok(0)
            }
            StandardCmd::Start(s) => {
                Container::load(&ctx.root, &s.container_id)?.start()?;
                Ok(0)
            }
            StandardCmd::State(s) => {
                let c = Container::load(&ctx.root, &s.container_id)?;
                println!("{}", serde_json::to_string_pretty(&c.oci_state())?);
                Ok(0)
            }
            StandardCmd::Kill(k) => {
                let sig = parse_signal(&k.signal)?;
                Container::load(&ctx.root, &k.container_id)?.kill(sig, k.all)?;
                Ok(0)
            }
            StandardCmd::Delete(d) => {
                match Container::load(&ctx.root, &d.container_id) {
                    Ok(c) => c.delete(d.force)?,
                    // runc: deleting a missing container with --force is not an error.
                    Err(berth_runtime::RuntimeError::NotFound(_)) if d.force => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(0)
            }
        },
        Cmd::Common(c) => match *c {
            CommonCmd::Run(r) => run(ctx, r),
            CommonCmd::Exec(e) => exec(ctx, e),
            CommonCmd::Ps(p) => ps(ctx, p),
            CommonCmd::Pause(p) => {
                Container::load(&ctx.root, &p.container_id)?.pause()?;
                Ok(0)
            }
            CommonCmd::Resume(p) => {
                Container::load(&ctx.root, &p.container_id)?.resume()?;
                Ok(0)
            }
            CommonCmd::List(l) => list(ctx, l),
            CommonCmd::Events(e) => events(ctx, e),
            CommonCmd::Update(u) => update(ctx, u),
            CommonCmd::Features(_) => {
                println!("{}", serde_json::to_string_pretty(&features())?);
                Ok(0)
            }
            CommonCmd::Spec(s) => spec(s),
            CommonCmd::Checkpointt(_) => {
                bail!("checkpoint is not supported yet: it arrives with the CRIU work")
            }
        },
        Cmd::Checkpoint(_) => {
            bail!("checkpoint is not supported yet: it arrives with the CRIU work")
        }
        Cmd::Restore(_) => bail!("restore is not supported yet: it arrives with the CRIU work"),
    }
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards the usual termination and job signals to `pid` and waits for it (our child).
fn wait_forwarding(pid: i32) -> i32 {
    FORWARD_TO.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: `forward` is an extern "C" fn that only calls async-signal-safe kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into our local variable.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 255;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Waits for `pid`, copying a terminal if there is one.
fn wait_with_terminal(pid: i32, master: Option<std::os::fd::OwnedFd>) -> i32 {
    let Some(master) = master else {
        return wait_forwarding(pid);
    };
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let t = std::thread::spawn(move || proxy(&master, || d2.load(Ordering::Relaxed)));
    let code = wait_forwarding(pid);
    done.store(true, Ordering::Relaxed);
    let _ = t.join();
    code
}

fn run(ctx: &Ctx, r: liboci_cli::Run) -> Result<i32> {
    Container::dir_of(&ctx.root, &r.container_id)?;
    let bundle = berth_runtime::spec::load_bundle(&r.bundle)?;
    let wants_terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let listener = if r.console_socket.is_none() && wants_terminal {
        if r.detach {
            bail!("a terminal with --detach needs --console-socket");
        }
        Some(ConsoleListener::new(&ctx.root)?)
    } else {
        None
    };
    let opts = CreateOpts {
        id: r.container_id.clone(),
        bundle: r.bundle,
        pid_file: r.pid_file,
        console_socket: r
            .console_socket
            .or_else(|| listener.as_ref().map(|l| l.path.clone())),
        no_pivot: r.no_pivot,
        no_new_keyring: r.no_new_keyring,
        preserve_fds: r.preserve_fds.max(0) as u32,
        systemd_cgroup: ctx.systemd_cgroup,
        // With a terminal of our own, start only once we hold the master, so no output is lost.
        start_now: listener.is_none(),
    };
    let start_now = opts.start_now;
    let mut c = Container::create_from(&ctx.root, &opts, bundle)?;
    let master = match listener.as_ref().map(|l| l.receive_master()).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = c.clone().delete(true);
            return Err(e.into());
        }
    };
    if !start_now {
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            return Err(e.into());
        }
    }
    if r.detach {
        return Ok(0);
    }
    let code = wait_with_terminal(c.state.pid, master);
    berth_runtime::timing::mark("exited");
    if !r.keep {
        // The record we created is still ours (its cgroup and hooks cannot change under us);
        // if someone deleted the container meanwhile, there is nothing left to do.
        if c.dir.join("state.json").exists() {
            c.delete(true)?;
        }
    }
    berth_runtime::timing::mark("deleted");
    Ok(code)
}

fn exec(ctx: &Ctx, e: liboci_cli::Exec) -> Result<i32> {
    let c = Container::load(&ctx.root, &e.container_id)?;
    let mut process: oci_spec::runtime::Process = match &e.process {
        Some(p) => {
            let text = if p == Path::new("-") {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?
            };
            serde_json::from_str(&text).with_context(|| format!("parse process {}", p.display()))?
        }
        None => {
            if e.command.is_empty() {
                bail!("exec needs a command, or --process with a process.json");
            }
            let spec = c.spec()?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(e.command.clone()));
            p.set_terminal(Some(e.tty));
            p.set_console_size(None);
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(e.env.iter().map(|(k, v)| format!("{k}={v}")));
            p.set_env(Some(env));
            if let Some(cwd) = &e.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some((uid, gid)) = e.user {
                p.user_mut().set_uid(uid);
                p.user_mut().set_gid(gid.unwrap_or(0));
            }
            if !e.additional_gids.is_empty() {
                p.user_mut()
                    .set_additional_gids(Some(e.additional_gids.clone()));
            }
            if e.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if !e.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                let extra: Vec<oci_spec::runtime::Capability> = e
                    .cap
                    .iter()
                    .map(|c| {
                        serde_json::from_value(serde_json::json!(c))
                            .with_context(|| format!("unknown capability {c:?}"))
                    })
                    .collect::<Result<_>>()?;
                let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                    let mut s = s.clone().unwrap_or_default();
                    s.extend(extra.iter().cloned());
                    Some(s)
                };
                caps.set_bounding(add(caps.bounding()));
                caps.set_effective(add(caps.effective()));
                caps.set_permitted(add(caps.permitted()));
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let tty = process.terminal().unwrap_or(false);
    let listener = if tty && e.console_socket.is_none() {
        if e.detach {
            bail!("a terminal with --detach needs --console-socket");
        }
        Some(ConsoleListener::new(&ctx.root)?)
    } else {
        None
    };
    if !tty {
        process.set_console_size(None);
    }
    let opts = ExecOpts {
        process,
        console_socket: e
            .console_socket
            .clone()
            .or_else(|| listener.as_ref().map(|l| l.path.clone())),
        pid_file: e.pid_file.clone(),
        preserve_fds: e.preserve_fds.max(0) as u32,
    };
    let pid = c.exec(&opts)?;
    let master = listener.as_ref().map(|l| l.receive_master()).transpose()?;
    if e.detach {
        return Ok(0);
    }
    Ok(wait_with_terminal(pid, master))
}

fn ps(ctx: &Ctx, p: liboci_cli::Ps) -> Result<i32> {
    let c = Container::load(&ctx.root, &p.container_id)?;
    let pids = c.pids()?;
    match p.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args = if p.ps_options.is_empty() {
                vec!["-ef".to_string()]
            } else {
                p.ps_options.clone()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let Some(header) = lines.next() else {
                bail!("ps printed nothing");
            };
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|s| s.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        f => bail!("unknown --format {f:?}: use table or json"),
    }
    Ok(0)
}

fn list(ctx: &Ctx, l: liboci_cli::List) -> Result<i32> {
    let mut rows = Vec::new();
    for id in Container::list(&ctx.root)? {
        if let Ok(c) = Container::load(&ctx.root, &id) {
            rows.push(c.oci_state());
        }
    }
    if l.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    match l.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&rows)?),
        "table" => {
            let table: Vec<[String; 6]> = std::iter::once(
                ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            )
            .chain(rows.iter().map(|r| {
                ["id", "pid", "status", "bundle", "created", "owner"].map(|k| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
            }))
            .collect();
            let widths: Vec<usize> = (0..6)
                .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in &table {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
        f => bail!("unknown --format {f:?}: use table or json"),
    }
    Ok(0)
}

fn events(ctx: &Ctx, e: liboci_cli::Events) -> Result<i32> {
    let c = Container::load(&ctx.root, &e.container_id)?;
    let cg = c
        .state
        .cgroup
        .clone()
        .context("the container has no cgroup")?;
    let event = |cg: &berth_runtime::cgroups::Cgroup| -> Result<String> {
        Ok(
            serde_json::json!({"type": "stats", "id": e.container_id, "data": cg.stats()?})
                .to_string(),
        )
    };
    if e.stats {
        println!("{}", event(&cg)?);
        return Ok(0);
    }
    let mut ooms = cg.oom_kills().unwrap_or(0);
    let interval = std::time::Duration::from_secs(e.interval.max(1) as u64);
    while c.status() != berth_runtime::Status::Stopped {
        println!("{}", event(&cg)?);
        let now = cg.oom_kills().unwrap_or(0);
        if now > ooms {
            println!(
                "{}",
                serde_json::json!({"type": "oom", "id": e.container_id})
            );
            ooms = now;
        }
        std::thread::sleep(interval);
    }
    Ok(0)
}

fn update(ctx: &Ctx, u: liboci_cli::Update) -> Result<i32> {
    let c = Container::load(&ctx.root, &u.container_id)?;
    let mut r: oci_spec::runtime::LinuxResources = match &u.resources {
        Some(p) => {
            let text = if p == Path::new("-") {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?
            };
            serde_json::from_str(&text).context("parse the resources JSON")?
        }
        None => Default::default(),
    };
    let mut mem = (*r.memory()).unwrap_or_default();
    if let Some(m) = u.memory {
        mem.set_limit(Some(m as i64));
    }
    if let Some(m) = u.memory_reservation {
        mem.set_reservation(Some(m as i64));
    }
    if let Some(m) = u.memory_swap {
        mem.set_swap(Some(m));
    }
    r.set_memory(Some(mem));
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(v) = u.cpu_share {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = u.cpu_quota {
        cpu.set_quota(Some(v as i64));
    }
    if let Some(v) = u.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = &u.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &u.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    r.set_cpu(Some(cpu));
    if let Some(p) = u.pids_limit {
        r.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(p)
                .build()?,
        ));
    }
    if let Some(w) = u.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w as u16));
        r.set_block_io(Some(b));
    }
    c.cgroup_or_err()?.apply(&r)?;
    Ok(0)
}

fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "loud",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
            "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate",
            "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rshared",
            "rslave", "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid",
            "sync", "tmpcopyup", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"io.github.berth.version": env!("CARGO_PKG_VERSION")}
    })
}

fn spec(s: liboci_cli::Spec) -> Result<i32> {
    let dir = s.bundle.unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!("{} already exists: remove it first", path.display());
    }
    let mut spec = oci_spec::runtime::Spec::default();
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
        p.set_args(Some(vec!["sh".into()]));
    }
    if s.rootless {
        spec = oci_spec::runtime::Spec::rootless(
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        if let Some(p) = spec.process_mut() {
            p.set_terminal(Some(true));
            p.set_args(Some(vec!["sh".into()]));
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
