//! Resource usage as runc's `events --stats` prints it (field names from runc's `types/events.go`,
//! which containerd's runc shim decodes), plus a few extra fields containerd ignores (`rss`,
//! `oomKill`, `oom`).
//!
//! Must never fail on an unknown line in a stat file: kernels add keys; unparsable lines are
//! skipped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files;
use super::CgroupError;

/// Resource usage read from the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Keyed by page size as the kernel names it ("2MB", "1GB").
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    /// `u64::MAX` when unlimited, as runc reports it.
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    /// Page cache bytes (v1 `cache`, v2 `file`).
    pub cache: u64,
    pub usage: MemoryEntry,
    /// v1: memory+swap (`memsw`), as runc; v2: swap plus memory, for the same meaning.
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub rss: u64,
    /// Processes killed by the OOM killer.
    #[serde(rename = "oomKill")]
    pub oom_kill: u64,
    /// Times the cgroup hit its limit and the OOM path ran (v2 `oom`; v1 `under_oom` now).
    pub oom: u64,
    /// `memory.stat` as read.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    pub current: u64,
    /// 0 means no limit, as runc reports it.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HugetlbStats {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

/// A keyed file ("key value" lines) as a map; absent file gives an empty map.
pub(super) fn keyed_map(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(match files::read_opt(path)? {
        Some(text) => files::parse_keyed(&text)
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        None => BTreeMap::new(),
    })
}

/// Space-separated numbers (v1 `cpuacct.usage_percpu`).
pub(super) fn number_list(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// v1 blkio lines "MAJ:MIN Op value"; "Total" lines are skipped.
pub(super) fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

/// v2 `io.stat`: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.." → (bytes, ios) entries with ops
/// "Read"/"Write", as runc converts them.
pub(super) fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// Page sizes with hugetlb files in `dir` ("hugetlb.2MB.limit_in_bytes" / "hugetlb.2MB.max").
pub(super) fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
                    (!size.contains('.')).then(|| size.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_follow_runc() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.throttling.throttled_periods = 2;
        s.memory.usage.usage = 7;
        s.pids.current = 3;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 9,
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 5);
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(v["memory"]["usage"]["usage"], 7);
        assert_eq!(v["pids"]["current"], 3);
        assert!(v["memory"].get("kernelTCP").is_some());
        assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        let empty: Stats = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Stats::default());
    }

    #[test]
    fn blkio_parsers() {
        let v1 = parse_blkio_v1("8:0 Read 100\n8:0 Write 5\n8:0 Total 105\nTotal 105\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(v1[1].op, "Write");
        let (b, i) = parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\nbad\n");
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].value, 20);
        assert_eq!(i[0].value, 1);
    }

    #[test]
    fn hugetlb_sizes_found() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
            "hugetlb.1GB.limit_in_bytes",
        ] {
            std::fs::write(d.path().join(f), "0").unwrap();
        }
        assert_eq!(hugetlb_sizes(d.path(), ".limit_in_bytes"), ["1GB", "2MB"]);
    }
}
