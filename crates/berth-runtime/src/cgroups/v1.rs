//! cgroup v1: one directory per mounted hierarchy; resources written per controller the way runc's
//! `fs` manager writes them (its order, its memory/swap and cpu period/quota sequencing, its device
//! rule writes).
//!
//! Must never write a controller file for a resource the spec left unset, and never treat a missing
//! hierarchy as success when the spec asked for that controller.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice};

use super::files::{self, set};
use super::stats::{self, CpuUsage, HugetlbStats, MemoryEntry, Stats};
use super::{devices, CgroupError, CgroupMount, Hierarchy};

const FREEZE_BUDGET: Duration = Duration::from_secs(5);

pub fn find<'a>(hs: &'a [Hierarchy], controller: &str) -> Option<&'a Hierarchy> {
    hs.iter().find(|h| h.has(controller))
}

fn need<'a>(
    hs: &'a [Hierarchy],
    controller: &'static str,
    resource: &str,
) -> Result<&'a Path, CgroupError> {
    find(hs, controller)
        .map(|h| h.dir.as_path())
        .ok_or_else(|| CgroupError::NoController {
            resource: resource.to_string(),
            controller,
        })
}

pub fn create(hs: &[Hierarchy]) -> Result<(), CgroupError> {
    for h in hs {
        files::mkdir_all(&h.dir)?;
        if h.has("cpuset") {
            ensure_cpuset(h)?;
        }
    }
    Ok(())
}

/// A v1 cpuset cgroup starts with empty `cpus` and `mems`, and no task can join it until they are
/// set: copy them down from the parent at every level that is still empty.
fn ensure_cpuset(h: &Hierarchy) -> Result<(), CgroupError> {
    let Ok(rel) = h.dir.strip_prefix(&h.mountpoint) else {
        return Ok(());
    };
    let mut cur = h.mountpoint.clone();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = files::read(&cur.join(f))?;
            if !mine.trim().is_empty() {
                continue;
            }
            let theirs = files::read(&parent.join(f))?;
            if !theirs.trim().is_empty() {
                files::write(&cur.join(f), theirs.trim())?;
            }
        }
    }
    Ok(())
}

pub fn apply(hs: &[Hierarchy], r: &LinuxResources) -> Result<(), CgroupError> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::UnifiedOnV1);
    }
    if let Some(cpu) = r.cpu() {
        apply_cpuset(hs, cpu)?;
    }
    if let Some(rules) = r.devices() {
        let parsed = devices::parse_all(rules)?;
        let dir = need(hs, "devices", "linux.resources.devices")?;
        files::write(&dir.join("devices.deny"), "a")?;
        for rule in &parsed {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            files::write(&dir.join(file), &rule.v1_line())?;
        }
    }
    if let Some(m) = r.memory() {
        apply_memory(hs, m)?;
    }
    if let Some(cpu) = r.cpu() {
        apply_cpu(hs, cpu)?;
    }
    if let Some(p) = r.pids() {
        let limit = p.limit();
        if limit != 0 {
            let dir = need(hs, "pids", "linux.resources.pids.limit")?;
            let v = if limit < 0 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            set(dir, "pids.max", &v, "linux.resources.pids.limit")?;
        }
    }
    if let Some(b) = r.block_io() {
        apply_blkio(hs, b)?;
    }
    if let Some(limits) = r.hugepage_limits() {
        for l in limits {
            let what = format!("linux.resources.hugepageLimits[{}]", l.page_size());
            let size = super::v2::page_size(l.page_size(), &what)?;
            let dir = need(hs, "hugetlb", &what)?;
            let v = if l.limit() < 0 {
                "-1".to_string()
            } else {
                l.limit().to_string()
            };
            set(dir, &format!("hugetlb.{size}.limit_in_bytes"), &v, &what)?;
            let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
            if dir.join(&rsvd).exists() {
                set(dir, &rsvd, &v, &what)?;
            }
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            let what = "linux.resources.network.classID";
            let dir = need(hs, "net_cls", what)?;
            set(dir, "net_cls.classid", &id.to_string(), what)?;
        }
        for p in n.priorities().iter().flatten() {
            let what = "linux.resources.network.priorities";
            let dir = need(hs, "net_prio", what)?;
            set(
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
                what,
            )?;
        }
    }
    if let Some(rdma) = r.rdma() {
        for (dev, l) in rdma {
            let what = "linux.resources.rdma";
            let dir = need(hs, "rdma", what)?;
            set(dir, "rdma.max", &super::v2::rdma_line(dev, l)?, what)?;
        }
    }
    Ok(())
}

