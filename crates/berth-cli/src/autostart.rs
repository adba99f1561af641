//! Starting berthd when nobody answers on the socket, so `berth run` works right after install.
//!
//! The daemon is found next to the `berth` binary, else at `$BERTH_DAEMON`, else on PATH; it runs
//! in its own session with its output in a log file, and we wait (bounded) until `/_ping`
//! answers. `BERTH_NO_AUTOSTART=1` turns this off. It never kills or replaces a daemon.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long the daemon gets to answer its first ping.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether a connect error means "nobody is there" and autostart is allowed.
pub fn wanted(e: &io::Error) -> bool {
    if std::env::var("BERTH_NO_AUTOSTART").is_ok_and(|v| !v.is_empty() && v != "0") {
        return false;
    }
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// The berthd binary to start.
pub fn find_daemon() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("berthd");
            if p.is_file() {
                return p;
            }
        }
    }
    if let Some(p) = std::env::var_os("BERTH_DAEMON") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("berthd")
}

/// Where the started daemon's output goes: its data root (`/var/lib/berth` by default), else
/// next to the socket. Not the exec root: berthd mounts a tmpfs there, which would hide a log
/// opened before it.
pub fn log_path(socket: &Path) -> PathBuf {
    let dir = match std::env::var_os("BERTH_DATA_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => PathBuf::from("/var/lib/berth"),
    };
    if std::fs::create_dir_all(&dir).is_ok() {
        return dir.join("berthd.log");
    }
    socket
        .parent()
        .unwrap_or(Path::new("/tmp"))
        .join("berthd.log")
}

/// Starts berthd for `host` and waits until it answers a ping.
pub async fn start_daemon(host: &str, socket: &Path) -> Result<()> {
    let daemon = find_daemon();
    let log = log_path(socket);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out.try_clone().context("dup the log file")?;
    let mut cmd = Command::new(&daemon);
    cmd.arg("-H").arg(host);
    if let Some(root) = std::env::var_os("BERTH_DATA_ROOT") {
        cmd.arg("--data-root").arg(root);
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent; the child only
    // calls it between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", daemon.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut exited: Option<Instant> = None;
    loop {
        if ping(socket).await {
            return Ok(());
        }
        // Our daemon may have lost a race with another one started at the same moment (it
        // then exits at once): give that one a few seconds to answer before failing.
        if let Ok(Some(status)) = child.try_wait() {
            let since = *exited.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                bail!(
                    "{} exited ({status}) before answering; see {}",
                    daemon.display(),
                    log.display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer within {}s; see {}",
                daemon.display(),
                START_TIMEOUT.as_secs(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A bare `GET /_ping` that answers true on any 200.
async fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket).await else {
        return false;
    };
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 32];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or(0);
    buf[..n].starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_or_refused_sockets_autostart() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!wanted(&denied));
    }

    #[test]
    fn daemon_is_found_somewhere() {
        let p = find_daemon();
        assert!(p.ends_with("berthd") || std::env::var_os("BERTH_DAEMON").is_some());
    }
}
