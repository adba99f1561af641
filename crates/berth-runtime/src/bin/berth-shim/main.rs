//! berth-shim: one small process per container, started by berthd, that outlives it.
//!
//! It creates the container (through the runtime library, so the init is its child), owns the
//! container's stdio (pipes, or a pty received over a private console socket), writes every
//! output line to the json-file log, serves attach/resize/kill on a unix socket, and when the
//! init exits records the exit status atomically in `<dir>/exit`, deletes the OCI container and
//! exits. Single-threaded and event-driven (epoll): no tokio, no threads, a few hundred KiB.
//!
//! Usage (what berthd passes):
//!   berth-shim --id ID --bundle DIR --state-root DIR --dir DIR --log PATH
//!              [--log-max-size BYTES] [--log-max-files N] [--tty] [--stdin] [--no-start]
//!              [--ready-fd N]
//! The ready fd (default 3) receives one JSON line, `{"pid":N}` or `{"error":"..."}`: read one
//! line, not to EOF (a created container's init holds a copy of the fd until it execs).
//! With --no-start the container waits in "created" until a client sends `{"type":"start"}`
//! (berthd attaches first, so no output is lost).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use berth_runtime::container::CreateOpts;
use berth_runtime::shim::log::{JsonLog, Stream};
use berth_runtime::shim::{frame_header, ExitRecord, Request as Req, STREAM_STDERR, STREAM_STDOUT};
use berth_runtime::Container;
use rustix::event::epoll;

#[derive(Debug, Default)]
struct Args {
    id: String,
    bundle: PathBuf,
    state_root: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    log_max_size: u64,
    log_max_files: u32,
    tty: bool,
    stdin: bool,
    no_start: bool,
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
            "--id" => a.id = val()?,
            "--bundle" => a.bundle = val()?.into(),
            "--state-root" => a.state_root = val()?.into(),
            "--dir" => a.dir = val()?.into(),
            "--log" => a.log = val()?.into(),
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
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for (name, empty) in [
        ("--id", a.id.is_empty()),
        ("--bundle", a.bundle.as_os_str().is_empty()),
        ("--state-root", a.state_root.as_os_str().is_empty()),
        ("--dir", a.dir.as_os_str().is_empty()),
        ("--log", a.log.as_os_str().is_empty()),
    ] {
        if empty {
            return Err(format!("{name} is required"));
        }
    }
    Ok(a)
}

fn main() {
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
    // Leave berthd's process tree and session: berthd may die, the shim goes on.
    // SAFETY: single-threaded here; the child continues with a copy of this thread only.
    match unsafe { libc::fork() } {
        -1 => {
            report(
                ready.as_ref(),
                &serde_json::json!({"error": format!("fork: {}", std::io::Error::last_os_error())}),
            );
            std::process::exit(1);
        }
        0 => {}
        _ => berth_runtime::sys::exit_now(0),
    }
    let _ = rustix::process::setsid();
    let code = match run(&args, ready) {
        Ok(code) => code,
        Err((ready, e)) => {
            report(ready.as_ref(), &serde_json::json!({"error": e}));
            1
        }
    };
    std::process::exit(code);
}

