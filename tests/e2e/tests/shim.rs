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
    // The socket goes last, right after the state.
    assert!(common::wait_until(Duration::from_secs(5), || !shim
        .sock()
        .exists()));
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

// --- exec mode -------------------------------------------------------------------------------

/// A running container served by a container-mode shim, to exec into. The runtime's Drop
/// force-deletes it (which ends the shim and any exec shims) even when a test fails.
fn running_container(rt: &Runtime, prefix: &str) -> Result<(String, Shim, Bundle)> {
    let id = rt.id(prefix);
    let b = bundle(&["sleep", "1000"])?;
    let shim = launch(rt, &b, &id, &[])?;
    ensure!(
        shim.ready["pid"].as_i64().unwrap_or(0) > 0,
        "{}",
        shim.ready
    );
    Ok((id, shim, b))
}

/// The OCI `process` object berthd would write for `docker exec` of `args`.
fn exec_process(args: &[&str]) -> Value {
    common::base_config(args)["process"].clone()
}

/// Launches an exec-mode shim running `process` in container `id` and waits for its ready line.
fn launch_exec(rt: &Runtime, id: &str, process: &Value, extra: &[&str]) -> Result<Shim> {
    let name = rt.id("exec");
    let dir = rt.root.path().join(&name);
    let pjson = rt.root.path().join(format!("{name}.json"));
    std::fs::write(&pjson, serde_json::to_vec(process)?)?;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into our array.
    ensure!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
    // SAFETY: both fds were just created and are owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let status = Command::new(shim_bin())
        .args(["--exec", "--id", id, "--state-root"])
        .arg(rt.root.path())
        .arg("--dir")
        .arg(&dir)
        .arg("--process")
        .arg(&pjson)
        .args(["--ready-fd", &w.as_raw_fd().to_string()])
        .args(extra)
        .status()?;
    ensure!(status.success(), "the launcher exited with {status}");
    drop(w);
    let mut text = String::new();
    BufReader::new(std::fs::File::from(r)).read_line(&mut text)?;
    let ready: Value =
        serde_json::from_str(text.trim()).with_context(|| format!("ready line {text:?}"))?;
    Ok(Shim {
        log: dir.join("no-log"),
        dir,
        ready,
    })
}

/// Reads one 8-byte-framed chunk: (stream, data), None at EOF.
fn read_frame(c: &mut UnixStream) -> Result<Option<(u8, String)>> {
    let mut h = [0u8; 8];
    match c.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut data = vec![0u8; u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize];
    c.read_exact(&mut data)?;
    Ok(Some((h[0], String::from_utf8(data)?)))
}

