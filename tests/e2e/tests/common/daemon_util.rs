//! A berthd for one test: its own socket, data root and docker CLI config in a temporary
//! directory, killed on drop (so a failing test leaves no daemon behind), and the stock docker
//! CLI pointed at it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{run_cmd, wait_until, workspace, Out};

/// The berthd under test: $BERTH_DAEMON, else target/release, else target/debug.
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_DAEMON") {
        return PathBuf::from(p);
    }
    let ws = workspace();
    for p in ["target/release/berthd", "target/debug/berthd"] {
        let p = ws.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "berthd not built: run `cargo build --release -p berth-engine --bins` or set BERTH_DAEMON"
    );
}

/// The stock docker CLI.
pub fn docker_bin() -> PathBuf {
    let p = PathBuf::from("/usr/local/bin/docker");
    if p.exists() {
        p
    } else {
        PathBuf::from("docker")
    }
}

/// A running berthd, killed and its directory removed on drop.
pub struct BerthDaemon {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl BerthDaemon {
    /// Starts berthd with extra arguments (`--registry-mirror URL`, …) and waits for its socket.
    pub fn start(extra: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("berthd-e2e").tempdir()?;
        std::fs::create_dir_all(dir.path().join("docker-config"))?;
        let log = std::fs::File::create(dir.path().join("berthd.log"))?;
        let child = Command::new(daemon_bin())
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("berth.sock").display()
            ))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start berthd")?;
        let mut d = Self { child, dir };
        let sock = d.sock();
        let up = wait_until(Duration::from_secs(15), || {
            UnixStream::connect(&sock).is_ok()
        });
        if !up {
            let _ = d.child.kill();
            bail!(
                "berthd did not listen on {}; its log:\n{}",
                sock.display(),
                d.log()
            );
        }
        Ok(d)
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What berthd wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// The docker CLI, talking to this daemon with a private config directory.
    pub fn docker_cmd(&self) -> Command {
        let mut c = Command::new(docker_bin());
        c.env("DOCKER_HOST", format!("unix://{}", self.sock().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY");
        c
    }

    /// Runs `docker ARGS` (2 minutes at most).
    pub fn docker(&self, args: &[&str]) -> Result<Out> {
        run_cmd(self.docker_cmd().args(args), None, Duration::from_secs(120))
    }

    /// Runs `docker ARGS` with `stdin`.
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Out> {
        run_cmd(
            self.docker_cmd().args(args),
            Some(stdin),
            Duration::from_secs(120),
        )
    }

    /// Runs `docker ARGS`, failing unless it succeeds; returns its stdout, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.docker(args)?;
        if out.code != 0 {
            bail!(
                "`docker {}` exited {}\nstdout: {}\nstderr: {}\nberthd log:\n{}",
                args.join(" "),
                out.code,
                out.stdout,
                out.stderr,
                self.log()
            );
        }
        Ok(out.stdout.trim().to_string())
    }
}

impl Drop for BerthDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::common::berthd_net_cleanup(&self.data_root());
    }
}

/// Whether a tool is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A path as a string for command lines (test paths are ASCII).
pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
