//! Interop with the real Docker engine, both ways (issue 3, point 4): what berth saves, `docker
//! load` reads with the same image id and diff ids and runs; what `docker save` writes (an image
//! Docker loaded from berth, and one `docker build` made) berth loads with the ids Docker shows.
//!
//! Each test starts its own private dockerd (Debian's docker.io, 20.10) on a unix socket in a
//! private directory under /tmp: no TCP, no bridge, no iptables, no ip forwarding, no registry,
//! its own config file (so neither /etc/docker/daemon.json nor /etc/docker/key.json is used). A
//! Drop guard stops it (SIGTERM, bounded wait, SIGKILL), kills what it left (containerd, shims),
//! unmounts whatever is still mounted under its directory and removes it, also when a test fails.
//!
//! overlay2 is tried first, vfs if dockerd will not start with it. berth's OCI archive is not a
//! format Docker 20.10 loads (OCI layouts load since Docker 25): that refusal is asserted too.
//!
//! Needs root and dockerd. Without them the tests skip with a printed reason; with `CI` set they
//! fail instead, since scripts/setup.sh installs docker.io there.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_image::archive::{self, export_rootfs, ImportOptions, LoadOptions, SaveFormat};
use berth_image::image::{apply_changes, CreateOptions, History, Image, ImageStore, NewLayer};
use berth_image::Snapshotter;
use berth_types::{ContainerId, Digest, Reference};
use serde_json::Value;

/// Bound of every docker CLI call (`timeout -k 5 SECS docker ...`).
const DOCKER_TIMEOUT_SECS: u32 = 180;
/// How long dockerd may take to answer `docker version`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (returns None after printing why), or in CI fails, when Docker cannot be used here.
fn skip(test: &str, why: &str) -> Option<Dockerd> {
    assert!(
        !in_ci(),
        "{test}: {why} (CI runs scripts/setup.sh, which installs docker.io)"
    );
    eprintln!("skipping {test}: {why}");
    None
}

fn find_dockerd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join("dockerd"))
        .find(|p| p.is_file())
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A private dockerd, stopped and cleaned up on drop.
struct Dockerd {
    dir: PathBuf,
    sock: PathBuf,
    child: Option<Child>,
    driver: &'static str,
}

