//! berth-shim: one small process per container, and one per `docker exec` process, started by
//! berthd, that outlives it.
//!
//! Container mode creates the container (through the runtime library, so the init is its
//! child), owns the container's stdio (pipes, or a pty received over a private console socket),
//! writes every output line to the json-file log, serves attach/resize/kill/start on a unix
//! socket, and when the init exits records the exit status atomically in `<dir>/exit`, deletes
//! the OCI container and exits. Exec mode does the same for one process run in an existing
//! running container (`Container::exec`), without a log unless asked (Docker logs no exec
//! output), and without deleting anything. Single-threaded and event-driven (epoll, see
//! `serve.rs`): no tokio, no threads, a few hundred KiB. The protocol is in
//! `berth_runtime::shim`.
//!
//! Usage (what berthd passes):
//!   berth-shim --id ID --bundle DIR --state-root DIR --dir DIR --log PATH
//!              [--log-max-size BYTES] [--log-max-files N] [--tty] [--stdin] [--no-start]
//!              [--ready-fd N]
//!   berth-shim --exec --id CONTAINER_ID --state-root DIR --dir EXEC_DIR --process PROCESS_JSON
//!              [--log PATH [--log-max-size BYTES] [--log-max-files N]] [--tty] [--stdin]
//!              [--no-start] [--ready-fd N]
//! PROCESS_JSON is a file holding an OCI runtime-spec `process` object; `--tty` decides whether
//! it gets a terminal (its `terminal` field is overridden).
//! The ready fd (default 3) receives one JSON line, `{"pid":N}` or `{"error":"..."}`: read one
//! line, not to EOF (a created container's init holds a copy of the fd until it execs).
//! With --no-start the container waits in "created" (an exec process is not started at all and
//! the ready line is `{"pid":0}`) until a client sends `{"type":"start"}` (berthd attaches
//! first, so no output is lost).

mod serve;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_runtime::console::ConsoleListener;
use berth_runtime::container::CreateOpts;
use berth_runtime::shim::log::JsonLog;
use berth_runtime::shim::{ExitRecord, Ready};
use berth_runtime::{Container, RuntimeError, Status};
use oci_spec::runtime::Process;

use serve::{Shim, Task};

#[derive(Debug, Default)]
struct Args {
    exec: bool,
    id: String,
    bundle: PathBuf,
    state_root: PathBuf,
    dir: PathBuf,
    log: Option<PathBuf>,
    process: PathBuf,
    log_max_size: u64,
    log_max_files: u32,
    tty: bool,
    stdin: bool,
    no_start: bool,
    /// Tear the container down (runtime state, cgroups) after the clients' EOF: the exit is
    /// reported sooner; only for containers that are never started again (`--rm`).
    late_teardown: bool,
    ready_fd: RawFd,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        log_max_files: 1,
        ready_fd: 3,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--exec" => a.exec = true,
            "--id" => a.id = val()?,
            "--bundle" => a.bundle = val()?.into(),
            "--state-root" => a.state_root = val()?.into(),
            "--dir" => a.dir = val()?.into(),
            "--log" => a.log = Some(val()?.into()),
            "--process" => a.process = val()?.into(),
            "--log-max-size" => {
                a.log_max_size = val()?.parse().map_err(|e| format!("--log-max-size: {e}"))?
            }
            "--log-max-files" => {
                a.log_max_files = val()?
                    .parse()
                    .map_err(|e| format!("--log-max-files: {e}"))?
            }
            "--ready-fd" => a.ready_fd = val()?.parse().map_err(|e| format!("--ready-fd: {e}"))?,
            "--tty" => a.tty = true,
            "--stdin" => a.stdin = true,
            "--no-start" => a.no_start = true,
            "--late-teardown" => a.late_teardown = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (id, root, dir) = (
        ("--id", a.id.is_empty()),
        ("--state-root", a.state_root.as_os_str().is_empty()),
        ("--dir", a.dir.as_os_str().is_empty()),
    );
    let required = if a.exec {
        if !a.bundle.as_os_str().is_empty() {
            return Err(
                "--bundle is for container mode: --exec runs in the container named by --id".into(),
            );
        }
        vec![
            id,
            root,
            dir,
            ("--process", a.process.as_os_str().is_empty()),
        ]
    } else {
        if !a.process.as_os_str().is_empty() {
            return Err("--process needs --exec".into());
        }
        vec![
            id,
            ("--bundle", a.bundle.as_os_str().is_empty()),
            root,
            dir,
            ("--log", a.log.is_none()),
        ]
    };
    for (name, empty) in required {
        if empty {
            return Err(format!("{name} is required"));
        }
    }
    Ok(a)
}

