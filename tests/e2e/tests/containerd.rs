//! containerd drives berth-runc (issue 2, point 3): a private containerd 1.6 (Debian's) with its
//! own root, state and socket; a busybox image built here as a docker-archive tar and imported
//! with `ctr`; then `ctr run --runc-binary <berth-runc>` through the io.containerd.runc.v2 shim:
//! run, exit codes, null IO, detached run, exec (plain, tty, --user/--cwd, failing), joining a
//! network namespace by path, ps, pause/resume, metrics, kill --all, kill of a stopped task,
//! task delete (plain and --force), container delete, a tty run, an OOM kill reported as a
//! containerd event, checkpoint refused clearly, a containerd restart under a running container,
//! and a create error surfacing through the shim. The verbs `ctr` has no command for
//! (`update --resources -`, `events --stats`, `state`, `ps --format json`) are checked by calling
//! berth-runc on the shim's own state root while the shim owns the container.
//!
//! The test passes unchanged with `BERTH_RUNC=/usr/sbin/runc`: it asserts runc's behaviour.
//!
//! Needs root; skips (with a message) otherwise. Everything the test starts or mounts is undone
//! by [`Containerd`]'s Drop, even when an assertion fails half-way.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Out;
use serde_json::Value;

/// A budget for one `ctr` command: generous, but far below the test's wall-time goal.
const CTR_TIMEOUT: Duration = Duration::from_secs(30);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A private containerd: its own root, state, sockets and namespace, all under one tempdir.
struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    sock: PathBuf,
    ns: String,
    runc: PathBuf,
    /// Container ids used in `ns`, for the shim-socket cleanup of a failed run.
    ids: Mutex<Vec<String>>,
}

