//! berth-shim end to end: it creates the container, logs its output in Docker's json-file
//! format, serves attach (framed streams, stdin, a terminal, resize), start and kill on its
//! socket, records the exit status, cleans up after the container, and detaches from whoever
//! launched it. Needs root; skips (with a message) otherwise.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::{Bundle, Runtime};
use serde_json::Value;

fn shim_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SHIM") {
        return PathBuf::from(p);
    }
    let ws = common::workspace();
    for p in ["target/release/berth-shim", "target/debug/berth-shim"] {
        let p = ws.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!("berth-shim not built: run `cargo build --release -p berth-runtime` or set BERTH_SHIM");
}

/// A launched shim: its directory (exit record, socket), log, and the ready message.
struct Shim {
    dir: PathBuf,
    log: PathBuf,
    ready: Value,
}

impl Shim {
    fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }

    fn exit(&self, timeout: Duration) -> Result<Value> {
        let p = self.dir.join("exit");
        ensure!(
            common::wait_until(timeout, || p.exists()),
            "no exit record in {}",
            self.dir.display()
        );
        Ok(serde_json::from_slice(&std::fs::read(&p)?)?)
    }

    fn log_lines(&self) -> Result<Vec<Value>> {
        std::fs::read_to_string(&self.log)?
            .lines()
            .map(|l| serde_json::from_str(l).context("a log line is not JSON"))
            .collect()
    }

    /// Sends one request and returns the reply line and the connection.
    fn request(&self, req: &str) -> Result<(Value, UnixStream)> {
        let mut c = UnixStream::connect(self.sock())?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        c.write_all(req.as_bytes())?;
        c.write_all(b"\n")?;
        let mut line = String::new();
        let mut r = BufReader::new(c.try_clone()?);
        r.read_line(&mut line)?;
        Ok((serde_json::from_str(&line)?, c))
    }
}

/// Launches berth-shim for `bundle` as berthd would and waits for its ready line.
fn launch(rt: &Runtime, bundle: &Bundle, id: &str, extra: &[&str]) -> Result<Shim> {
    let dir = rt.root.path().join(format!("shim-{id}"));
    let log = rt.root.path().join(format!("{id}.log"));
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into our array.
    ensure!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
    // SAFETY: both fds were just created and are owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let status = Command::new(shim_bin())
        .args(["--id", id, "--bundle"])
        .arg(bundle.path())
        .arg("--state-root")
        .arg(rt.root.path())
        .arg("--dir")
        .arg(&dir)
        .arg("--log")
        .arg(&log)
        .args(["--ready-fd", &w.as_raw_fd().to_string()])
        .args(extra)
        .status()?;
    ensure!(status.success(), "the launcher exited with {status}");
    drop(w);
    // One line; not EOF: the container's init holds a copy of the pipe until it execs.
    let mut text = String::new();
    BufReader::new(std::fs::File::from(r)).read_line(&mut text)?;
    let ready: Value =
        serde_json::from_str(text.trim()).with_context(|| format!("ready line {text:?}"))?;
    Ok(Shim { dir, log, ready })
}

fn bundle(args: &[&str]) -> Result<Bundle> {
    let b = Bundle::new(args)?;
    b.write()?;
    Ok(b)
}

/// Reads 8-byte-framed attach output until EOF: (stdout, stderr).
fn read_frames(mut c: UnixStream) -> Result<(String, String)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let mut h = [0u8; 8];
        match c.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let n = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut data = vec![0u8; n];
        c.read_exact(&mut data)?;
        match h[0] {
            1 => out.extend(data),
            2 => err.extend(data),
            t => bail!("unknown stream type {t}"),
        }
    }
    Ok((String::from_utf8(out)?, String::from_utf8(err)?))
}

#[test]
fn logs_in_json_file_format_and_records_the_exit_code() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-log");
    let b = bundle(&[
        "sh",
        "-c",
        "echo out1; echo err1 >&2; printf partial; exit 3",
    ])?;
    let shim = launch(&rt, &b, &id, &[])?;
    let pid = shim.ready["pid"]
        .as_i64()
        .context("ready line has no pid")?;
    ensure!(pid > 0);
    let exit = shim.exit(Duration::from_secs(10))?;
    assert_eq!(exit["exitCode"], 3);
    assert_eq!(exit["pid"], pid);
    assert_eq!(exit["oomKilled"], false);
    let lines = shim.log_lines()?;
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap_or("").to_string(),
                l["log"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("stderr".to_string(), "err1\n".to_string()),
            ("stdout".to_string(), "out1\n".to_string()),
            ("stdout".to_string(), "partial".to_string()),
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
    // The OCI container is gone: no state, no cgroup; the socket too.
    assert!(common::wait_until(Duration::from_secs(5), || !rt
        .state_dir(&id)
        .exists()));
    assert!(
        common::cgroup_dirs(&id).is_empty(),
        "{:?}",
        common::cgroup_dirs(&id)
    );
    assert!(!shim.sock().exists());
    Ok(())
}

