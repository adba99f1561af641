//! `delete`: removes a stopped (or, forced, a running) container: its processes, cgroup and state,
//! then runs the poststop hooks.

use std::time::Duration;

use crate::error::Result;

use super::start::wait_gone;
use super::{Container, Status};

impl Container {
    /// Deletes the container. Without `force` a running or paused container is refused; a
    /// created one is stopped (it never ran the user's program).
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        if !force && !status.can_delete() {
            return Err(self.bad_state(status, "stop it first or use delete --force"));
        }
        if status != Status::Stopped {
            if let Some(cg) = &self.state.cgroup {
                let _ = cg.freeze(false);
                for pid in cg.pids().unwrap_or_default() {
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if self.init_alive() {
                // SAFETY: kill takes plain integers; the pid is still our init.
                unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
                wait_gone(self.state.pid, Duration::from_secs(10));
            }
        }
        if let Some(cg) = &self.state.cgroup {
            // destroy retries while killed processes leave the cgroup.
            cg.destroy()?;
        }
        let poststop = if self.state.has_poststop {
            self.spec()
                .ok()
                .and_then(|s| s.hooks().as_ref().and_then(|h| h.poststop().clone()))
        } else {
            None
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(h) = poststop {
            // poststop failures are reported but the container is gone either way.
            crate::hooks::run_all(&h, &self.hook_state(Status::Stopped))?;
        }
        Ok(())
    }
}
