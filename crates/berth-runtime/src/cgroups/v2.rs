//! cgroup v2: one directory; resources written as runc's `fs2` manager writes them, including its
//! conversions from the v1-shaped OCI values (cpu shares → `cpu.weight`, memory+swap →
//! `memory.swap.max`, blkio weight → `io.weight`), and the device filter as an eBPF program.
//!
//! As in runc, `memory.swappiness`, `memory.disableOOMKiller` and kernel memory have no v2 file and
//! are ignored; every other set resource whose file is missing is an error.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxRdma, LinuxResources};

use super::files::{self, set};
use super::stats::{self, HugetlbStats, MemoryEntry, Stats};
use super::{devices_bpf, CgroupError, Hierarchy};

const FREEZE_BUDGET: Duration = Duration::from_secs(5);

/// runc's `ConvertCPUSharesToCgroupV2Value`: shares [2, 262144] → weight [1, 10000]; 0 is unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// runc's `ConvertBlkIOToIOWeightValue`: blkio weight [10, 1000] → io.weight [1, 10000].
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: OCI swap is memory+swap, v2 `memory.swap.max` is
/// swap alone. Returns the value to write (-1 for "max", 0 for unset).
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64, CgroupError> {
    let bad = |reason: &str| CgroupError::Invalid {
        what: format!("linux.resources.memory.swap {swap} (with limit {memory})"),
        reason: reason.to_string(),
    };
    // Unlimited memory without a swap value means unlimited swap too.
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(bad("a swap limit needs a memory limit"));
    }
    if memory < 0 || swap < 0 {
        return Err(bad("use byte counts, or -1 for unlimited"));
    }
    if swap < memory {
        return Err(bad("memory+swap must be at least the memory limit"));
    }
    Ok(swap - memory)
}

/// 0 → unset, -1 → "max", else the number.
fn num(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        n => Some(n.to_string()),
    }
}

pub fn create(h: &Hierarchy) -> Result<(), CgroupError> {
    files::mkdir_all(&h.dir)?;
    let Ok(rel) = h.dir.strip_prefix(&h.mountpoint) else {
        return Ok(());
    };
    let mut cur = h.mountpoint.clone();
    for comp in rel.components() {
        enable_controllers(&cur);
        cur.push(comp);
    }
    Ok(())
}

/// Enables in `dir/cgroup.subtree_control` every controller `dir` has, best effort: a parent with
/// processes of its own (the "no internal processes" rule) or a controller the host reserves only
/// means the container runs without it, and applying a resource of that controller then fails
/// with a clear error.
fn enable_controllers(dir: &Path) {
    let Ok(Some(avail)) = files::read_opt(&dir.join("cgroup.controllers")) else {
        return;
    };
    let enabled = files::read_opt(&dir.join("cgroup.subtree_control"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let missing: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return;
    }
    let path = dir.join("cgroup.subtree_control");
    if files::write(&path, &missing.join(" ")).is_err() {
        for m in &missing {
            let _ = files::write(&path, m);
        }
    }
}

pub fn apply(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(c) = r.cpu() {
        apply_cpu(dir, c)?;
    }
    if let Some(m) = r.memory() {
        apply_memory(dir, m)?;
    }
    if let Some(p) = r.pids() {
        if let Some(v) = num(if p.limit() < 0 { -1 } else { p.limit() }) {
            set(dir, "pids.max", &v, "linux.resources.pids.limit")?;
        }
    }
    if let Some(b) = r.block_io() {
        apply_io(dir, b)?;
    }
    if let Some(limits) = r.hugepage_limits() {
        for l in limits {
            let what = format!("linux.resources.hugepageLimits[{}]", l.page_size());
            let size = page_size(l.page_size(), &what)?;
            let v = if l.limit() < 0 {
                "max".to_string()
            } else {
                l.limit().to_string()
            };
            set(dir, &format!("hugetlb.{size}.max"), &v, &what)?;
            let rsvd = format!("hugetlb.{size}.rsvd.max");
            if dir.join(&rsvd).exists() {
                set(dir, &rsvd, &v, &what)?;
            }
        }
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(CgroupError::NoController {
                resource: "linux.resources.network".into(),
                controller: "net_cls/net_prio (cgroup v1 only)",
            });
        }
    }
    if let Some(rdma) = r.rdma() {
        for (dev, l) in rdma {
            set(dir, "rdma.max", &rdma_line(dev, l)?, "linux.resources.rdma")?;
        }
    }
    if let Some(rules) = r.devices() {
        devices_bpf::apply(dir, rules)?;
    }
    if let Some(unified) = r.unified() {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for k in keys {
            apply_unified(dir, k, &unified[k])?;
        }
    }
    Ok(())
}