#[test]
fn attach_before_start_sees_all_output_and_feeds_stdin() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-attach");
    let b = bundle(&["sh", "-c", "echo ready; read x; echo got:$x; echo bye >&2"])?;
    let shim = launch(&rt, &b, &id, &["--stdin", "--no-start"])?;
    let (reply, attach) = shim.request(r#"{"type":"attach","stdin":true}"#)?;
    assert_eq!(reply["ok"], true);
    let (reply, _) = shim.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut w = attach.try_clone()?;
    w.write_all(b"hello\n")?;
    w.shutdown(std::net::Shutdown::Write)?;
    let (out, err) = read_frames(attach)?;
    assert_eq!(out, "ready\ngot:hello\n");
    assert_eq!(err, "bye\n");
    assert_eq!(shim.exit(Duration::from_secs(10))?["exitCode"], 0);
    Ok(())
}

#[test]
fn a_terminal_is_raw_resizable_and_logged() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-tty");
    let mut b = Bundle::new(&["sh", "-c", "sleep 0.3; stty size; tty; echo hi"])?;
    b.config["process"]["terminal"] = serde_json::json!(true);
    b.write()?;
    let shim = launch(&rt, &b, &id, &["--tty", "--no-start"])?;
    let (_, attach) = shim.request(r#"{"type":"attach"}"#)?;
    let (reply, _) = shim.request(r#"{"type":"resize","rows":33,"cols":101}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, _) = shim.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut out = String::new();
    let mut a = attach;
    a.read_to_string(&mut out)?;
    assert!(out.contains("33 101"), "{out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(
        out.contains("hi\r\n"),
        "a terminal turns \\n into \\r\\n: {out:?}"
    );
    assert_eq!(shim.exit(Duration::from_secs(10))?["exitCode"], 0);
    let logged: String = shim
        .log_lines()?
        .iter()
        .filter_map(|l| l["log"].as_str().map(String::from))
        .collect();
    assert!(logged.contains("hi"), "{logged:?}");
    Ok(())
}

#[test]
fn kill_goes_to_the_init_and_the_shim_outlives_its_launcher() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-kill");
    let b = bundle(&["sleep", "1000"])?;
    let shim = launch(&rt, &b, &id, &[])?;
    // The launcher has exited; the shim (a new session) still serves the container.
    let pid = shim.ready["pid"].as_i64().unwrap_or(0) as i32;
    assert!(common::pid_alive(pid));
    let (reply, _) = shim.request(r#"{"type":"kill","signal":9}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(shim.exit(Duration::from_secs(10))?["exitCode"], 137);
    assert!(common::wait_until(Duration::from_secs(5), || !shim
        .sock()
        .exists()));
    Ok(())
}

#[test]
fn bad_requests_and_bad_bundles_get_clear_errors() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-bad");
    let b = bundle(&["sleep", "1000"])?;
    let shim = launch(&rt, &b, &id, &[])?;
    let (reply, _) = shim.request("{not json")?;
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("bad request"),
        "{reply}"
    );
    let (reply, _) = shim.request(r#"{"type":"resize","rows":1,"cols":1}"#)?;
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("no terminal"),
        "{reply}"
    );
    shim.request(r#"{"type":"kill","signal":9}"#)?;
    shim.exit(Duration::from_secs(10))?;

    // A bundle whose rootfs is missing: the ready line carries the error, nothing is left.
    let id = rt.id("shim-norootfs");
    let b = bundle(&["true"])?;
    std::fs::remove_dir_all(b.rootfs())?;
    let shim = launch(&rt, &b, &id, &[])?;
    let e = shim.ready["error"].as_str().unwrap_or("");
    assert!(e.contains("root.path"), "{}", shim.ready);
    assert!(!rt.state_dir(&id).exists());
    assert!(common::cgroup_dirs(&id).is_empty());

    // Arguments: one clear line and exit status 2.
    let out = Command::new(shim_bin()).args(["--id", "x"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bundle is required"), "{err}");
    Ok(())
}
