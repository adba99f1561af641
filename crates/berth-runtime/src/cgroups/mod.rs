//! Control groups for containers, v1 and v2.
//!
//! Why this module exists: a container's resource limits, its pause/resume, its statistics, its OOM
//! reports and `kill --all` all live in the kernel's cgroup filesystems. This module is the only
//! place in the runtime that knows their layout: it reads `/proc/self/mountinfo` to find the
//! hierarchies (v1 with one mount per controller set, hybrid with cgroup2 at
//! `/sys/fs/cgroup/unified`, or pure v2), turns an OCI `cgroupsPath` into one directory per
//! hierarchy, and translates `linux.resources` into the files runc would write, in runc's order and
//! with runc's conversions, so that containerd and Docker users see the same behaviour.
//!
//! What it must never do: write outside the cgroup mounts it found (every `cgroupsPath` is
//! normalised and a `..` that would climb out of its base is refused), silently drop a resource the
//! spec asked for (a set resource whose file is missing is an error; an unset one is never written),
//! leave directories behind after [`Cgroup::destroy`], panic on any input, or block without a bound
//! (freezing and removal retry for a few seconds at most).
//!
//! On hybrid hosts the container also gets a directory in the cgroup2 hierarchy (no controllers
//! there, but it gives the container `cgroup.kill`, `cgroup.events` and a place for
//! [`devices_bpf`] programs); limits and device rules go through the v1 controllers.
//!
//! The layout can be built from text instead of the live system ([`Cgroup::from_parts`]): unit tests
//! run the v1 and v2 code against fake trees in temporary directories, and crate tests use the same
//! seam to drive the real cgroup2 hierarchy mounted at `/sys/fs/cgroup/unified` on hybrid hosts.

mod devices;
pub mod devices_bpf;
mod files;
mod layout;
mod oom;
mod statmount;
mod stats;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use layout::{Hierarchy, Layout};
pub use oom::{OomEvent, OomWatcher};
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};

/// Errors from cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: check that /proc and /sys/fs/cgroup are mounted")]
    ReadProc {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no cgroup filesystem is mounted: mount cgroup2 at /sys/fs/cgroup, or the v1 controllers \
         under it"
    )]
    NoCgroupFs,
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("cannot create cgroup directory {path}: check that the hierarchy is writable")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: the cgroup may have been removed")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {path}: check the value in linux.resources")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content {content:?} in {path}")]
    Parse { path: PathBuf, content: String },
    #[error(
        "{resource} is set but {path} does not exist on this host: remove it from \
         linux.resources or enable the controller"
    )]
    Unsupported { resource: String, path: PathBuf },
    #[error("{resource} is set but this host has no {controller} cgroup: remove it from linux.resources")]
    NoController {
        resource: String,
        controller: &'static str,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(
        "cannot set the memory limit to {limit} in {path}: the cgroup already uses {usage} bytes; \
         choose a higher limit"
    )]
    MemoryBelowUsage {
        path: PathBuf,
        limit: i64,
        usage: u64,
    },
    #[error(
        "the kernel clamped cpu shares {wanted} to {got} in {path}: use a value between 2 and 262144"
    )]
    SharesClamped {
        path: PathBuf,
        wanted: u64,
        got: u64,
    },
    #[error("linux.resources.unified is set but this host uses cgroup v1: remove it or use a cgroup v2 host")]
    UnifiedOnV1,
    #[error(
        "no freezer is available (neither a v1 freezer hierarchy nor cgroup v2): pause needs one"
    )]
    NoFreezer,
    #[error("{path} did not reach state {state} within {secs}s: a task may be stuck in the kernel; retry")]
    FreezeTimeout {
        path: PathBuf,
        state: &'static str,
        secs: u64,
    },
    #[error("cannot remove cgroup directory {path}: tasks are still inside; kill them and retry")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid device rule {rule:?}: {reason}")]
    DeviceRule { rule: String, reason: String },
    #[error(
        "bpf {op} for the device filter of {path} failed{log}: the runtime needs CAP_SYS_ADMIN \
         (or CAP_BPF) and a kernel with cgroup device programs"
    )]
    Bpf {
        op: &'static str,
        path: PathBuf,
        log: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up OOM notification on {path}")]
    OomNotify {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch for OOM events: this host mounts no v1 memory hierarchy")]
    OomUnavailable,
    #[error("cannot send signal {signal} to pid {pid}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: std::io::Error,
    },
}

