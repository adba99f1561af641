//! `berth` starts berthd when nobody answers on the socket: the daemon next to the berth binary,
//! in its own session, logging into its data root. The test uses its own socket and
//! data root, and stops the daemon it caused to start (found by that unique socket path).
//!
//! Skipped, with the reason printed, when not root or when berthd was not built next to berth.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berthd() -> PathBuf {
    Path::new(BERTH).with_file_name("berthd")
}

/// Pids whose command line mentions `needle` (our unique socket path).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Stops the daemons started for this test, even if an assertion failed.
struct Cleanup {
    sock: String,
    /// The daemon's data root: its default bridge ("bt" + FNV-1a 32 of the path) and nft
    /// table go too.
    root: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in pids_mentioning(&self.sock) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_mentioning(&self.sock).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids_mentioning(&self.sock) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let mut h: u32 = 0x811c_9dc5;
        for b in self.root.as_os_str().as_encoded_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        let bridge = format!("bt{h:08x}");
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &format!("berth_{bridge}")])
            .stderr(std::process::Stdio::null())
            .status();
        // berthd keeps its run state on a tmpfs it mounts on its exec root (<root>/run).
        let _ = rustix::mount::unmount(self.root.join("run"), rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn starts_the_daemon_when_nobody_answers() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: not root");
        return;
    }
    if !berthd().exists() {
        eprintln!("skipped: {} not built", berthd().display());
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("berth-cli-autostart-")
        .tempdir()
        .expect("temp dir");
    let sock = dir.path().join("b.sock");
    let root = dir.path().join("root");
    let _cleanup = Cleanup {
        sock: sock.display().to_string(),
        root: root.clone(),
    };
    let run = |args: &[&str], autostart: bool| {
        let mut c = Command::new(BERTH);
        c.args(args)
            .env("BERTH_HOST", format!("unix://{}", sock.display()))
            .env("BERTH_DATA_ROOT", &root)
            .env_remove("DOCKER_HOST");
        if autostart {
            c.env_remove("BERTH_NO_AUTOSTART");
        } else {
            c.env("BERTH_NO_AUTOSTART", "1");
        }
        c.output().expect("run berth")
    };
    // Off: nobody is started.
    let out = run(&["version"], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(pids_mentioning(&sock.display().to_string()).is_empty());
    // On: the daemon comes up and answers, its output in the data root's run dir.
    let out = run(&["version"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Server:"), "{stdout}");
    assert!(root.join("berthd.log").exists());
    // Later commands find it running.
    let out = run(&["info", "--format", "{{.ServerVersion}}"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
