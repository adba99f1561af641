//! The container part of berthd's Engine API as Docker's users meet it: the stock docker CLI
//! (and raw HTTP, and berth's own CLI) against a real berthd running real containers of
//! busybox. Each test has its own daemon, data root and CLI config (a drop guard removes the
//! containers, kills the daemon and its shims and unmounts what is left, even when the test
//! fails), so the tests run in parallel with each other and with the other test files. Every
//! wait is bounded; no test asserts wall time.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use berthd::Berthd;
use common::{cgroup_dir, run_cmd, wait_until};
use serde_json::Value;

const BB: &str = "busybox";

fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// A cgroup file of container `id` for controller `ctrl` (v1 name, v2 file as fallback).
fn cgroup_file(ctrl: &str, id: &str, v1: &str, v2: &str) -> Result<String> {
    let dir = cgroup_dir(ctrl, id).with_context(|| format!("no {ctrl} cgroup for {id}"))?;
    let p = if dir.join(v1).exists() {
        dir.join(v1)
    } else {
        dir.join(v2)
    };
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("read {}", p.display()))?
        .trim()
        .to_string())
}

#[test]
fn run_in_the_foreground_detached_with_rm_and_with_a_tty() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;

    // Output and exit codes come back as `docker run` shows them.
    let out = d.docker(&["run", BB, "echo", "hello from berth"])?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(out.stdout == "hello from berth\n", "{out:?}");
    let out = d.docker(&["run", BB, "sh", "-c", "echo out; echo err >&2; exit 3"])?;
    ensure!(out.code == 3, "exit code propagates: {out:?}");
    ensure!(out.stdout == "out\n", "{out:?}");
    ensure!(out.stderr.contains("err"), "{out:?}");
    // A missing program: 127, like Docker.
    let out = d.docker(&["run", BB, "/no/such/program"])?;
    ensure!(out.code == 127, "missing program: {out:?}");
    // stdin with -i.
    let out = d.docker_stdin(&["run", "-i", BB, "cat"], b"piped\n")?;
    ensure!(out.code == 0 && out.stdout == "piped\n", "{out:?}");

    // -d prints the id; the container runs.
    let id = d.docker_ok(&["run", "-d", "--name", "bg", BB, "sleep", "300"])?;
    ensure!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    ensure!(d.inspect("bg", "{{.State.Running}}")? == "true");
    ensure!(d.inspect("bg", "{{.Id}}")? == id);

    // --rm: gone after it exits (foreground and detached).
    let out = d.docker(&["run", "--rm", "--name", "gone", BB, "true"])?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(
        wait_until(Duration::from_secs(20), || d
            .docker(&["inspect", "gone"])
            .is_ok_and(|o| o.code != 0)),
        "--rm container still there"
    );
    d.docker_ok(&["run", "-d", "--rm", "--name", "gone2", BB, "true"])?;
    ensure!(
        wait_until(Duration::from_secs(20), || d
            .docker(&["inspect", "gone2"])
            .is_ok_and(|o| o.code != 0)),
        "detached --rm container still there"
    );

    // -it under a pseudo-terminal made by `script`: the container sees a TTY.
    let docker = common::daemon_util::docker_bin();
    let cmd = format!(
        "{} run -it --rm {BB} sh -c 'test -t 0 && test -t 1 && echo tty-yes; stty size; exit 4'",
        docker.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qfec", &cmd, "/dev/null"])
        .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
    let out = run_cmd(&mut script, None, Duration::from_secs(60))?;
    ensure!(out.stdout.contains("tty-yes"), "{out:?}");
    ensure!(out.code == 4, "exit code through the TTY: {out:?}");
    Ok(())
}