impl Dockerd {
    /// Starts a private dockerd, trying overlay2 then vfs; None (after saying why) to skip.
    fn start(test: &str) -> Option<Dockerd> {
        if !is_root() {
            return skip(test, "needs root to run dockerd");
        }
        let Some(bin) = find_dockerd() else {
            return skip(test, "dockerd is not installed (Debian package docker.io)");
        };
        if Command::new("docker").arg("--version").output().is_err() {
            return skip(test, "the docker CLI is not installed");
        }
        let mut failures = Vec::new();
        for driver in ["overlay2", "vfs"] {
            let d = match Dockerd::spawn(&bin, test, driver) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{driver}: {e}"));
                    continue;
                }
            };
            match d.wait_ready() {
                Ok(()) => {
                    eprintln!("{test}: private dockerd ({driver}) at {}", d.sock.display());
                    return Some(d);
                }
                Err(e) => {
                    failures.push(format!(
                        "{driver}: {e}; log tail:\n{}",
                        log_tail(&d.dir.join("dockerd.log"), 20)
                    ));
                    drop(d);
                }
            }
        }
        skip(
            test,
            &format!("dockerd did not start:\n{}", failures.join("\n")),
        )
    }

    fn spawn(bin: &Path, test: &str, driver: &'static str) -> Result<Dockerd, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // Under /tmp, short: the socket path (and containerd's under exec/) must fit sun_path.
        let dir = PathBuf::from(format!(
            "/tmp/berth-dk-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            &test[..test.len().min(8)]
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("create {dir:?}: {e}"))?;
        // From here on, Drop cleans the directory up.
        let mut d = Dockerd {
            sock: dir.join("docker.sock"),
            dir,
            child: None,
            driver,
        };
        let config = d.dir.join("daemon.json");
        let key = d.dir.join("key.json");
        fs::write(
            &config,
            serde_json::to_vec(&serde_json::json!({ "deprecated-key-path": key })).unwrap(),
        )
        .map_err(|e| format!("write {config:?}: {e}"))?;
        let log = fs::File::create(d.dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(d.dir.join("data"))
            .arg("--exec-root")
            .arg(d.dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", d.sock.display()))
            .arg("--pidfile")
            .arg(d.dir.join("pid"))
            // Containers' cgroups under a parent of this daemon's own, removed on drop.
            .arg("--cgroup-parent")
            .arg(format!("/{}", d.cgroup_parent()))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--bridge=none",
                "--storage-driver",
                driver,
            ])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn {bin:?}: {e}"))?;
        d.child = Some(child);
        Ok(d)
    }

    /// The name of the cgroup (in every hierarchy) that holds this daemon's containers.
    fn cgroup_parent(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &self.child {
                let pid = child.id();
                if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
                    return Err("dockerd exited".into());
                }
            }
            if self.sock.exists() {
                let out = self.run_timeout(&["version", "--format", "{{.Server.Version}}"], 10);
                if matches!(&out, Ok(o) if o.status.success()) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {:?} within {START_TIMEOUT:?}",
                    self.sock
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The docker CLI, pointed at this daemon only, with a private CLI config.
    fn cmd(&self, secs: u32) -> Command {
        let mut c = Command::new("timeout");
        c.args(["-k", "5", &secs.to_string(), "docker", "-H"])
            .arg(format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        c
    }

    fn run_timeout(&self, args: &[&str], secs: u32) -> std::io::Result<Output> {
        self.cmd(secs).args(args).output()
    }

    /// Runs a docker command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_env(args, &[])
    }

    fn ok_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut c = self.cmd(DOCKER_TIMEOUT_SECS);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}\n{}\ndockerd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log_tail(&self.dir.join("dockerd.log"), 15)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `docker image inspect NAME` → the one object.
    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", name])).unwrap();
        v[0].clone()
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Pids (not ours) whose command line names `dir`: the containerd and shims a dockerd started.
fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && !is_zombie(pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// Removes the (empty, since its processes are gone) cgroup `name` from every hierarchy:
/// /sys/fs/cgroup itself on a v2 host, each v1 controller and the unified mount on a hybrid one.
fn remove_cgroups(name: &str) {
    let base = Path::new("/sys/fs/cgroup");
    let roots = fs::read_dir(base)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .chain([base.to_path_buf()]);
    for root in roots {
        let dir = root.join(name);
        if !dir.is_dir() {
            continue;
        }
        // Container cgroups (runc removes them on delete) first, deepest first.
        let mut subdirs: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .min_depth(1)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_dir())
            .map(|e| e.into_path())
            .collect();
        subdirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in subdirs.iter().chain([&dir]) {
            if let Err(e) = fs::remove_dir(d) {
                eprintln!("remove cgroup {d:?}: {e}");
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), rustix::process::Signal::TERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!(
                            "dockerd ({}) did not stop within {STOP_TIMEOUT:?}: killing it",
                            self.driver
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // containerd and shims normally stop with dockerd; kill what is left, bounded.
        for round in 0..50 {
            let left = processes_under(&self.dir);
            if left.is_empty() {
                break;
            }
            let sig = if round < 20 {
                rustix::process::Signal::TERM
            } else {
                rustix::process::Signal::KILL
            };
            for pid in left {
                signal(pid, sig);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for _ in 0..3 {
            let m = mounts_under(&self.dir);
            if m.is_empty() {
                break;
            }
            for p in m {
                if let Err(e) = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH) {
                    eprintln!("unmount {p:?}: {e}");
                }
            }
        }
        remove_cgroups(&self.cgroup_parent());
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("remove {:?}: {e}", self.dir);
        }
    }
}

/// Unmounts berth snapshots even when the test panics.
struct Unmounter {
    snaps: Snapshotter,
    ids: Vec<ContainerId>,
}

impl Drop for Unmounter {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.snaps.unmount(id, true);
        }
    }
}

fn r(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap().with_default_tag()
}