/// A container's cgroup (one directory per v1 hierarchy, or one v2 directory). Serializable so the
/// runtime keeps it in the container's state file and can operate on it from a later invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The normalised cgroups path: absolute (`/berth/<id>`, `/system.slice/x-y.scope`) is relative
    /// to each hierarchy's root; relative is below the runtime's own cgroup in each hierarchy.
    pub path: String,
    /// The directories of this cgroup, resolved against the mounts found at construction.
    pub layout: Layout,
}

/// How the container's `cgroup` mounts look inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMount {
    /// One `cgroup2` mount at `/sys/fs/cgroup` (fstype "cgroup2", no data).
    V2,
    /// One v1 hierarchy: mount fstype "cgroup" with data `options` at `/sys/fs/cgroup/<dir>`
    /// (inside a private cgroup namespace), or bind-mount `source` there; then create each of
    /// `links` as a symlink `/sys/fs/cgroup/<link>` → `<dir>` (comounted controllers such as
    /// "cpu,cpuacct" get "cpu" and "cpuacct").
    V1 {
        dir: String,
        options: String,
        links: Vec<String>,
        source: PathBuf,
    },
}

impl Cgroup {
    /// Resolves `cgroups_path` for container `id` against the cgroup mounts of this process.
    ///
    /// Absolute paths are relative to each hierarchy root, relative ones to this process's own
    /// cgroup, `None` means `/berth/<id>`. With `systemd`, "slice:prefix:name" maps to
    /// `/<expanded slice>/<prefix>-<name>.scope` (no systemd is asked; the path is used on
    /// cgroupfs directly).
    pub fn new(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Self, CgroupError> {
        let own = read_proc("/proc/self/cgroup")?;
        // Asking the kernel for the cgroup mounts alone does not grow with the number of mounts
        // (every container adds one); mountinfo is the fallback.
        let mounts = match statmount::cgroup_mounts() {
            Some(m) => m,
            None => layout::parse_mountinfo(&read_proc("/proc/self/mountinfo")?, None),
        };
        Self::from_mounts(mounts, &own, cgroups_path, id, systemd)
    }

    /// Like [`Cgroup::new`], from the text of a `mountinfo` and a `/proc/<pid>/cgroup` file, with
    /// every mount point placed below `root_prefix` when given. Tests use this to point the code at
    /// fake trees; callers can use it to resolve against another process's view.
    pub fn from_parts(
        mountinfo: &str,
        proc_cgroup: &str,
        root_prefix: Option<&Path>,
        cgroups_path: Option<&str>,
        id: &str,
        systemd: bool,
    ) -> Result<Self, CgroupError> {
        let mounts = layout::parse_mountinfo(mountinfo, root_prefix);
        Self::from_mounts(mounts, proc_cgroup, cgroups_path, id, systemd)
    }

    fn from_mounts(
        mounts: Vec<layout::CgroupMountInfo>,
        proc_cgroup: &str,
        cgroups_path: Option<&str>,
        id: &str,
        systemd: bool,
    ) -> Result<Self, CgroupError> {
        let own = layout::parse_proc_cgroup(proc_cgroup);
        let wanted = layout::resolve_path(cgroups_path, id, systemd)?;
        let layout = Layout::resolve(&mounts, &own, &wanted)?;
        Ok(Cgroup {
            path: wanted.display(),
            layout,
        })
    }

    /// True on a pure cgroup v2 host.
    pub fn is_v2(&self) -> bool {
        matches!(self.layout, Layout::V2 { .. })
    }

    /// The container's cgroup2 directory: the whole cgroup on v2, the directory in the unified
    /// hierarchy on hybrid hosts (useful for `CLONE_INTO_CGROUP` and `cgroup.kill`), `None` on pure
    /// v1.
    pub fn v2_dir(&self) -> Option<&Path> {
        match &self.layout {
            Layout::V2 { hierarchy } => Some(&hierarchy.dir),
            Layout::V1 { unified, .. } => unified.as_ref().map(|h| h.dir.as_path()),
        }
    }

    /// Every directory of this cgroup, one per hierarchy (v1 named hierarchies and the hybrid
    /// unified one included).
    pub fn dirs(&self) -> Vec<&Path> {
        self.layout.all().map(|h| h.dir.as_path()).collect()
    }

    /// Creates the directories in every hierarchy (`mkdir -p`), preparing parents as the kernel
    /// requires (v1 cpuset values copied down, v2 controllers enabled in `cgroup.subtree_control`).
    pub fn create(&self) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 {
                hierarchies,
                unified,
            } => {
                v1::create(hierarchies)?;
                if let Some(u) = unified {
                    files::mkdir_all(&u.dir)?;
                }
                Ok(())
            }
            Layout::V2 { hierarchy } => v2::create(hierarchy),
        }
    }

    /// Writes `linux.resources`: only what is set, in runc's order and with runc's conversions.
    /// Applying again (for `update`) replaces the previous values, including the device filter.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => v1::apply(hierarchies, r),
            Layout::V2 { hierarchy } => v2::apply(&hierarchy.dir, r),
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::Invalid {
                what: format!("pid {pid}"),
                reason: "a process id must be positive".into(),
            });
        }
        for h in self.layout.all() {
            files::write(&h.dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// All processes in the cgroup and its sub-cgroups (v1: the pids, memory or first hierarchy).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match &self.layout {
            Layout::V2 { hierarchy } => &hierarchy.dir,
            Layout::V1 { hierarchies, .. } => match v1::find(hierarchies, "pids")
                .or_else(|| v1::find(hierarchies, "memory"))
                .or_else(|| hierarchies.first())
            {
                Some(h) => &h.dir,
                None => return Ok(Vec::new()),
            },
        };
        let mut out = Vec::new();
        files::collect_procs(dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Freezes (`true`) or thaws (`false`) every task, waiting (at most a few seconds) until the
    /// kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => match v1::find(hierarchies, "freezer") {
                Some(h) => v1::freeze(&h.dir, frozen),
                None => Err(CgroupError::NoFreezer),
            },
            Layout::V2 { hierarchy } => v2::freeze(&hierarchy.dir, frozen),
        }
    }

    /// Whether the cgroup itself was frozen (paused), not merely an ancestor.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => match v1::find(hierarchies, "freezer") {
                Some(h) => v1::is_frozen(&h.dir),
                None => Ok(false),
            },
            Layout::V2 { hierarchy } => v2::is_frozen(&hierarchy.dir),
        }
    }

    /// Resource usage, shaped like runc's `events --stats` data.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => v1::stats(hierarchies),
            Layout::V2 { hierarchy } => v2::stats(&hierarchy.dir),
        }
    }

    /// How many processes of this cgroup the kernel OOM killer killed so far (v1 `memory.oom_control`
    /// `oom_kill`, v2 `memory.events` `oom_kill`); 0 when the host has no memory controller here.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => match v1::find(hierarchies, "memory") {
                Some(h) => files::read_keyed(&h.dir.join("memory.oom_control"), "oom_kill"),
                None => Ok(0),
            },
            Layout::V2 { hierarchy } => {
                let p = hierarchy.dir.join("memory.events");
                if p.exists() {
                    files::read_keyed(&p, "oom_kill")
                } else {
                    Ok(0)
                }
            }
        }
    }

    /// A pollable handle that becomes readable when the kernel reports an OOM in this cgroup (v1:
    /// an eventfd registered through `cgroup.event_control` on `memory.oom_control`; v2: inotify on
    /// `memory.events`). Call [`OomWatcher::wait`] to block, or poll [`OomWatcher`]'s fd (it
    /// implements `AsFd`) and then call [`OomWatcher::read`]. The handle also reports
    /// [`OomEvent::CgroupRemoved`] once the cgroup is gone, so a waiter never hangs forever.
    pub fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => match v1::find(hierarchies, "memory") {
                Some(h) => OomWatcher::v1(&h.dir),
                None => Err(CgroupError::OomUnavailable),
            },
            Layout::V2 { hierarchy } => OomWatcher::v2(&hierarchy.dir),
        }
    }

    /// Removes the cgroup's directories in every hierarchy, sub-cgroups first, retrying briefly
    /// while exiting tasks leave. Missing directories are not an error.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for h in self.layout.all() {
            if let Err(e) = files::remove_tree(&h.dir) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends `signal` to every process of the cgroup (`kill --all`): freezes first so that no task
    /// can fork away, signals, then thaws (unless the cgroup was already paused). Processes that
    /// exit meanwhile are not an error.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if let Layout::V2 { hierarchy } = &self.layout {
            // cgroup.kill (Linux 5.14+) kills every task atomically, forks included.
            let kill = hierarchy.dir.join("cgroup.kill");
            if signal == libc::SIGKILL && kill.exists() {
                return files::write(&kill, "1");
            }
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen && self.freeze(true).is_ok();
        let result = self.signal_all(signal);
        if froze {
            let thawed = self.freeze(false);
            result?;
            thawed
        } else {
            result
        }
    }

    fn signal_all(&self, signal: i32) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours.
            let rc = unsafe { libc::kill(pid, signal) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    return Err(CgroupError::Signal {
                        pid,
                        signal,
                        source: err,
                    });
                }
            }
        }
        Ok(())
    }

    /// What the container's own `cgroup` mount must look like: one cgroup2 mount on v2; on v1 one
    /// entry per hierarchy, named like its host mount point under `/sys/fs/cgroup`.
    pub fn container_mounts(&self) -> Vec<CgroupMount> {
        match &self.layout {
            Layout::V2 { .. } => vec![CgroupMount::V2],
            Layout::V1 { hierarchies, .. } => hierarchies.iter().map(v1::container_mount).collect(),
        }
    }
}