#[test]
fn run_flags_take_effect_inside_the_container_and_on_the_host() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let env_file = d.dir.path().join("env.list");
    std::fs::write(&env_file, "FROM_FILE=yes\n# a comment\nSECOND=2\n")?;
    let env_file = env_file.display().to_string();

    // -e, --env-file, -w, -u, --hostname, -l
    let out = d.docker_ok(&[
        "run",
        "--name",
        "flags",
        "-e",
        "GREETING=hi there",
        "--env-file",
        &env_file,
        "-w",
        "/tmp/work",
        "-u",
        "65534:65534",
        "--hostname",
        "myhost",
        "-l",
        "com.example.team=blue",
        BB,
        "sh",
        "-c",
        "echo \"$GREETING|$FROM_FILE|$SECOND\"; pwd; id -u; id -g; hostname",
    ])?;
    ensure!(
        lines(&out) == ["hi there|yes|2", "/tmp/work", "65534", "65534", "myhost"],
        "{out}"
    );
    ensure!(
        d.inspect("flags", "{{index .Config.Labels \"com.example.team\"}}")? == "blue",
        "label"
    );
    let ps = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "label=com.example.team=blue",
        "--format",
        "{{.Names}}",
    ])?;
    ensure!(ps == "flags", "{ps}");

    // --entrypoint replaces the image's; CMD becomes its arguments.
    let out = d.docker_ok(&["run", "--entrypoint", "echo", BB, "from", "entrypoint"])?;
    ensure!(out == "from entrypoint", "{out}");

    // --read-only: writes to the rootfs fail, /tmp is not special (no tmpfs asked).
    let out = d.docker(&["run", "--read-only", BB, "touch", "/x"])?;
    ensure!(out.code != 0, "touch on a read-only rootfs worked: {out:?}");
    ensure!(out.stderr.contains("Read-only file system"), "{out:?}");

    // Capabilities: Docker's default set, then --cap-add / --cap-drop.
    let caps = |extra: &[&str]| -> Result<u64> {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[BB, "grep", "CapEff", "/proc/self/status"]);
        let out = d.docker_ok(&args)?;
        let hex = out.split_whitespace().nth(1).context("no CapEff")?;
        Ok(u64::from_str_radix(hex, 16)?)
    };
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1 << 0;
    const NET_RAW: u64 = 1 << 13;
    let default = caps(&[])?;
    ensure!(
        default == docker_default_caps(),
        "default caps {default:#x}"
    );
    let added = caps(&["--cap-add", "NET_ADMIN"])?;
    ensure!(added == default | NET_ADMIN, "cap-add: {added:#x}");
    let dropped = caps(&["--cap-drop", "CHOWN", "--cap-drop", "net_raw"])?;
    ensure!(
        dropped == default & !(CHOWN | NET_RAW),
        "cap-drop: {dropped:#x}"
    );

    // no-new-privileges and seccomp=unconfined, as /proc/self/status shows them.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        BB,
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ])?;
    ensure!(out.ends_with('1'), "{out}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        BB,
        "grep",
        "-E",
        "NoNewPrivs|Seccomp:",
        "/proc/self/status",
    ])?;
    ensure!(out.contains("Seccomp:\t2"), "default seccomp filter: {out}");
    ensure!(out.contains("NoNewPrivs:\t0"), "{out}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        BB,
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ])?;
    ensure!(out.contains("Seccomp:\t0"), "unconfined: {out}");

    // --init: docker-init is pid 1, the command its child.
    let out = d.docker_ok(&["run", "--rm", "--init", BB, "cat", "/proc/1/cmdline"])?;
    ensure!(out.starts_with("/sbin/docker-init"), "{out:?}");
    ensure!(out.contains("cat"), "{out:?}");

    // Resource limits, checked in the container's cgroup on the host.
    let id = d.docker_ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "42",
        BB,
        "sleep",
        "300",
    ])?;
    let mem = cgroup_file("memory", &id, "memory.limit_in_bytes", "memory.max")?;
    ensure!(mem == (64u64 << 20).to_string(), "memory limit {mem}");
    let quota = cgroup_file("cpu", &id, "cpu.cfs_quota_us", "cpu.max")?;
    let period = cgroup_file("cpu", &id, "cpu.cfs_period_us", "cpu.max")?;
    ensure!(
        quota == "50000" && period == "100000" || quota == "50000 100000",
        "cpu quota {quota} period {period}"
    );
    let cpus = cgroup_file("cpuset", &id, "cpuset.cpus", "cpuset.cpus")?;
    ensure!(cpus == "0", "cpuset {cpus}");
    let pids = cgroup_file("pids", &id, "pids.max", "pids.max")?;
    ensure!(pids == "42", "pids.max {pids}");
    ensure!(d.inspect(&id, "{{.HostConfig.Memory}}")? == (64u64 << 20).to_string());
    ensure!(d.inspect(&id, "{{.HostConfig.NanoCpus}}")? == "500000000");
    ensure!(d.inspect(&id, "{{.HostConfig.PidsLimit}}")? == "42");
    Ok(())
}