fn main() {
    berth_runtime::timing::init_from_env();
    berth_runtime::timing::mark("shim: main");
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: fcntl(F_GETFD) only probes whether the fd number is open.
    let ready = if unsafe { libc::fcntl(args.ready_fd, libc::F_GETFD) } >= 0 {
        // SAFETY: the fd is open (just checked) and was handed to us by our parent to own.
        Some(unsafe { OwnedFd::from_raw_fd(args.ready_fd) })
    } else {
        None
    };
    let ready = ready.map(off_stdio);
    // Leave berthd's process tree and session: berthd may die, the shim goes on.
    // SAFETY: single-threaded here; the child continues with a copy of this thread only.
    match unsafe { libc::fork() } {
        -1 => {
            let e = format!("fork: {}", std::io::Error::last_os_error());
            report(ready.as_ref(), &Ready::Error { error: e });
            std::process::exit(1);
        }
        0 => {}
        _ => berth_runtime::sys::exit_now(0),
    }
    let _ = rustix::process::setsid();
    let code = match run(&args, ready) {
        Ok(code) => code,
        Err((ready, e)) => {
            report(ready.as_ref(), &Ready::Error { error: e });
            1
        }
    };
    std::process::exit(code);
}

/// A ready fd on a standard descriptor (berthd passes its stdout: a spawn without a pre-exec
/// step is a vfork, not a fork of the whole daemon) moves above 2, and /dev/null takes its
/// number: fds 0-2 are the process's stdio later, and nothing else may write into the line.
fn off_stdio(fd: OwnedFd) -> OwnedFd {
    let n = fd.as_raw_fd();
    if n > 2 {
        return fd;
    }
    let Ok(moved) = rustix::io::fcntl_dupfd_cloexec(&fd, 3) else {
        return fd;
    };
    match berth_runtime::sys::open(Path::new("/dev/null"), libc::O_RDWR, 0) {
        Ok(null) => {
            // dup2 onto the old number closes our copy of the pipe there.
            let _ = dup_onto(null.as_raw_fd(), n);
            std::mem::forget(fd);
        }
        Err(_) => drop(fd),
    }
    moved
}

fn report(fd: Option<&OwnedFd>, v: &Ready) {
    if let Some(fd) = fd {
        let mut line = serde_json::to_string(v).unwrap_or_default();
        line.push('\n');
        let _ = berth_runtime::sys::write_all(fd.as_fd(), line.as_bytes());
    }
}

type Fail = (Option<OwnedFd>, String);

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