fn read_proc(path: &str) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::ReadProc {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Fake cgroup trees for unit tests.
    use std::path::Path;

    /// Creates `dir/file` with `content`, making parents.
    pub fn put(dir: &Path, file: &str, content: &str) {
        let p = dir.join(file);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    pub fn get(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap_or_default()
    }

    pub fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    pub const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    pub const V1_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/user/me
3:cpuset:/
2:cpu,cpuacct:/
0::/
";
    pub const V2_MOUNTINFO: &str =
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    pub const V2_PROC_CGROUP: &str = "0::/user.slice/me\n";
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn v1_layout_from_fake_mountinfo() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            None,
            "abc",
            false,
        )
        .unwrap();
        assert_eq!(cg.path, "/berth/abc");
        assert!(!cg.is_v2());
        let dirs = cg.dirs();
        let base = root.path().join("sys/fs/cgroup");
        assert!(dirs.contains(&base.join("cpu,cpuacct/berth/abc").as_path()));
        assert!(dirs.contains(&base.join("systemd/berth/abc").as_path()));
        assert_eq!(cg.v2_dir(), Some(base.join("unified/berth/abc").as_path()));
        // relative paths go below the runtime's own cgroup, per hierarchy
        let rel = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            Some("k/c1"),
            "c1",
            false,
        )
        .unwrap();
        assert!(rel
            .dirs()
            .contains(&base.join("memory/user/me/k/c1").as_path()));
        assert!(rel.dirs().contains(&base.join("pids/k/c1").as_path()));
    }

    #[test]
    fn container_mounts_v1_have_links_for_comounted() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            None,
            "abc",
            false,
        )
        .unwrap();
        let mounts = cg.container_mounts();
        let cpu = mounts
            .iter()
            .find_map(|m| match m {
                CgroupMount::V1 {
                    dir,
                    options,
                    links,
                    ..
                } if dir == "cpu,cpuacct" => Some((options.clone(), links.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(cpu.0, "cpu,cpuacct");
        assert_eq!(cpu.1, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert!(mounts.iter().any(|m| matches!(m,
            CgroupMount::V1 { dir, options, links, .. }
                if dir == "systemd" && options == "name=systemd" && links.is_empty())));
    }

    #[test]
    fn v2_layout_and_mounts() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V2_MOUNTINFO,
            V2_PROC_CGROUP,
            Some(root.path()),
            Some("system.slice:docker:abc"),
            "abc",
            true,
        )
        .unwrap();
        assert!(cg.is_v2());
        assert_eq!(cg.path, "/system.slice/docker-abc.scope");
        assert_eq!(
            cg.v2_dir().unwrap(),
            root.path()
                .join("sys/fs/cgroup/system.slice/docker-abc.scope")
        );
        assert_eq!(cg.container_mounts(), vec![CgroupMount::V2]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            None,
            "abc",
            false,
        )
        .unwrap();
        let json = serde_json::to_string(&cg).unwrap();
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
    }

    #[test]
    fn no_cgroup_mounts_is_an_error() {
        let err = Cgroup::from_parts(
            "1 0 0:1 / / rw - ext4 /dev/sda rw\n",
            "",
            None,
            None,
            "x",
            false,
        )
        .unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroupFs));
    }

    #[test]
    fn add_task_rejects_nonpositive_pid() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V2_MOUNTINFO,
            V2_PROC_CGROUP,
            Some(root.path()),
            None,
            "a",
            false,
        )
        .unwrap();
        assert!(cg.add_task(0).is_err());
        assert!(cg.add_task(-1).is_err());
    }

    #[test]
    fn destroy_of_missing_cgroup_is_ok() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::from_parts(
            V1_MOUNTINFO,
            V1_PROC_CGROUP,
            Some(root.path()),
            None,
            "gone",
            false,
        )
        .unwrap();
        cg.destroy().unwrap();
    }
}
