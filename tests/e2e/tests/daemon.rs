//! berthd as Docker's users meet it: the stock docker CLI (v28 at /usr/local/bin/docker, which
//! negotiates the API version down) and raw HTTP on the unix socket. So far the daemon answers
//! version negotiation, /version and /info; the rest of the Engine API comes with issue 4.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_DAEMON") {
        return PathBuf::from(p);
    }
    let ws = common::workspace();
    for p in ["target/release/berthd", "target/debug/berthd"] {
        let p = ws.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!("berthd not built: run `cargo build --release -p berth-engine` or set BERTH_DAEMON");
}

/// A berthd on a private socket and data root, killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("berthd-e2e").tempdir()?;
        let child = Command::new(daemon_bin())
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("berth.sock").display()
            ))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let d = Self { child, dir };
        ensure!(
            common::wait_until(Duration::from_secs(10), || UnixStream::connect(d.sock())
                .is_ok()),
            "berthd did not listen on {}",
            d.sock().display()
        );
        Ok(d)
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    fn docker(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock().display()))
            .args(args)
            .output()
            .context("run the docker CLI")?;
        ensure!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        common::berthd_net_cleanup(&self.dir.path().join("data"));
    }
}

/// One HTTP/1.1 request on the socket: (status, headers, body).
fn http(sock: &Path, method: &str, path: &str) -> Result<(u16, String, String)> {
    let mut c = UnixStream::connect(sock)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    c.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, head.to_string(), body.to_string()))
}

#[test]
fn the_stock_docker_cli_negotiates_and_reads_version_and_info() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    let v = d.docker(&[
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}",
    ])?;
    assert_eq!(
        v,
        format!("{} 1.45 1.45", env!("CARGO_PKG_VERSION")),
        "the client negotiates down to 1.45"
    );
    let info = d.docker(&[
        "info",
        "--format",
        "{{.ServerVersion}} {{.Images}} {{.CgroupDriver}} {{.DefaultRuntime}}",
    ])?;
    assert_eq!(
        info,
        format!("{} 0 cgroupfs berth-runc", env!("CARGO_PKG_VERSION"))
    );
    Ok(())
}

#[test]
fn raw_api_versions_pings_and_unknown_routes() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    let (s, head, body) = http(&d.sock(), "GET", "/_ping")?;
    assert_eq!((s, body.as_str()), (200, "OK"));
    assert!(
        head.to_ascii_lowercase().contains("api-version: 1.45"),
        "{head}"
    );
    let (s, _, body) = http(&d.sock(), "HEAD", "/v1.45/_ping")?;
    assert_eq!((s, body.as_str()), (200, ""));
    let (s, _, body) = http(&d.sock(), "GET", "/v1.12/version")?;
    assert_eq!(s, 400);
    assert!(body.contains("client version 1.12 is too old"), "{body}");
    let (s, _, body) = http(&d.sock(), "GET", "/v1.99/version")?;
    assert_eq!(s, 400);
    assert!(body.contains("too new"), "{body}");
    let (s, _, body) = http(&d.sock(), "GET", "/v1.45/no/such/route")?;
    assert_eq!(s, 404);
    let v: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(v["message"], "page not found");
    Ok(())
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused_and_a_stale_socket_is_reused() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    let out = Command::new(daemon_bin())
        .arg("-H")
        .arg(format!("unix://{}", d.sock().display()))
        .arg("--data-root")
        .arg(d.dir.path().join("data2"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    let path = d.dir.path().to_path_buf();
    drop(d); // SIGKILL: the socket file stays behind
    let stale = path.join("berth.sock");
    std::fs::create_dir_all(&path)?;
    if !stale.exists() {
        let _ = std::os::unix::net::UnixListener::bind(&stale)?;
    }
    let mut child = Command::new(daemon_bin())
        .arg("-H")
        .arg(format!("unix://{}", stale.display()))
        .arg("--data-root")
        .arg(path.join("data"))
        .stderr(Stdio::null())
        .spawn()?;
    let up = common::wait_until(Duration::from_secs(10), || {
        http(&stale, "GET", "/_ping").is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    common::berthd_net_cleanup(&path.join("data"));
    let _ = std::fs::remove_dir_all(&path);
    ensure!(up, "berthd did not take over the stale socket");
    Ok(())
}

#[test]
fn bad_arguments_get_one_clear_line() -> Result<()> {
    let out = Command::new(daemon_bin())
        .args(["-H", "tcp://0.0.0.0:2375"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only unix://PATH"), "{err}");
    let out = Command::new(daemon_bin()).arg("--bogus").output()?;
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    Ok(())
}
