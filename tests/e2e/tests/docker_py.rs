//! The Docker SDK for Python (docker-py 7, $BERTH_PY: a venv's python that scripts/setup.sh
//! makes) against a real berthd: ping, version, images, containers.run (foreground and
//! detached), logs, exec_run, wait, stop, remove and a short events stream. The script
//! (docker_py.py next to this file) prints one line per check; the test asserts them.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use berthd::Berthd;
use common::run_cmd;

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("BERTH_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth/venv/bin/python"));
    p.exists().then_some(p)
}

#[test]
fn the_docker_sdk_for_python_runs_containers() -> Result<()> {
    require_root!();
    let Some(py) = python() else {
        eprintln!("skipping: no Python with the docker SDK (scripts/setup.sh; set BERTH_PY)");
        return Ok(());
    };
    let d = Berthd::with_busybox()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/docker_py.py");
    let out = run_cmd(
        Command::new(py).arg(&script).arg(d.sock()),
        None,
        Duration::from_secs(240),
    )?;
    let report = format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}\nberthd log (tail):\n{}",
        out.code,
        out.stdout,
        out.stderr,
        berthd::tail(&d.log(), 30)
    );
    ensure!(out.stdout.contains("\ndone 0\n"), "{report}");
    for check in [
        "ping",
        "version",
        "images.list",
        "images.get",
        "images.get missing",
        "run foreground",
        "run exit status",
        "run detach",
        "logs",
        "exec_run",
        "exec_run user",
        "containers.list",
        "stop",
        "wait",
        "remove",
        "wait exit code",
        "events",
        "networks.create",
        "networks.list",
        "ports",
        "resolve by name",
        "network containers",
        "networks.remove",
    ] {
        ensure!(
            out.stdout.lines().any(|l| l == format!("ok {check}")),
            "check {check:?} did not pass\n{report}"
        );
    }
    ensure!(out.code == 0, "{report}");
    Ok(())
}
