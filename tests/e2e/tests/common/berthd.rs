//! A berthd for one container test, cleaned up even when the test fails: its own socket, data
//! root and docker CLI config in a temporary directory; `busybox:latest` loaded on request; and a
//! Drop that removes every container (`docker rm -f`), kills berthd, kills the shims and
//! container processes it left, unmounts whatever is still mounted under its directory and
//! removes it. It can also be killed with SIGKILL and started again on the same data root (live
//! restore tests).
//!
//! Include it with `#[path = "common/berthd.rs"] mod berthd;` next to `mod common;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::common::daemon_util::{daemon_bin, docker_bin, path_str};
use crate::common::{pids_in_cgroup_of, run_cmd, wait_until, Out};

/// A running berthd and everything it made.
pub struct Berthd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Extra berthd arguments (kept for restarts).
    extra: Vec<String>,
}

impl Berthd {
    /// Starts berthd (binary from $BERTH_DAEMON, shim from $BERTH_SHIM through the environment)
    /// and waits until `/_ping` answers.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts berthd with extra arguments (`--dns 127.0.0.9`, …).
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("berth-e2e-d").tempdir()?;
        std::fs::create_dir_all(dir.path().join("docker-config"))?;
        let mut d = Self {
            child: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn()?;
        Ok(d)
    }

    /// Starts berthd and loads busybox:latest into it.
    pub fn with_busybox() -> Result<Self> {
        let d = Self::start()?;
        d.load_busybox()?;
        Ok(d)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))?;
        let child = Command::new(daemon_bin())
            .arg("-H")
            .arg(format!("unix://{}", self.sock().display()))
            .arg("--data-root")
            .arg(self.data_root())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start berthd")?;
        self.child = Some(child);
        let sock = self.sock();
        let up = wait_until(Duration::from_secs(30), || {
            matches!(http(&sock, "GET", "/_ping", b""), Ok((200, _)))
        });
        if !up {
            bail!(
                "berthd did not answer /_ping on {}; its log:\n{}",
                sock.display(),
                self.log()
            );
        }
        Ok(())
    }

    /// Kills berthd with SIGKILL (its containers and shims live on).
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts berthd again on the same socket and data root.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What berthd wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// `DOCKER_HOST=unix://… docker`, with a private config directory.
    pub fn docker_cmd(&self) -> Command {
        let mut c = Command::new(docker_bin());
        c.env("DOCKER_HOST", format!("unix://{}", self.sock().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_API_VERSION");
        c
    }

    /// Runs `docker ARGS` (60 s at most).
    pub fn docker(&self, args: &[&str]) -> Result<Out> {
        run_cmd(self.docker_cmd().args(args), None, Duration::from_secs(60))
    }

    /// Runs `docker ARGS` with `stdin`.
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Out> {
        run_cmd(
            self.docker_cmd().args(args),
            Some(stdin),
            Duration::from_secs(60),
        )
    }

    /// Runs `docker ARGS`, failing unless it exits 0; its stdout, trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.docker(args)?;
        if out.code != 0 {
            bail!(
                "`docker {}` exited {}\nstdout: {}\nstderr: {}\nberthd log (tail):\n{}",
                args.join(" "),
                out.code,
                out.stdout,
                out.stderr,
                tail(&self.log(), 40)
            );
        }
        Ok(out.stdout.trim().to_string())
    }

    /// One HTTP/1.1 request on the API socket: (status, body).
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
        http(&self.sock(), method, path, body)
    }

    /// Loads busybox:latest (the cached docker-archive of the test rootfs, `CMD ["sh"]`).
    pub fn load_busybox(&self) -> Result<()> {
        let archive = crate::common::images::busybox_archive()?;
        let out = self.docker_ok(&["load", "-i", &path_str(&archive)])?;
        if !out.contains("busybox:latest") {
            bail!("docker load said: {out}");
        }
        Ok(())
    }

    /// `docker inspect -f FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> Result<String> {
        self.docker_ok(&["inspect", "-f", format, name])
    }

    /// Polls `docker inspect -f FORMAT` until it prints `want` (or `timeout` passes).
    pub fn wait_inspect(&self, name: &str, format: &str, want: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.inspect(name, format).is_ok_and(|s| s == want)
        })
    }

    /// The container directories under the data root (ids).
    fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.data_root().join("containers"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One HTTP/1.1 request on a unix socket: (status, body). Chunked bodies are returned raw.
pub fn http(sock: &Path, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut c = UnixStream::connect(sock)?;
    c.set_read_timeout(Some(Duration::from_secs(60)))?;
    c.set_write_timeout(Some(Duration::from_secs(60)))?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    c.write_all(body)?;
    let mut resp = Vec::new();
    c.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_string()))
}

/// Pids whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(cl) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&cl).contains(needle) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) with a pid we found and a valid signal; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        let alive = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if alive {
            if let Ok(out) = self.docker(&["ps", "-aq"]) {
                let ids: Vec<&str> = out.stdout.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = run_cmd(self.docker_cmd().args(&args), None, Duration::from_secs(60));
                }
            }
            let _ = self.docker(&["network", "prune", "-f"]);
        }
        let _ = self.kill9();
        let root = path_str(self.dir.path());
        // Shims (and anything else) started for this data root.
        for pid in pids_mentioning(&root) {
            kill9(pid);
        }
        // Container processes left behind, found by their cgroups.
        for id in self.container_ids() {
            for pid in pids_in_cgroup_of(&id) {
                kill9(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        // Mounts under the directory, deepest first.
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 with a NUL-terminated path we own.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        crate::common::berthd_net_cleanup(&self.data_root());
        // Cgroups of the containers, now empty.
        for id in self.container_ids() {
            for d in crate::common::cgroup_dirs(&id) {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}