/// Reads a terminal attach until `needle` shows up (or EOF); returns all that was read.
fn read_until(c: &mut UnixStream, needle: &str) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match c.read(&mut buf)? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn exec_output_reaches_an_attach_made_before_start_and_the_exit_is_recorded() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-echo")?;
    let init = ctr.ready["pid"].as_i64().unwrap_or(0) as i32;
    let p = exec_process(&["sh", "-c", "echo hi; echo oops >&2"]);
    let ex = launch_exec(&rt, &id, &p, &["--no-start"])?;
    assert_eq!(ex.ready, serde_json::json!({"pid": 0}));
    let (reply, attach) = ex.request(r#"{"type":"attach"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, watcher) = ex.request(r#"{"type":"attach","stdout":false,"stderr":false}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let pid = reply["pid"]
        .as_i64()
        .context("the start answer has no pid")?;
    ensure!(pid > 0 && pid != i64::from(init), "{reply}");
    let (out, err) = read_frames(attach)?;
    assert_eq!(out, "hi\n");
    assert_eq!(err, "oops\n");
    // The watcher's EOF comes after the exit record is in place.
    let mut w = watcher;
    assert_eq!(w.read(&mut [0u8; 16])?, 0);
    let exit: Value = serde_json::from_slice(&std::fs::read(ex.dir.join("exit"))?)?;
    assert_eq!(exit["exitCode"], 0);
    assert_eq!(exit["pid"], pid);
    assert_eq!(exit["oomKilled"], false);
    assert!(common::wait_until(Duration::from_secs(5), || !ex
        .sock()
        .exists()));
    // No json-file log for exec output; the container runs on.
    assert!(!ex.log.exists());
    assert!(common::pid_alive(init));
    let reply = ex
        .request(r#"{"type":"start"}"#)
        .map(|(r, _)| r)
        .unwrap_or_default();
    assert!(reply.is_null(), "the exec shim is gone: {reply}");
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn exec_exit_codes_and_kill_propagate() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-code")?;
    // Started right away: the ready line carries the pid.
    let ex = launch_exec(&rt, &id, &exec_process(&["sh", "-c", "exit 3"]), &[])?;
    let pid = ex.ready["pid"].as_i64().context("ready line has no pid")?;
    ensure!(pid > 0, "{}", ex.ready);
    let exit = ex.exit(Duration::from_secs(10))?;
    assert_eq!(exit["exitCode"], 3);
    assert_eq!(exit["pid"], pid);

    let ex = launch_exec(&rt, &id, &exec_process(&["sleep", "1000"]), &[])?;
    let (reply, _) = ex.request(r#"{"type":"kill","signal":9}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 137);

    // Kill before start is refused clearly; a start twice too.
    let ex = launch_exec(&rt, &id, &exec_process(&["true"]), &["--no-start"])?;
    let (reply, _) = ex.request(r#"{"type":"kill","signal":15}"#)?;
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("not started"),
        "{reply}"
    );
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = ex
        .request(r#"{"type":"start"}"#)
        .map(|(r, _)| r)
        .unwrap_or_default();
    assert!(reply["ok"] != true, "{reply}");
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 0);
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn exec_env_cwd_and_user_come_from_the_process_json() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-env")?;
    let mut p = exec_process(&["sh", "-c", "echo $FOO; pwd; id -u; id -g"]);
    p["env"] = serde_json::json!(["PATH=/bin:/usr/bin", "FOO=bar baz"]);
    p["cwd"] = serde_json::json!("/tmp");
    p["user"] = serde_json::json!({"uid": 1000, "gid": 1001});
    let ex = launch_exec(&rt, &id, &p, &["--no-start"])?;
    let (_, attach) = ex.request(r#"{"type":"attach"}"#)?;
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (out, err) = read_frames(attach)?;
    assert_eq!(out, "bar baz\n/tmp\n1000\n1001\n", "stderr: {err}");
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 0);
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn exec_with_a_terminal_is_resizable_before_and_after_start() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-tty")?;
    let p = exec_process(&["sh", "-c", "stty size; tty; read x; stty size; echo got:$x"]);
    let ex = launch_exec(&rt, &id, &p, &["--tty", "--stdin", "--no-start"])?;
    let (_, mut attach) = ex.request(r#"{"type":"attach","stdin":true}"#)?;
    // Before start there is no terminal yet: the size is applied when it is made.
    let (reply, _) = ex.request(r#"{"type":"resize","rows":33,"cols":101}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let first = read_until(&mut attach, "/dev/pts/")?;
    assert!(first.contains("33 101"), "{first:?}");
    let (reply, _) = ex.request(r#"{"type":"resize","rows":40,"cols":120}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    attach.write_all(b"typed\n")?;
    let rest = read_until(&mut attach, "got:typed")?;
    assert!(rest.contains("40 120"), "{rest:?}");
    assert!(rest.contains("got:typed\r\n"), "{rest:?}");
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 0);

    // Without --tty, a resize is refused.
    let ex = launch_exec(&rt, &id, &exec_process(&["true"]), &["--no-start"])?;
    let (reply, _) = ex.request(r#"{"type":"resize","rows":1,"cols":1}"#)?;
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("no terminal"),
        "{reply}"
    );
    ex.request(r#"{"type":"start"}"#)?;
    ex.exit(Duration::from_secs(10))?;
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn exec_stdin_ends_with_close_stdin() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-stdin")?;
    let ex = launch_exec(
        &rt,
        &id,
        &exec_process(&["cat"]),
        &["--stdin", "--no-start"],
    )?;
    let (_, mut attach) = ex.request(r#"{"type":"attach","stdin":true}"#)?;
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    attach.write_all(b"hello\n")?;
    assert_eq!(read_frame(&mut attach)?, Some((1, "hello\n".to_string())));
    // The attach still holds its stdin open: close-stdin ends cat.
    let (reply, _) = ex.request(r#"{"type":"close-stdin"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(read_frame(&mut attach)?, None);
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 0);
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn exec_into_a_stopped_or_unknown_container_is_a_clear_error() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let unknown = rt.id("exec-nope");
    let ex = launch_exec(&rt, &unknown, &exec_process(&["true"]), &[])?;
    let e = ex.ready["error"].as_str().unwrap_or("");
    assert!(
        e.contains(&unknown) && e.contains("does not exist"),
        "{}",
        ex.ready
    );
    assert!(!ex.sock().exists() && !ex.dir.join("exit").exists());

    // A container whose init has exited, state still there.
    let id = rt.id("exec-stopped");
    let b = Bundle::new(&["true"])?;
    rt.run_detached(&b, &id)?;
    ensure!(common::wait_until(Duration::from_secs(10), || rt
        .state(&id)
        .is_ok_and(|s| s["status"] == "stopped")));
    let ex = launch_exec(&rt, &id, &exec_process(&["true"]), &["--no-start"])?;
    let e = ex.ready["error"].as_str().unwrap_or("");
    assert!(e.contains(&id) && e.contains("stopped"), "{}", ex.ready);
    assert!(!ex.sock().exists() && !ex.dir.join("exit").exists());

    // A process file that is not a process object.
    let (id, ctr, _b) = running_container(&rt, "exec-badjson")?;
    let ex = launch_exec(&rt, &id, &serde_json::json!({"args": "sh"}), &[])?;
    let e = ex.ready["error"].as_str().unwrap_or("");
    assert!(
        e.contains("not an OCI runtime-spec process"),
        "{}",
        ex.ready
    );
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;

    // Arguments.
    let out = Command::new(shim_bin())
        .args(["--exec", "--id", "x", "--state-root", "/r", "--dir", "/d"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--process is required"), "{err}");
    Ok(())
}

#[test]
fn exec_of_a_missing_program_answers_an_error_and_records_127() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (id, ctr, _b) = running_container(&rt, "exec-missing")?;
    // Through start: the requester gets the error line, the attach its EOF after the record.
    let ex = launch_exec(
        &rt,
        &id,
        &exec_process(&["no-such-program"]),
        &["--no-start"],
    )?;
    let (_, mut attach) = ex.request(r#"{"type":"attach"}"#)?;
    let (reply, _) = ex.request(r#"{"type":"start"}"#)?;
    let e = reply["error"].as_str().unwrap_or("");
    assert!(
        e.contains("no-such-program") && e.contains("executable file not found"),
        "{reply}"
    );
    assert_eq!(read_frame(&mut attach)?, None);
    let exit: Value = serde_json::from_slice(&std::fs::read(ex.dir.join("exit"))?)?;
    assert_eq!(exit["exitCode"], 127);
    assert_eq!(exit["pid"], 0);
    assert!(common::wait_until(Duration::from_secs(5), || !ex
        .sock()
        .exists()));

    // Started right away: the ready line is the error, and the record says 127 too.
    let ex = launch_exec(&rt, &id, &exec_process(&["/bin/no-such-program"]), &[])?;
    let e = ex.ready["error"].as_str().unwrap_or("");
    assert!(e.contains("no-such-program"), "{}", ex.ready);
    assert_eq!(ex.exit(Duration::from_secs(10))?["exitCode"], 127);

    // A file that is not executable, and a directory: 126 like Docker.
    for prog in ["/etc/passwd", "/etc"] {
        let ex = launch_exec(&rt, &id, &exec_process(&[prog]), &[])?;
        let e = ex.ready["error"].as_str().unwrap_or("");
        assert!(
            e.contains("permission denied") || e.contains("is a directory"),
            "{}",
            ex.ready
        );
        let code = ex.exit(Duration::from_secs(10))?["exitCode"].as_i64();
        assert_eq!(code, Some(126), "{prog}");
    }
    assert!(common::pid_alive(
        ctr.ready["pid"].as_i64().unwrap_or(0) as i32
    ));
    ctr.request(r#"{"type":"kill","signal":9}"#)?;
    ctr.exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn watchers_and_many_attach_clients_see_eof_only_after_the_exit_record() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-watch");
    let b = bundle(&["sh", "-c", "echo one; sleep 0.2; echo two; exit 5"])?;
    let shim = launch(&rt, &b, &id, &["--no-start"])?;
    let exit_path = shim.dir.join("exit");
    let mut readers = Vec::new();
    for i in 0..12 {
        let (reply, c) = if i % 2 == 0 {
            shim.request(r#"{"type":"attach","stdin":false,"stdout":false,"stderr":false}"#)?
        } else {
            shim.request(r#"{"type":"attach"}"#)?
        };
        assert_eq!(reply["ok"], true, "{reply}");
        c.set_read_timeout(Some(Duration::from_secs(20)))?;
        let exit_path = exit_path.clone();
        readers.push(std::thread::spawn(move || -> Result<String> {
            let mut c = c;
            let mut out = Vec::new();
            c.read_to_end(&mut out)?;
            // At EOF, the record must already be there: no waiting.
            ensure!(
                exit_path.exists(),
                "EOF before the exit record (client {i})"
            );
            Ok(String::from_utf8_lossy(&out).into_owned())
        }));
    }
    // A watcher that hangs up early is forgotten without harm.
    drop(shim.request(r#"{"type":"attach","stdout":false,"stderr":false}"#)?);
    let (reply, _) = shim.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    for (i, r) in readers.into_iter().enumerate() {
        let out = r
            .join()
            .map_err(|_| anyhow::anyhow!("reader {i} panicked"))??;
        if i % 2 == 0 {
            assert_eq!(out, "", "watcher {i} got output");
        } else {
            assert!(
                out.contains("one\n") && out.contains("two\n"),
                "{i}: {out:?}"
            );
        }
    }
    assert_eq!(shim.exit(Duration::from_secs(1))?["exitCode"], 5);
    assert!(reply["pid"].as_i64().unwrap_or(0) > 0, "{reply}");
    Ok(())
}

#[test]
fn a_client_that_stops_reading_holds_up_nobody_and_loses_nothing() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("shim-slow");
    // 8 MB of output: more than a client's socket buffer (4 MiB), less than its backlog.
    let b = bundle(&[
        "sh",
        "-c",
        "head -c 8000000 /dev/zero | tr '\\0' z; echo; echo marker; sleep 60",
    ])?;
    let shim = launch(&rt, &b, &id, &["--no-start"])?;
    let (reply, mut reader) = shim.request(r#"{"type":"attach"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, mut stalled) = shim.request(r#"{"type":"attach"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    let (reply, _) = shim.request(r#"{"type":"start"}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    // The reading client gets everything while the other reads nothing.
    let count = |c: &mut UnixStream| -> Result<usize> {
        let mut a = 0usize;
        loop {
            let Some((kind, text)) = read_frame(c)? else {
                bail!("EOF before the marker ({a} bytes of output)");
            };
            ensure!(kind == 1, "stream {kind}");
            a += text.bytes().filter(|b| *b == b'z').count();
            if text.contains("marker") {
                return Ok(a);
            }
        }
    };
    assert_eq!(count(&mut reader)?, 8_000_000);
    // A client that was slow for a while (longer than any write timeout) is still attached and
    // then gets all of it: the shim kept its backlog instead of blocking or dropping it.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&mut stalled)?, 8_000_000);
    // The log has it all too.
    let logged: usize = shim
        .log_lines()?
        .iter()
        .filter_map(|l| l["log"].as_str())
        .map(|s| s.bytes().filter(|b| *b == b'z').count())
        .sum();
    assert_eq!(logged, 8_000_000);
    let (reply, _) = shim.request(r#"{"type":"kill","signal":9}"#)?;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(shim.exit(Duration::from_secs(10))?["exitCode"], 137);
    Ok(())
}