/// A busybox root filesystem: /bin/busybox and its applet symlinks, /etc/passwd and /etc/group,
/// /tmp, and /etc/gone.txt, which the second layer deletes.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (install busybox-static)");
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet.contains('/') || applet == "busybox" {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    fs::write(root.join("etc/gone.txt"), "the second layer deletes me\n").unwrap();
    root
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

/// The second layer: a directory with a file and a symlink, and a whiteout of /etc/gone.txt.
fn layer_two() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut dir, "srv/", &[][..]).unwrap();
    for (name, data) in [
        ("srv/hello.txt", &b"hello from berth layer two\n"[..]),
        ("etc/.wh.gone.txt", &b""[..]),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut l = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut l, "srv/link", "hello.txt").unwrap();
    b.into_inner().unwrap()
}

const LABEL_KEY: &str = "org.example.berth";

/// A two-layer busybox image made by berth: the imported rootfs, then `layer_two`, with CMD,
/// ENV, WORKDIR and LABEL changed on the second.
fn build_berth_image(store: &ImageStore, work: &Path, tag: &str) -> Image {
    let rootfs = busybox_rootfs(work);
    let (tar, _) = export_rootfs(&rootfs, Vec::new()).unwrap();
    let base = store
        .import(
            &tar[..],
            &ImportOptions {
                changes: vec![
                    r#"CMD ["sh"]"#.into(),
                    "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ],
                ..Default::default()
            },
        )
        .unwrap();
    let mut config = base.config.clone();
    let mut cc = config.config.clone().unwrap_or_default();
    apply_changes(
        &mut cc,
        &[
            r#"CMD ["cat", "/srv/hello.txt"]"#.into(),
            "ENV GREETING=hello-from-berth".into(),
            "WORKDIR /srv".into(),
            format!("LABEL {LABEL_KEY}=interop stage=two"),
        ],
    )
    .unwrap();
    config.config = Some(cc);
    config.history.push(History {
        created: config.created.clone(),
        created_by: Some("berth docker_interop test: layer two".into()),
        ..Default::default()
    });
    let l2 = layer_two();
    store
        .create_image(
            vec![
                NewLayer::Stored {
                    descriptor: base.manifest.layers[0].clone(),
                    diff_id: base.config.rootfs.diff_ids[0].clone(),
                },
                NewLayer::Tar(Box::new(&l2[..])),
            ],
            config,
            &CreateOptions {
                tags: vec![r(tag)],
                ..Default::default()
            },
        )
        .unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn digests(v: &Value) -> Vec<Digest> {
    strings(v).iter().map(|s| s.parse().unwrap()).collect()
}

/// Saves `names` from berth as a docker archive and `docker load`s it.
fn berth_to_docker(store: &ImageStore, d: &Dockerd, names: &[&str], path: &Path) -> String {
    let f = fs::File::create(path).unwrap();
    archive::save(store, names, SaveFormat::DockerArchive, f)
        .unwrap()
        .sync_all()
        .unwrap();
    d.ok(&["load", "-i", path.to_str().unwrap()])
}

/// What Docker's inspect must show of an image berth made.
fn assert_inspect_matches(d: &Dockerd, name: &str, img: &Image) {
    let i = d.inspect(name);
    assert_eq!(
        i["Id"],
        img.id().to_string(),
        "docker keeps berth's image id"
    );
    assert_eq!(
        digests(&i["RootFS"]["Layers"]),
        img.config.rootfs.diff_ids,
        "docker sees berth's diff ids"
    );
    let cc = img.config.config.as_ref().unwrap();
    assert_eq!(&strings(&i["Config"]["Cmd"]), cc.cmd.as_ref().unwrap());
    assert_eq!(&strings(&i["Config"]["Env"]), cc.env.as_ref().unwrap());
    assert_eq!(i["Config"]["WorkingDir"], "/srv");
    assert_eq!(i["Config"]["Labels"][LABEL_KEY], "interop", "{i}");
    assert_eq!(i["Config"]["Labels"]["stage"], "two", "{i}");
    assert_eq!(i["Os"], "linux");
}

#[test]
fn berth_saves_what_docker_loads_and_runs() {
    let test = "berth_saves_what_docker_loads_and_runs";
    let work = tempfile::tempdir().unwrap();
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let store = ImageStore::open(&work.path().join("root")).unwrap();
    let tag = "berth-interop/bb:two";
    let img = build_berth_image(&store, work.path(), tag);

    // A tagged docker archive: docker load names the tag, inspect shows berth's ids and config.
    let out = berth_to_docker(&store, &d, &[tag], &work.path().join("tagged.tar"));
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    assert_inspect_matches(&d, tag, &img);
    let i = d.inspect(tag);
    assert_eq!(strings(&i["RepoTags"]), vec![tag.to_string()]);

    // An archive saved by id loads untagged, under the same id.
    let img2 = build_berth_image_variant(&store, &img);
    let id2 = img2.id().to_string();
    let out = berth_to_docker(&store, &d, &[&id2], &work.path().join("by-id.tar"));
    assert!(out.contains(&format!("Loaded image ID: {id2}")), "{out}");
    let i2 = d.inspect(&id2);
    assert_eq!(i2["Id"], id2);
    assert!(strings(&i2["RepoTags"]).is_empty(), "{i2}");
    assert_eq!(i2["Config"]["Labels"]["variant"], "untagged");

    // Docker runs it with runc: the layers' files, the whiteout, ENV, WORKDIR, the default CMD.
    let run = d.ok(&["run", "--rm", "--network", "none", tag]);
    assert_eq!(run, "hello from berth layer two\n");
    let script = "cat /srv/link; \
                  if [ -e /etc/gone.txt ]; then echo present; else echo whited-out; fi; \
                  pwd; echo \"$GREETING\"; busybox | head -1 | cut -d' ' -f1";
    let run = d.ok(&["run", "--rm", "--network", "none", tag, "sh", "-c", script]);
    assert_eq!(
        run, "hello from berth layer two\nwhited-out\n/srv\nhello-from-berth\nBusyBox\n",
        "what the container sees"
    );

    // An OCI archive (oci-layout + index.json, no manifest.json): Docker 20.10's load reads only
    // docker archives (OCI layouts load since Docker 25). Without manifest.json it falls back to
    // the pre-1.10 loader, which takes each directory for a v1 layer and fails on the first one
    // (`blobs/json: no such file or directory`), loading nothing. berth's docker archive carries
    // the same OCI layout next to manifest.json, so that is what to give an old Docker.
    let oci = work.path().join("oci.tar");
    archive::save(
        &store,
        &[tag],
        SaveFormat::OciArchive,
        fs::File::create(&oci).unwrap(),
    )
    .unwrap();
    let image_ids = || {
        let mut v: Vec<String> = d
            .ok(&["image", "ls", "-q", "--no-trunc"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let before = image_ids();
    let out = d
        .cmd(DOCKER_TIMEOUT_SECS)
        .args(["load", "-i", oci.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let version = d.ok(&["version", "--format", "{{.Server.Version}}"]);
    if out.status.success() {
        eprintln!(
            "{test}: dockerd {} loads OCI archives: {}",
            version.trim(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(d.inspect(tag)["Id"], img.id().to_string());
    } else {
        eprintln!(
            "{test}: dockerd {} refuses berth's OCI archive, as expected of Docker < 25: {}",
            version.trim(),
            stderr.trim()
        );
        let major: u32 = version.split('.').next().unwrap().trim().parse().unwrap();
        assert!(
            major < 25,
            "Docker {version} should load an OCI archive: {stderr}"
        );
        assert!(stderr.contains("blobs/json: no such file"), "{stderr}");
        assert_eq!(image_ids(), before, "a refused load adds no image");
    }
}

/// The same layers with another label: a distinct image id.
fn build_berth_image_variant(store: &ImageStore, img: &Image) -> Image {
    let mut config = img.config.clone();
    let mut cc = config.config.clone().unwrap();
    apply_changes(&mut cc, &["LABEL variant=untagged".into()]).unwrap();
    config.config = Some(cc);
    let layers = img
        .manifest
        .layers
        .iter()
        .zip(&img.config.rootfs.diff_ids)
        .map(|(desc, diff)| NewLayer::Stored {
            descriptor: desc.clone(),
            diff_id: diff.clone(),
        })
        .collect();
    store
        .create_image(layers, config, &CreateOptions::default())
        .unwrap()
}

#[test]
fn docker_saves_what_berth_loads() {
    let test = "docker_saves_what_berth_loads";
    let work = tempfile::tempdir().unwrap();
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let store = ImageStore::open(&work.path().join("src")).unwrap();
    let base_tag = "berth-interop/base:1";
    let img = build_berth_image(&store, work.path(), base_tag);
    berth_to_docker(&store, &d, &[base_tag], &work.path().join("base.tar"));

    // Docker builds on it with the classic builder (no network: FROM is local, RUN has none).
    let ctx = work.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let mut f = fs::File::create(ctx.join("Dockerfile")).unwrap();
    writeln!(
        f,
        "FROM {base_tag}\n\
         RUN echo built-by-docker > /f && rm /srv/hello.txt\n\
         ENV BUILT=yes\n\
         CMD [\"cat\", \"/f\"]"
    )
    .unwrap();
    drop(f);
    let built_tag = "berth-interop/built:1";
    d.ok_env(
        &[
            "build",
            "--network",
            "none",
            "-q",
            "-t",
            built_tag,
            ctx.to_str().unwrap(),
        ],
        &[("DOCKER_BUILDKIT", "0")],
    );
    let built = d.inspect(built_tag);
    let base = d.inspect(base_tag);
    assert_eq!(base["Id"], img.id().to_string());

    // docker save of both into one archive (they share the busybox layers); berth loads it.
    let x = work.path().join("x.tar");
    d.ok(&["save", "-o", x.to_str().unwrap(), base_tag, built_tag]);
    let dst = work.path().join("dst");
    let loaded = ImageStore::open(&dst).unwrap();
    let rep = archive::load(
        &loaded,
        fs::File::open(&x).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("berth loads docker save's archive: {e}"));
    assert_eq!(rep.images.len(), 2, "{:?}", rep.images);
    for (tag, inspect) in [(base_tag, &base), (built_tag, &built)] {
        let got = loaded
            .get(tag)
            .unwrap_or_else(|e| panic!("{tag} is registered: {e}"));
        assert_eq!(
            got.id().to_string(),
            inspect["Id"].as_str().unwrap(),
            "{tag}"
        );
        assert_eq!(
            got.config.rootfs.diff_ids,
            digests(&inspect["RootFS"]["Layers"]),
            "{tag}"
        );
        assert_eq!(got.tags, vec![r(tag)], "{tag}");
    }
    // The round trip berth → docker → berth keeps the id.
    assert_eq!(loaded.get(base_tag).unwrap().id(), img.id());
    let b = loaded.get(built_tag).unwrap();
    assert_eq!(b.config.rootfs.diff_ids.len(), 3);
    assert_eq!(
        b.config.rootfs.diff_ids[..2],
        img.config.rootfs.diff_ids[..]
    );
    let cc = b.config.config.clone().unwrap();
    assert_eq!(cc.cmd.unwrap(), vec!["cat", "/f"]);
    assert!(cc.env.unwrap().contains(&"BUILT=yes".to_string()));
    assert_eq!(cc.working_dir.as_deref(), Some("/srv"));

    // The built image alone, saved by Docker, loads into another store.
    let y = work.path().join("y.tar");
    d.ok(&["save", "-o", y.to_str().unwrap(), built_tag]);
    let third = ImageStore::open(&work.path().join("third")).unwrap();
    archive::load(&third, fs::File::open(&y).unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(third.get(built_tag).unwrap().id(), b.id());

    // A snapshot of the loaded image shows RUN's file and deletion over berth's layers.
    let snaps = Snapshotter::open(&dst).unwrap();
    let mut guard = Unmounter {
        snaps: snaps.clone(),
        ids: Vec::new(),
    };
    let id = ContainerId::new(&format!("dkinterop-{}", std::process::id())).unwrap();
    guard.ids.push(id.clone());
    let (p, _) = snaps.prepare(&id, &loaded.lower_dirs(&b)).unwrap();
    let rf = &p.rootfs;
    assert_eq!(fs::read(rf.join("f")).unwrap(), b"built-by-docker\n");
    assert!(!rf.join("srv/hello.txt").exists(), "RUN's rm is a whiteout");
    assert!(rf.join("srv").is_dir());
    assert!(!rf.join("etc/gone.txt").exists());
    assert!(rf.join("bin/busybox").is_file());
    snaps.unmount(&id, false).unwrap();
    snaps.remove(&id).unwrap();
}
