//! Stats, update, healthchecks and events of berthd as the stock docker CLI sees them: `docker
//! stats --no-stream` numbers, `docker update` reaching the cgroup, `--health-*` checks reaching
//! their states in `docker ps`, and `docker events` (past and live). Every test has its own
//! daemon and data root; a guard removes the containers (stopping their shims and unmounting
//! their rootfs) before the daemon is killed, even when the test fails.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use common::daemon_util::BerthDaemon;
use common::images::load_busybox;
use serde_json::Value;

/// A berthd whose containers are force-removed before it is killed.
struct Daemon(BerthDaemon);

impl Daemon {
    fn start() -> Result<Self> {
        let d = Daemon(BerthDaemon::start(&[])?);
        load_busybox(&d.0)?;
        Ok(d)
    }
}

impl std::ops::Deref for Daemon {
    type Target = BerthDaemon;
    fn deref(&self) -> &BerthDaemon {
        &self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(ids) = self.0.docker(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.0.docker(&args);
            }
        }
    }
}

/// `docker stats --no-stream` of one container as JSON.
fn stats_row(d: &Daemon, name: &str) -> Result<Value> {
    let out = d.docker_ok(&["stats", "--no-stream", "--format", "{{json .}}", name])?;
    serde_json::from_str(out.lines().next().unwrap_or("")).with_context(|| out.clone())
}

/// "1.5MiB" → bytes (the CLI's binary units).
fn bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let units = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1000),
        ("B", 1),
    ];
    units.iter().find_map(|(u, m)| {
        s.strip_suffix(u)
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|n| n * *m as f64)
    })
}

/// (usage, limit) from the MemUsage column "12KiB / 64MiB".
fn mem_usage(row: &Value) -> Result<(f64, f64)> {
    let m = row["MemUsage"].as_str().context("MemUsage")?;
    let (u, l) = m.split_once('/').context("usage / limit")?;
    Ok((bytes(u).context("usage")?, bytes(l).context("limit")?))
}

/// The container's memory limit as the kernel has it (v1 or v2).
fn cgroup_memory_limit(id: &str) -> Result<u64> {
    for p in [
        format!("/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/berth/{id}/memory.max"),
    ] {
        if let Ok(t) = std::fs::read_to_string(PathBuf::from(&p)) {
            return t.trim().parse().with_context(|| format!("{p}: {t}"));
        }
    }
    bail!("no memory cgroup file for {id}")
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<bool> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(false)
}

#[test]
fn stats_show_sane_numbers_and_update_changes_the_limit() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    let id = d.docker_ok(&[
        "run", "-d", "--name", "st", "-m", "64m", "busybox", "sleep", "600",
    ])?;
    let busy = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ])?;
    ensure!(!busy.is_empty());

    let row = stats_row(&d, "st")?;
    let (usage, limit) = mem_usage(&row)?;
    ensure!(usage > 0.0, "memory usage is zero: {row}");
    ensure!(limit == (64u64 << 20) as f64, "limit is not -m: {row}");
    ensure!(row["PIDs"] == "1", "pids: {row}");
    ensure!(row["Name"] == "st", "name: {row}");
    let cpu: f64 = row["CPUPerc"]
        .as_str()
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .context("CPU %")?;
    ensure!(
        (0.0..=5.0).contains(&cpu),
        "an idle container uses {cpu}% CPU"
    );
    // A spinning container: CPU % near one CPU (of however many the host has).
    let row = stats_row(&d, "busy")?;
    let cpu: f64 = row["CPUPerc"]
        .as_str()
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .context("CPU %")?;
    ensure!(
        cpu > 30.0 && cpu < 130.0,
        "a spinning container uses {cpu}% CPU"
    );
    // Without a limit: the host's memory.
    let (_, host) = mem_usage(&row)?;
    ensure!(host > (256u64 << 20) as f64, "limit without -m: {row}");

    // update: the record, the cgroup and stats agree.
    d.docker_ok(&[
        "update",
        "-m",
        "100m",
        "--memory-swap",
        "200m",
        "--pids-limit",
        "20",
        "st",
    ])?;
    ensure!(cgroup_memory_limit(&id)? == 100 << 20);
    let (_, limit) = mem_usage(&stats_row(&d, "st")?)?;
    ensure!(
        limit == (100u64 << 20) as f64,
        "stats limit after update: {limit}"
    );
    let hc = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}}",
        "st",
    ])?;
    ensure!(hc == "104857600 209715200 20", "inspect after update: {hc}");
    // Bad values are the client's error.
    let bad = d.docker(&["update", "--blkio-weight", "5", "st"])?;
    ensure!(
        bad.code != 0 && bad.stderr.contains("blkio weight"),
        "{bad:?}"
    );
    let bad = d.docker(&["update", "-m", "1k", "st"])?;
    ensure!(bad.code != 0, "a 1k memory limit was taken");

    // A stopped container: zeros, name and id.
    d.docker_ok(&["stop", "-t", "1", "st"])?;
    let row = stats_row(&d, "st")?;
    ensure!(row["PIDs"] == "0", "stopped container stats: {row}");
    // The update stays in the record for the next start.
    d.docker_ok(&["start", "st"])?;
    ensure!(cgroup_memory_limit(&id)? == 100 << 20);
    Ok(())
}