fn dup_onto(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 onto a standard descriptor number; `fd` is open for the duration.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The stdio of the shim's process: the ends it gets as fds 0, 1, 2 when it is spawned, and
/// ours (output read ends or, once received, the terminal's master; the stdin write end).
pub struct Stdio {
    /// The process's fds 0, 1, 2 (None: /dev/null), handed over by [`Stdio::spawn`].
    child: [Option<OwnedFd>; 3],
    devnull: OwnedFd,
    /// Stdout's read end, or the terminal's master.
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    pub stdin_w: Option<OwnedFd>,
    /// Where the terminal's master arrives from, until it has.
    pub console: Option<ConsoleListener>,
}

impl Stdio {
    fn new(tty: bool, stdin: bool, dir: &Path) -> Result<Self, String> {
        let devnull = berth_runtime::sys::open(Path::new("/dev/null"), libc::O_RDWR, 0)
            .map_err(|e| format!("cannot open /dev/null: {e}"))?;
        let mut s = Stdio {
            child: [None, None, None],
            devnull,
            out: None,
            err: None,
            stdin_w: None,
            console: None,
        };
        if tty {
            s.console = Some(ConsoleListener::new(dir).map_err(|e| e.to_string())?);
            return Ok(s);
        }
        let io = (|| -> std::io::Result<()> {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            if stdin {
                let (in_r, in_w) = pipe()?;
                s.child[0] = Some(in_r);
                s.stdin_w = Some(in_w);
            }
            s.child[1] = Some(out_w);
            s.child[2] = Some(err_w);
            s.out = Some(out_r);
            s.err = Some(err_r);
            Ok(())
        })();
        io.map_err(|e| format!("cannot set up stdio pipes: {e}"))?;
        Ok(s)
    }

    /// Points our fds 0, 1, 2 at /dev/null, so that the shim holds nothing of its launcher's.
    fn detach(&self) {
        for fd in 0..3 {
            let _ = dup_onto(self.devnull.as_raw_fd(), fd);
        }
    }

    /// Runs `spawn` with the process's ends as our fds 0, 1, 2 (what a child inherits), then
    /// puts /dev/null back and drops those ends: EOF on ours then means the process closed its.
    pub fn spawn<T>(&mut self, spawn: impl FnOnce() -> T) -> std::io::Result<T> {
        let setup = (0..3).try_for_each(|fd| {
            let src = self.child[fd].as_ref().unwrap_or(&self.devnull);
            dup_onto(src.as_raw_fd(), fd as RawFd)
        });
        let r = setup.map(|()| spawn());
        self.detach();
        self.child = [None, None, None];
        r
    }
}

fn run(a: &Args, ready: Option<OwnedFd>) -> Result<i32, Fail> {
    let (shim, oom_before, ready) = match setup(a, ready)? {
        Setup::Serve {
            shim,
            oom_before,
            ready,
        } => (*shim, oom_before, ready),
        Setup::Done(code) => return Ok(code),
    };
    report(ready.as_ref(), &Ready::Pid { pid: shim.pid });
    drop(ready);
    // Setting up used stack and heap that are free now: give them back, the shim stays small
    // for the process's whole life.
    release_stack();
    // SAFETY: malloc_trim only releases free memory at the top of the heap and in free chunks.
    unsafe { libc::malloc_trim(0) };
    finish(a, shim, oom_before);
    Ok(0)
}

/// What setting up ended with.
enum Setup {
    /// The process runs (or waits for its start): serve it.
    Serve {
        shim: Box<Shim>,
        oom_before: Option<u64>,
        ready: Option<OwnedFd>,
    },
    /// Already over (an exec process that could not start): the shim's exit code.
    Done(i32),
}

/// Creates the container (or loads the exec process's), its stdio, log and socket. Not inlined:
/// creating a container takes a deep stack (its frame alone is ~12 KiB) that must be popped
/// before the event loop runs, so that [`release_stack`] can give those pages back.
#[inline(never)]
fn setup(a: &Args, ready: Option<OwnedFd>) -> Result<Setup, Fail> {
    let fail = |ready: Option<OwnedFd>, e: String| -> Fail { (ready, e) };
    if let Err(e) = std::fs::create_dir_all(&a.dir) {
        return Err(fail(
            ready,
            format!("cannot create {}: {e}", a.dir.display()),
        ));
    }
    // In exec mode, the container must be there and running before anything is made.
    let exec = if a.exec {
        match load_exec(a) {
            Ok(x) => Some(x),
            Err(e) => return Err(fail(ready, e)),
        }
    } else {
        None
    };
    // The process is our child; being a subreaper also collects what it leaves behind outside
    // the container's pid namespace.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let sock_path = a.dir.join("sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = match UnixListener::bind(&sock_path) {
        Ok(l) => l,
        Err(e) => {
            return Err(fail(
                ready,
                format!("cannot listen on {}: {e}", sock_path.display()),
            ))
        }
    };
    let log = match &a.log {
        Some(p) => match JsonLog::open(p, a.log_max_size, a.log_max_files) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = std::fs::remove_file(&sock_path);
                return Err(fail(ready, format!("cannot open log {}: {e}", p.display())));
            }
        },
        None => None,
    };
    let stdio = match Stdio::new(a.tty, a.stdin, &a.dir) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&sock_path);
            return Err(fail(ready, e));
        }
    };
    stdio.detach();

    let (shim, oom_before) = match exec {
        Some((container, process, init_fd)) => {
            let task = Task::Exec {
                container,
                process: Box::new(process),
                started: false,
            };
            let mut shim = match Shim::new(a.tty, task, stdio, log, listener) {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&sock_path);
                    return Err(fail(
                        ready,
                        format!("cannot set up the shim's event loop: {e}"),
                    ));
                }
            };
            // Until the exec process starts, the container's init exiting means it never will.
            if let Err(e) = shim.watch_init(init_fd) {
                let _ = std::fs::remove_file(&sock_path);
                return Err(fail(
                    ready,
                    format!("cannot watch container {:?}: {e}", a.id),
                ));
            }
            if !a.no_start {
                if let Err(e) = shim.start() {
                    // The process could not start: the error line, then its exit record
                    // (126/127) like any other exit.
                    report(ready.as_ref(), &Ready::Error { error: e });
                    drop(ready);
                    finish(a, shim, None);
                    return Ok(Setup::Done(1));
                }
            }
            (shim, None)
        }
        None => match start_container(a, stdio, log, listener) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&sock_path);
                return Err(fail(ready, e));
            }
        },
    };
    Ok(Setup::Serve {
        shim: Box::new(shim),
        oom_before,
        ready,
    })
}

