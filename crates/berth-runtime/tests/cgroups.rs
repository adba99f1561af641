//! Real cgroups on this host: create, limit, join, freeze, read stats, OOM-kill, device filters
//! (v1 devices controller and the v2 eBPF program on the hybrid unified hierarchy), destroy.
//!
//! Every test uses a unique cgroup name and a guard that kills its processes and removes its
//! directories even when an assertion fails, so the tests run in parallel and leave nothing
//! behind. Tests that need root print why they skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_runtime::cgroups::{Cgroup, Layout, OomEvent};
use oci_spec::runtime::LinuxResources;

/// Set in the environment of a re-executed test binary to make `hog_helper` allocate memory.
const HOG_ENV: &str = "BERTH_CGROUP_TEST_HOG";

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "berth-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn skip_unless_root(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        println!("skipping {test}: needs root to create cgroups");
        return true;
    }
    false
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("test resources are valid JSON")
}

/// Kills the test's processes and removes its cgroup, whatever happened.
struct Guard {
    cg: Cgroup,
    children: Vec<Child>,
}

impl Guard {
    fn new(cg: Cgroup) -> Self {
        Guard {
            cg,
            children: Vec::new(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.freeze(false);
        let _ = self.cg.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.cg.destroy();
    }
}

fn v1_dir(cg: &Cgroup, controller: &str) -> PathBuf {
    let Layout::V1 { hierarchies, .. } = &cg.layout else {
        panic!("expected a v1 layout")
    };
    hierarchies
        .iter()
        .find(|h| h.has(controller))
        .map(|h| h.dir.clone())
        .unwrap_or_else(|| panic!("no {controller} hierarchy"))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// A shell that waits for a line on stdin (sent once it is in the cgroup), then tries to open
/// /dev/null and /dev/zero and says what happened.
fn device_probe() -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(
            "read go; \
             if cat /dev/null; then echo null-ok; else echo null-denied; fi; \
             if head -c1 /dev/zero >/dev/null 2>&1; then echo zero-ok; else echo zero-denied; fi",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

fn release_and_collect(child: &mut Child) -> String {
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release child");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read child output");
    let _ = child.wait();
    out
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep")
}

#[test]
fn v1_lifecycle_limits_freeze_stats_destroy() {
    if skip_unless_root("v1_lifecycle_limits_freeze_stats_destroy") {
        return;
    }
    let name = unique("life");
    let cg = Cgroup::new(Some(&format!("/{name}")), &name, false).expect("resolve cgroup");
    if cg.is_v2() {
        println!("skipping v1_lifecycle_limits_freeze_stats_destroy: host is cgroup v2");
        return;
    }
    let mut g = Guard::new(cg.clone());
    cg.create().expect("create");
    for d in cg.dirs() {
        assert!(d.is_dir(), "{} not created", d.display());
    }
    cg.apply(&resources(
        r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":33554432},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},
            "pids":{"limit":50},
            "blockIO":{"weight":300},
            "devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .expect("apply");
    let mem = v1_dir(&cg, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "33554432");
    let cpu = v1_dir(&cg, "cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&v1_dir(&cg, "cpuset"), "cpuset.cpus"), "0");
    assert_eq!(read(&v1_dir(&cg, "pids"), "pids.max"), "50");
    let blkio = v1_dir(&cg, "blkio");
    let weight = if blkio.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    assert_eq!(read(&blkio, weight), "300");
    assert_eq!(read(&v1_dir(&cg, "devices"), "devices.list"), "c 1:3 rwm");

    // The v1 devices controller enforces the rules for a process inside.
    let mut probe = device_probe();
    cg.add_task(probe.id() as i32).expect("add probe");
    let out = release_and_collect(&mut probe);
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-denied"), "{out}");

    // A real process: joins every hierarchy, is listed, frozen, thawed.
    g.children.push(sleeper());
    let pid = g.children[0].id() as i32;
    cg.add_task(pid).expect("add task");
    for d in cg.dirs() {
        assert!(
            read(d, "cgroup.procs")
                .lines()
                .any(|l| l == pid.to_string()),
            "{pid} not in {}",
            d.display()
        );
    }
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    assert!(!cg.is_frozen().expect("is_frozen"));
    cg.freeze(true).expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    assert_eq!(read(&v1_dir(&cg, "freezer"), "freezer.state"), "FROZEN");
    cg.freeze(false).expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));

    let stats = cg.stats().expect("stats");
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 50);
    assert_eq!(stats.memory.usage.limit, 67108864);
    assert!(!stats.cpu.usage.percpu.is_empty());
    let json = serde_json::to_value(&stats).expect("serialize stats");
    assert!(json["memory"]["usage"]["usage"].is_u64());
    assert!(json["cpu"]["usage"]["total"].is_u64());
    assert_eq!(json["pids"]["current"], 1);

    // kill --all, then removal leaves nothing behind.
    cg.kill_all(libc::SIGKILL).expect("kill_all");
    let status = g.children[0].wait().expect("wait sleeper");
    assert!(!status.success());
    cg.destroy().expect("destroy");
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn v1_updates_and_rejections() {
    if skip_unless_root("v1_updates_and_rejections") {
        return;
    }
    let name = unique("upd");
    let cg = Cgroup::new(Some(&format!("/{name}/nested")), &name, false).expect("resolve");
    if cg.is_v2() {
        println!("skipping v1_updates_and_rejections: host is cgroup v2");
        return;
    }
    // The guard removes the parent too.
    let parent = Cgroup::new(Some(&format!("/{name}")), &name, false).expect("resolve parent");
    let _gp = Guard::new(parent);
    let _g = Guard::new(cg.clone());
    cg.create().expect("create nested");
    // Raise then lower memory and swap: the write order must satisfy memsw >= memory each time.
    cg.apply(&resources(
        r#"{"memory":{"limit":33554432,"swap":33554432}}"#,
    ))
    .expect("first");
    cg.apply(&resources(
        r#"{"memory":{"limit":100663296,"swap":201326592}}"#,
    ))
    .expect("raise");
    cg.apply(&resources(
        r#"{"memory":{"limit":16777216,"swap":16777216}}"#,
    ))
    .expect("lower");
    let mem = v1_dir(&cg, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "16777216");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "16777216");
    cg.apply(&resources(r#"{"memory":{"limit":-1}}"#))
        .expect("unlimited");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "9223372036854771712");
    // The kernel clamps shares; runc reports that as an error and so do we.
    let err = cg
        .apply(&resources(r#"{"cpu":{"shares":1}}"#))
        .expect_err("clamped shares");
    assert!(err.to_string().contains("clamped"), "{err}");
    // v2-only resources are errors on v1.
    assert!(cg
        .apply(&resources(r#"{"unified":{"memory.max":"1"}}"#))
        .is_err());
    // Hugepage limits: written where the hugetlb hierarchy is mounted, an error where not.
    let huge = cg.apply(&resources(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":2097152}]}"#,
    ));
    let Layout::V1 { hierarchies, .. } = &cg.layout else {
        panic!("expected a v1 layout")
    };
    match hierarchies.iter().find(|h| h.has("hugetlb")) {
        Some(h) => {
            huge.expect("hugetlb limit");
            assert_eq!(read(&h.dir, "hugetlb.2MB.limit_in_bytes"), "2097152");
        }
        None => {
            let err = huge.expect_err("no hugetlb hierarchy");
            assert!(err.to_string().contains("hugetlb"), "{err}");
        }
    }
}

/// The re-executed child of `v1_oom_kill_is_counted_and_notified`: waits for a line on stdin,
/// then touches 256 MiB. Without the environment variable it is an ordinary no-op test.
#[test]
fn hog_helper() {
    if std::env::var_os(HOG_ENV).is_none() {
        return;
    }
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    let mut chunks = Vec::new();
    for _ in 0..256 {
        chunks.push(vec![1u8; 1 << 20]);
    }
    println!("allocated {}", chunks.len());
}

#[test]
fn v1_oom_kill_is_counted_and_notified() {
    if skip_unless_root("v1_oom_kill_is_counted_and_notified") {
        return;
    }
    let name = unique("oom");
    let cg = Cgroup::new(Some(&format!("/{name}")), &name, false).expect("resolve");
    let mut g = Guard::new(cg.clone());
    cg.create().expect("create");
    cg.apply(&resources(
        r#"{"memory":{"limit":16777216,"swap":16777216}}"#,
    ))
    .expect("apply");
    assert_eq!(cg.oom_kills().expect("oom_kills"), 0);
    let mut watcher = cg.oom_event_fd().expect("oom watcher");

    let exe = std::env::current_exe().expect("current exe");
    let mut hog = Command::new(exe)
        .args(["--exact", "hog_helper", "--nocapture", "--test-threads=1"])
        .env(HOG_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hog");
    cg.add_task(hog.id() as i32).expect("add hog");
    hog.stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release hog");
    let status = hog.wait().expect("wait hog");
    g.children.push(hog);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "hog was not OOM-killed: {status}"
    );
    assert!(cg.oom_kills().expect("oom_kills") >= 1);
    assert_eq!(
        watcher
            .wait(Some(Duration::from_secs(10)))
            .expect("wait oom"),
        Some(OomEvent::Oom)
    );
    let stats = cg.stats().expect("stats");
    assert!(stats.memory.oom_kill >= 1);
    cg.destroy().expect("destroy");
    // Removal wakes the watcher too (v1 signals the eventfd when the cgroup goes).
    let ev = watcher
        .wait(Some(Duration::from_secs(10)))
        .expect("wait removal");
    assert!(
        matches!(ev, Some(OomEvent::CgroupRemoved) | Some(OomEvent::Oom)),
        "{ev:?}"
    );
}

/// The v2 code on a real cgroup2 hierarchy: on hybrid hosts the unified mount has no controllers,
/// but device programs, cgroup.procs, cgroup.freeze and cgroup.events all work there.
fn unified_cgroup(tag: &str) -> Option<Cgroup> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let v2_lines: String = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    if v2_lines.is_empty() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let name = unique(tag);
    let cg = Cgroup::from_parts(
        &v2_lines,
        &own,
        None,
        Some(&format!("/{name}")),
        &name,
        false,
    )
    .expect("resolve on cgroup2");
    assert!(cg.is_v2());
    Some(cg)
}

#[test]
fn v2_device_filter_freeze_and_destroy_on_real_cgroup2() {
    if skip_unless_root("v2_device_filter_freeze_and_destroy_on_real_cgroup2") {
        return;
    }
    let Some(cg) = unified_cgroup("bpf") else {
        println!("skipping v2 test: no cgroup2 mount");
        return;
    };
    let mut g = Guard::new(cg.clone());
    cg.create().expect("create");
    let rules = r#"{"devices":[{"allow":false,"access":"rwm"},
                               {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#;
    cg.apply(&resources(rules)).expect("attach device filter");
    let mut probe = device_probe();
    cg.add_task(probe.id() as i32).expect("add probe");
    let out = release_and_collect(&mut probe);
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-denied"), "{out}");

    // Updating replaces the filter: if the old program stayed attached, /dev/zero would still
    // be denied (all programs must allow).
    cg.apply(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]}"#,
    ))
    .expect("replace device filter");
    let mut probe = device_probe();
    cg.add_task(probe.id() as i32).expect("add probe");
    let out = release_and_collect(&mut probe);
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-ok"), "{out}");

    // Controllers are not enabled on this hierarchy: a set limit is an error, not a silent skip.
    let err = cg
        .apply(&resources(r#"{"pids":{"limit":10}}"#))
        .expect_err("pids on a controller-less cgroup2");
    assert!(err.to_string().contains("pids.max"), "{err}");

    g.children.push(sleeper());
    let pid = g.children[0].id() as i32;
    cg.add_task(pid).expect("add sleeper");
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    cg.freeze(true).expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    let dir = cg.v2_dir().expect("v2 dir").to_path_buf();
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    cg.freeze(false).expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));
    assert!(cg.stats().expect("stats").cpu.usage.total > 0);
    cg.kill_all(libc::SIGKILL).expect("kill_all");
    let _ = g.children[0].wait();
    cg.destroy().expect("destroy");
    assert!(!dir.exists());
}

#[test]
fn relative_and_systemd_paths_resolve_on_this_host() {
    // Needs no root: only reads /proc.
    let Ok(cg) = Cgroup::new(Some("system.slice:docker:abc"), "abc", true) else {
        println!("skipping: no cgroup mounts visible");
        return;
    };
    assert_eq!(cg.path, "/system.slice/docker-abc.scope");
    assert!(cg
        .dirs()
        .iter()
        .all(|d| d.ends_with("system.slice/docker-abc.scope")));
    assert!(Cgroup::new(Some("/../../etc"), "x", false).is_err());
    let rel = Cgroup::new(Some("child"), "x", false).expect("relative");
    assert!(rel.dirs().iter().all(|d| d.ends_with("child")));
}
