//! `start`: lets a created container's init exec the user's program, by opening the exec fifo
//! the init blocks on, then runs the poststart hooks.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::error::{Result, RuntimeError};
use crate::sys;

use super::{Container, Status};

impl Container {
    /// Starts the container.
    pub fn start(&mut self) -> Result<()> {
        let status = self.status();
        if !status.can_start() {
            return Err(self.bad_state(status, "only a created container can be started"));
        }
        let fifo = self.dir.join("exec.fifo");
        let f = sys::open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(|e| RuntimeError::io("cannot open", &fifo, e))?;
        // Wait for the init to connect and write its byte; give up if it died meanwhile.
        let mut buf = [0u8; 1];
        loop {
            let mut pfd = [rustix::event::PollFd::new(&f, rustix::event::PollFlags::IN)];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            match rustix::event::poll(&mut pfd, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(RuntimeError::sys("poll exec.fifo", e)),
            }
            match rustix::io::read(f.as_fd(), &mut buf) {
                Ok(1) => break,
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(RuntimeError::sys("read exec.fifo", e)),
            }
            if !self.init_alive() {
                return Err(RuntimeError::Init(format!(
                    "container {} exited before it could start",
                    self.state.id
                )));
            }
        }
        let _ = std::fs::remove_file(&fifo);
        self.state.started = true;
        self.save()?;
        self.run_poststart()
    }

    pub(crate) fn run_poststart(&self) -> Result<()> {
        if !self.state.has_poststart {
            return Ok(());
        }
        let spec = self.spec()?;
        if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().clone()) {
            crate::hooks::run_all(&h, &self.hook_state(Status::Running))?;
        }
        Ok(())
    }
}

/// Waits until `pid` (not our child) exits, up to `timeout`; true if it did.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return true; // already gone
    };
    let mut pfd = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    matches!(rustix::event::poll(&mut pfd, Some(&ts)), Ok(n) if n > 0)
}
