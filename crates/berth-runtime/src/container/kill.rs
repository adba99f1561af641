//! `kill`: sends a signal to the container's init, or with `all` to every process in its cgroup.

use crate::error::{Result, RuntimeError};

use super::Container;

/// Parses a signal given as a number ("9"), a name ("KILL") or a full name ("SIGKILL").
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.trim_start_matches("SIG");
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rt) = name
                .strip_prefix("RTMIN+")
                .and_then(|n| n.parse::<i32>().ok())
            {
                let s = libc::SIGRTMIN() + rt;
                if s <= libc::SIGRTMAX() {
                    return Ok(s);
                }
            }
            return Err(RuntimeError::Invalid(format!(
                "unknown signal {s:?}: use a number or a name such as TERM or SIGKILL"
            )));
        }
    };
    Ok(n)
}

impl Container {
    /// Sends `signal` to the init (or to all processes with `all`).
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if all {
            if let Some(cg) = &self.state.cgroup {
                for pid in cg.pids()? {
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(pid, signal) };
                }
                if signal == libc::SIGKILL {
                    // A frozen cgroup holds SIGKILL until thawed.
                    let _ = cg.freeze(false);
                }
                return Ok(());
            }
        }
        if !status.can_kill() {
            // runc's words: containerd's shim matches "container not running" to report the
            // process as already finished (NotFound) instead of an unknown kill failure.
            return Err(self.bad_state(status, "container not running"));
        }
        // SAFETY: kill takes plain integers; init_alive checked the pid is still our init.
        if unsafe { libc::kill(self.state.pid, signal) } != 0 {
            return Err(RuntimeError::sys(
                format!("send signal {signal} to {}", self.state.pid),
                std::io::Error::last_os_error(),
            ));
        }
        if signal == libc::SIGKILL && status == super::Status::Paused {
            if let Some(cg) = &self.state.cgroup {
                let _ = cg.freeze(false);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("RTMIN+1").unwrap() > 32);
        for bad in ["0", "65", "-1", "SIGBOGUS", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