/// Docker's default effective capabilities (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
/// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP) as a mask.
fn docker_default_caps() -> u64 {
    [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
        .iter()
        .fold(0, |m, b| m | (1u64 << b))
}

#[test]
fn lifecycle_verbs_of_the_docker_cli() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;

    // create → start → stop → start → kill → restart → pause → unpause → rm -f
    let id = d.docker_ok(&[
        "create",
        "--name",
        "life",
        BB,
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done",
    ])?;
    ensure!(d.inspect("life", "{{.State.Status}}")? == "created");
    ensure!(d.docker_ok(&["start", "life"])? == "life");
    ensure!(d.inspect("life", "{{.State.Status}}")? == "running");
    ensure!(d.docker_ok(&["stop", "-t", "10", "life"])? == "life");
    ensure!(d.inspect("life", "{{.State.Status}} {{.State.ExitCode}}")? == "exited 0");
    d.docker_ok(&["start", "life"])?;
    ensure!(d.docker_ok(&["kill", "life"])? == "life");
    ensure!(
        d.wait_inspect(
            "life",
            "{{.State.Status}}",
            "exited",
            Duration::from_secs(20)
        ),
        "kill did not stop it"
    );
    ensure!(d.inspect("life", "{{.State.ExitCode}}")? == "137");
    d.docker_ok(&["restart", "-t", "5", "life"])?;
    ensure!(d.inspect("life", "{{.State.Running}}")? == "true");
    d.docker_ok(&["pause", "life"])?;
    ensure!(d.inspect("life", "{{.State.Status}} {{.State.Paused}}")? == "paused true");
    let frozen = d.docker(&["pause", "life"])?;
    ensure!(
        frozen.code != 0 && frozen.stderr.contains("already paused"),
        "{frozen:?}"
    );
    d.docker_ok(&["unpause", "life"])?;
    ensure!(d.inspect("life", "{{.State.Status}}")? == "running");

    // logs: all, --tail, -t, --since, -f (bounded by the container's exit)
    ensure!(
        wait_until(Duration::from_secs(20), || d
            .docker(&["logs", "life"])
            .is_ok_and(|o| o.stdout.lines().count() >= 5)),
        "no log lines"
    );
    let logs = d.docker_ok(&["logs", "life"])?;
    // Every run's output, in order: the first run's, the TERM trap of the stop, the next runs'.
    ensure!(logs.starts_with("line0\n"), "{logs}");
    ensure!(logs.contains("got-term\nline0\n"), "{logs}");
    let tail = d.docker_ok(&["logs", "--tail", "2", "life"])?;
    ensure!(lines(&tail).len() == 2, "{tail}");
    let stamped = d.docker_ok(&["logs", "-t", "--tail", "1", "life"])?;
    let (ts, text) = stamped.split_once(' ').context("no timestamp")?;
    ensure!(
        ts.len() >= 20 && ts.ends_with('Z') && text.starts_with("line"),
        "{stamped}"
    );
    let future = d.docker_ok(&["logs", "--since", "2100-01-01T00:00:00Z", "life"])?;
    ensure!(future.is_empty(), "{future}");
    let out = d.docker_ok(&["run", "--name", "short", BB, "sh", "-c", "echo a; echo b"])?;
    ensure!(out == "a\nb");
    let followed = d.docker_ok(&["logs", "-f", "short"])?;
    ensure!(followed == "a\nb", "{followed}");

    // exec: output, exit code, -e, -u, -w, -d, -i
    let out = d.docker(&["exec", "life", "sh", "-c", "echo in-exec; exit 5"])?;
    ensure!(out.code == 5 && out.stdout == "in-exec\n", "{out:?}");
    let out = d.docker_ok(&[
        "exec",
        "-e",
        "V=1",
        "-u",
        "65534",
        "-w",
        "/tmp",
        "life",
        "sh",
        "-c",
        "echo $V; id -u; pwd",
    ])?;
    ensure!(lines(&out) == ["1", "65534", "/tmp"], "{out}");
    d.docker_ok(&[
        "exec",
        "-d",
        "life",
        "sh",
        "-c",
        "echo x > /tmp/from-exec-d",
    ])?;
    ensure!(
        wait_until(Duration::from_secs(20), || d
            .docker(&["exec", "life", "cat", "/tmp/from-exec-d"])
            .is_ok_and(|o| o.stdout == "x\n")),
        "exec -d did not run"
    );
    let out = d.docker_stdin(&["exec", "-i", "life", "cat"], b"to exec\n")?;
    ensure!(out.stdout == "to exec\n", "{out:?}");
    let docker = common::daemon_util::docker_bin();
    let mut script = Command::new("script");
    script
        .args([
            "-qfec",
            &format!(
                "{} exec -it life sh -c 'test -t 1 && echo exec-tty'",
                docker.display()
            ),
            "/dev/null",
        ])
        .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
    let out = run_cmd(&mut script, None, Duration::from_secs(60))?;
    ensure!(out.stdout.contains("exec-tty"), "{out:?}");

    // top, port, rename, inspect, ps
    let top = d.docker_ok(&["top", "life"])?;
    ensure!(top.starts_with("UID") && top.contains("sleep"), "{top}");
    let port = d.docker_ok(&["port", "life"])?;
    ensure!(port.is_empty(), "{port}");
    d.docker_ok(&["rename", "life", "renamed"])?;
    ensure!(d.inspect(&id, "{{.Name}}")? == "/renamed");
    let v: Value = serde_json::from_str(&d.docker_ok(&["inspect", "renamed"])?)?;
    ensure!(
        v[0]["Id"] == id.as_str() && v[0]["Config"]["Image"] == BB,
        "{v}"
    );
    ensure!(v[0]["State"]["Pid"].as_i64().unwrap_or(0) > 0, "{v}");

    let stopped = d.docker_ok(&["create", "--name", "never", BB, "true"])?;
    let q = d.docker_ok(&["ps", "-q"])?;
    ensure!(lines(&q) == [&id[..12]], "ps -q: {q}");
    let qa = d.docker_ok(&["ps", "-a", "-q", "--no-trunc"])?;
    let all: HashSet<&str> = lines(&qa).into_iter().collect();
    ensure!(
        all.contains(id.as_str()) && all.contains(stopped.as_str()),
        "{qa}"
    );
    let f = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "status=created",
        "--format",
        "{{.Names}} {{.Image}} {{.Status}}",
    ])?;
    ensure!(f == "never busybox Created", "{f}");
    let f = d.docker_ok(&["ps", "--filter", "name=renam", "--format", "{{.ID}}"])?;
    ensure!(f == id[..12], "{f}");

    // wait: the exit code.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "waiter",
        BB,
        "sh",
        "-c",
        "sleep 1; exit 9",
    ])?;
    let code = run_cmd(
        d.docker_cmd().args(["wait", "waiter"]),
        None,
        Duration::from_secs(30),
    )?;
    ensure!(code.stdout.trim() == "9", "{code:?}");

    // rm -f of a running one.
    d.docker_ok(&["rm", "-f", "renamed"])?;
    let gone = d.docker(&["inspect", &id])?;
    ensure!(gone.code == 1, "{gone:?}");
    Ok(())
}