#[test]
fn healthchecks_reach_their_states() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "good",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ])?;
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "bad",
        "--health-cmd",
        "echo nope; exit 1",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "600",
    ])?;
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    ])?;
    d.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"])?;
    let status = |n: &str| d.docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", n]);
    ensure!(status("good")? == "starting" || status("good")? == "healthy");
    let ok = wait_for(Duration::from_secs(20), || {
        Ok(status("good")? == "healthy"
            && status("bad")? == "unhealthy"
            && status("slow")? == "unhealthy")
    })?;
    ensure!(
        ok,
        "states: good={} bad={} slow={}",
        status("good")?,
        status("bad")?,
        status("slow")?
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"])?;
    ensure!(
        ps.lines()
            .any(|l| l.starts_with("good Up") && l.ends_with("(healthy)")),
        "{ps}"
    );
    ensure!(
        ps.lines()
            .any(|l| l.starts_with("bad Up") && l.ends_with("(unhealthy)")),
        "{ps}"
    );
    let healthy = d.docker_ok(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"])?;
    ensure!(healthy == "good", "health=healthy: {healthy}");
    let none = d.docker_ok(&["ps", "--filter", "health=none", "--format", "{{.Names}}"])?;
    ensure!(none == "plain", "health=none: {none}");
    let log: Value =
        serde_json::from_str(&d.docker_ok(&["inspect", "-f", "{{json .State.Health}}", "bad"])?)?;
    ensure!(log["FailingStreak"].as_i64() >= Some(2), "{log}");
    ensure!(log["Log"][0]["Output"] == "nope\n", "{log}");
    ensure!(log["Log"][0]["ExitCode"] == 1, "{log}");
    let slow: Value = serde_json::from_str(&d.docker_ok(&[
        "inspect",
        "-f",
        "{{json .State.Health}}",
        "slow",
    ])?)?;
    ensure!(
        slow["Log"][0]["Output"] == "Health check exceeded timeout (1s)",
        "{slow}"
    );
    // The events say when the status changed.
    let ev = d.docker_ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        &now_arg(),
        "--filter",
        "event=health_status",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ])?;
    ensure!(ev.contains("good health_status: healthy"), "{ev}");
    ensure!(ev.contains("bad health_status: unhealthy"), "{ev}");
    // A stopped container's check stops; its status is unhealthy as Docker's.
    d.docker_ok(&["stop", "-t", "1", "good"])?;
    ensure!(status("good")? == "unhealthy");
    Ok(())
}

/// Now as `--until` takes it: with a fraction (`0s` would be truncated to the second, as the
/// docker CLI sends it, and miss this second's events, as Docker's daemon does too).
fn now_arg() -> String {
    format!("{:.3}", unix_now())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn events_show_a_runs_life() -> Result<()> {
    require_root!();
    let d = Daemon::start()?;
    let since = format!("{:.3}", unix_now() - 1.0);
    // A live stream, started before the run.
    let live_out = d.dir.path().join("live.txt");
    let mut live = d
        .docker_cmd()
        .args([
            "events",
            "--filter",
            "container=life",
            "--format",
            "{{.Type}} {{.Action}}",
        ])
        .stdout(std::fs::File::create(&live_out)?)
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let run = d.docker_ok(&["run", "--rm", "--name", "life", "busybox", "true"]);
    let ok = wait_for(Duration::from_secs(10), || {
        Ok(std::fs::read_to_string(&live_out)?.contains("container destroy"))
    });
    let _ = live.kill();
    let _ = live.wait();
    run?;
    let live_text = std::fs::read_to_string(&live_out)?;
    ensure!(ok?, "live events: {live_text}");
    let want = [
        "container create",
        "container start",
        "container die",
        "container destroy",
    ];
    let lines: Vec<&str> = live_text.lines().filter(|l| want.contains(l)).collect();
    ensure!(lines == want, "live events: {live_text}");

    // The same from the history, and the stream ends at `until`.
    let past = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now_arg(),
        "--filter",
        "container=life",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.image}}",
    ])?;
    let lines: Vec<&str> = past
        .lines()
        .filter(|l| want.iter().any(|w| l.starts_with(w)))
        .collect();
    ensure!(lines.len() == 4, "past events: {past}");
    ensure!(lines.iter().all(|l| l.ends_with("life busybox")), "{past}");
    // Filters: another name or type matches nothing of it.
    let other = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now_arg(),
        "--filter",
        "container=nothere",
    ])?;
    ensure!(other.is_empty(), "{other}");
    let images = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now_arg(),
        "--filter",
        "type=image",
        "--filter",
        "container=life",
    ])?;
    ensure!(images.is_empty(), "{images}");
    let die = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &now_arg(),
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.Attributes.exitCode}}",
    ])?;
    ensure!(die == "die 0", "{die}");
    // `until` in the future: the stream ends then, by itself.
    let t = Instant::now();
    let until = format!("{:.3}", unix_now() + 2.0);
    let out = Command::new(common::daemon_util::docker_bin())
        .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args(["events", "--since", &since, "--until", &until])
        .output()?;
    ensure!(out.status.success(), "{out:?}");
    let took = t.elapsed();
    ensure!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "the stream ended after {took:?}"
    );
    Ok(())
}
