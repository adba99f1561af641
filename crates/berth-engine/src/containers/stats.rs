//! A container's resources: what it uses (`GET /containers/{id}/stats`, in Docker's stats JSON)
//! and what it may use (`POST /containers/{id}/update`: the record's limits and, while it runs,
//! its live cgroup).
//!
//! Usage comes from the runtime's cgroup reader, the host's `/proc/stat` (the system CPU time the
//! docker CLI divides by) and the init's `/proc/<pid>/net/dev`. Every read here blocks: callers
//! run [`sample`] in `spawn_blocking`. Nothing here writes outside the container's cgroup.

use std::path::Path;
use std::sync::Arc;

use berth_runtime::cgroups::Stats;
use berth_types::api::{ContainerUpdateBody, HostConfig, RestartPolicyNameEnum};
use serde_json::{json, Map, Value};

use super::{Status, ZERO_TIME};
use crate::daemon::Daemon;
use crate::error::EngineError;

/// One interface's counters, as `/proc/net/dev` has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One reading of a running container's usage.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// RFC 3339 with nanoseconds.
    pub read: String,
    pub cgroup: Stats,
    /// cgroup v2 (no per-CPU usage, no `max_usage`).
    pub v2: bool,
    /// The host's CPU time in nanoseconds (all CPUs), from `/proc/stat`.
    pub system_cpu: u64,
    pub online_cpus: u64,
    /// Interfaces of the container's network namespace, loopback left out.
    pub networks: Vec<(String, NetDev)>,
    /// The host's memory: the limit shown when the cgroup has none.
    pub host_memory: u64,
}

/// Reads a running container's usage. Blocking.
pub fn sample(state_root: &Path, id: &str, pid: i64, own_netns: bool) -> Sample {
    let mut s = Sample {
        read: berth_runtime::container::rfc3339_now(),
        ..Sample::default()
    };
    if let Ok(c) = berth_runtime::Container::load(state_root, id) {
        if let Some(cg) = &c.state.cgroup {
            s.v2 = cg.is_v2();
            // A cgroup that vanished between load and read (the container exited) reads as zero.
            s.cgroup = cg.stats().unwrap_or_default();
        }
    }
    s.system_cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| system_cpu_ns(&t, clock_ticks()))
        .unwrap_or(0);
    s.online_cpus = online_cpus();
    if own_netns && pid > 0 {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
            s.networks = parse_net_dev(&t);
        }
    }
    s.host_memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total(&t))
        .unwrap_or(0);
    s
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a value of the system.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as u64
    } else {
        1
    }
}

/// The first `cpu` line of `/proc/stat` (user nice system idle iowait irq softirq, in ticks) as
/// nanoseconds, as Docker computes `system_cpu_usage`.
pub fn system_cpu_ns(proc_stat: &str, ticks_per_sec: u64) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|f| f.parse::<u64>().ok())
        .fold(0u64, |a, b| a.saturating_add(b));
    Some(ticks.saturating_mul(1_000_000_000) / ticks_per_sec.max(1))
}

/// `MemTotal` of `/proc/meminfo` in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// The interfaces of a `/proc/<pid>/net/dev`, without `lo`.
pub fn parse_net_dev(text: &str) -> Vec<(String, NetDev)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name.is_empty() || name == "lo" || name.contains('|') {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if n.len() < 16 {
                return None;
            }
            Some((
                name.to_string(),
                NetDev {
                    rx_bytes: n[0],
                    rx_packets: n[1],
                    rx_errors: n[2],
                    rx_dropped: n[3],
                    tx_bytes: n[8],
                    tx_packets: n[9],
                    tx_errors: n[10],
                    tx_dropped: n[11],
                },
            ))
        })
        .collect()
}

fn blkio_list(v: &[berth_runtime::cgroups::BlkioEntry]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    Value::Array(
        v.iter()
            .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
            .collect(),
    )
}

fn zero_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

fn cpu_json(s: &Sample) -> Value {
    let u = &s.cgroup.cpu.usage;
    let t = &s.cgroup.cpu.throttling;
    let mut usage = json!({
        "total_usage": u.total,
        "usage_in_kernelmode": u.kernel,
        "usage_in_usermode": u.user,
    });
    if !u.percpu.is_empty() {
        usage["percpu_usage"] = json!(u.percpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_cpu,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": t.periods,
            "throttled_periods": t.throttled_periods,
            "throttled_time": t.throttled_time,
        },
    })
}