#[test]
fn restart_policy_on_failure_counts_restarts() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        BB,
        "sh",
        "-c",
        "echo try; exit 1",
    ])?;
    ensure!(
        d.wait_inspect(
            "flaky",
            "{{.State.Status}} {{.RestartCount}}",
            "exited 2",
            Duration::from_secs(60)
        ),
        "state: {:?}\n{}",
        d.inspect("flaky", "{{.State.Status}} {{.RestartCount}}"),
        berthd::tail(&d.log(), 30)
    );
    ensure!(d.inspect("flaky", "{{.State.ExitCode}}")? == "1");
    ensure!(d.inspect("flaky", "{{.HostConfig.RestartPolicy.Name}}")? == "on-failure");
    let logs = d.docker_ok(&["logs", "flaky"])?;
    ensure!(lines(&logs) == ["try", "try", "try"], "{logs}");
    Ok(())
}

#[test]
fn errors_read_like_dockers() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;

    let out = d.docker(&["inspect", "nosuch"])?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr.contains("No such container: nosuch")
            || out.stderr.contains("No such object: nosuch"),
        "{out:?}"
    );
    for verb in ["start", "stop", "kill", "rm", "logs", "restart", "pause"] {
        let out = d.docker(&[verb, "nosuch"])?;
        ensure!(out.code == 1, "{verb}: {out:?}");
        ensure!(
            out.stderr.contains("No such container: nosuch"),
            "{verb}: {out:?}"
        );
    }

    d.docker_ok(&["run", "-d", "--name", "taken", BB, "sleep", "300"])?;
    let out = d.docker(&["run", "--name", "taken", BB, "true"])?;
    ensure!(out.code == 125, "{out:?}");
    ensure!(
        out.stderr
            .contains("Conflict. The container name \"/taken\" is already in use"),
        "{out:?}"
    );
    let (status, body) = d.http(
        "POST",
        "/v1.45/containers/create?name=taken",
        br#"{"Image":"busybox","Cmd":["true"]}"#,
    )?;
    ensure!(status == 409, "{status} {body}");
    let v: Value = serde_json::from_str(&body)?;
    ensure!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("already in use")),
        "{body}"
    );

    let out = d.docker(&["rm", "taken"])?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr.contains("cannot remove container")
            && out
                .stderr
                .contains("stop the container before removing or force remove"),
        "{out:?}"
    );

    // Bad bodies and parameters: 400 with Docker's JSON error body.
    for (path, body) in [
        ("/v1.45/containers/create", &b"{not json"[..]),
        ("/v1.45/containers/create", &br#"{"Image": 5}"#[..]),
        (
            "/v1.45/containers/create?name=a/b",
            &br#"{"Image":"busybox"}"#[..],
        ),
    ] {
        let (status, resp) = d.http("POST", path, body)?;
        ensure!(status == 400, "{path}: {status} {resp}");
        let v: Value = serde_json::from_str(&resp).with_context(|| resp.clone())?;
        ensure!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{resp}"
        );
    }
    let out = run_cmd(
        Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(d.sock())
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                "{\"Image\":",
                "http://berth/v1.45/containers/create",
            ]),
        None,
        Duration::from_secs(30),
    )?;
    ensure!(out.stdout.ends_with("\n400"), "{out:?}");
    let v: Value = serde_json::from_str(out.stdout.lines().next().unwrap_or(""))?;
    ensure!(v["message"].is_string(), "{out:?}");
    let (status, _) = d.http("GET", "/v1.45/containers/nosuch/json", b"")?;
    ensure!(status == 404);
    let out = d.docker(&["run", "nosuchimage:1.0", "true"])?;
    ensure!(out.code == 125, "{out:?}");
    Ok(())
}