fn apply_unified(dir: &Path, key: &str, value: &str) -> Result<(), CgroupError> {
    let what = format!("linux.resources.unified[{key:?}]");
    let valid = key.split_once('.').is_some_and(|(c, p)| {
        !c.is_empty()
            && !p.is_empty()
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    }) && !key.contains(['/', '\0'])
        && !key.starts_with('.');
    if !valid {
        return Err(CgroupError::Invalid {
            what,
            reason: "a unified key must be a file name CONTROLLER.PARAMETER".into(),
        });
    }
    // One write per line, as runc does (e.g. several io.max devices).
    for line in value.lines().filter(|l| !l.is_empty()) {
        set(dir, key, line, &what)?;
    }
    if value.is_empty() {
        set(dir, key, "", &what)?;
    }
    Ok(())
}

/// Validates an OCI hugepage size ("2MB", "1GB") for use in a file name.
pub fn page_size<'a>(s: &'a str, what: &str) -> Result<&'a str, CgroupError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CgroupError::Invalid {
            what: what.to_string(),
            reason: "the page size must look like 2MB or 1GB".into(),
        });
    }
    Ok(s)
}

/// One `rdma.max` line.
pub fn rdma_line(dev: &str, l: &LinuxRdma) -> Result<String, CgroupError> {
    if dev.is_empty() || dev.contains(char::is_whitespace) {
        return Err(CgroupError::Invalid {
            what: format!("linux.resources.rdma device {dev:?}"),
            reason: "the device name cannot be empty or contain spaces".into(),
        });
    }
    let v = |x: Option<u32>| x.map_or_else(|| "max".to_string(), |n| n.to_string());
    Ok(format!(
        "{dev} hca_handle={} hca_object={}",
        v(l.hca_handles()),
        v(l.hca_objects())
    ))
}

