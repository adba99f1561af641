//! A terminal for `run`/`exec` with process.terminal but no --console-socket: berth-runc listens
//! on a private console socket itself, receives the container's pty master, and copies between it
//! and its own stdio until the container side closes (as runc does).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub use berth_runtime::console::ConsoleListener;

/// Puts our stdin terminal (if it is one) in raw mode until dropped.
struct RawMode(Option<rustix::termios::Termios>);
impl RawMode {
    fn enable() -> Self {
        let stdin = rustix::stdio::stdin();
        let Ok(orig) = rustix::termios::tcgetattr(stdin) else {
            return Self(None);
        };
        let mut raw = orig.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw);
        Self(Some(orig))
    }
}
impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// Copies stdin → master and master → stdout until the master reports hangup (the container's
/// side closed) or `done` returns true.
pub fn proxy(master: &OwnedFd, mut done: impl FnMut() -> bool) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let _raw = RawMode::enable();
    if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
    let stdin = rustix::stdio::stdin();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(master, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        let t = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match poll(&mut fds, Some(&t)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
        let m = fds[0].revents();
        let s = fds
            .get(1)
            .map(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if m.contains(PollFlags::IN) {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = berth_runtime::sys::write_all(rustix::stdio::stdout(), &buf[..n]);
                }
            }
        } else if m.intersects(PollFlags::HUP | PollFlags::ERR) {
            return;
        }
        if s.intersects(PollFlags::IN | PollFlags::HUP) {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = berth_runtime::sys::write_all(as_borrowed(master), &buf[..n]);
                }
            }
        }
        if done() && !m.contains(PollFlags::IN) {
            return;
        }
    }
}

fn as_borrowed(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}