/// Gives back the stack pages that setup touched below the event loop's frames: creating a
/// container runs deep, and those pages would otherwise stay resident for the container's life.
/// Pages below the stack pointer hold nothing live; touched again, they come back zeroed.
fn release_stack() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some(low) = maps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split('-').next())
        .and_then(|s| usize::from_str_radix(s, 16).ok())
    else {
        return;
    };
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    // Below this frame by more than its only callee (the madvise wrapper) and the red zone use.
    let high = sp.saturating_sub(4 * 1024) & !0xfff;
    if high > low {
        // SAFETY: [low, high) lies inside our own stack mapping, entirely below the current stack
        // pointer (by 4 KiB or more), where no live frame or data can be; MADV_DONTNEED only drops
        // those pages, and a later touch maps zeroed ones.
        unsafe { libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED) };
    }
}

/// Serves until the process exits, then leaves its exit record, cleans up, and only then closes
/// the attached clients' connections (a watcher's EOF means the record is there).
fn finish(a: &Args, mut shim: Shim, oom_before: Option<u64>) {
    let code = shim.serve();
    if let Some(log) = shim.log.as_mut() {
        let _ = log.flush_partial();
    }
    let oom_killed = match (&shim.task, oom_before) {
        (Task::Container(c), Some(before)) => c
            .state
            .cgroup
            .as_ref()
            .and_then(|cg| cg.oom_kills().ok())
            .is_some_and(|after| after > before),
        _ => false,
    };
    let rec = ExitRecord {
        pid: shim.pid,
        exit_code: code,
        exited_at: berth_runtime::container::rfc3339_now(),
        oom_killed,
    };
    let _ = rec.write(&a.dir);
    // What attached clients have not taken yet still reaches them (bounded), then they see EOF.
    shim.drain_clients(std::time::Duration::from_secs(2));
    if a.late_teardown {
        let _ = std::fs::remove_file(a.dir.join("sock"));
        shim.close_clients();
        // Nobody waits for the rest (runtime state, cgroups): it takes what the runs in
        // progress leave of the CPUs.
        let _ = rustix::process::setpriority_process(None, 19);
    }
    if let Task::Container(c) = &shim.task {
        let _ = c.clone().delete(true);
    }
    let _ = std::fs::remove_file(a.dir.join("sock"));
    drop(shim);
}