/// A container that logs a counter every 100 ms.
const COUNTER: &str = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done";

fn log_len(d: &Berthd, name: &str) -> usize {
    d.docker(&["logs", name])
        .map(|o| o.stdout.lines().count())
        .unwrap_or(0)
}

#[test]
fn containers_outlive_a_killed_daemon() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    let n = 20;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(d.docker_ok(&[
            "run",
            "-d",
            "--name",
            &format!("c{i}"),
            BB,
            "sh",
            "-c",
            COUNTER,
        ])?);
    }
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "exits",
        BB,
        "sh",
        "-c",
        "sleep 2; exit 7",
    ])?;
    ensure!(
        wait_until(Duration::from_secs(30), || log_len(&d, "c0") >= 3),
        "no output yet"
    );
    d.kill9()?;
    // While berthd is down, one container exits and the others keep writing.
    std::thread::sleep(Duration::from_secs(3));
    d.restart()?;

    let running = d.docker_ok(&["ps", "-q", "--no-trunc"])?;
    let running: HashSet<&str> = lines(&running).into_iter().collect();
    for id in &ids {
        ensure!(
            running.contains(id.as_str()),
            "{id} not running after restart:\n{}",
            berthd::tail(&d.log(), 30)
        );
    }
    ensure!(
        d.wait_inspect(
            "exits",
            "{{.State.Status}} {{.State.ExitCode}}",
            "exited 7",
            Duration::from_secs(30)
        ),
        "exit while down: {:?}",
        d.inspect("exits", "{{.State.Status}} {{.State.ExitCode}}")
    );
    for i in [0, n / 2, n - 1] {
        let name = format!("c{i}");
        let before = log_len(&d, &name);
        ensure!(
            wait_until(Duration::from_secs(30), || log_len(&d, &name) > before),
            "{name} stopped logging after the restart"
        );
    }
    // The verbs work on restored containers.
    d.docker_ok(&["stop", "-t", "1", "c0", "c1"])?;
    ensure!(d.inspect("c0", "{{.State.Status}}")? == "exited");
    let out = d.docker_ok(&["exec", "c2", "echo", "exec-after-restore"])?;
    ensure!(out == "exec-after-restore");
    d.docker_ok(&["rm", "-f", "c3"])?;
    Ok(())
}

#[test]
fn a_hundred_concurrent_runs_through_the_api() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let sock = d.sock();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || -> Result<(String, String)> {
                // Half named by the client, half by berthd (generated names must not collide).
                let name = format!("par{i}");
                let query = if i % 2 == 0 {
                    format!("?name={name}")
                } else {
                    String::new()
                };
                let (st, body) = berthd::http(
                    &sock,
                    "POST",
                    &format!("/v1.45/containers/create{query}"),
                    br#"{"Image":"busybox","Cmd":["sleep","300"]}"#,
                )?;
                ensure!(st == 201, "create {name}: {st} {body}");
                let v: Value = serde_json::from_str(&body)?;
                let id = v["Id"].as_str().context("no Id")?.to_string();
                let (st, body) =
                    berthd::http(&sock, "POST", &format!("/v1.45/containers/{id}/start"), b"")?;
                ensure!(st == 204, "start {name}: {st} {body}");
                Ok((id, name))
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok((id, name))) => {
                ids.insert(id);
                names.insert(name);
            }
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(_) => errors.push("a thread panicked".into()),
        }
    }
    ensure!(
        errors.is_empty(),
        "{} failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    ensure!(ids.len() == 100 && names.len() == 100);
    let ps = d.docker_ok(&["ps", "-q", "--no-trunc"])?;
    let running: HashSet<String> = lines(&ps).into_iter().map(str::to_string).collect();
    ensure!(running == ids, "{} running of 100", running.len());
    let shown = d.docker_ok(&["ps", "--format", "{{.Names}}"])?;
    let shown: HashSet<&str> = lines(&shown).into_iter().collect();
    ensure!(shown.len() == 100, "{} distinct names of 100", shown.len());
    for i in (0..100).step_by(2) {
        ensure!(shown.contains(format!("par{i}").as_str()), "par{i} missing");
    }
    Ok(())
}