fn report(fd: Option<&OwnedFd>, v: &serde_json::Value) {
    if let Some(fd) = fd {
        let mut line = v.to_string();
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

fn set_nonblocking(fd: &impl AsFd) {
    if let Ok(fl) = rustix::fs::fcntl_getfl(fd) {
        let _ = rustix::fs::fcntl_setfl(fd, fl | rustix::fs::OFlags::NONBLOCK);
    }
}

/// What the container's output comes from.
enum Output {
    Pipes { out: OwnedFd, err: OwnedFd },
    Tty { master: OwnedFd },
}

struct Client {
    conn: UnixStream,
    stdout: bool,
    stderr: bool,
    stdin: bool,
}

const TOK_PID: u64 = 0;
const TOK_OUT: u64 = 1;
const TOK_ERR: u64 = 2;
const TOK_LISTEN: u64 = 3;
const TOK_CLIENT: u64 = 100;

fn run(a: &Args, ready: Option<OwnedFd>) -> Result<i32, Fail> {
    let fail = |ready: Option<OwnedFd>, e: String| -> Fail { (ready, e) };
    if let Err(e) = std::fs::create_dir_all(&a.dir) {
        return Err(fail(
            ready,
            format!("cannot create {}: {e}", a.dir.display()),
        ));
    }
    // The container's processes are in its own pid namespace; its init is our child. Being a
    // subreaper also collects `exec` processes whose runtime exited.
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
    let mut log = match JsonLog::open(&a.log, a.log_max_size, a.log_max_files) {
        Ok(l) => l,
        Err(e) => {
            return Err(fail(
                ready,
                format!("cannot open log {}: {e}", a.log.display()),
            ))
        }
    };

    // The container's stdio: our fds 0, 1, 2 at clone time.
    let devnull = match berth_runtime::sys::open(std::path::Path::new("/dev/null"), libc::O_RDWR, 0)
    {
        Ok(f) => f,
        Err(e) => return Err(fail(ready, format!("cannot open /dev/null: {e}"))),
    };
    let mut stdin_w: Option<OwnedFd> = None;
    let mut console = None;
    let mut pipes = None;
    let setup = (|| -> std::io::Result<()> {
        if a.tty {
            console = Some(
                berth_runtime::console::ConsoleListener::new(&a.dir)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            );
            for fd in 0..3 {
                dup_onto(devnull.as_raw_fd(), fd)?;
            }
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            if a.stdin {
                let (in_r, in_w) = pipe()?;
                dup_onto(in_r.as_raw_fd(), 0)?;
                stdin_w = Some(in_w);
            } else {
                dup_onto(devnull.as_raw_fd(), 0)?;
            }
            dup_onto(out_w.as_raw_fd(), 1)?;
            dup_onto(err_w.as_raw_fd(), 2)?;
            pipes = Some((out_r, err_r));
        }
        Ok(())
    })();
    if let Err(e) = setup {
        return Err(fail(
            ready,
            format!("cannot set up the container's stdio: {e}"),
        ));
    }
    let opts = CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: console.as_ref().map(|c| c.path.clone()),
        start_now: !a.no_start && !a.tty,
        ..Default::default()
    };
    let created = Container::create(&a.state_root, &opts);
    // The container holds its ends now: ours become /dev/null again, so that EOF on the pipes
    // means the container closed them.
    for fd in 0..3 {
        let _ = dup_onto(devnull.as_raw_fd(), fd);
    }
    let mut container = match created {
        Ok(c) => c,
        Err(e) => return Err(fail(ready, e.to_string())),
    };
    let output = match (pipes, &console) {
        (Some((out, err)), _) => Output::Pipes { out, err },
        (None, Some(c)) => match c.receive_master() {
            Ok(master) => Output::Tty { master },
            Err(e) => {
                let _ = container.delete(true);
                return Err(fail(ready, e.to_string()));
            }
        },
        (None, None) => {
            let _ = container.delete(true);
            return Err(fail(ready, "no stdio for the container".into()));
        }
    };
    drop(console);
    if a.tty && !a.no_start {
        if let Err(e) = container.start() {
            let _ = container.clone().delete(true);
            return Err(fail(ready, e.to_string()));
        }
    }
    let pid = container.state.pid;
    let oom_before = container
        .state
        .cgroup
        .as_ref()
        .and_then(|c| c.oom_kills().ok())
        .unwrap_or(0);
    report(ready.as_ref(), &serde_json::json!({"pid": pid}));
    drop(ready);
    // Creating the container used heap that is free now: give it back, the shim stays small
    // for the container's whole life.
    // SAFETY: malloc_trim only releases free memory at the top of the heap and in free chunks.
    unsafe { libc::malloc_trim(0) };

    let code = serve(a, &mut container, &mut log, output, stdin_w, listener).unwrap_or(255);
    let _ = log.flush_partial();
    let oom_after = container
        .state
        .cgroup
        .as_ref()
        .and_then(|c| c.oom_kills().ok())
        .unwrap_or(0);
    let rec = ExitRecord {
        pid,
        exit_code: code,
        exited_at: berth_runtime::container::rfc3339_now(),
        oom_killed: oom_after > oom_before,
    };
    let _ = rec.write(&a.dir);
    let _ = container.delete(true);
    let _ = std::fs::remove_file(&sock_path);
    Ok(0)
}

/// The event loop; returns the init's exit code (128 + signal when killed).
fn serve(
    a: &Args,
    container: &mut Container,
    log: &mut JsonLog,
    output: Output,
    mut stdin_w: Option<OwnedFd>,
    listener: UnixListener,
) -> std::io::Result<i32> {
    let pid = container.state.pid;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidInput)?,
        rustix::process::PidfdFlags::empty(),
    )?;
    epoll::add(
        &ep,
        &pidfd,
        epoll::EventData::new_u64(TOK_PID),
        epoll::EventFlags::IN,
    )?;
    let (out_fd, err_fd, tty_master) = match &output {
        Output::Pipes { out, err } => (out.as_fd(), Some(err.as_fd()), None),
        Output::Tty { master } => (master.as_fd(), None, Some(master.as_fd())),
    };
    set_nonblocking(&out_fd);
    epoll::add(
        &ep,
        out_fd,
        epoll::EventData::new_u64(TOK_OUT),
        epoll::EventFlags::IN,
    )?;
    if let Some(e) = err_fd {
        set_nonblocking(&e);
        epoll::add(
            &ep,
            e,
            epoll::EventData::new_u64(TOK_ERR),
            epoll::EventFlags::IN,
        )?;
    }
    listener.set_nonblocking(true)?;
    epoll::add(
        &ep,
        &listener,
        epoll::EventData::new_u64(TOK_LISTEN),
        epoll::EventFlags::IN,
    )?;

    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut open = [true, err_fd.is_some()];
    let mut exit: Option<i32> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::with_capacity(16);
    loop {
        if let Some(code) = exit {
            if !open[0] && !open[1] {
                return Ok(code);
            }
        }
        events.clear();
        // After the init exits, give the streams a moment to drain (other processes of the
        // container die with it), then stop.
        let timeout = exit.map(|_| rustix::event::Timespec {
            tv_sec: 2,
            tv_nsec: 0,
        });
        let n = match epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if let Some(code) = exit {
                return Ok(code);
            }
            continue;
        }
        for ev in events.iter() {
            let tok = ev.data.u64();
            match tok {
                TOK_PID => {
                    let mut status = 0;
                    // SAFETY: waitpid writes the status into our local; the pid is our child.
                    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                        exit = Some(if libc::WIFEXITED(status) {
                            libc::WEXITSTATUS(status)
                        } else if libc::WIFSIGNALED(status) {
                            128 + libc::WTERMSIG(status)
                        } else {
                            255
                        });
                    }
                    let _ = epoll::delete(&ep, &pidfd);
                    // Reap anything else that was reparented to us.
                    // SAFETY: waitpid(-1, WNOHANG) only collects exited children of ours.
                    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
                }
                TOK_OUT | TOK_ERR => {
                    let (fd, stream, idx) = if tok == TOK_OUT {
                        (out_fd, Stream::Stdout, 0)
                    } else {
                        (err_fd.unwrap_or(out_fd), Stream::Stderr, 1)
                    };
                    match rustix::io::read(fd, &mut buf) {
                        Ok(0) | Err(rustix::io::Errno::IO) => {
                            let _ = epoll::delete(&ep, fd);
                            open[idx] = false;
                        }
                        Ok(n) => {
                            let data = &buf[..n];
                            let _ = log.write(stream, data);
                            broadcast(&mut clients, stream, data, a.tty);
                        }
                        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                        Err(_) => {
                            let _ = epoll::delete(&ep, fd);
                            open[idx] = false;
                        }
                    }
                }
                TOK_LISTEN => {
                    while let Ok((conn, _)) = listener.accept() {
                        if let Some(c) = handle_request(conn, container, tty_master, &mut stdin_w) {
                            let slot = clients
                                .iter()
                                .position(|c| c.is_none())
                                .unwrap_or(clients.len());
                            if c.stdin {
                                let _ = epoll::add(
                                    &ep,
                                    &c.conn,
                                    epoll::EventData::new_u64(TOK_CLIENT + slot as u64),
                                    epoll::EventFlags::IN,
                                );
                            }
                            if slot == clients.len() {
                                clients.push(Some(c));
                            } else {
                                clients[slot] = Some(c);
                            }
                        }
                    }
                }
                t if t >= TOK_CLIENT => {
                    let slot = (t - TOK_CLIENT) as usize;
                    let Some(Some(c)) = clients.get_mut(slot) else {
                        continue;
                    };
                    match c.conn.read(&mut buf) {
                        Ok(0) | Err(_) => {
                            // The client is done sending: the container's stdin ends too.
                            let _ = epoll::delete(&ep, &c.conn);
                            c.stdin = false;
                            stdin_w = None;
                        }
                        Ok(n) => {
                            let target = tty_master.or(stdin_w.as_ref().map(|f| f.as_fd()));
                            if let Some(t) = target {
                                let _ = berth_runtime::sys::write_all(t, &buf[..n]);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Sends output to every attached client that wants it; a client that cannot take it is dropped.
fn broadcast(clients: &mut [Option<Client>], stream: Stream, data: &[u8], tty: bool) {
    for slot in clients.iter_mut() {
        let Some(c) = slot else { continue };
        let wanted = match stream {
            Stream::Stdout => c.stdout,
            Stream::Stderr => c.stderr,
        };
        if !wanted {
            continue;
        }
        let r = if tty {
            c.conn.write_all(data)
        } else {
            let kind = if stream == Stream::Stdout {
                STREAM_STDOUT
            } else {
                STREAM_STDERR
            };
            c.conn
                .write_all(&frame_header(kind, data.len()))
                .and_then(|_| c.conn.write_all(data))
        };
        if r.is_err() {
            *slot = None;
        }
    }
}

/// Reads a client's request line and acts on it; an attach returns the client to keep.
fn handle_request(
    mut conn: UnixStream,
    container: &mut Container,
    tty_master: Option<std::os::fd::BorrowedFd<'_>>,
    stdin_w: &mut Option<OwnedFd>,
) -> Option<Client> {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 4096 {
        match conn.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    let reply = |conn: &mut UnixStream, r: Result<(), String>| {
        let v = match r {
            Ok(()) => serde_json::json!({"ok": true}),
            Err(e) => serde_json::json!({"error": e}),
        };
        let _ = conn.write_all(format!("{v}\n").as_bytes());
    };
    let req: Req = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            reply(&mut conn, Err(format!("bad request: {e}")));
            return None;
        }
    };
    match req {
        Req::Attach {
            stdin,
            stdout,
            stderr,
        } => {
            reply(&mut conn, Ok(()));
            let _ = conn.set_read_timeout(None);
            let _ = conn.set_nonblocking(false);
            Some(Client {
                conn,
                stdout,
                stderr,
                stdin,
            })
        }
        Req::Resize { rows, cols } => {
            let r = match tty_master {
                Some(m) => rustix::termios::tcsetwinsize(
                    m,
                    rustix::termios::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    },
                )
                .map_err(|e| format!("resize: {e}")),
                None => Err("the container has no terminal".into()),
            };
            reply(&mut conn, r);
            None
        }
        Req::CloseStdin => {
            *stdin_w = None;
            reply(&mut conn, Ok(()));
            None
        }
        Req::Kill { signal } => {
            let r = container.kill(signal, false).map_err(|e| e.to_string());
            reply(&mut conn, r);
            None
        }
        Req::Start => {
            let r = container.start().map_err(|e| e.to_string());
            reply(&mut conn, r);
            None
        }
    }
}