impl Containerd {
    fn start() -> Result<Self> {
        for bin in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            ensure!(
                which(bin).is_some(),
                "{bin} not found: install Debian's containerd (bash scripts/setup.sh)"
            );
        }
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let ns = format!("berth-e2e-{}-{n}", std::process::id());
        // Short paths: the sockets must fit sun_path (108 bytes).
        let dir = tempfile::Builder::new().prefix("berth-ctd").tempdir()?;
        let d = dir.path();
        let sock = d.join("c.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "debug"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = sock.display(),
            opt = d.join("opt").display(),
        );
        std::fs::write(d.join("config.toml"), config)?;
        let mut me = Self {
            dir,
            child: None,
            sock,
            ns,
            runc: common::runc_bin().canonicalize()?,
            ids: Mutex::new(Vec::new()),
        };
        me.spawn()?;
        Ok(me)
    }

    /// Starts containerd on our config (appending to its log) and waits until it answers.
    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn containerd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("containerd exited with {s} at start:\n{}", self.log_tail());
            }
            if self.sock.exists() && self.ctr(&["version"]).is_ok_and(|o| o.code == 0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer within 15 s:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 3 s); shims and containers keep running.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The shim's berth-runc state root: `--runc-root` plus the namespace, as the shim makes it.
    fn runc_root(&self) -> PathBuf {
        self.path().join("runc")
    }

    fn id(&self, prefix: &str) -> String {
        let id = format!("{prefix}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    fn ctr_cmd(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.sock).arg("-n").arg(&self.ns);
        c
    }

    /// `ctr ARGS` (stdin /dev/null), whatever its exit status.
    fn ctr(&self, args: &[&str]) -> Result<Out> {
        common::run_cmd(self.ctr_cmd().args(args), None, CTR_TIMEOUT)
    }

    /// `ctr ARGS`, which must succeed.
    fn ctr_ok(&self, args: &[&str]) -> Result<Out> {
        self.ctr(args)?
            .ok()
            .with_context(|| format!("containerd log:\n{}", self.log_tail()))
    }

    /// The flags that make the shim drive berth-runc with its state under our tempdir.
    fn runc_flags(&self) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            self.runc.display().to_string(),
            "--runc-root".into(),
            self.runc_root().display().to_string(),
            "--fifo-dir".into(),
            self.path().join("fifo").display().to_string(),
        ]
    }

    /// berth-runc on the shim's state root (what the shim itself calls).
    fn berth_runc(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Out> {
        let mut c = Command::new(&self.runc);
        c.arg("--root")
            .arg(self.runc_root().join(&self.ns))
            .args(args);
        common::run_cmd(&mut c, stdin, CTR_TIMEOUT)
    }

    /// `ctr task ls` as (id, pid, status) rows.
    fn tasks(&self) -> Result<Vec<(String, i32, String)>> {
        let out = self.ctr_ok(&["task", "ls"])?;
        Ok(out
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3).then(|| (f[0].to_string(), f[1].parse().unwrap_or(0), f[2].into()))
            })
            .collect())
    }

    fn task_status(&self, id: &str) -> Result<Option<String>> {
        Ok(self.tasks()?.into_iter().find(|t| t.0 == id).map(|t| t.2))
    }

    fn wait_status(&self, id: &str, want: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.task_status(id)?;
            if now.as_deref() == Some(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("task {id} is {now:?}, not {want}, after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Builds a docker-archive tar of the busybox rootfs and imports it; returns its reference.
    fn import_busybox(&self) -> Result<String> {
        let img = self.path().join("image");
        std::fs::create_dir_all(&img)?;
        let layer = img.join("layer.tar");
        common::run_cmd(
            Command::new("tar")
                .arg("--numeric-owner")
                .arg("-C")
                .arg(common::rootfs_template())
                .arg("-cf")
                .arg(&layer)
                .arg("."),
            None,
            CTR_TIMEOUT,
        )?
        .ok()?;
        let diff_id = common::sha256(&layer)?;
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        });
        let config_tmp = img.join("config.json");
        std::fs::write(&config_tmp, config.to_string())?;
        let config_name = format!("{}.json", common::sha256(&config_tmp)?);
        std::fs::rename(&config_tmp, img.join(&config_name))?;
        let reference = format!("berth-e2e/busybox:{}", self.ns);
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [reference],
            "Layers": ["layer.tar"],
        }]);
        std::fs::write(img.join("manifest.json"), manifest.to_string())?;
        let tar = self.path().join("busybox.tar");
        common::run_cmd(
            Command::new("tar")
                .arg("-C")
                .arg(&img)
                .arg("-cf")
                .arg(&tar)
                .arg("manifest.json")
                .arg(&config_name)
                .arg("layer.tar"),
            None,
            CTR_TIMEOUT,
        )?
        .ok()?;
        self.ctr_ok(&["images", "import", &tar.display().to_string()])?;
        let full = format!("docker.io/{reference}");
        let ls = self.ctr_ok(&["images", "ls", "-q"])?;
        ensure!(
            ls.stdout.lines().any(|l| l == full),
            "image {full} not listed after import: {}",
            ls.stdout
        );
        Ok(full)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // 1. The orderly way, through containerd: kill, delete tasks, delete containers.
        if let Ok(out) = self.ctr(&["task", "ls", "-q"]) {
            for id in out.stdout.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
                let _ = self.ctr(&["task", "delete", "-f", id]);
            }
        }
        if let Ok(out) = self.ctr(&["containers", "ls", "-q"]) {
            for id in out.stdout.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["containers", "delete", id]);
            }
        }
        // 2. containerd itself.
        self.stop();
        // 3. Whatever survived: shims serving our socket, processes in our namespace's cgroups.
        let addr = self.sock.display().to_string();
        for pid in
            pids_where(|_, cmdline| cmdline.contains("containerd-shim") && cmdline.contains(&addr))
        {
            // SAFETY: kill(2) with plain integers; the pid is a shim of this test's containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let cg_needle = format!(":/{}/", self.ns);
        for pid in pids_where(|pid, _| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|cg| cg.contains(&cg_needle))
        }) {
            // SAFETY: kill(2) with plain integers; the pid is in this test's cgroup namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // 4. Mounts containerd and the shims left under our directory (overlay rootfs, snapshot
        //    mounts), deepest first.
        let prefix = self.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 reads a NUL-terminated path we own; MNT_DETACH cannot block.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        // 5. The cgroups the shim's runtime made under /<namespace>/ (the runtime removes the
        //    container's own cgroup; the namespace parent stays, as with runc).
        let ns_dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(&self.ns))
            .chain([Path::new("/sys/fs/cgroup").join(&self.ns)])
            .filter(|p| p.is_dir())
            .collect();
        for d in ns_dirs {
            common::wait_until(Duration::from_secs(2), || {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            let _ = std::fs::remove_dir(e.path());
                        }
                    }
                }
                std::fs::remove_dir(&d).is_ok() || !d.exists()
            });
        }
        // 6. Shim sockets live in containerd's fixed /run/containerd/s, named by
        //    sha256(address/namespace/id); a shim killed above could not remove its own.
        for id in self.ids.lock().map(|v| v.clone()).unwrap_or_default() {
            let key = format!("{addr}/{}/{id}", self.ns);
            if let Ok(h) = sha256_str(&key) {
                let _ = std::fs::remove_file(Path::new("/run/containerd/s").join(h));
            }
        }
        // 7. The tempdir itself goes when `dir` drops.
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