fn apply_cpuset(hs: &[Hierarchy], c: &LinuxCpu) -> Result<(), CgroupError> {
    for (val, file, what) in [
        (c.cpus(), "cpuset.cpus", "linux.resources.cpu.cpus"),
        (c.mems(), "cpuset.mems", "linux.resources.cpu.mems"),
    ] {
        if let Some(v) = val.as_deref().filter(|v| !v.is_empty()) {
            let dir = need(hs, "cpuset", what)?;
            set(dir, file, v, what)?;
        }
    }
    Ok(())
}

fn check_mem_value(what: &str, v: Option<i64>) -> Result<Option<i64>, CgroupError> {
    match v {
        Some(n) if n < -1 => Err(CgroupError::Invalid {
            what: format!("{what} {n}"),
            reason: "use a byte count, or -1 for unlimited".into(),
        }),
        Some(0) | None => Ok(None),
        v => Ok(v),
    }
}

fn apply_memory(hs: &[Hierarchy], m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = check_mem_value("linux.resources.memory.limit", m.limit())?;
    let mut swap = check_mem_value("linux.resources.memory.swap", m.swap())?;
    let reservation = check_mem_value("linux.resources.memory.reservation", m.reservation())?;
    let disable_oom = m.disable_oom_killer() == Some(true);
    if limit.is_none()
        && swap.is_none()
        && reservation.is_none()
        && m.swappiness().is_none()
        && !disable_oom
    {
        return Ok(());
    }
    let dir = need(hs, "memory", "linux.resources.memory")?;
    const SWAP: &str = "memory.memsw.limit_in_bytes";
    // Unlimited memory without a swap value means unlimited swap too (if swap accounting exists).
    if limit == Some(-1) && swap.is_none() && dir.join(SWAP).exists() {
        swap = Some(-1);
    }
    let set_limit = |v: i64| -> Result<(), CgroupError> {
        match set(
            dir,
            "memory.limit_in_bytes",
            &v.to_string(),
            "linux.resources.memory.limit",
        ) {
            Err(CgroupError::Write { source, path, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                let usage = files::read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
                Err(CgroupError::MemoryBelowUsage {
                    path,
                    limit: v,
                    usage,
                })
            }
            r => r,
        }
    };
    let set_swap = |v: i64| -> Result<(), CgroupError> {
        set(dir, SWAP, &v.to_string(), "linux.resources.memory.swap")
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // Order the writes so the kernel's "memsw >= memory" check holds at every step.
            let current = files::read_u64(&dir.join("memory.limit_in_bytes"))?;
            if s == -1 || current < s as u64 {
                set_swap(s)?;
                set_limit(l)?;
            } else {
                set_limit(l)?;
                set_swap(s)?;
            }
        }
        (Some(l), None) => set_limit(l)?,
        (None, Some(s)) => set_swap(s)?,
        (None, None) => {}
    }
    if let Some(r) = reservation {
        set(
            dir,
            "memory.soft_limit_in_bytes",
            &r.to_string(),
            "linux.resources.memory.reservation",
        )?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::Invalid {
                what: format!("linux.resources.memory.swappiness {s}"),
                reason: "use a value between 0 and 100".into(),
            });
        }
        set(
            dir,
            "memory.swappiness",
            &s.to_string(),
            "linux.resources.memory.swappiness",
        )?;
    }
    if disable_oom {
        set(
            dir,
            "memory.oom_control",
            "1",
            "linux.resources.memory.disableOOMKiller",
        )?;
    }
    Ok(())
}

