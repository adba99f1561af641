//! The `berth` binary against a real peer: a private dockerd (Docker's own daemon speaks the API
//! berth's CLI must speak). Each test starts its own dockerd in a fresh temp dir with its own
//! socket, so tests run in parallel, and stops it (and removes its files) even when a check fails.
//!
//! Skipped, with the reason printed, when not root, when dockerd is missing, or when no busybox
//! rootfs is available to import as the test image (`BERTH_TEST_ROOTFS`, default
//! `/var/cache/berth/rootfs`, made by scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    if Command::new("dockerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Some("dockerd not installed".into());
    }
    if !rootfs().join("bin/busybox").exists() {
        return Some(format!("no busybox rootfs at {}", rootfs().display()));
    }
    None
}

fn rootfs() -> PathBuf {
    std::env::var_os("BERTH_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth/rootfs"))
}

/// A private dockerd, stopped and cleaned up on drop.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    host: String,
}

impl Dockerd {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-cli-dockerd-")
            .tempdir()
            .expect("temp dir");
        let sock = dir.path().join("d.sock");
        let root = dir.path().join("root");
        let exec = dir.path().join("exec");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("log");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(&root)
            .arg("--exec-root")
            .arg(&exec)
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(dir.path().join("d.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Dockerd {
            child,
            host: format!("unix://{}", sock.display()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.berth(&["version"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default();
        panic!("dockerd did not answer in 60s:\n{log}");
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.args(args)
            .env("BERTH_HOST", &self.host)
            .env("BERTH_NO_AUTOSTART", "1")
            .env("BERTH_CONFIG", self.dir.path().join("cfg"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    /// Imports the busybox rootfs as `busybox:latest`.
    fn import_busybox(&self) {
        let tar = self.dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        let out = self.berth(&["import", tar.to_str().unwrap_or_default(), "busybox:latest"]);
        assert!(out.status.success(), "import: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("sha256:"),
            "{}",
            text(&out.stdout)
        );
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containers and unmount; SIGKILL if it takes too long.
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // Whatever dockerd left mounted under its root would stop the removal.
        unmount_below(self.dir.path());
    }
}

fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| Path::new(t).starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = rustix::mount::unmount(t, rustix::mount::UnmountFlags::DETACH);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

macro_rules! skip_unless_ready {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

#[test]
fn flag_errors_exit_125_without_a_daemon() {
    let out = Command::new(BERTH)
        .args(["run", "--bogus-flag", "img"])
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(125));
    let out = Command::new(BERTH)
        .args(["ps", "-n", "x"])
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(125));
    let out = Command::new(BERTH)
        .arg("--help")
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn no_daemon_and_no_autostart_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BERTH)
        .args(["ps"])
        .env(
            "BERTH_HOST",
            format!("unix://{}", dir.path().join("none.sock").display()),
        )
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Cannot connect to the berth daemon"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(BERTH)
        .args(["run", "--rm", "busybox", "true"])
        .env(
            "BERTH_HOST",
            format!("unix://{}", dir.path().join("none.sock").display()),
        )
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn container_verbs_against_dockerd() {
    skip_unless_ready!();
    let d = Dockerd::start();
    d.import_busybox();

    // Foreground run: output, exit codes, docker's 127 for a missing command.
    let out = d.berth(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", "echo e >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stderr), "e\n");
    let out = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).starts_with("berth: Error response from daemon: "));

    // stdin through -i.
    let mut c = d.cmd(&["run", "--rm", "-i", "busybox", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"through stdin\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(text(&out.stdout), "through stdin\n");

    // --sig-proxy (the default): a signal sent to the CLI reaches the container, and the CLI
    // exits with the container's code.
    let mut c = d.cmd(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    c.stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
    assert_eq!(line, "ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    assert_eq!(rest, "got TERM\n");
    assert_eq!(child.wait().expect("wait").code(), Some(7));

    // Detached: the full id, then ps, logs, exec, inspect, stop, rm.
    let out = d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 100",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let out = d.berth(&["ps"]);
    let ps = text(&out.stdout);
    assert!(
        ps.starts_with("CONTAINER ID   IMAGE     COMMAND   "),
        "{ps}"
    );
    assert!(ps.contains(&id[..12]) && ps.contains(" web\n"), "{ps}");
    let out = d.berth(&["ps", "--format", "{{.Names}}\\t{{.Labels}}\\t{{.State}}"]);
    assert_eq!(text(&out.stdout), "web\tk=v\trunning\n");
    let out = d.berth(&["ps", "-q", "--no-trunc"]);
    assert_eq!(text(&out.stdout).trim(), id);
    let out = d.berth(&["ps", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps json");
    assert_eq!(v["Names"], "web");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = d.berth(&["logs", "web"]);
        if text(&out.stdout) == "started\n" || Instant::now() > deadline {
            assert_eq!(text(&out.stdout), "started\n");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = d.berth(&["exec", "web", "sh", "-c", "echo $A; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "1\n");
    let out = d.berth(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.Config.Labels.k}}",
        "web",
    ]);
    assert_eq!(text(&out.stdout), "running v\n");
    let out = d.berth(&["inspect", "web"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(v[0]["Id"], id.as_str());
    assert!(text(&out.stdout).starts_with("[\n    {\n        \"Id\": "));
    let out = d.berth(&["container", "stop", "-t", "1", "web"]);
    assert_eq!(text(&out.stdout), "web\n");
    let out = d.berth(&["wait", "web"]);
    assert!(out.status.success());
    let out = d.berth(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(
        text(&out.stdout).starts_with("Exited ("),
        "{}",
        text(&out.stdout)
    );
    let out = d.berth(&["rm", "web", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "web\n");
    assert!(text(&out.stderr).contains("Error response from daemon: No such container: nosuch"));

    // Images.
    let out = d.berth(&["tag", "busybox", "bb:v2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.berth(&["images"]);
    let images = text(&out.stdout);
    assert!(
        images.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{images}"
    );
    assert!(images.contains("\nbb           v2        "), "{images}");
    let out = d.berth(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    names.sort();
    assert_eq!(names, vec!["bb:v2", "busybox:latest"]);
    let out = d.berth(&["rmi", "bb:v2"]);
    assert_eq!(text(&out.stdout), "Untagged: bb:v2\n");
    let out = d.berth(&["rmi", "nosuch:1"]);
    assert_eq!(out.status.code(), Some(1));
}
