//! Helpers shared by the privileged end-to-end tests: where the binaries and the busybox rootfs
//! are, a bundle builder (`runc spec` shape), and a per-test runtime root whose Drop removes
//! every container the test made, even when the test fails.
//!
//! Every test gets its own state root and its own container ids, so tests run in parallel.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Whether we run as root (every test here needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns `Ok(())` from the calling test, with a printed reason, when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipping: this end-to-end test needs root (run it with sudo)");
            return Ok(());
        }
    };
}

/// The workspace root (two levels above this package).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The berth-runc under test: $BERTH_RUNC, else target/release, else target/debug.
pub fn runc_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_RUNC") {
        return PathBuf::from(p);
    }
    let ws = workspace();
    for p in ["target/release/berth-runc", "target/debug/berth-runc"] {
        let p = ws.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!("berth-runc not built: run `cargo build --release -p berth-runtime` or set BERTH_RUNC");
}

/// Where tests cache what they build (the rootfs, helper binaries).
pub fn cache_dir() -> PathBuf {
    let d = std::env::var_os("BERTH_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/e2e-cache"));
    std::fs::create_dir_all(&d).expect("create the e2e cache dir");
    d
}

/// Holds an exclusive flock on a file while alive (serializes builds across test processes).
pub struct FileLock(std::fs::File);

impl FileLock {
    pub fn new(path: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("open lock {}", path.display()))?;
        // SAFETY: flock on an fd we own; blocks until the lock is ours.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
            bail!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Self(f))
    }
}

/// A busybox root filesystem to copy into bundles: $BERTH_TEST_ROOTFS, or one built once into
/// the cache dir from /bin/busybox (busybox-static).
pub fn rootfs_template() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("BERTH_TEST_ROOTFS") {
                return PathBuf::from(p);
            }
            build_rootfs().expect("build the busybox test rootfs")
        })
        .clone()
}

