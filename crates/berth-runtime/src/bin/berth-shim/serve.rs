//! The shim's event loop, shared by container mode and exec mode: one epoll set over the
//! process's pidfd, its output, the socket and the attached clients. What differs between the
//! modes is the [`Task`]: how the process starts and how it is signalled.
//!
//! It must never block on a client (requests are one short line; output to attached clients is
//! written without blocking, what a socket cannot take yet waits in the client's own bounded
//! backlog until the socket is writable) and never spawn a thread.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use berth_runtime::container::ExecOpts;
use berth_runtime::shim::log::{JsonLog, Stream};
use berth_runtime::shim::{
    exec_failure_code, frame_header, Reply, Request, STREAM_STDERR, STREAM_STDOUT,
};
use berth_runtime::{Container, RuntimeError};
use oci_spec::runtime::Process;
use rustix::event::epoll;

use crate::Stdio;

/// What the shim runs.
pub enum Task {
    /// The container's init (the container was created during setup).
    Container(Container),
    /// One process to run in `container` (started by [`Shim::start`]).
    Exec {
        container: Container,
        process: Box<Process>,
        started: bool,
    },
}

impl Task {
    fn what(&self) -> &'static str {
        match self {
            Task::Container(_) => "container",
            Task::Exec { .. } => "exec process",
        }
    }
}

struct Client {
    conn: UnixStream,
    token: u64,
    stdout: bool,
    stderr: bool,
    stdin: bool,
    /// Output the socket could not take yet, oldest first (bounded by [`CLIENT_BACKLOG`]).
    pending: VecDeque<u8>,
}

impl Client {
    /// The epoll interest of this client: its stdin, and writability while output waits.
    fn interest(&self) -> epoll::EventFlags {
        let mut f = epoll::EventFlags::empty();
        if self.stdin {
            f |= epoll::EventFlags::IN;
        }
        if !self.pending.is_empty() {
            f |= epoll::EventFlags::OUT;
        }
        f
    }

    /// Writes what waits, as far as the socket takes it without blocking. Err: the client is
    /// gone.
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            let (a, _) = self.pending.as_slices();
            match self.conn.write(a) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Queues `parts` behind what waits and writes what the socket takes now. Err: the client
    /// is gone or has fallen more than [`CLIENT_BACKLOG`] behind.
    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        for p in parts {
            self.pending.extend(p.iter());
        }
        self.flush()?;
        if self.pending.len() > CLIENT_BACKLOG {
            return Err(std::io::Error::other("the client fell too far behind"));
        }
        Ok(())
    }
}

const TOK_PID: u64 = 0;
const TOK_OUT: u64 = 1;
const TOK_ERR: u64 = 2;
const TOK_LISTEN: u64 = 3;
const TOK_INIT: u64 = 4;
/// Clients get increasing tokens from here, never reused, so a stale event of a client that
/// is gone cannot hit a newer one.
const TOK_CLIENT: u64 = 100;

/// The shim's state while it serves.
pub struct Shim {
    tty: bool,
    pub task: Task,
    /// The process's host pid; 0 until an exec process started.
    pub pid: i32,
    pub log: Option<JsonLog>,
    stdio: Stdio,
    listener: UnixListener,
    ep: OwnedFd,
    pidfd: Option<OwnedFd>,
    /// The container's init, watched by an exec shim until its process starts.
    init_fd: Option<OwnedFd>,
    /// Whether stdout/stderr (or the terminal) are registered and not at EOF yet.
    open: [bool; 2],
    /// A terminal size asked for before the exec process (and its terminal) exists.
    pending_size: Option<(u16, u16)>,
    clients: Vec<Client>,
    next_token: u64,
    /// The exit code, once the process exited (or an exec process failed to start).
    exit: Option<i32>,
}

