//! Pre-started containers (berthd's `--prestart`, on by default): the same `docker run --rm`
//! done again and again finds its next container made ahead. What a user must see: every run
//! behaves exactly as a cold one (its own id and hostname, its own command, environment and exit
//! code, its events), nothing extra in `ps -a`, an image removal never blocked or leaving
//! anything behind, and nothing left after a daemon stop or a SIGKILL and restart.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use berthd::Berthd;
use common::{berthd_mounts, wait_until};

/// The command lines of the host's processes.
fn cmdlines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

/// Processes of pre-started containers of this daemon: shims started with --no-start whose
/// command line names the data root (their init children carry the same command line).
fn prestarted(data_root: &Path) -> usize {
    let root = data_root.display().to_string();
    cmdlines()
        .iter()
        .filter(|c| c.contains("berth-shim") && c.contains("--no-start") && c.contains(&root))
        .count()
}

/// Processes whose command line names `needle` (a container id: its shim and waiting init).
fn processes_naming(needle: &str) -> usize {
    cmdlines().iter().filter(|c| c.contains(needle)).count()
}

const RUN: &[&str] = &[
    "run",
    "--rm",
    "--network",
    "none",
    "busybox",
    "sh",
    "-c",
    // The nice value (stat's 19th field): a container made ahead at nice 19 runs at berthd's 0.
    "echo $HOSTNAME $(cut -d' ' -f19 /proc/self/stat) $X; exit 3",
];

/// One `docker run --rm` of RUN (with extra flags before the image), checked to run at nice 0:
/// its hostname and $X.
fn run_once(d: &Berthd, extra: &[&str]) -> Result<(String, String)> {
    let mut args: Vec<&str> = RUN[..4].to_vec();
    args.extend_from_slice(extra);
    args.extend_from_slice(&RUN[4..]);
    let out = d.docker(&args)?;
    ensure!(
        out.code == 3,
        "`docker {}` exited {} (want the container's 3): {}\n{}",
        args.join(" "),
        out.code,
        out.stderr,
        berthd::tail(&d.log(), 30)
    );
    let mut w = out.stdout.split_whitespace();
    let host = w.next().unwrap_or_default().to_string();
    ensure!(
        host.len() == 12 && host.bytes().all(|b| b.is_ascii_hexdigit()),
        "hostname {host:?} is not a short container id"
    );
    let nice = w.next().unwrap_or_default();
    ensure!(nice == "0", "the container runs at nice {nice:?}, not 0");
    Ok((host, w.next().unwrap_or_default().to_string()))
}

#[test]
fn repeated_rm_runs_take_prestarted_containers_that_behave_as_cold_ones() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let mut hosts = HashSet::new();
    for _ in 0..3 {
        let (h, _) = run_once(&d, &[])?;
        ensure!(hosts.insert(h.clone()), "hostname {h} seen twice");
    }
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&d.data_root()) > 0),
        "no container was made ahead after three identical runs\n{}",
        berthd::tail(&d.log(), 30)
    );
    ensure!(
        d.docker_ok(&["ps", "-aq"])?.is_empty(),
        "a pre-started container shows in ps -a"
    );

    // Claimed under a name: its own id, the create..destroy events under that name.
    let epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs())
    };
    let since = epoch();
    let (h, _) = run_once(&d, &["--name", "warm4"])?;
    ensure!(hosts.insert(h.clone()), "hostname {h} seen twice");
    let now = epoch();
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(now + 1).to_string(),
        "--filter",
        "container=warm4",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ])?;
    for action in ["create", "start", "die", "destroy"] {
        ensure!(
            events
                .lines()
                .any(|l| l.starts_with(&format!("{action} ")) && l.contains(&h)),
            "no {action} event of warm4 ({h}): {events:?}"
        );
    }

    // Another environment is another container, never the one made ahead for RUN.
    let (_, x) = run_once(&d, &["-e", "X=other"])?;
    ensure!(x == "other", "the run with -e X=other printed X={x:?}");
    let (_, x) = run_once(&d, &[])?;
    ensure!(x.is_empty(), "the plain run printed X={x:?}");

    // The image goes at once, and its pre-started containers with it.
    d.docker_ok(&["rmi", "busybox"])?;
    let root = d.data_root();
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&root) == 0
            && berthd_mounts(&root).is_empty()),
        "after rmi: {} pre-started shims, mounts {:?}",
        prestarted(&root),
        berthd_mounts(&root)
    );
    Ok(())
}

#[test]
fn no_prestarted_container_outlives_its_daemon() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    for _ in 0..3 {
        run_once(&d, &[])?;
    }
    let root = d.data_root();
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&root) > 0),
        "no container was made ahead after three identical runs"
    );
    // SIGKILL: the next daemon finds what never reached its store and removes it.
    d.restart()?;
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&root) == 0
            && berthd_mounts(&root).is_empty()),
        "after kill -9 and restart: {} pre-started shims, mounts {:?}",
        prestarted(&root),
        berthd_mounts(&root)
    );
    ensure!(d.docker_ok(&["ps", "-aq"])?.is_empty(), "ps -a not empty");
    // Directories in no record (pre-started ones, and removed ones whose teardown was still
    // queued at the kill) are deleted in the background after the start.
    let leftovers = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().len() == 64)
            .map(|e| e.path())
            .collect()
    };
    ensure!(
        wait_until(Duration::from_secs(10), || leftovers().is_empty()),
        "container dirs left: {:?}",
        leftovers()
    );
    // Runs go on, and made ahead again.
    for _ in 0..3 {
        run_once(&d, &[])?;
    }
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&root) > 0),
        "nothing made ahead after the restart"
    );
    Ok(())
}

#[test]
fn prestart_false_makes_nothing_ahead() -> Result<()> {
    require_root!();
    let d = Berthd::start_with(&["--prestart=false"])?;
    d.load_busybox()?;
    for _ in 0..4 {
        run_once(&d, &[])?;
    }
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        prestarted(&d.data_root()) == 0,
        "--prestart=false still made a container ahead"
    );
    Ok(())
}

#[test]
fn a_claimed_container_removed_before_its_start_leaves_nothing() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let create = ["create", "--rm", "busybox", "true"];
    for _ in 0..2 {
        let id = d.docker_ok(&create)?;
        d.docker_ok(&["rm", &id])?;
    }
    ensure!(
        wait_until(Duration::from_secs(10), || prestarted(&d.data_root()) > 0),
        "nothing made ahead after two identical creates"
    );
    // Claimed (its shim and init are up, waiting), then removed without a start.
    let id = d.docker_ok(&create)?;
    ensure!(
        d.docker_ok(&["ps", "-aq", "--no-trunc"])? == id,
        "the claimed container is not listed"
    );
    ensure!(processes_naming(&id) > 0, "{id} was not made ahead");
    d.docker_ok(&["rm", &id])?;
    ensure!(
        wait_until(Duration::from_secs(10), || processes_naming(&id) == 0
            && common::host_mounts_mentioning(&id).is_empty()
            && !d.data_root().join("containers").join(&id).exists()),
        "after rm of {id}: {} processes, mounts {:?}",
        processes_naming(&id),
        common::host_mounts_mentioning(&id)
    );
    Ok(())
}