fn apply_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_period().is_some_and(|p| p != 0) || c.realtime_runtime().is_some_and(|r| r != 0) {
        return Err(CgroupError::NoController {
            resource: "linux.resources.cpu.realtimePeriod/realtimeRuntime".into(),
            controller: "realtime cpu (cgroup v1 only)",
        });
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        let w = shares_to_weight(s).min(10000);
        set(
            dir,
            "cpu.weight",
            &w.to_string(),
            "linux.resources.cpu.shares",
        )?;
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        let mut v = if quota > 0 {
            quota.to_string()
        } else {
            "max".to_string()
        };
        if period != 0 {
            v.push_str(&format!(" {period}"));
        }
        set(dir, "cpu.max", &v, "linux.resources.cpu.quota/period")?;
    }
    if let Some(b) = c.burst() {
        set(
            dir,
            "cpu.max.burst",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(i) = c.idle() {
        set(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    for (val, file, what) in [
        (c.cpus(), "cpuset.cpus", "linux.resources.cpu.cpus"),
        (c.mems(), "cpuset.mems", "linux.resources.cpu.mems"),
    ] {
        if let Some(v) = val.as_deref().filter(|v| !v.is_empty()) {
            set(dir, file, v, what)?;
        }
    }
    Ok(())
}

fn apply_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    for (what, v) in [
        ("linux.resources.memory.limit", limit),
        ("linux.resources.memory.swap", swap),
        (
            "linux.resources.memory.reservation",
            m.reservation().unwrap_or(0),
        ),
    ] {
        if v < -1 {
            return Err(CgroupError::Invalid {
                what: format!("{what} {v}"),
                reason: "use a byte count, or -1 for unlimited".into(),
            });
        }
    }
    let swap_v2 = swap_to_v2(swap, limit)?;
    let swap_str = match num(swap_v2) {
        // Memory and memory+swap equal: no swap at all.
        None if swap > 0 => Some("0".to_string()),
        s => s,
    };
    if let Some(s) = swap_str {
        match set(dir, "memory.swap.max", &s, "linux.resources.memory.swap") {
            Ok(()) => {}
            // Without swap accounting, "unlimited" and "none" are what the host does anyway.
            Err(CgroupError::Unsupported { .. }) if s == "max" || s == "0" => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(v) = num(limit) {
        match set(dir, "memory.max", &v, "linux.resources.memory.limit") {
            Err(CgroupError::Write { source, path, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                let usage = files::read_u64(&dir.join("memory.current")).unwrap_or(0);
                return Err(CgroupError::MemoryBelowUsage { path, limit, usage });
            }
            r => r?,
        }
    }
    if let Some(v) = num(m.reservation().unwrap_or(0)) {
        set(dir, "memory.low", &v, "linux.resources.memory.reservation")?;
    }
    Ok(())
}

fn apply_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            set(
                dir,
                "io.bfq.weight",
                &w.to_string(),
                "linux.resources.blockIO.weight",
            )?;
        } else {
            set(
                dir,
                "io.weight",
                &format!("default {}", blkio_to_io_weight(w)),
                "linux.resources.blockIO.weight",
            )?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let file = if bfq { "io.bfq.weight" } else { "io.weight" };
            let w = if bfq {
                u64::from(w)
            } else {
                blkio_to_io_weight(w)
            };
            set(
                dir,
                file,
                &format!("{}:{} {w}", d.major(), d.minor()),
                "linux.resources.blockIO.weightDevice",
            )?;
        }
    }
    for (list, key) in [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ] {
        for d in list.iter().flatten() {
            // 0 means "no limit" in the OCI throttle lists.
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            set(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
                "linux.resources.blockIO throttle",
            )?;
        }
    }
    Ok(())
}

fn events_frozen(dir: &Path) -> Result<Option<bool>, CgroupError> {
    let text = files::read(&dir.join("cgroup.events"))?;
    let frozen = files::parse_keyed(&text)
        .find(|(k, _)| *k == "frozen")
        .map(|(_, v)| v == 1);
    Ok(frozen)
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.freeze");
    files::write(&path, if frozen { "1" } else { "0" })?;
    let deadline = Instant::now() + FREEZE_BUDGET;
    let mut delay = Duration::from_millis(1);
    loop {
        match events_frozen(dir)? {
            // No "frozen" key (a kernel without it): the write is all we can check.
            None => return Ok(()),
            Some(f) if f == frozen => return Ok(()),
            Some(_) => {}
        }
        if Instant::now() > deadline {
            if frozen {
                let _ = files::write(&path, "0");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("cgroup.events"),
                state: if frozen { "frozen 1" } else { "frozen 0" },
                secs: FREEZE_BUDGET.as_secs(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    match files::read_opt(&dir.join("cgroup.freeze"))? {
        Some(s) => Ok(s.trim() == "1"),
        None => Ok(false),
    }
}

pub fn stats(dir: &Path) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    let cpu = stats::keyed_map(&dir.join("cpu.stat"))?;
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec").saturating_mul(1000);
    s.cpu.usage.user = g("user_usec").saturating_mul(1000);
    s.cpu.usage.kernel = g("system_usec").saturating_mul(1000);
    s.cpu.throttling.periods = g("nr_periods");
    s.cpu.throttling.throttled_periods = g("nr_throttled");
    s.cpu.throttling.throttled_time = g("throttled_usec").saturating_mul(1000);

    if dir.join("memory.current").exists() {
        let f = |n: &str| files::read_u64_opt(&dir.join(n));
        let events = stats::keyed_map(&dir.join("memory.events"))?;
        let mem = MemoryEntry {
            usage: f("memory.current")?,
            limit: f("memory.max")?,
            max: f("memory.peak")?,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        if dir.join("memory.swap.current").exists() {
            // runc reports swap as memory+swap, the v1 meaning.
            s.memory.swap = MemoryEntry {
                usage: f("memory.swap.current")?.saturating_add(mem.usage),
                limit: f("memory.swap.max")?.saturating_add(mem.limit),
                max: f("memory.swap.peak")?.saturating_add(mem.max),
                failcnt: 0,
            };
        }
        s.memory.usage = mem;
        s.memory.raw = stats::keyed_map(&dir.join("memory.stat"))?;
        s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
        s.memory.rss = s.memory.raw.get("anon").copied().unwrap_or(0);
        s.memory.oom_kill = events.get("oom_kill").copied().unwrap_or(0);
        s.memory.oom = events.get("oom").copied().unwrap_or(0);
    }
    if dir.join("pids.current").exists() {
        s.pids.current = files::read_u64(&dir.join("pids.current"))?;
        let max = files::read_u64_opt(&dir.join("pids.max"))?;
        s.pids.limit = if max == u64::MAX { 0 } else { max };
    }
    if let Some(text) = files::read_opt(&dir.join("io.stat"))? {
        let (bytes, ios) = stats::parse_io_stat(&text);
        s.blkio.io_service_bytes_recursive = bytes;
        s.blkio.io_serviced_recursive = ios;
    }
    for size in stats::hugetlb_sizes(dir, ".max") {
        let events = stats::keyed_map(&dir.join(format!("hugetlb.{size}.events")))?;
        s.hugetlb.insert(
            size.clone(),
            HugetlbStats {
                usage: files::read_u64_opt(&dir.join(format!("hugetlb.{size}.current")))?,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::testutil::*;
    use crate::cgroups::{Cgroup, Layout};

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_to_v2(300, 100).unwrap(), 200);
        assert_eq!(swap_to_v2(100, 100).unwrap(), 0);
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
        assert!(swap_to_v2(50, -1).is_err());
    }

    fn fake() -> (tempfile::TempDir, Cgroup, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V2_MOUNTINFO,
            V2_PROC_CGROUP,
            Some(root.path()),
            None,
            "c2",
            false,
        )
        .unwrap();
        let Layout::V2 { hierarchy } = &cg.layout else {
            panic!("v2 expected")
        };
        let d = hierarchy.dir.clone();
        for f in [
            "cgroup.procs",
            "cpu.weight",
            "cpu.max",
            "cpuset.cpus",
            "memory.max",
            "memory.low",
            "memory.swap.max",
            "pids.max",
            "io.weight",
            "io.max",
            "hugetlb.2MB.max",
            "cgroup.freeze",
        ] {
            put(&d, f, "");
        }
        put(
            &hierarchy.mountpoint,
            "cgroup.controllers",
            "cpu io memory pids",
        );
        put(&hierarchy.mountpoint, "cgroup.subtree_control", "memory");
        put(
            &hierarchy.mountpoint.join("berth"),
            "cgroup.controllers",
            "cpu memory",
        );
        put(
            &hierarchy.mountpoint.join("berth"),
            "cgroup.subtree_control",
            "",
        );
        (root, cg, d)
    }

    #[test]
    fn create_enables_controllers_in_parents() {
        let (_root, cg, _d) = fake();
        cg.create().unwrap();
        let Layout::V2 { hierarchy } = &cg.layout else {
            panic!()
        };
        // Fake files keep the last write: all missing ones at once.
        assert_eq!(
            get(&hierarchy.mountpoint, "cgroup.subtree_control"),
            "+cpu +io +pids"
        );
        assert_eq!(
            get(
                &hierarchy.mountpoint.join("berth"),
                "cgroup.subtree_control"
            ),
            "+cpu +memory"
        );
    }

    #[test]
    fn apply_converts_like_runc() {
        let (_root, cg, d) = fake();
        cg.apply(&resources(
            r#"{"memory":{"limit":16777216,"swap":33554432,"reservation":1048576,"swappiness":5,"kernel":1},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0"},
                "pids":{"limit":-1},
                "blockIO":{"weight":500,"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":10}]},
                "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
                "unified":{"memory.max":"33554432"}}"#,
        ))
        .unwrap();
        assert_eq!(get(&d, "memory.swap.max"), "16777216");
        // unified applies last and wins
        assert_eq!(get(&d, "memory.max"), "33554432");
        assert_eq!(get(&d, "memory.low"), "1048576");
        assert_eq!(get(&d, "cpu.weight"), "39");
        assert_eq!(get(&d, "cpu.max"), "50000 100000");
        assert_eq!(get(&d, "cpuset.cpus"), "0");
        assert_eq!(get(&d, "pids.max"), "max");
        assert_eq!(get(&d, "io.weight"), "default 4950");
        assert_eq!(get(&d, "io.max"), "8:0 wiops=10");
        assert_eq!(get(&d, "hugetlb.2MB.max"), "4194304");

        cg.apply(&resources(
            r#"{"memory":{"limit":1000,"swap":1000},"cpu":{"quota":-1}}"#,
        ))
        .unwrap();
        assert_eq!(get(&d, "memory.swap.max"), "0");
        assert_eq!(get(&d, "cpu.max"), "max");
    }

    #[test]
    fn apply_v2_errors() {
        let (_root, cg, d) = fake();
        for bad in [
            r#"{"cpu":{"realtimeRuntime":100}}"#,
            r#"{"unified":{"../x":"1"}}"#,
            r#"{"unified":{"nodot":"1"}}"#,
            r#"{"unified":{"rdma.max":"1"}}"#,
            r#"{"memory":{"swap":100}}"#,
            r#"{"network":{"classID":1}}"#,
            r#"{"cpu":{"idle":1}}"#,
            r#"{"hugepageLimits":[{"pageSize":"2M/B","limit":1}]}"#,
        ] {
            assert!(cg.apply(&resources(bad)).is_err(), "{bad}");
        }
        // memory.swap.max missing: unlimited is fine, a real limit is not.
        std::fs::remove_file(d.join("memory.swap.max")).unwrap();
        cg.apply(&resources(r#"{"memory":{"limit":-1}}"#)).unwrap();
        assert!(cg
            .apply(&resources(r#"{"memory":{"limit":100,"swap":300}}"#))
            .is_err());
    }

    #[test]
    fn stats_from_fake_files() {
        let (_root, cg, d) = fake();
        put(&d, "cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 2\nthrottled_usec 5\n");
        put(&d, "memory.current", "4096\n");
        put(&d, "memory.max", "max\n");
        put(&d, "memory.peak", "8192\n");
        put(
            &d,
            "memory.events",
            "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n",
        );
        put(&d, "memory.stat", "anon 100\nfile 50\n");
        put(&d, "memory.swap.current", "0\n");
        put(&d, "memory.swap.max", "max\n");
        put(&d, "pids.current", "3\n");
        put(&d, "pids.max", "max\n");
        put(&d, "io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n");
        put(&d, "hugetlb.2MB.current", "0\n");
        put(&d, "hugetlb.2MB.events", "max 1\n");
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu.usage.total, 10_000);
        assert_eq!(s.cpu.usage.kernel, 4_000);
        assert_eq!(s.cpu.throttling.throttled_time, 5_000);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.max, 8192);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.cache, 50);
        assert_eq!(s.memory.rss, 100);
        assert_eq!(s.memory.oom_kill, 1);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_serviced_recursive[1].value, 4);
        assert_eq!(s.hugetlb["2MB"].failcnt, 1);
        assert_eq!(cg.oom_kills().unwrap(), 1);
    }

    #[test]
    fn freeze_on_fake_tree() {
        let (_root, cg, d) = fake();
        put(&d, "cgroup.events", "populated 1\nfrozen 1\n");
        cg.freeze(true).unwrap();
        assert!(cg.is_frozen().unwrap());
        put(&d, "cgroup.events", "populated 1\nfrozen 0\n");
        cg.freeze(false).unwrap();
        assert!(!cg.is_frozen().unwrap());
    }

    #[test]
    fn pids_recursive() {
        let (_root, cg, d) = fake();
        put(&d, "cgroup.procs", "5\n3\n");
        put(&d.join("sub"), "cgroup.procs", "9\n3\n");
        assert_eq!(cg.pids().unwrap(), vec![3, 5, 9]);
    }
}