impl Shim {
    /// The shim, listening, with whatever output `stdio` already has registered.
    pub fn new(
        tty: bool,
        task: Task,
        stdio: Stdio,
        log: Option<JsonLog>,
        listener: UnixListener,
    ) -> std::io::Result<Self> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        listener.set_nonblocking(true)?;
        epoll::add(
            &ep,
            &listener,
            epoll::EventData::new_u64(TOK_LISTEN),
            epoll::EventFlags::IN,
        )?;
        let mut shim = Shim {
            tty,
            task,
            pid: 0,
            log,
            stdio,
            listener,
            ep,
            pidfd: None,
            init_fd: None,
            open: [false, false],
            pending_size: None,
            clients: Vec::new(),
            next_token: TOK_CLIENT,
            exit: None,
        };
        shim.watch_output()?;
        Ok(shim)
    }

    /// Registers the output fds that exist and are not registered yet.
    fn watch_output(&mut self) -> std::io::Result<()> {
        for (idx, fd, tok) in [
            (0, self.stdio.out.as_ref(), TOK_OUT),
            (1, self.stdio.err.as_ref(), TOK_ERR),
        ] {
            let Some(fd) = fd else { continue };
            if self.open[idx] {
                continue;
            }
            let fl = rustix::fs::fcntl_getfl(fd)?;
            rustix::fs::fcntl_setfl(fd, fl | rustix::fs::OFlags::NONBLOCK)?;
            epoll::add(
                &self.ep,
                fd,
                epoll::EventData::new_u64(tok),
                epoll::EventFlags::IN,
            )?;
            self.open[idx] = true;
        }
        Ok(())
    }

    /// Watches our child `pid` for its exit.
    pub fn watch_pid(&mut self, pid: i32) -> std::io::Result<()> {
        let fd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidInput)?,
            rustix::process::PidfdFlags::empty(),
        )?;
        epoll::add(
            &self.ep,
            &fd,
            epoll::EventData::new_u64(TOK_PID),
            epoll::EventFlags::IN,
        )?;
        self.pidfd = Some(fd);
        Ok(())
    }

    /// Watches the container's init (a pidfd) until the exec process starts.
    pub fn watch_init(&mut self, fd: OwnedFd) -> std::io::Result<()> {
        epoll::add(
            &self.ep,
            &fd,
            epoll::EventData::new_u64(TOK_INIT),
            epoll::EventFlags::IN,
        )?;
        self.init_fd = Some(fd);
        Ok(())
    }

    /// The terminal's master, once there is one.
    fn master(&self) -> Option<BorrowedFd<'_>> {
        if self.tty {
            self.stdio.out.as_ref().map(|f| f.as_fd())
        } else {
            None
        }
    }

    /// Starts what --no-start prepared; returns the process's pid. A failed exec leaves the
    /// exit code Docker gives such a process (127 or 126) and the shim winds down.
    pub fn start(&mut self) -> Result<i32, String> {
        let (container, process) = match &mut self.task {
            Task::Container(c) => {
                c.start().map_err(|e| e.to_string())?;
                return Ok(c.state.pid);
            }
            Task::Exec { started: true, .. } => {
                return Err("the exec process was started already".into())
            }
            Task::Exec {
                container,
                process,
                started,
            } => {
                *started = true;
                (container, process)
            }
        };
        if let Some((rows, cols)) = self.pending_size {
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(rows))
                .width(u64::from(cols))
                .build();
            if let Ok(size) = size {
                process.set_console_size(Some(size));
            }
        }
        let program = process
            .args()
            .as_ref()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_default();
        let opts = ExecOpts {
            process: (**process).clone(),
            console_socket: self.stdio.console.as_ref().map(|c| c.path.clone()),
            pid_file: None,
            preserve_fds: 0,
        };
        let id = container.state.id.clone();
        let spawned = self.stdio.spawn(|| container.exec(&opts));
        // The init no longer matters: a started process dies with the container by itself.
        if let Some(fd) = self.init_fd.take() {
            let _ = epoll::delete(&self.ep, &fd);
        }
        let pid = match spawned {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => {
                let msg = match e {
                    RuntimeError::Init(m) => m,
                    e => e.to_string(),
                };
                self.stdio.console = None;
                self.exit = Some(exec_failure_code(&msg, &program));
                return Err(format!("cannot exec in container {id:?}: {msg}"));
            }
            Err(e) => {
                self.stdio.console = None;
                self.exit = Some(126);
                return Err(format!("cannot set up the exec process's stdio: {e}"));
            }
        };
        self.pid = pid;
        let watched = self.watch_pid(pid);
        if let Some(console) = self.stdio.console.take() {
            // The process connected and sent its terminal before it exec'd: this does not wait.
            match console.receive_master() {
                Ok(master) => self.stdio.out = Some(master),
                Err(e) => {
                    self.kill_child(pid, libc::SIGKILL);
                    if watched.is_err() {
                        self.exit = Some(reap(pid, true).unwrap_or(255));
                    }
                    return Err(format!("cannot get the exec process's terminal: {e}"));
                }
            }
        }
        if let Err(e) = watched.and_then(|()| self.watch_output()) {
            self.kill_child(pid, libc::SIGKILL);
            if self.pidfd.is_none() {
                self.exit = Some(reap(pid, true).unwrap_or(255));
            }
            return Err(format!("cannot watch the exec process (pid {pid}): {e}"));
        }
        Ok(pid)
    }

    fn kill_child(&self, pid: i32, signal: i32) {
        // SAFETY: kill takes plain integers; `pid` is our own unreaped child, so it names it.
        unsafe { libc::kill(pid, signal) };
    }

    /// Sends `signal` to the container's init or the exec process.
    fn kill(&self, signal: i32) -> Result<(), String> {
        if let Task::Container(c) = &self.task {
            return c.kill(signal, false).map_err(|e| e.to_string());
        }
        if self.pid == 0 {
            return Err(
                "the exec process has not started yet: send {\"type\":\"start\"} first".into(),
            );
        }
        if self.exit.is_some() {
            return Err(format!("the exec process (pid {}) has exited", self.pid));
        }
        if !(1..=64).contains(&signal) {
            return Err(format!("signal {signal} is not a signal number (1-64)"));
        }
        self.kill_child(self.pid, signal);
        Ok(())
    }

    /// The event loop; returns the process's exit code (128 + signal when killed).
    pub fn serve(&mut self) -> i32 {
        // Made on the first output or client byte: an idle container's shim never touches it
        // (64 KiB of its ~100 KiB of private memory otherwise).
        let mut buf = Vec::new();
        let mut events = Vec::with_capacity(16);
        loop {
            if let Some(code) = self.exit {
                if !self.open[0] && !self.open[1] {
                    return code;
                }
            }
            events.clear();
            // After the process exits, give the streams a moment to drain (its children may
            // hold them a little longer), then stop.
            let timeout = self.exit.map(|_| rustix::event::Timespec {
                tv_sec: 2,
                tv_nsec: 0,
            });
            let n = match epoll::wait(
                &self.ep,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                // Only a broken epoll set fails here: nothing to wait with any more.
                Err(_) => return self.exit.unwrap_or(255),
            };
            if n == 0 {
                if let Some(code) = self.exit {
                    return code;
                }
                continue;
            }
            for ev in events.iter() {
                match ev.data.u64() {
                    TOK_PID => self.on_exit(),
                    TOK_INIT => {
                        if let Some(fd) = self.init_fd.take() {
                            let _ = epoll::delete(&self.ep, &fd);
                        }
                        if self.pid == 0 && self.exit.is_none() {
                            // The container stopped before the exec process could start.
                            self.exit = Some(126);
                            self.close_output();
                        }
                    }
                    TOK_OUT => self.on_output(0, io_buf(&mut buf)),
                    TOK_ERR => self.on_output(1, io_buf(&mut buf)),
                    TOK_LISTEN => {
                        while let Ok((conn, _)) = self.listener.accept() {
                            if let Some(c) = self.handle_request(conn) {
                                self.add_client(c);
                            }
                        }
                    }
                    tok => self.on_client(tok, ev.flags, io_buf(&mut buf)),
                }
            }
        }
    }

    /// Drops the output fds (deregistering them) so the loop can end.
    fn close_output(&mut self) {
        self.open = [false, false];
        self.stdio.out = None;
        self.stdio.err = None;
    }

    fn on_exit(&mut self) {
        if let Some(code) = reap(self.pid, false) {
            self.exit = Some(code);
            if let Some(fd) = self.pidfd.take() {
                let _ = epoll::delete(&self.ep, &fd);
            }
        }
        // Reap anything else that was reparented to us.
        // SAFETY: waitpid(-1, WNOHANG) only collects exited children of ours.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    }

    fn on_output(&mut self, idx: usize, buf: &mut [u8]) {
        let fd = if idx == 0 {
            self.stdio.out.as_ref()
        } else {
            self.stdio.err.as_ref()
        };
        let Some(fd) = fd else { return };
        let stream = if idx == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) | Err(rustix::io::Errno::IO) => {
                let _ = epoll::delete(&self.ep, fd);
                self.open[idx] = false;
            }
            Ok(n) => {
                let data = &buf[..n];
                if let Some(log) = self.log.as_mut() {
                    let _ = log.write(stream, data);
                }
                self.broadcast(stream, data);
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                let _ = epoll::delete(&self.ep, fd);
                self.open[idx] = false;
            }
        }
    }

    /// Keeps an attached client: one with stdin is read; every one is watched for hanging up.
    fn add_client(&mut self, mut c: Client) {
        c.token = self.next_token;
        self.next_token += 1;
        if c.conn.set_nonblocking(true).is_err() {
            return;
        }
        let flags = c.interest();
        if epoll::add(&self.ep, &c.conn, epoll::EventData::new_u64(c.token), flags).is_ok() {
            self.clients.push(c);
        }
    }

    /// Sends output to every attached client that wants it; a client that is gone or too far
    /// behind is dropped. Never blocks.
    fn broadcast(&mut self, stream: Stream, data: &[u8]) {
        let (tty, ep) = (self.tty, &self.ep);
        self.clients.retain_mut(|c| {
            let wanted = match stream {
                Stream::Stdout => c.stdout,
                Stream::Stderr => c.stderr,
            };
            if !wanted {
                return true;
            }
            let before = c.interest();
            let r = if tty {
                c.send(&[data])
            } else {
                let kind = if stream == Stream::Stdout {
                    STREAM_STDOUT
                } else {
                    STREAM_STDERR
                };
                c.send(&[&frame_header(kind, data.len()), data])
            };
            if r.is_err() {
                // Dropping the connection closes it, which also takes it out of the epoll set.
                return false;
            }
            if c.interest() != before {
                let _ = epoll::modify(
                    ep,
                    &c.conn,
                    epoll::EventData::new_u64(c.token),
                    c.interest(),
                );
            }
            true
        });
    }

    /// Closes every attached client's connection (they see EOF): the exit is reported.
    pub fn close_clients(&mut self) {
        self.clients.clear();
    }

    /// At the end: gives every client until `within` to take the output still waiting for it
    /// (blocking writes bounded by the deadline), so a `docker run` gets all of it.
    pub fn drain_clients(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for c in &mut self.clients {
            if c.pending.is_empty() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || c.conn.set_nonblocking(false).is_err() {
                break;
            }
            let _ = c.conn.set_write_timeout(Some(left));
            let (a, b) = c.pending.as_slices();
            let _ = c.conn.write_all(a).and_then(|_| c.conn.write_all(b));
            c.pending.clear();
        }
    }

    fn on_client(&mut self, tok: u64, flags: epoll::EventFlags, buf: &mut [u8]) {
        let Some(i) = self.clients.iter().position(|c| c.token == tok) else {
            return;
        };
        let c = &mut self.clients[i];
        if flags.contains(epoll::EventFlags::OUT) {
            let before = c.interest();
            if c.flush().is_err() {
                let c = self.clients.swap_remove(i);
                let _ = epoll::delete(&self.ep, &c.conn);
                return;
            }
            if c.interest() != before {
                let _ = epoll::modify(
                    &self.ep,
                    &c.conn,
                    epoll::EventData::new_u64(tok),
                    c.interest(),
                );
            }
        }
        if c.stdin && flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP) {
            // Level-triggered IN: data or EOF is there (the socket does not block).
            match c.conn.read(buf) {
                Ok(n) if n > 0 => {
                    // A terminal's input is its master; otherwise the stdin pipe, if still open.
                    let target = if self.tty {
                        self.stdio.out.as_ref()
                    } else {
                        self.stdio.stdin_w.as_ref()
                    };
                    if let Some(t) = target {
                        let _ = berth_runtime::sys::write_all(t.as_fd(), &buf[..n]);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                _ => {
                    // The client is done sending: the process's stdin ends too. Its output
                    // still flows; it is forgotten when it hangs up.
                    c.stdin = false;
                    let _ = epoll::modify(
                        &self.ep,
                        &c.conn,
                        epoll::EventData::new_u64(tok),
                        c.interest(),
                    );
                    self.stdio.stdin_w = None;
                }
            }
        } else if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
            let c = self.clients.swap_remove(i);
            let _ = epoll::delete(&self.ep, &c.conn);
        }
    }

    /// Reads a client's request line and acts on it; an attach returns the client to keep.
    fn handle_request(&mut self, mut conn: UnixStream) -> Option<Client> {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        let mut line = Vec::new();
        // The request line, and nothing after it (an attach's stdin follows): looked at with
        // MSG_PEEK and taken whole; a line split across writes is read byte by byte.
        let mut peek = [0u8; 4096];
        let whole = rustix::net::recv(&conn, &mut peek, rustix::net::RecvFlags::PEEK)
            .ok()
            .and_then(|(n, _)| peek[..n].iter().position(|b| *b == b'\n'));
        if let Some(i) = whole {
            line.resize(i + 1, 0);
            if conn.read_exact(&mut line).is_err() {
                return None;
            }
            line.pop();
        } else {
            let mut byte = [0u8; 1];
            while line.len() < 4096 {
                match conn.read(&mut byte) {
                    Ok(1) if byte[0] == b'\n' => break,
                    Ok(1) => line.push(byte[0]),
                    _ => return None,
                }
            }
        }
        let reply = |conn: &mut UnixStream, r: Result<Reply, String>| {
            let r = r.unwrap_or_else(|error| Reply::Error { error });
            let mut text = serde_json::to_string(&r).unwrap_or_default();
            text.push('\n');
            let _ = conn.write_all(text.as_bytes());
        };
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                reply(&mut conn, Err(format!("bad request: {e}")));
                return None;
            }
        };
        match req {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                reply(&mut conn, Ok(Reply::ok()));
                let _ = conn.set_read_timeout(None);
                // Output goes to every client without blocking: 4 MiB of socket buffer absorb
                // bursts, then the client's backlog; a client that stops reading never holds up
                // the log or the others (it is dropped when its backlog is full).
                if rustix::net::sockopt::set_socket_send_buffer_size_force(&conn, ATTACH_SNDBUF)
                    .is_err()
                {
                    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&conn, ATTACH_SNDBUF);
                }
                return Some(Client {
                    conn,
                    token: 0,
                    stdout,
                    stderr,
                    stdin,
                    pending: VecDeque::new(),
                });
            }
            Request::Resize { rows, cols } => {
                let r = if !self.tty {
                    Err(format!("the {} has no terminal", self.task.what()))
                } else if let Some(m) = self.master() {
                    let size = rustix::termios::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    rustix::termios::tcsetwinsize(m, size)
                        .map(|()| Reply::ok())
                        .map_err(|e| format!("resize: {e}"))
                } else {
                    // Its terminal does not exist yet: it gets this size when it starts.
                    self.pending_size = Some((rows, cols));
                    Ok(Reply::ok())
                };
                reply(&mut conn, r);
            }
            Request::CloseStdin => {
                self.stdio.stdin_w = None;
                reply(&mut conn, Ok(Reply::ok()));
            }
            Request::Kill { signal } => {
                let r = self.kill(signal).map(|()| Reply::ok());
                reply(&mut conn, r);
            }
            Request::Start => {
                let r = self.start().map(Reply::started);
                reply(&mut conn, r);
            }
        }
        None
    }
}

/// The event loop's read buffer, allocated when first needed.
fn io_buf(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.is_empty() {
        buf.resize(64 * 1024, 0);
    }
    buf
}

/// Socket send buffer of an attached client.
const ATTACH_SNDBUF: usize = 4 << 20;
/// How much output may wait for an attached client beyond its socket buffer before it is dropped.
const CLIENT_BACKLOG: usize = 16 << 20;

/// Collects our child `pid` if it exited (waiting for it when `block`); its exit code, 128 +
/// signal when killed.
fn reap(pid: i32, block: bool) -> Option<i32> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitpid writes the status into our local; the pid is our child.
    if unsafe { libc::waitpid(pid, &mut status, flags) } != pid {
        return None;
    }
    Some(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    })
}