fn build_rootfs() -> Result<PathBuf> {
    let cache = cache_dir();
    let dir = cache.join("rootfs");
    let _lock = FileLock::new(&cache.join("rootfs.lock"))?;
    if dir.join("bin/busybox").exists() {
        return Ok(dir);
    }
    let busybox = Path::new("/bin/busybox");
    let tmp = cache.join(format!("rootfs.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var/tmp", "usr", "home", "mnt",
    ] {
        std::fs::create_dir_all(tmp.join(d))?;
    }
    for d in ["tmp", "var/tmp"] {
        std::fs::set_permissions(tmp.join(d), std::fs::Permissions::from_mode(0o1777))?;
    }
    for (l, t) in [
        ("sbin", "bin"),
        ("usr/bin", "../bin"),
        ("usr/sbin", "../bin"),
    ] {
        std::os::unix::fs::symlink(t, tmp.join(l))?;
    }
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .context("run busybox --list (install busybox-static)")?;
    // The applet symlinks first: `busybox --list` names "busybox" itself.
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet.contains('/') || applet == "busybox" {
            continue;
        }
        std::os::unix::fs::symlink("busybox", tmp.join("bin").join(applet))?;
    }
    std::fs::copy(busybox, tmp.join("bin/busybox"))?;
    std::fs::write(
        tmp.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(
        tmp.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )?;
    std::fs::write(tmp.join("etc/hosts"), "127.0.0.1\tlocalhost\n")?;
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}

/// Docker's default capability set.
pub const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A config.json of the shape `runc spec` writes (terminal off, Docker's capabilities, the
/// default mounts, masked and read-only paths), running `args`.
pub fn base_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-e2e",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a temporary directory: `rootfs/` (a copy of the busybox rootfs) and
/// `config` (written by [`Bundle::write`]). Removed on drop.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-bundle")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs_template())
            .arg(dir.path().join("rootfs"))
            .status()?;
        if !st.success() {
            bail!("cp -a of the test rootfs failed");
        }
        Ok(Self {
            dir,
            config: base_config(args),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes `config` as config.json.
    pub fn write(&self) -> Result<()> {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }

    /// Adds a namespace entry (optionally joined by path).
    pub fn add_namespace(&mut self, typ: &str, path: Option<&str>) {
        let ns = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != typ);
        match path {
            Some(p) => ns.push(json!({"type": typ, "path": p})),
            None => ns.push(json!({"type": typ})),
        }
    }

    pub fn remove_namespace(&mut self, typ: &str) {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != typ);
    }

    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit status, or 128 + signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    /// Fails (with everything printed) unless the command exited 0.
    pub fn ok(self) -> Result<Self> {
        if self.code != 0 {
            bail!(
                "`{}` exited {}\nstdout: {}\nstderr: {}",
                self.what,
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    /// Fails unless the command failed with exactly one non-empty stderr line; returns it.
    pub fn one_error_line(&self) -> Result<String> {
        if self.code == 0 {
            bail!("`{}` succeeded but should have failed", self.what);
        }
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.len() != 1 {
            bail!(
                "`{}` should print one error line, printed {}:\n{}",
                self.what,
                lines.len(),
                self.stderr
            );
        }
        Ok(lines[0].to_string())
    }
}

/// Runs `cmd` with stdout/stderr going to files (so processes it leaves behind, like a detached
/// container, never hold a pipe we wait on), `stdin` fed from bytes, killing it after `timeout`.
pub fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Out> {
    let what = format!("{cmd:?}");
    let tmp = tempfile::tempdir()?;
    let out_p = tmp.path().join("out");
    let err_p = tmp.path().join("err");
    cmd.stdout(std::fs::File::create(&out_p)?)
        .stderr(std::fs::File::create(&err_p)?);
    let input = match stdin {
        Some(b) => {
            let p = tmp.path().join("in");
            std::fs::write(&p, b)?;
            Stdio::from(std::fs::File::open(&p)?)
        }
        None => Stdio::null(),
    };
    cmd.stdin(input);
    let mut child = cmd.spawn().with_context(|| format!("spawn {what}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{what}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let mut stdout = String::new();
    std::fs::File::open(&out_p)?.read_to_string(&mut stdout)?;
    let mut stderr = String::new();
    std::fs::File::open(&err_p)?.read_to_string(&mut stderr)?;
    Ok(Out {
        code,
        stdout,
        stderr,
        what,
    })
}

/// A runtime state root (`--root`) in a temporary directory. Containers named through
/// [`Runtime::id`] are force-deleted on drop, so a failing test leaves nothing behind.
pub struct Runtime {
    pub root: tempfile::TempDir,
    pub bin: PathBuf,
    ids: Mutex<Vec<String>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Runtime {
    pub fn new() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("berth-e2e-root")
            .tempdir()?;
        Ok(Self {
            root,
            bin: runc_bin(),
            ids: Mutex::new(Vec::new()),
        })
    }

    /// A container id unique to this process and call, registered for cleanup.
    pub fn id(&self, prefix: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{prefix}-{}-{n}", std::process::id());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// `berth-runc --root <root>` ready for arguments.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs berth-runc with `args` (30 s timeout).
    pub fn run(&self, args: &[&str]) -> Result<Out> {
        run_cmd(self.cmd().args(args), None, Duration::from_secs(30))
    }

    /// Runs berth-runc with `args` and `stdin`.
    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Out> {
        run_cmd(self.cmd().args(args), Some(stdin), Duration::from_secs(30))
    }

    /// `state <id>` parsed.
    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.run(&["state", id])?.ok()?;
        serde_json::from_str(&out.stdout).with_context(|| format!("state JSON: {}", out.stdout))
    }

    /// The state directory berth-runc keeps for `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }

    /// `run -d` of the bundle; returns the container's host pid.
    pub fn run_detached(&self, bundle: &Bundle, id: &str) -> Result<i32> {
        bundle.write()?;
        self.run(&["run", "-d", "-b", bundle.path().to_str().unwrap(), id])?
            .ok()?;
        let st = self.state(id)?;
        st["pid"]
            .as_i64()
            .map(|p| p as i32)
            .context("state has no pid")
    }

    /// `run` of the bundle in the foreground.
    pub fn run_fg(&self, bundle: &Bundle, id: &str) -> Result<Out> {
        bundle.write()?;
        self.run(&["run", "-b", bundle.path().to_str().unwrap(), id])
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            if self.state_dir(id).exists() {
                let _ = run_cmd(
                    self.cmd().args(["delete", "--force", id]),
                    None,
                    Duration::from_secs(20),
                );
            }
        }
    }
}

/// Polls `f` every 10 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The cgroup directories of container `id` that exist on the host (any hierarchy).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let direct = base.join("berth").join(id);
    if direct.exists() {
        found.push(direct);
    }
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path().join("berth").join(id);
            if p.exists() {
                found.push(p);
            }
        }
    }
    found
}

/// The directory of controller `ctrl` (v1 name) for container `id`: the v1 hierarchy if mounted,
/// else the unified one.
pub fn cgroup_dir(ctrl: &str, id: &str) -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup")
        .join(ctrl)
        .join("berth")
        .join(id);
    if v1.exists() {
        return Some(v1);
    }
    let v2 = Path::new("/sys/fs/cgroup/berth").join(id);
    v2.exists().then_some(v2)
}

/// Host pids whose /proc/PID/cgroup names container `id`'s cgroup.
pub fn pids_in_cgroup_of(id: &str) -> Vec<i32> {
    let needle = format!("/berth/{id}\n");
    let mut pids = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
                if cg.contains(&needle) {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

/// Lines of the host's mountinfo that mention `needle`.
/// Mounts a berthd with this data root made and keeps only while containers exist: every host
/// mount naming the data root except the tmpfs berthd keeps its run state in (its exec root,
/// `<data root>/run`, mounted once and kept across daemon restarts).
pub fn berthd_mounts(data_root: &Path) -> Vec<String> {
    let exec_root = format!(" {}/run ", data_root.display());
    host_mounts_mentioning(&data_root.display().to_string())
        .into_iter()
        .filter(|l| !(l.contains(&exec_root) && l.contains(" - tmpfs ")))
        .collect()
}

pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Whether host process `pid` exists (and is not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// `sha256sum` of a file, as a user would compare it.
pub fn sha256(p: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(p).output()?;
    if !out.status.success() {
        bail!("sha256sum {} failed", p.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

pub mod daemon_util;
pub mod http_server;
pub mod images;

/// The default bridge berthd makes for a data root (berth-engine's `config::default_bridge`):
/// "bt" + FNV-1a 32 of the path.
pub fn berthd_bridge(data_root: &std::path::Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in data_root.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("bt{h:08x}")
}

/// Removes the default bridge, the nft table and the run-state tmpfs of a test's berthd (after it
/// was killed), so that a test run leaves the host's interfaces, rules and mounts as it found
/// them.
pub fn berthd_net_cleanup(data_root: &std::path::Path) {
    let bridge = berthd_bridge(data_root);
    let quiet = |c: &mut std::process::Command| {
        let _ = c
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    };
    quiet(std::process::Command::new("ip").args(["link", "del", &bridge]));
    quiet(std::process::Command::new("nft").args([
        "delete",
        "table",
        "inet",
        &format!("berth_{bridge}"),
    ]));
    // berthd keeps its run state on a tmpfs it mounts on its exec root (<data root>/run).
    if let Ok(p) = std::ffi::CString::new(data_root.join("run").as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2 with a NUL-terminated path we own.
        unsafe {
            libc::umount2(p.as_ptr(), libc::MNT_DETACH);
        }
    }
}