fn empty_blkio() -> Value {
    json!({
        "io_service_bytes_recursive": null,
        "io_serviced_recursive": null,
        "io_queue_service_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

/// Docker's stats JSON for a container that is not running: its name and id, zeros elsewhere.
pub fn zero_json(name: &str, id: &str) -> Value {
    json!({
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": empty_blkio(),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": zero_cpu(),
        "precpu_stats": zero_cpu(),
        "memory_stats": {},
        "name": format!("/{name}"),
        "id": id,
    })
}

/// Docker's stats JSON from a reading and the one before it (none for the first of a stream).
pub fn stats_json(name: &str, id: &str, cur: &Sample, prev: Option<&Sample>) -> Value {
    let c = &cur.cgroup;
    let mut pids = json!({"current": c.pids.current});
    if c.pids.limit > 0 {
        pids["limit"] = json!(c.pids.limit);
    }
    let mut blkio = empty_blkio();
    blkio["io_service_bytes_recursive"] = blkio_list(&c.blkio.io_service_bytes_recursive);
    blkio["io_serviced_recursive"] = blkio_list(&c.blkio.io_serviced_recursive);
    // No limit reads as a huge number (v1) or u64::MAX: Docker shows the host's memory then.
    let mut limit = c.memory.usage.limit;
    if cur.host_memory > 0 && (limit == 0 || limit > cur.host_memory) {
        limit = cur.host_memory;
    }
    let stats: Map<String, Value> = c
        .memory
        .raw
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut memory = json!({
        "usage": c.memory.usage.usage,
        "stats": stats,
        "limit": limit,
    });
    if !cur.v2 {
        memory["max_usage"] = json!(c.memory.usage.max);
        memory["failcnt"] = json!(c.memory.usage.failcnt);
    }
    let mut v = json!({
        "read": cur.read,
        "preread": prev.map_or(ZERO_TIME, |p| p.read.as_str()),
        "pids_stats": pids,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur),
        "precpu_stats": prev.map_or_else(zero_cpu, cpu_json),
        "memory_stats": memory,
        "name": format!("/{name}"),
        "id": id,
    });
    if !cur.networks.is_empty() {
        let nets: Map<String, Value> = cur
            .networks
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    json!({
                        "rx_bytes": d.rx_bytes, "rx_packets": d.rx_packets,
                        "rx_errors": d.rx_errors, "rx_dropped": d.rx_dropped,
                        "tx_bytes": d.tx_bytes, "tx_packets": d.tx_packets,
                        "tx_errors": d.tx_errors, "tx_dropped": d.tx_dropped,
                    }),
                )
            })
            .collect();
        v["networks"] = Value::Object(nets);
    }
    v
}