/// Host pids for which `f(pid, cmdline with NULs as spaces)` holds.
fn pids_where(f: impl Fn(i32, &str) -> bool) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if pid != std::process::id() as i32 && f(pid, &cmdline) {
            pids.push(pid);
        }
    }
    pids
}

fn sha256_str(s: &str) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(s.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn args<'a>(head: &[&'a str], flags: &'a [String], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .chain(tail.iter().copied())
        .collect()
}

fn readlink(p: impl AsRef<Path>) -> String {
    std::fs::read_link(p)
        .map(|l| l.display().to_string())
        .unwrap_or_default()
}

#[test]
fn containerd_runc_v2_shim_drives_berth_runc() -> Result<()> {
    require_root!();
    let t0 = Instant::now();
    let mut ctd = Containerd::start()?;
    let image = ctd.import_busybox()?;
    let flags = ctd.runc_flags();

    // run --rm: output and exit status come back through the shim.
    let id = ctd.id("hi");
    let out = ctd.ctr_ok(&args(
        &["run", "--rm"],
        &flags,
        &[&image, &id, "sh", "-c", "echo hi"],
    ))?;
    ensure!(out.stdout == "hi\n", "run printed {:?}", out.stdout);
    let id = ctd.id("exit7");
    let out = ctd.ctr(&args(
        &["run", "--rm"],
        &flags,
        &[&image, &id, "sh", "-c", "exit 7"],
    ))?;
    ensure!(
        out.code == 7,
        "exit 7 came back as {}: {}",
        out.code,
        out.stderr
    );

    // Null IO: the shim hands the init a /dev/null it opened read-only; writes must still work.
    let id = ctd.id("nullio");
    let out = ctd.ctr(&args(
        &["run", "--rm", "--null-io"],
        &flags,
        &[&image, &id, "sh", "-c", "echo out && echo err >&2"],
    ))?;
    ensure!(
        out.code == 0,
        "writing to null IO failed: exit {}: {}",
        out.code,
        out.stderr
    );

    // A create that fails reports berth-runc's error through the shim and leaves no state.
    let id = ctd.id("bad");
    let out = ctd.ctr(&args(
        &["run", "--rm"],
        &flags,
        &[&image, &id, "/nonexistent"],
    ))?;
    ensure!(out.code != 0, "running /nonexistent succeeded");
    ensure!(
        out.stderr.contains("OCI runtime create failed") && out.stderr.contains("/nonexistent"),
        "the create error did not name the missing executable: {}",
        out.stderr
    );
    let _ = ctd.ctr(&["containers", "delete", &id]);

    // A detached container with a memory limit and two processes.
    let id = ctd.id("det");
    ctd.ctr_ok(&args(
        &["run", "-d", "--memory-limit", "33554432"],
        &flags,
        &[&image, &id, "sh", "-c", "sleep 1000 & exec sleep 1001"],
    ))?;
    ctd.wait_status(&id, "RUNNING")?;
    let pid = ctd
        .tasks()?
        .into_iter()
        .find(|t| t.0 == id)
        .map(|t| t.1)
        .context("the detached task is not listed")?;
    ensure!(common::pid_alive(pid), "init pid {pid} is not alive");

    // berth-runc's own view, on the shim's state root.
    let state: Value = serde_json::from_str(&ctd.berth_runc(&["state", &id], None)?.ok()?.stdout)?;
    ensure!(
        state["status"] == "running" && state["pid"] == pid,
        "berth-runc state disagrees with containerd (pid {pid}): {state}"
    );

    // exec: same namespaces as the init, output and exit status back through the shim.
    let fifo_dir = ctd.path().join("fifo").display().to_string();
    let out = ctd.ctr_ok(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo_dir,
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo from-exec; hostname; for n in pid mnt uts; do readlink /proc/self/ns/$n; done",
    ])?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.len() == 5 && lines[0] == "from-exec" && !lines[1].is_empty(),
        "exec printed {:?}",
        out.stdout
    );
    for (line, ns) in lines[2..].iter().zip(["pid", "mnt", "uts"]) {
        let init = readlink(format!("/proc/{pid}/ns/{ns}"));
        ensure!(
            *line == init,
            "exec's {ns} namespace {line} is not the init's {init}"
        );
    }
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo_dir,
        "--exec-id",
        "e2",
        &id,
        "sh",
        "-c",
        "exit 5",
    ])?;
    ensure!(
        out.code == 5,
        "exec's exit 5 came back as {}: {}",
        out.code,
        out.stderr
    );
    let out = ctd.ctr_ok(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo_dir,
        "--exec-id",
        "e4",
        "--user",
        "65534",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; pwd; echo $HOME; echo reopened > /dev/stdout",
    ])?;
    ensure!(
        out.stdout == "65534\n/tmp\n/nonexistent\nreopened\n",
        "exec --user --cwd printed {:?}",
        out.stdout
    );
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo_dir,
        "--exec-id",
        "e5",
        &id,
        "/nonexistent",
    ])?;
    ensure!(
        out.code != 0
            && out.stderr.contains("OCI runtime exec failed")
            && out.stderr.contains("/nonexistent"),
        "a failing exec did not report berth-runc's error: {}",
        out.stderr
    );

    // Another container joining this one's network namespace by path (what a pod does).
    let joiner = ctd.id("joiner");
    let netns = format!("network:/proc/{pid}/ns/net");
    let out = ctd.ctr_ok(&args(
        &["run", "--rm", "--with-ns", &netns],
        &flags,
        &[&image, &joiner, "readlink", "/proc/self/ns/net"],
    ))?;
    let want = readlink(format!("/proc/{pid}/ns/net"));
    ensure!(
        out.stdout.trim() == want,
        "joined {:?}, want {want}",
        out.stdout
    );

    // exec with a terminal, when `script` can give ctr one.
    if which("script").is_some() {
        let cmd = format!(
            "ctr -a {} -n {} task exec -t --fifo-dir {} --exec-id e3 {} sh -c {}",
            sh_quote(&ctd.sock.display().to_string()),
            sh_quote(&ctd.ns),
            sh_quote(&fifo_dir),
            sh_quote(&id),
            sh_quote("tty; echo exec-tty-ok"),
        );
        let out = common::run_cmd(
            Command::new("script").args(["-qec", &cmd, "/dev/null"]),
            None,
            CTR_TIMEOUT,
        )?
        .ok()?;
        ensure!(
            out.stdout.contains("/dev/pts/") && out.stdout.contains("exec-tty-ok"),
            "exec -t printed {:?}",
            out.stdout
        );
    } else {
        eprintln!("skipping exec -t: `script` (util-linux) is not installed");
    }

    // ps: the shim runs `berth-runc ps --format json`.
    let out = ctd.ctr_ok(&["task", "ps", &id])?;
    let listed: Vec<i32> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    ensure!(
        listed.len() == 2 && listed.contains(&pid),
        "task ps listed {listed:?}, want the init {pid} and its child"
    );
    let json: Vec<i32> = serde_json::from_str(
        &ctd.berth_runc(&["ps", "--format", "json", &id], None)?
            .ok()?
            .stdout,
    )?;
    ensure!(
        json.len() == 2 && json.contains(&pid),
        "berth-runc ps said {json:?}"
    );

    // pause / resume.
    ctd.ctr_ok(&["task", "pause", &id])?;
    ctd.wait_status(&id, "PAUSED")?;
    let state: Value = serde_json::from_str(&ctd.berth_runc(&["state", &id], None)?.ok()?.stdout)?;
    ensure!(
        state["status"] == "paused",
        "berth-runc state after pause: {state}"
    );
    ctd.ctr_ok(&["task", "resume", &id])?;
    ctd.wait_status(&id, "RUNNING")?;

    // checkpoint is not supported yet: one clear error, and the task keeps running.
    let out = ctd.ctr(&["task", "checkpoint", &id])?;
    ensure!(out.code != 0, "checkpoint succeeded without CRIU");
    if ctd.runc.to_string_lossy().contains("berth") {
        ensure!(
            out.stderr.contains("checkpoint is not supported yet"),
            "checkpoint failed without saying why: {}",
            out.stderr
        );
    }
    ctd.wait_status(&id, "RUNNING")?;

    // containerd restarts; the shim and the container outlive it, and the shim keeps driving
    // berth-runc on the same state root.
    ctd.stop();
    ctd.spawn()?;
    ctd.wait_status(&id, "RUNNING")?;
    // The exec writes into the container and echoes; the file is checked through the init's
    // /proc/PID/root. ctr's own copy of the exec's stdout can lose a short output when the exit
    // arrives first (seen under load in CI: it cancels its fifo copy on exit), so the printed
    // line is checked only when ctr printed anything.
    let out = ctd.ctr_ok(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo_dir,
        "--exec-id",
        "after-restart",
        &id,
        "sh",
        "-c",
        "echo still-here > /after-restart && echo still-here",
    ])?;
    let written = std::fs::read_to_string(format!("/proc/{pid}/root/after-restart"))
        .context("the exec after a containerd restart left no file")?;
    ensure!(
        written == "still-here\n",
        "exec after a containerd restart wrote {written:?}"
    );
    ensure!(
        out.stdout.is_empty() || out.stdout == "still-here\n",
        "exec after a containerd restart printed {:?}",
        out.stdout
    );

    // metrics (the shim reads the cgroup berth-runc made), then update + events --stats.
    let out = ctd.ctr_ok(&["task", "metrics", &id])?;
    ensure!(
        out.stdout.contains("33554432"),
        "metrics do not show the 32 MiB limit:\n{}",
        out.stdout
    );
    ctd.berth_runc(
        &["update", "--resources", "-", &id],
        Some(br#"{"memory":{"limit":67108864}}"#),
    )?
    .ok()?;
    let out = ctd.ctr_ok(&["task", "metrics", &id])?;
    ensure!(
        out.stdout.contains("67108864"),
        "metrics do not show the updated 64 MiB limit:\n{}",
        out.stdout
    );
    let ev: Value = serde_json::from_str(
        &ctd.berth_runc(&["events", "--stats", &id], None)?
            .ok()?
            .stdout,
    )?;
    ensure!(
        ev["type"] == "stats" && ev["id"] == id.as_str() && ev["data"].is_object(),
        "events --stats printed {ev}"
    );

    // kill --all with SIGKILL stops both processes; the shim reaps the init and reports it.
    let child_pid = *listed.iter().find(|p| **p != pid).unwrap();
    ctd.ctr_ok(&["task", "kill", "-a", "-s", "SIGKILL", &id])?;
    ctd.wait_status(&id, "STOPPED")?;
    ensure!(
        common::wait_until(Duration::from_secs(5), || !common::pid_alive(child_pid)),
        "the init's child {child_pid} survived kill --all"
    );
    // Signalling the stopped task: the shim must see runc's "container not running" and answer
    // NotFound (what CRI and Docker treat as "already stopped"), not an unknown error.
    let out = ctd.ctr(&["task", "kill", "-s", "SIGKILL", &id])?;
    ensure!(
        out.code != 0 && out.stderr.contains("process already finished: not found"),
        "killing a stopped task should say not found: {}",
        out.stderr
    );
    ctd.ctr_ok(&["task", "delete", &id])?;
    ensure!(
        ctd.task_status(&id)?.is_none(),
        "the task is still listed after delete"
    );
    ensure!(
        !ctd.runc_root().join(&ctd.ns).join(&id).exists(),
        "berth-runc's state dir survived task delete"
    );
    ctd.ctr_ok(&["containers", "delete", &id])?;

    // task delete --force of a running task: the shim kills (`kill --all 9`) and deletes.
    let id = ctd.id("force");
    ctd.ctr_ok(&args(
        &["run", "-d"],
        &flags,
        &[&image, &id, "sleep", "1000"],
    ))?;
    ctd.wait_status(&id, "RUNNING")?;
    ctd.ctr_ok(&["task", "delete", "-f", &id])?;
    ensure!(
        ctd.task_status(&id)?.is_none(),
        "task delete -f left the task"
    );
    ctd.ctr_ok(&["containers", "delete", &id])?;

    // A tty run (ctr needs its stdin to be a terminal: `script` provides one).
    if which("script").is_some() {
        let id = ctd.id("tty");
        let mut cmd = format!(
            "ctr -a {} -n {} run -t --rm",
            sh_quote(&ctd.sock.display().to_string()),
            sh_quote(&ctd.ns)
        );
        for f in &flags {
            cmd = cmd + " " + &sh_quote(f);
        }
        cmd = format!(
            "{cmd} {} {} sh -c {}",
            sh_quote(&image),
            sh_quote(&id),
            sh_quote("tty; echo tty-ok")
        );
        let out = common::run_cmd(
            Command::new("script").args(["-qec", &cmd, "/dev/null"]),
            None,
            CTR_TIMEOUT,
        )?
        .ok()?;
        ensure!(
            out.stdout.contains("/dev/pts/0") && out.stdout.contains("tty-ok"),
            "run -t printed {:?}",
            out.stdout
        );
    } else {
        eprintln!("skipping run -t: `script` (util-linux) is not installed");
    }

    // An OOM kill in the cgroup berth-runc made reaches containerd as a /tasks/oom event.
    let events_path = ctd.path().join("events.txt");
    let mut events = ctd
        .ctr_cmd()
        .arg("events")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&events_path)?)
        .stderr(Stdio::null())
        .spawn()
        .context("spawn ctr events")?;
    let id = ctd.id("oom");
    let oom = (|| -> Result<()> {
        // ctr events prints nothing until an event: make harmless ones (an image label) until
        // one shows, so the subscription is known to be live before the OOM.
        let mut n = 0;
        let live = common::wait_until(Duration::from_secs(5), || {
            n += 1;
            let _ = ctd.ctr(&["images", "label", &image, &format!("berth-e2e={n}")]);
            std::fs::metadata(&events_path).is_ok_and(|m| m.len() > 0)
        });
        ensure!(live, "ctr events printed nothing in 5 s");
        let out = ctd.ctr(&args(
            &["run", "--rm", "--memory-limit", "16777216"],
            &flags,
            &[&image, &id, "sh", "-c", "tail /dev/zero"],
        ))?;
        ensure!(
            out.code == 137,
            "the memory hog exited {}: {}",
            out.code,
            out.stderr
        );
        let needle = format!("/tasks/oom {{\"container_id\":\"{id}\"}}");
        ensure!(
            common::wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(&events_path).is_ok_and(|e| e.contains(&needle))
            }),
            "no /tasks/oom event for {id}:\n{}",
            std::fs::read_to_string(&events_path).unwrap_or_default()
        );
        Ok(())
    })();
    let _ = events.kill();
    let _ = events.wait();
    oom?;

    // Nothing is left: no task, no container, no berth-runc state.
    ensure!(ctd.tasks()?.is_empty(), "tasks left: {:?}", ctd.tasks()?);
    let left = ctd.ctr_ok(&["containers", "ls", "-q"])?.stdout;
    ensure!(left.trim().is_empty(), "containers left: {left}");
    let state_left: Vec<_> = std::fs::read_dir(ctd.runc_root().join(&ctd.ns))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(
        state_left.is_empty(),
        "berth-runc state left: {state_left:?}"
    );
    eprintln!("containerd end-to-end took {:?}", t0.elapsed());
    Ok(())
}