/// Container mode: creates (and unless --no-start starts) the container; returns the shim and
/// the cgroup's OOM-kill count before the container ran.
fn start_container(
    a: &Args,
    mut stdio: Stdio,
    log: Option<JsonLog>,
    listener: UnixListener,
) -> Result<(Shim, Option<u64>), String> {
    let opts = CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: stdio.console.as_ref().map(|c| c.path.clone()),
        start_now: !a.no_start && !a.tty,
        ..Default::default()
    };
    let mut container = stdio
        .spawn(|| Container::create(&a.state_root, &opts))
        .map_err(|e| format!("cannot set up the container's stdio: {e}"))?
        .map_err(|e| e.to_string())?;
    if let Some(console) = stdio.console.take() {
        match console.receive_master() {
            Ok(master) => stdio.out = Some(master),
            Err(e) => {
                let _ = container.delete(true);
                return Err(e.to_string());
            }
        }
    }
    if a.tty && !a.no_start {
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            return Err(e.to_string());
        }
    }
    let oom_before = container
        .state
        .cgroup
        .as_ref()
        .and_then(|c| c.oom_kills().ok())
        .unwrap_or(0);
    let pid = container.state.pid;
    let mut shim = match Shim::new(
        a.tty,
        Task::Container(container.clone()),
        stdio,
        log,
        listener,
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = container.delete(true);
            return Err(format!("cannot set up the shim's event loop: {e}"));
        }
    };
    shim.pid = pid;
    if let Err(e) = shim.watch_pid(pid) {
        let _ = container.delete(true);
        return Err(format!(
            "cannot watch the container's init (pid {pid}): {e}"
        ));
    }
    Ok((shim, Some(oom_before)))
}

/// Exec mode, before anything is made: the container (running), the process to run in it, and
/// a pidfd of the container's init.
fn load_exec(a: &Args) -> Result<(Container, Process, OwnedFd), String> {
    let container = match Container::load(&a.state_root, &a.id) {
        Ok(c) => c,
        Err(RuntimeError::NotFound(_)) => {
            return Err(format!(
                "cannot exec in container {:?}: it does not exist under {} (is it running?)",
                a.id,
                a.state_root.display()
            ))
        }
        Err(e) => return Err(format!("cannot exec in container {:?}: {e}", a.id)),
    };
    match container.status() {
        Status::Running => {}
        Status::Paused => {
            return Err(format!(
                "cannot exec in container {:?}: it is paused: unpause it first",
                a.id
            ))
        }
        s => {
            return Err(format!(
                "cannot exec in container {:?}: it is {s}, not running: start it first",
                a.id
            ))
        }
    }
    let init = container.state.pid;
    let init_fd = rustix::process::Pid::from_raw(init)
        .ok_or(rustix::io::Errno::SRCH)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()))
        .ok()
        // Opened after the status check: the pid must still be the container's init.
        .filter(|_| container.init_alive())
        .ok_or_else(|| {
            format!(
                "cannot exec in container {:?}: it has stopped: start it first",
                a.id
            )
        })?;
    let text = std::fs::read(&a.process)
        .map_err(|e| format!("cannot read the process file {}: {e}", a.process.display()))?;
    let mut process = parse_process(&text).map_err(|e| {
        format!(
            "{} is not an OCI runtime-spec process object: {e}",
            a.process.display()
        )
    })?;
    process.set_terminal(Some(a.tty));
    Ok((container, process, init_fd))
}

/// Parses a `process` object with the runtime's own (non-generic) config.json parser, wrapped as
/// `{"ociVersion":..,"process":..}`: it checks args and cwd too, and a second instantiation of
/// the serde code for `Process` would add ~80 KiB of text to every shim.
fn parse_process(text: &[u8]) -> Result<Process, String> {
    const HEAD: &[u8] = br#"{"ociVersion":"1.0.2","process":"#;
    let mut doc = Vec::with_capacity(HEAD.len() + text.len() + 2);
    doc.extend_from_slice(HEAD);
    doc.extend_from_slice(text);
    doc.extend_from_slice(b"\n}");
    let spec = berth_runtime::spec::parse_spec(&doc).map_err(|e| {
        // Columns on the first line are shifted by the wrapper: keep the message, not them.
        match e.split_once(" at line ") {
            Some((msg, _)) => msg.to_string(),
            None => e,
        }
    })?;
    spec.process()
        .clone()
        .ok_or_else(|| "the file holds no process object".to_string())
}