/// What an update asks, checked and merged into a host config (Docker's rules: zero means
/// "unchanged"; NanoCpus and CpuPeriod/CpuQuota exclude each other).
pub fn merge_update(
    hc: &HostConfig,
    u: &ContainerUpdateBody,
    host_cpus: u64,
) -> Result<HostConfig, EngineError> {
    let mut n = hc.clone();
    let set = |x: Option<i64>| x.filter(|v| *v != 0);
    let cur = |x: Option<i64>| x.unwrap_or(0);
    if set(u.nano_cpus).is_some_and(|v| v > 0) {
        if cur(hc.cpu_period) > 0 {
            return Err(EngineError::invalid("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"));
        }
        if cur(hc.cpu_quota) > 0 {
            return Err(EngineError::invalid("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"));
        }
    }
    if cur(hc.nano_cpus) > 0 {
        if set(u.cpu_period).is_some_and(|v| v > 0) {
            return Err(EngineError::invalid("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"));
        }
        if set(u.cpu_quota).is_some_and(|v| v > 0) {
            return Err(EngineError::invalid(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
    }
    if let Some(w) = u.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(EngineError::invalid(
                "Range of blkio weight is from 10 to 1000",
            ));
        }
        n.blkio_weight = Some(w);
    }
    if let Some(v) = set(u.cpu_shares) {
        if v < 0 {
            return Err(EngineError::invalid(format!("invalid CPU shares: {v}")));
        }
        n.cpu_shares = Some(v);
    }
    if let Some(v) = set(u.nano_cpus) {
        let max = host_cpus.max(1) as i64 * 1_000_000_000;
        if !(10_000_000..=max).contains(&v) {
            return Err(EngineError::invalid(format!(
                "Range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                host_cpus, host_cpus
            )));
        }
        n.nano_cpus = Some(v);
    }
    if let Some(v) = set(u.cpu_period) {
        if !(1000..=1_000_000).contains(&v) {
            return Err(EngineError::invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)"));
        }
        n.cpu_period = Some(v);
    }
    if let Some(v) = set(u.cpu_quota) {
        if v > 0 && v < 1000 {
            return Err(EngineError::invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        n.cpu_quota = Some(v);
    }
    for (new, slot) in [
        (&u.cpuset_cpus, &mut n.cpuset_cpus),
        (&u.cpuset_mems, &mut n.cpuset_mems),
    ] {
        if let Some(s) = new.as_deref().filter(|s| !s.is_empty()) {
            if !valid_cpuset(s) {
                return Err(EngineError::invalid(format!(
                    "Invalid value {s} for cpuset"
                )));
            }
            *slot = Some(s.to_string());
        }
    }
    // The swap in force: given, or Docker's default of twice the memory limit.
    let old_mem = cur(hc.memory);
    let old_swap = match cur(hc.memory_swap) {
        0 if old_mem > 0 => old_mem * 2,
        s => s,
    };
    if let Some(m) = set(u.memory) {
        if m < 6 * 1024 * 1024 {
            return Err(EngineError::invalid("Minimum memory limit allowed is 6MB"));
        }
        if old_swap > 0 && m > old_swap && cur(u.memory_swap) == 0 {
            return Err(EngineError::invalid("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"));
        }
        n.memory = Some(m);
        // Keep the swap limit that was in force (Docker stores it at create).
        if cur(hc.memory_swap) == 0 && old_swap > 0 {
            n.memory_swap = Some(old_swap);
        }
    }
    if let Some(s) = set(u.memory_swap) {
        if s != -1 && (s < 0 || s < cur(n.memory)) {
            return Err(EngineError::invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        n.memory_swap = Some(s);
    }
    if let Some(r) = set(u.memory_reservation) {
        if r < 0 || (cur(n.memory) > 0 && r > cur(n.memory)) {
            return Err(EngineError::invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        n.memory_reservation = Some(r);
    }
    if let Some(p) = u.pids_limit {
        n.pids_limit = Some(p);
    }
    if let Some(rp) = &u.restart_policy {
        let name = rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        if name != RestartPolicyNameEnum::EMPTY {
            if name != RestartPolicyNameEnum::NO && hc.auto_remove == Some(true) {
                return Err(EngineError::invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            if rp.maximum_retry_count.unwrap_or(0) < 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
            if name != RestartPolicyNameEnum::ON_FAILURE && rp.maximum_retry_count.unwrap_or(0) > 0
            {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
            n.restart_policy = Some(rp.clone());
        }
    }
    Ok(n)
}

/// `0-3,5`: numbers and ranges.
fn valid_cpuset(s: &str) -> bool {
    s.split(',').all(|part| {
        let mut it = part.splitn(2, '-');
        let a = it.next().and_then(|x| x.trim().parse::<u32>().ok());
        match (a, it.next()) {
            (Some(_), None) => true,
            (Some(a), Some(b)) => b.trim().parse::<u32>().is_ok_and(|b| b >= a),
            _ => false,
        }
    })
}

/// The `linux.resources` of a host config's limits (no devices: an update leaves the device
/// filter alone), as the OCI JSON the runtime's cgroup code reads.
pub fn resources_json(hc: &HostConfig) -> Value {
    let mut r = json!({});
    let mut memory = Map::new();
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
        match hc.memory_swap {
            Some(s) if s > 0 || s == -1 => memory.insert("swap".into(), json!(s)),
            _ => memory.insert("swap".into(), json!(m * 2)),
        };
    }
    if let Some(v) = hc.memory_reservation.filter(|v| *v > 0) {
        memory.insert("reservation".into(), json!(v));
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = Map::new();
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(n * 100_000 / 1_000_000_000));
    } else {
        if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
            cpu.insert("period".into(), json!(p));
        }
        if let Some(q) = hc.cpu_quota.filter(|q| *q != 0) {
            cpu.insert("quota".into(), json!(q));
        }
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(c) = hc.cpuset_mems.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("mems".into(), json!(c));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        // Docker: 0 and -1 both mean unlimited.
        r["pids"] = json!({"limit": if p < 0 { -1 } else { p }});
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        r["blockIO"] = json!({"weight": w});
    }
    r
}

impl Daemon {
    /// One reading of a container's usage, `None` when it does not run.
    pub async fn container_sample(&self, id: &str) -> Result<Option<Sample>, EngineError> {
        let e = self.containers.get(id)?;
        let rec = e.snapshot();
        if !rec.state.status.is_live() {
            return Ok(None);
        }
        let own_netns = rec.host_config.network_mode.as_deref() != Some("host");
        let root = self.containers.state_root.clone();
        let (id, pid) = (rec.id.clone(), rec.state.pid);
        tokio::task::spawn_blocking(move || Some(sample(&root, &id, pid, own_netns)))
            .await
            .map_err(|e| EngineError::internal(format!("read stats: {e}")))
    }

    /// `POST /containers/{id}/update`: new limits in the record and, if it runs, in its cgroup.
    pub async fn container_update(
        self: &Arc<Self>,
        key: &str,
        body: ContainerUpdateBody,
    ) -> Result<Vec<String>, EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.lock().await;
        let rec = e.snapshot();
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(EngineError::conflict(format!(
                "Cannot update container {}: container is marked for removal and cannot be \"update\"",
                rec.id
            )));
        }
        let new = merge_update(&rec.host_config, &body, online_cpus())?;
        if rec.state.status.is_live() {
            let res = resources_json(&new);
            let root = self.containers.state_root.clone();
            let id = rec.id.clone();
            tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
                let c = berth_runtime::Container::load(&root, &id)
                    .map_err(|e| EngineError::conflict(format!("container {id}: {e}")))?;
                let cg = c.state.cgroup.as_ref().ok_or_else(|| {
                    EngineError::conflict(format!("container {id} has no cgroup"))
                })?;
                let r = serde_json::from_value(res)
                    .map_err(|e| EngineError::invalid(format!("resources: {e}")))?;
                cg.apply(&r)
                    .map_err(|e| EngineError::invalid(format!("Cannot update container {id}: {e}")))
            })
            .await
            .map_err(|e| EngineError::internal(format!("update: {e}")))??;
        }
        e.rec().host_config = new;
        self.containers.save(&e)?;
        self.events
            .emit("container", "update", &rec.id, rec.event_attrs());
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::api::RestartPolicy;
    use std::collections::BTreeMap;

    fn raw(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(system_cpu_ns(stat, 100), Some(10_000_000_000));
        assert_eq!(system_cpu_ns("garbage", 100), None);
        assert_eq!(mem_total("MemTotal:       1024 kB\n"), Some(1 << 20));
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:   1500      10    1    2    0     0          0         0      700       5    0    3    0     0       0          0
";
        let n = parse_net_dev(dev);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].0, "eth0");
        assert_eq!(n[0].1.rx_bytes, 1500);
        assert_eq!(n[0].1.tx_bytes, 700);
        assert_eq!(n[0].1.tx_dropped, 3);
        assert!(parse_net_dev("x: 1 2\n").is_empty());
    }

    fn sample_with(total: u64, system: u64) -> Sample {
        let mut s = Sample {
            read: "2026-01-01T00:00:01.000000000Z".into(),
            system_cpu: system,
            online_cpus: 2,
            host_memory: 8 << 30,
            ..Sample::default()
        };
        s.cgroup.cpu.usage.total = total;
        s.cgroup.cpu.usage.percpu = vec![total / 2, total / 2];
        s.cgroup.memory.usage.usage = 10 << 20;
        s.cgroup.memory.usage.limit = 9_223_372_036_854_771_712;
        s.cgroup.memory.raw = raw(&[("total_inactive_file", 1 << 20), ("cache", 2 << 20)]);
        s.cgroup.pids.current = 3;
        s.networks = vec![(
            "eth0".into(),
            NetDev {
                rx_bytes: 5,
                tx_bytes: 6,
                ..NetDev::default()
            },
        )];
        s
    }

    #[test]
    fn stats_json_has_dockers_shape() {
        let prev = sample_with(1_000_000_000, 100_000_000_000);
        let cur = sample_with(1_500_000_000, 102_000_000_000);
        let v = stats_json("web", "abc", &cur, Some(&prev));
        assert_eq!(v["name"], "/web");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 1_500_000_000u64);
        assert_eq!(
            v["precpu_stats"]["cpu_usage"]["total_usage"],
            1_000_000_000u64
        );
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        // The docker CLI's CPU %: cpu delta / system delta × cpus × 100 = 50 %.
        let cpu = |k: &str, f: &str| v[k][f].as_f64().unwrap();
        let cd = v["cpu_stats"]["cpu_usage"]["total_usage"].as_f64().unwrap()
            - v["precpu_stats"]["cpu_usage"]["total_usage"]
                .as_f64()
                .unwrap();
        let sd = cpu("cpu_stats", "system_cpu_usage") - cpu("precpu_stats", "system_cpu_usage");
        assert!((cd / sd * 2.0 * 100.0 - 50.0).abs() < 1e-9);
        // No cgroup limit: the host's memory.
        assert_eq!(v["memory_stats"]["limit"], 8u64 << 30);
        assert_eq!(v["memory_stats"]["usage"], 10 << 20);
        assert_eq!(v["memory_stats"]["stats"]["total_inactive_file"], 1 << 20);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert!(v["pids_stats"].get("limit").is_none());
        assert_eq!(v["networks"]["eth0"]["rx_bytes"], 5);
        assert_eq!(v["preread"], prev.read);
        assert!(v["blkio_stats"]["io_service_bytes_recursive"].is_null());
        let first = stats_json("web", "abc", &cur, None);
        assert_eq!(first["preread"], ZERO_TIME);
        assert_eq!(first["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        let z = zero_json("web", "abc");
        assert_eq!(z["read"], ZERO_TIME);
        assert_eq!(z["memory_stats"], json!({}));
    }

    #[test]
    fn a_set_limit_is_shown() {
        let mut s = sample_with(1, 1);
        s.cgroup.memory.usage.limit = 64 << 20;
        s.cgroup.pids.limit = 50;
        let v = stats_json("a", "b", &s, None);
        assert_eq!(v["memory_stats"]["limit"], 64 << 20);
        assert_eq!(v["pids_stats"]["limit"], 50);
    }

    #[test]
    fn updates_follow_dockers_rules() {
        let hc = HostConfig {
            memory: Some(32 << 20),
            ..HostConfig::default()
        };
        let up = |f: &dyn Fn(&mut ContainerUpdateBody)| {
            let mut u = ContainerUpdateBody::default();
            f(&mut u);
            merge_update(&hc, &u, 2)
        };
        let n = up(&|u| u.memory = Some(64 << 20)).unwrap();
        assert_eq!(n.memory, Some(64 << 20));
        assert_eq!(n.memory_swap, Some(64 << 20));
        assert!(up(&|u| u.memory = Some(100 << 20)).is_err());
        let n = up(&|u| {
            u.memory = Some(100 << 20);
            u.memory_swap = Some(-1);
        })
        .unwrap();
        assert_eq!(n.memory_swap, Some(-1));
        assert!(up(&|u| u.memory = Some(1024)).is_err());
        assert!(up(&|u| u.blkio_weight = Some(5)).is_err());
        assert!(up(&|u| u.cpu_period = Some(10)).is_err());
        assert!(up(&|u| u.nano_cpus = Some(3_000_000_000)).is_err());
        assert!(up(&|u| u.cpuset_cpus = Some("0-x".into())).is_err());
        let n = up(&|u| {
            u.nano_cpus = Some(500_000_000);
            u.pids_limit = Some(20);
            u.cpuset_cpus = Some("0,1".into());
            u.restart_policy = Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(3),
            });
        })
        .unwrap();
        assert_eq!(n.nano_cpus, Some(500_000_000));
        let r = resources_json(&n);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["cpus"], "0,1");
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(r["memory"]["limit"], 32 << 20);
        assert!(r.get("devices").is_none());
        // Zeros change nothing.
        assert_eq!(
            up(&|u| u.cpu_shares = Some(0)).unwrap().cpu_shares,
            hc.cpu_shares
        );
        let auto = HostConfig {
            auto_remove: Some(true),
            ..HostConfig::default()
        };
        let u = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(merge_update(&auto, &u, 2).is_err());
    }
}