/// berth's own CLI: $BERTH_CLI, else target/release/berth.
fn berth_cli() -> PathBuf {
    std::env::var_os("BERTH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::workspace().join("target/release/berth"))
}

#[test]
fn the_berth_cli_drives_the_same_verbs() -> Result<()> {
    require_root!();
    let cli = berth_cli();
    if !cli.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p berth-cli` or set BERTH_CLI",
            cli.display()
        );
    }
    let d = Berthd::with_busybox()?;
    let berth = |args: &[&str]| {
        run_cmd(
            Command::new(&cli)
                .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
                .env("BERTH_HOST", format!("unix://{}", d.sock().display()))
                .args(["-H", &format!("unix://{}", d.sock().display())])
                .args(args),
            None,
            Duration::from_secs(60),
        )
    };
    let out = berth(&["run", BB, "sh", "-c", "echo via-berth; exit 3"])?;
    ensure!(out.code == 3 && out.stdout == "via-berth\n", "{out:?}");
    let out = berth(&["run", "-d", "--name", "b1", BB, "sleep", "300"])?.ok()?;
    let id = out.stdout.trim().to_string();
    ensure!(id.len() == 64, "{out:?}");
    let out = berth(&["ps", "-q", "--no-trunc"])?.ok()?;
    ensure!(out.stdout.trim() == id, "{out:?}");
    let out = berth(&["exec", "b1", "hostname"])?.ok()?;
    ensure!(id.starts_with(out.stdout.trim()), "{out:?}");
    let out = berth(&["inspect", "-f", "{{.State.Running}}", "b1"])?.ok()?;
    ensure!(out.stdout.trim() == "true", "{out:?}");
    berth(&["stop", "-t", "1", "b1"])?.ok()?;
    ensure!(d.inspect("b1", "{{.State.Status}}")? == "exited");
    berth(&["rm", "b1"])?.ok()?;
    let out = berth(&["rm", "b1"])?;
    ensure!(
        out.code == 1 && out.stderr.contains("No such container"),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn commit_diff_and_export() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "src",
        BB,
        "sh",
        "-c",
        // /tmp/added last: the test waits for it, then expects every change.
        "rm /etc/group; echo x >> /etc/passwd; echo data > /tmp/added; sleep 300",
    ])?;
    ensure!(
        wait_until(Duration::from_secs(20), || d
            .docker(&["exec", "src", "test", "-f", "/tmp/added"])
            .is_ok_and(|o| o.code == 0)),
        "the container did not write"
    );
    let diff = d.docker_ok(&["diff", "src"])?;
    let diff: Vec<&str> = lines(&diff);
    for want in [
        "A /tmp/added",
        "D /etc/group",
        "C /etc/passwd",
        "C /tmp",
        "C /etc",
    ] {
        ensure!(diff.contains(&want), "missing {want:?} in {diff:?}");
    }
    ensure!(
        !diff
            .iter()
            .any(|l| l.contains("hostname") || l.contains("resolv.conf")),
        "{diff:?}"
    );

    // Commit of a running container (paused meanwhile) with a change and a message.
    let img = d.docker_ok(&[
        "commit",
        "-m",
        "a message",
        "-a",
        "Ann Author",
        "-c",
        "ENV COMMITTED=yes",
        "src",
        "snap:v1",
    ])?;
    ensure!(img.starts_with("sha256:"), "{img}");
    ensure!(
        d.inspect("src", "{{.State.Status}}")? == "running",
        "unpaused after commit"
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "snap:v1",
        "sh",
        "-c",
        "cat /tmp/added; test -e /etc/group || echo no-group; tail -n1 /etc/passwd; echo $COMMITTED",
    ])?;
    ensure!(lines(&out) == ["data", "no-group", "x", "yes"], "{out}");
    ensure!(
        d.docker_ok(&["inspect", "-f", "{{.Author}}|{{.Comment}}", "snap:v1"])?
            == "Ann Author|a message"
    );
    let hist = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "snap:v1",
    ])?;
    ensure!(hist.lines().next() == Some("a message"), "{hist}");

    // Commit of a stopped container: its upper dir still holds the changes.
    d.docker_ok(&[
        "run",
        "--name",
        "stopped",
        BB,
        "sh",
        "-c",
        "echo later > /later",
    ])?;
    d.docker_ok(&["commit", "stopped", "snap:v2"])?;
    let out = d.docker_ok(&["run", "--rm", "snap:v2", "cat", "/later"])?;
    ensure!(out == "later");
    // Body overrides through the API (Docker's config merge).
    let (st, body) = d.http(
        "POST",
        "/v1.45/commit?container=stopped&repo=snap&tag=v3&pause=0",
        br#"{"Cmd":["cat","/later"]}"#,
    )?;
    ensure!(st == 201, "{st} {body}");
    let v: Value = serde_json::from_str(&body)?;
    ensure!(
        v["Id"].as_str().is_some_and(|s| s.starts_with("sha256:")),
        "{body}"
    );
    ensure!(d.docker_ok(&["run", "--rm", "snap:v3"])? == "later");
    let (st, _) = d.http("POST", "/v1.45/commit?container=nosuch", b"")?;
    ensure!(st == 404);
    let (st, body) = d.http(
        "POST",
        "/v1.45/commit?container=stopped&changes=FROB%20x",
        b"",
    )?;
    ensure!(st == 400, "{st} {body}");

    // Export: running (mounted) and stopped (mounted for the export, unmounted after).
    for name in ["src", "stopped"] {
        let tar = d.dir.path().join(format!("{name}.tar"));
        d.docker_ok(&["export", "-o", &tar.display().to_string(), name])?;
        let list = run_cmd(
            Command::new("tar").arg("-tf").arg(&tar),
            None,
            Duration::from_secs(30),
        )?
        .ok()?;
        let entries: HashSet<&str> = list
            .stdout
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
            .collect();
        ensure!(
            entries.contains("bin/busybox"),
            "{name}: {} entries",
            entries.len()
        );
        if name == "src" {
            ensure!(
                entries.contains("tmp/added") && !entries.contains("etc/group"),
                "{name}"
            );
        } else {
            ensure!(entries.contains("later"), "{name}");
        }
    }
    let id = d.inspect("stopped", "{{.Id}}")?;
    ensure!(
        common::host_mounts_mentioning(&format!("{id}/rootfs")).is_empty(),
        "the stopped container's rootfs stayed mounted after export"
    );
    // The events of both (history up to now: the stream ends there).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 1;
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &now.to_string(),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ])?;
    ensure!(
        ev.lines().any(|l| l == "commit") && ev.lines().any(|l| l == "export"),
        "{ev}"
    );
    Ok(())
}

#[test]
fn container_prune_and_system_df() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&["run", "--name", "done1", BB, "true"])?;
    d.docker_ok(&["create", "--name", "made", BB, "true"])?;
    d.docker_ok(&["run", "-d", "--name", "live", BB, "sleep", "300"])?;
    let df = d.docker_ok(&["system", "df"])?;
    ensure!(df.contains("Images") && df.contains("Containers"), "{df}");
    let out = d.docker_ok(&["container", "prune", "-f"])?;
    ensure!(out.contains("Deleted Containers:"), "{out}");
    ensure!(out.contains("Total reclaimed space"), "{out}");
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])?;
    ensure!(left == "live", "{left}");
    Ok(())
}

#[test]
fn system_prune() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&["run", "--name", "done1", BB, "true"])?;
    d.docker_ok(&["run", "-d", "--name", "live", BB, "sleep", "300"])?;
    let out = d.docker_ok(&["system", "prune", "-f"])?;
    ensure!(out.contains("Deleted Containers:"), "{out}");
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])?;
    ensure!(left == "live", "{left}");
    Ok(())
}

#[test]
fn mounts_devices_and_programs_that_cannot_run() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let src = tempfile::tempdir()?;
    std::fs::write(src.path().join("f"), "from the host\n")?;
    let bind = format!("type=bind,src={},dst=/data,readonly", src.path().display());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        &bind,
        "--mount",
        "type=tmpfs,dst=/scratch,tmpfs-size=1m",
        BB,
        "sh",
        "-c",
        "cat /data/f; touch /data/x 2>/dev/null || echo ro; df -k /scratch | tail -1",
    ])?;
    ensure!(out.starts_with("from the host\nro\n"), "{out}");
    ensure!(out.contains(" 1024 "), "tmpfs of 1 MiB: {out}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull:rw",
        BB,
        "sh",
        "-c",
        "echo x > /dev/mynull && echo wrote",
    ])?;
    ensure!(out == "wrote", "{out}");
    // Refused before anything is made, with Docker's wording.
    for (args, want) in [
        (
            vec!["--mount", "type=volume,src=v,dst=/v"],
            "volume name is too short",
        ),
        (
            vec!["--mount", "type=bind,src=/no/such/dir,dst=/v"],
            "bind source path does not exist",
        ),
        (vec!["--device", "/etc/passwd"], "not a device node"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend([BB, "true"]);
        let out = d.docker(&a)?;
        ensure!(out.code == 125 && out.stderr.contains(want), "{out:?}");
    }
    // Programs that exist but cannot run: 126, as with Docker; a missing one: 127.
    for (prog, code) in [("/etc", 126), ("/etc/passwd", 126), ("/no/such", 127)] {
        let out = d.docker(&["run", "--rm", BB, prog])?;
        ensure!(out.code == code, "{prog}: {out:?}");
    }
    let left = d.docker_ok(&["ps", "-aq"])?;
    ensure!(
        left.is_empty(),
        "--rm containers whose start failed are gone: {left}"
    );
    Ok(())
}

/// Drives `argv` under a pseudo-terminal: waits for `ready` in its output, types `line`, waits
/// for `expect`, then types `keys`; returns (exit code, output). Bounded: 30 s in all.
fn under_pty(
    argv: &[&str],
    env: &[(&str, String)],
    steps: &[(&str, &[u8])],
) -> Result<(i32, String)> {
    const PY: &str = r#"
import os, pty, sys, time, json, select
argv = json.loads(sys.argv[1]); steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b''
deadline = time.time() + 30
def read_until(want):
    global out
    while want.encode() not in out:
        if time.time() > deadline:
            raise SystemExit('timeout waiting for %r in %r' % (want, out))
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                b = os.read(fd, 4096)
            except OSError:
                raise SystemExit('eof waiting for %r in %r' % (want, out))
            if not b:
                raise SystemExit('eof waiting for %r in %r' % (want, out))
            out += b
for want, send in steps:
    read_until(want)
    os.write(fd, bytes(send))
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            out += os.read(fd, 4096)
        except OSError:
            pass
else:
    os.kill(pid, 9); os.waitpid(pid, 0)
    raise SystemExit('still running after the detach keys: %r' % out)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "out": out.decode('utf-8', 'replace')}))
"#;
    let steps: Vec<(String, Vec<u8>)> = steps
        .iter()
        .map(|(w, s)| (w.to_string(), s.to_vec()))
        .collect();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        PY,
        &serde_json::to_string(argv)?,
        &serde_json::to_string(&steps)?,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_cmd(&mut cmd, None, Duration::from_secs(40))?;
    ensure!(out.code == 0, "pty driver failed: {out:?}");
    let v: Value = serde_json::from_str(out.stdout.trim()).context("pty driver output")?;
    Ok((
        v["code"].as_i64().unwrap_or(-1) as i32,
        v["out"].as_str().unwrap_or_default().to_string(),
    ))
}

#[test]
fn detach_keys_leave_the_container_running() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let docker = common::daemon_util::docker_bin();
    let docker = docker.to_str().context("docker path")?;
    let env = [
        ("DOCKER_HOST", format!("unix://{}", d.sock().display())),
        (
            "DOCKER_CONFIG",
            d.dir.path().join("docker-config").display().to_string(),
        ),
        ("BERTH_HOST", format!("unix://{}", d.sock().display())),
        ("BERTH_NO_AUTOSTART", "1".to_string()),
    ];

    // docker run -it, then ctrl-p ctrl-q: the CLI exits 0, the shell keeps running.
    let (code, out) = under_pty(
        &[docker, "run", "-it", "--name", "det1", BB, "sh"],
        &env,
        &[("/ #", b"echo mark$((40+2))\n"), ("mark42", b"\x10\x11")],
    )?;
    ensure!(code == 0, "docker run -it detach exit code {code}: {out}");
    ensure!(
        d.inspect("det1", "{{.State.Running}}")? == "true",
        "det1 stopped on detach"
    );

    // berth attach with custom keys; a lone ctrl-p before them still reaches the shell.
    let cli = berth_cli();
    let cli = cli.to_str().context("berth path")?;
    let (code, out) = under_pty(
        &[cli, "attach", "--detach-keys", "ctrl-x,x", "det1"],
        &env,
        &[("", b"echo again$((1+1))\n"), ("again2", b"\x18x")],
    )?;
    ensure!(code == 0, "berth attach detach exit code {code}: {out}");
    ensure!(
        d.inspect("det1", "{{.State.Running}}")? == "true",
        "det1 stopped on berth detach"
    );

    // berth run -it with the default keys.
    let (code, out) = under_pty(
        &[cli, "run", "-it", "--name", "det2", BB, "sh"],
        &env,
        &[("/ #", b"echo m$((2+3))\n"), ("m5", b"\x10\x11")],
    )?;
    ensure!(code == 0, "berth run -it detach exit code {code}: {out}");
    ensure!(
        d.inspect("det2", "{{.State.Running}}")? == "true",
        "det2 stopped on detach"
    );

    // Bad keys: docker's usage error shape, nothing created.
    let out = std::process::Command::new(cli)
        .args([
            "run",
            "-it",
            "--detach-keys",
            "ctrl-1",
            "--name",
            "det3",
            BB,
            "true",
        ])
        .env("BERTH_HOST", format!("unix://{}", d.sock().display()))
        .env("BERTH_NO_AUTOSTART", "1")
        .output()?;
    ensure!(out.status.code() == Some(125), "{out:?}");
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("detach keys"),
        "{out:?}"
    );
    ensure!(
        d.docker(&["inspect", "det3"])?.code != 0,
        "det3 was created"
    );

    // The daemon itself ends a TTY attach at the keys (a raw hijacked API client, no CLI).
    const RAW: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(b"POST /containers/det2/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-%5E HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
assert b" 101 " in head.split(b"\r\n")[0], head
s.sendall(b"echo raw$((3+4))\n")
got = b""
while b"raw7" not in got:
    got += s.recv(4096)
s.sendall(b"\x1e")
t = time.time()
while True:
    b = s.recv(4096)
    if not b:
        break
print("closed")
"#;
    let mut py = Command::new("python3");
    py.args(["-c", RAW, &d.sock().display().to_string()]);
    let out = run_cmd(&mut py, None, Duration::from_secs(30))?;
    ensure!(
        out.code == 0 && out.stdout.contains("closed"),
        "daemon-side detach: {out:?}"
    );
    ensure!(
        d.inspect("det2", "{{.State.Running}}")? == "true",
        "det2 stopped on API detach"
    );
    Ok(())
}