fn apply_cpu(hs: &[Hierarchy], c: &LinuxCpu) -> Result<(), CgroupError> {
    let shares = c.shares().filter(|s| *s != 0);
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    let rt_period = c.realtime_period().filter(|p| *p != 0);
    let rt_runtime = c.realtime_runtime().filter(|r| *r != 0);
    if shares.is_none()
        && period.is_none()
        && quota.is_none()
        && rt_period.is_none()
        && rt_runtime.is_none()
        && c.burst().is_none()
        && c.idle().is_none()
    {
        return Ok(());
    }
    let dir = need(hs, "cpu", "linux.resources.cpu")?;
    if let Some(s) = shares {
        set(
            dir,
            "cpu.shares",
            &s.to_string(),
            "linux.resources.cpu.shares",
        )?;
        let got = files::read_u64(&dir.join("cpu.shares"))?;
        if got != s {
            return Err(CgroupError::SharesClamped {
                path: dir.join("cpu.shares"),
                wanted: s,
                got,
            });
        }
    }
    let mut period_pending = None;
    if let Some(p) = period {
        match set(
            dir,
            "cpu.cfs_period_us",
            &p.to_string(),
            "linux.resources.cpu.period",
        ) {
            Ok(()) => {}
            // A smaller period can be refused until the quota is lowered: retry after it.
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && quota.is_some() =>
            {
                period_pending = Some(p);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(q) = quota {
        let q = if q < 0 { -1 } else { q };
        set(
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
            "linux.resources.cpu.quota",
        )?;
        if let Some(p) = period_pending {
            set(
                dir,
                "cpu.cfs_period_us",
                &p.to_string(),
                "linux.resources.cpu.period",
            )?;
        }
    }
    if let Some(b) = c.burst() {
        set(
            dir,
            "cpu.cfs_burst_us",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(p) = rt_period {
        set(
            dir,
            "cpu.rt_period_us",
            &p.to_string(),
            "linux.resources.cpu.realtimePeriod",
        )?;
    }
    if let Some(r) = rt_runtime {
        set(
            dir,
            "cpu.rt_runtime_us",
            &r.to_string(),
            "linux.resources.cpu.realtimeRuntime",
        )?;
    }
    if let Some(i) = c.idle() {
        set(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    Ok(())
}

fn throttle_lines(list: &Option<Vec<LinuxThrottleDevice>>) -> Vec<String> {
    list.iter()
        .flatten()
        .map(|d| format!("{}:{} {}", d.major(), d.minor(), d.rate()))
        .collect()
}

fn apply_blkio(hs: &[Hierarchy], b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let weight = b.weight().filter(|w| *w != 0);
    let leaf = b.leaf_weight().filter(|w| *w != 0);
    let devs = b.weight_device().as_deref().unwrap_or_default();
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            throttle_lines(b.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            throttle_lines(b.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            throttle_lines(b.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            throttle_lines(b.throttle_write_iops_device()),
        ),
    ];
    if weight.is_none()
        && leaf.is_none()
        && devs.is_empty()
        && throttles.iter().all(|(_, l)| l.is_empty())
    {
        return Ok(());
    }
    let dir = need(hs, "blkio", "linux.resources.blockIO")?;
    // CFQ's blkio.weight where it exists, BFQ's blkio.bfq.weight otherwise (as runc).
    let (wfile, wdev) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = weight {
        set(dir, wfile, &w.to_string(), "linux.resources.blockIO.weight")?;
    }
    if let Some(w) = leaf {
        set(
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
            "linux.resources.blockIO.leafWeight",
        )?;
    }
    for d in devs {
        if let Some(w) = d.weight() {
            set(
                dir,
                wdev,
                &format!("{}:{} {w}", d.major(), d.minor()),
                "linux.resources.blockIO.weightDevice",
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            set(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
                "linux.resources.blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    for (file, lines) in throttles {
        for l in lines {
            set(dir, file, &l, "linux.resources.blockIO throttle")?;
        }
    }
    Ok(())
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let path = dir.join("freezer.state");
    let deadline = Instant::now() + FREEZE_BUDGET;
    if !frozen {
        loop {
            files::write(&path, "THAWED")?;
            if files::read(&path)?.trim() == "THAWED" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::FreezeTimeout {
                    path,
                    state: "THAWED",
                    secs: FREEZE_BUDGET.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut i = 0u32;
    loop {
        // Like runc: an occasional thaw/freeze cycle gets tasks stuck in FREEZING moving again.
        if i % 50 == 49 {
            let _ = files::write(&path, "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        files::write(&path, "FROZEN")?;
        match files::read(&path)?.trim() {
            "FROZEN" => return Ok(()),
            _ if Instant::now() > deadline => {
                let _ = files::write(&path, "THAWED");
                return Err(CgroupError::FreezeTimeout {
                    path,
                    state: "FROZEN",
                    secs: FREEZE_BUDGET.as_secs(),
                });
            }
            _ => std::thread::sleep(Duration::from_millis(if i % 25 == 24 { 10 } else { 1 })),
        }
        i += 1;
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("freezer.state");
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let state = files::read(&path)?;
        match state.trim() {
            "FREEZING" if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            "FROZEN" => {
                // Frozen by itself, not only through an ancestor.
                return Ok(files::read_opt(&dir.join("freezer.self_freezing"))?
                    .is_none_or(|s| s.trim() == "1"));
            }
            _ => return Ok(false),
        }
    }
}

pub fn stats(hs: &[Hierarchy]) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(h) = find(hs, "cpuacct") {
        s.cpu.usage = cpuacct(&h.dir)?;
    }
    if let Some(h) = find(hs, "cpu") {
        let st = stats::keyed_map(&h.dir.join("cpu.stat"))?;
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        s.cpu.throttling.periods = g("nr_periods");
        s.cpu.throttling.throttled_periods = g("nr_throttled");
        s.cpu.throttling.throttled_time = g("throttled_time");
    }
    if let Some(h) = find(hs, "memory") {
        let d = &h.dir;
        let entry = |prefix: &str| -> Result<MemoryEntry, CgroupError> {
            let f = |name: &str| files::read_u64_opt(&d.join(format!("{prefix}{name}")));
            Ok(MemoryEntry {
                limit: f("limit_in_bytes")?,
                usage: f("usage_in_bytes")?,
                max: f("max_usage_in_bytes")?,
                failcnt: f("failcnt")?,
            })
        };
        s.memory.usage = entry("memory.")?;
        s.memory.swap = entry("memory.memsw.")?;
        s.memory.kernel = entry("memory.kmem.")?;
        s.memory.kernel_tcp = entry("memory.kmem.tcp.")?;
        s.memory.raw = stats::keyed_map(&d.join("memory.stat"))?;
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
        s.memory.rss = s.memory.raw.get("rss").copied().unwrap_or(0);
        let oom = stats::keyed_map(&d.join("memory.oom_control"))?;
        s.memory.oom_kill = oom.get("oom_kill").copied().unwrap_or(0);
        s.memory.oom = oom.get("under_oom").copied().unwrap_or(0);
    }
    if let Some(h) = find(hs, "pids") {
        s.pids.current = files::read_u64_opt(&h.dir.join("pids.current"))?;
        let max = files::read_u64_opt(&h.dir.join("pids.max"))?;
        s.pids.limit = if max == u64::MAX { 0 } else { max };
    }
    if let Some(h) = find(hs, "blkio") {
        for prefix in ["blkio.", "blkio.throttle.", "blkio.bfq."] {
            let bytes = h.dir.join(format!("{prefix}io_service_bytes_recursive"));
            if let Some(text) = files::read_opt(&bytes)? {
                s.blkio.io_service_bytes_recursive = stats::parse_blkio_v1(&text);
                let ios = h.dir.join(format!("{prefix}io_serviced_recursive"));
                if let Some(text) = files::read_opt(&ios)? {
                    s.blkio.io_serviced_recursive = stats::parse_blkio_v1(&text);
                }
                break;
            }
        }
    }
    if let Some(h) = find(hs, "hugetlb") {
        for size in stats::hugetlb_sizes(&h.dir, ".limit_in_bytes") {
            let f = |n: &str| files::read_u64_opt(&h.dir.join(format!("hugetlb.{size}.{n}")));
            s.hugetlb.insert(
                size.clone(),
                HugetlbStats {
                    usage: f("usage_in_bytes")?,
                    max: f("max_usage_in_bytes")?,
                    failcnt: f("failcnt")?,
                },
            );
        }
    }
    Ok(s)
}

fn cpuacct(dir: &Path) -> Result<CpuUsage, CgroupError> {
    let list = |f: &str| -> Result<Vec<u64>, CgroupError> {
        Ok(files::read_opt(&dir.join(f))?
            .map(|t| stats::number_list(&t))
            .unwrap_or_default())
    };
    let mut u = CpuUsage {
        total: files::read_u64_opt(&dir.join("cpuacct.usage"))?,
        percpu: list("cpuacct.usage_percpu")?,
        percpu_kernel: list("cpuacct.usage_percpu_sys")?,
        percpu_user: list("cpuacct.usage_percpu_user")?,
        ..Default::default()
    };
    if dir.join("cpuacct.usage_user").exists() {
        u.user = files::read_u64(&dir.join("cpuacct.usage_user"))?;
        u.kernel = files::read_u64_opt(&dir.join("cpuacct.usage_sys"))?;
    } else {
        // Clock ticks (USER_HZ, 100 on Linux) to nanoseconds.
        let st = stats::keyed_map(&dir.join("cpuacct.stat"))?;
        u.user = st
            .get("user")
            .copied()
            .unwrap_or(0)
            .saturating_mul(10_000_000);
        u.kernel = st
            .get("system")
            .copied()
            .unwrap_or(0)
            .saturating_mul(10_000_000);
    }
    Ok(u)
}

pub fn container_mount(h: &Hierarchy) -> CgroupMount {
    let dir = h
        .mountpoint
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            h.controllers
                .iter()
                .map(|c| c.strip_prefix("name=").unwrap_or(c))
                .collect::<Vec<_>>()
                .join(",")
        });
    let links = if h.controllers.len() > 1 {
        h.controllers
            .iter()
            .filter(|c| !c.starts_with("name=") && **c != dir)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    CgroupMount::V1 {
        dir,
        options: h.controllers.join(","),
        links,
        source: h.dir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::testutil::*;
    use crate::cgroups::{Cgroup, Layout};

    /// A fake v1 tree: creates the container's directories with the control files a real kernel
    /// would show, and the parents' cpuset values.
    fn fake() -> (tempfile::TempDir, Cgroup) {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            Some("/berth/c1"),
            "c1",
            false,
        )
        .unwrap();
        let Layout::V1 { hierarchies, .. } = &cg.layout else {
            panic!("v1 expected")
        };
        for h in hierarchies {
            put(&h.mountpoint, "cgroup.procs", "");
            for d in [h.mountpoint.join("berth"), h.dir.clone()] {
                put(&d, "cgroup.procs", "");
                if h.has("cpuset") {
                    put(&d, "cpuset.cpus", "");
                    put(&d, "cpuset.mems", "");
                }
            }
            let d = &h.dir;
            let files: &[(&str, &str)] = if h.has("memory") {
                &[
                    ("memory.limit_in_bytes", "9223372036854771712"),
                    ("memory.memsw.limit_in_bytes", "9223372036854771712"),
                    ("memory.soft_limit_in_bytes", "9223372036854771712"),
                    ("memory.usage_in_bytes", "4096"),
                    ("memory.max_usage_in_bytes", "8192"),
                    ("memory.failcnt", "0"),
                    ("memory.swappiness", "60"),
                    (
                        "memory.oom_control",
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                    ),
                    ("memory.stat", "cache 100\nrss 200\ntotal_cache 100\n"),
                ]
            } else if h.has("cpu") {
                &[
                    ("cpu.shares", "1024"),
                    ("cpu.cfs_period_us", "100000"),
                    ("cpu.cfs_quota_us", "-1"),
                    (
                        "cpu.stat",
                        "nr_periods 4\nnr_throttled 1\nthrottled_time 77\n",
                    ),
                    ("cpuacct.usage", "12345"),
                    ("cpuacct.usage_percpu", "12000 345 \n"),
                    ("cpuacct.stat", "user 3\nsystem 1\n"),
                ]
            } else if h.has("pids") {
                &[("pids.max", "max"), ("pids.current", "2")]
            } else if h.has("blkio") {
                &[
                    ("blkio.bfq.weight", "100"),
                    ("blkio.throttle.read_bps_device", ""),
                    (
                        "blkio.throttle.io_service_bytes_recursive",
                        "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
                    ),
                ]
            } else if h.has("devices") {
                &[("devices.allow", ""), ("devices.deny", "")]
            } else if h.has("freezer") {
                &[("freezer.state", "THAWED"), ("freezer.self_freezing", "0")]
            } else {
                &[]
            };
            for (f, c) in files {
                put(d, f, c);
            }
        }
        put(
            &root.path().join("sys/fs/cgroup/cpuset"),
            "cpuset.cpus",
            "0-1\n",
        );
        put(
            &root.path().join("sys/fs/cgroup/cpuset"),
            "cpuset.mems",
            "0\n",
        );
        (root, cg)
    }

    fn dir(cg: &Cgroup, c: &str) -> std::path::PathBuf {
        let Layout::V1 { hierarchies, .. } = &cg.layout else {
            panic!()
        };
        find(hierarchies, c).unwrap().dir.clone()
    }

    #[test]
    fn create_copies_cpuset_down() {
        let (_root, cg) = fake();
        cg.create().unwrap();
        let d = dir(&cg, "cpuset");
        assert_eq!(get(&d, "cpuset.cpus"), "0-1");
        assert_eq!(get(&d, "cpuset.mems"), "0");
        assert_eq!(get(d.parent().unwrap(), "cpuset.cpus"), "0-1");
    }

    #[test]
    fn apply_writes_runc_values() {
        let (_root, cg) = fake();
        let r = resources(
            r#"{"memory":{"limit":16777216,"swap":33554432,"reservation":8388608,"swappiness":10},
                "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"1"},
                "pids":{"limit":42},
                "blockIO":{"weight":300,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
        );
        cg.apply(&r).unwrap();
        let m = dir(&cg, "memory");
        assert_eq!(get(&m, "memory.limit_in_bytes"), "16777216");
        assert_eq!(get(&m, "memory.memsw.limit_in_bytes"), "33554432");
        assert_eq!(get(&m, "memory.soft_limit_in_bytes"), "8388608");
        assert_eq!(get(&m, "memory.swappiness"), "10");
        let c = dir(&cg, "cpu");
        assert_eq!(get(&c, "cpu.shares"), "512");
        assert_eq!(get(&c, "cpu.cfs_quota_us"), "50000");
        assert_eq!(get(&c, "cpu.cfs_period_us"), "100000");
        assert_eq!(get(&dir(&cg, "cpuset"), "cpuset.cpus"), "1");
        assert_eq!(get(&dir(&cg, "pids"), "pids.max"), "42");
        let b = dir(&cg, "blkio");
        assert_eq!(get(&b, "blkio.bfq.weight"), "300");
        assert_eq!(get(&b, "blkio.throttle.read_bps_device"), "8:0 1048576");
        // fake files keep only the last write: deny "a", then the spec's deny-all rule
        assert_eq!(get(&dir(&cg, "devices"), "devices.allow"), "c 1:3 rwm");
        assert_eq!(get(&dir(&cg, "devices"), "devices.deny"), "a *:* rwm");
    }

    #[test]
    fn apply_unlimited_and_unset() {
        let (_root, cg) = fake();
        cg.apply(&resources(r#"{"memory":{"limit":-1},"pids":{"limit":-1}}"#))
            .unwrap();
        let m = dir(&cg, "memory");
        assert_eq!(get(&m, "memory.limit_in_bytes"), "-1");
        assert_eq!(get(&m, "memory.memsw.limit_in_bytes"), "-1");
        assert_eq!(get(&dir(&cg, "pids"), "pids.max"), "max");
        // Unset resources write nothing, even where files are missing.
        cg.apply(&resources(
            r#"{"memory":{},"cpu":{},"blockIO":{},"pids":{"limit":0}}"#,
        ))
        .unwrap();
    }

    #[test]
    fn apply_errors_name_the_problem() {
        let (_root, cg) = fake();
        let e = cg
            .apply(&resources(r#"{"unified":{"memory.max":"1"}}"#))
            .unwrap_err();
        assert!(matches!(e, CgroupError::UnifiedOnV1));
        let e = cg
            .apply(&resources(
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
            ))
            .unwrap_err();
        assert!(e.to_string().contains("hugetlb"), "{e}");
        let e = cg
            .apply(&resources(r#"{"cpu":{"realtimeRuntime":1000}}"#))
            .unwrap_err();
        assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
        let e = cg
            .apply(&resources(r#"{"memory":{"limit":-5}}"#))
            .unwrap_err();
        assert!(matches!(e, CgroupError::Invalid { .. }), "{e}");
        let e = cg
            .apply(&resources(r#"{"memory":{"swappiness":101}}"#))
            .unwrap_err();
        assert!(matches!(e, CgroupError::Invalid { .. }), "{e}");
        // The fake file does not clamp, so a clamp shows as a mismatch only on real kernels.
        cg.apply(&resources(r#"{"cpu":{"shares":1}}"#)).unwrap();
    }

    #[test]
    fn freeze_on_fake_tree() {
        let (_root, cg) = fake();
        // A plain file "freezes" at once.
        cg.freeze(true).unwrap();
        assert_eq!(get(&dir(&cg, "freezer"), "freezer.state"), "FROZEN");
        put(&dir(&cg, "freezer"), "freezer.self_freezing", "1");
        assert!(cg.is_frozen().unwrap());
        cg.freeze(false).unwrap();
        assert!(!cg.is_frozen().unwrap());
    }

    #[test]
    fn stats_from_fake_tree() {
        let (_root, cg) = fake();
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu.usage.total, 12345);
        assert_eq!(s.cpu.usage.percpu, vec![12000, 345]);
        assert_eq!(s.cpu.usage.user, 30_000_000);
        assert_eq!(s.cpu.throttling.throttled_periods, 1);
        assert_eq!(s.cpu.throttling.throttled_time, 77);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.max, 8192);
        assert_eq!(s.memory.cache, 100);
        assert_eq!(s.memory.rss, 200);
        assert_eq!(s.memory.oom_kill, 2);
        assert_eq!(s.pids.current, 2);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(cg.oom_kills().unwrap(), 2);
    }
}
