//! Spec → setup plan: the pure part of container creation. Everything that can be decided from
//! config.json alone (which namespaces to create or join, how each mount's options map to mount
//! flags, which devices and links /dev gets, which capabilities and rlimits apply) is decided here,
//! without touching the system, so it is unit-tested without root and the code running after
//! clone only executes the plan.
//!
//! This module must never perform I/O or system calls.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, PosixRlimitType, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// Which namespaces the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsPlan {
    /// CLONE_NEW* flags for clone3; the cgroup namespace is not among them (see `new_cgroup`).
    pub clone_flags: u64,
    /// Unshare the cgroup namespace after the parent moved the child into its cgroup, so the
    /// namespace is rooted at the container's cgroup.
    pub new_cgroup: bool,
    /// Namespaces to join, in the order to join them (user first).
    pub join: Vec<(String, PathBuf)>,
    /// The kinds of namespace the container has at all (new or joined), by runc name.
    pub kinds: Vec<String>,
}

impl NsPlan {
    pub fn has(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
    pub fn creates(&self, flag: libc::c_int) -> bool {
        self.clone_flags & flag as u64 != 0
    }
    pub fn new_user(&self) -> bool {
        self.creates(libc::CLONE_NEWUSER)
    }
    pub fn joins(&self, kind: &str) -> Option<&Path> {
        self.join
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, p)| p.as_path())
    }
}

/// The runc name of a namespace type, as used in /proc/PID/ns/NAME.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The CLONE_NEW* flag of a namespace by its runc name.
pub fn ns_flag(name: &str) -> libc::c_int {
    match name {
        "mnt" => libc::CLONE_NEWNS,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "uts" => libc::CLONE_NEWUTS,
        "ipc" => libc::CLONE_NEWIPC,
        "user" => libc::CLONE_NEWUSER,
        "pid" => libc::CLONE_NEWPID,
        "net" => libc::CLONE_NEWNET,
        "time" => 0x80,
        _ => 0,
    }
}

/// The order in which namespaces are joined: user first so that we hold capabilities over the
/// others; mnt last so the paths of the other namespace files still resolve.
const JOIN_ORDER: [&str; 8] = ["user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt"];

/// Decides the namespaces from `linux.namespaces`.
pub fn namespaces(spec: &Spec) -> Result<NsPlan> {
    let mut plan = NsPlan::default();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut join = Vec::new();
    for ns in &list {
        let name = ns_name(ns.typ());
        if plan.has(name) {
            return Err(RuntimeError::Invalid(format!(
                "namespace {name:?} is listed twice in linux.namespaces"
            )));
        }
        plan.kinds.push(name.to_string());
        match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return Err(RuntimeError::Invalid(format!(
                        "the path of the {name} namespace must be absolute, not {}",
                        p.display()
                    )));
                }
                join.push((name.to_string(), p.clone()));
            }
            _ if name == "cgroup" => plan.new_cgroup = true,
            _ => plan.clone_flags |= ns_flag(name) as u64,
        }
    }
    join.sort_by_key(|(k, _)| JOIN_ORDER.iter().position(|o| o == k));
    plan.join = join;

    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if plan.new_user() && !has_maps {
        return Err(RuntimeError::Invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if has_maps && !plan.new_user() {
        return Err(RuntimeError::Invalid(
            "linux.uidMappings/gidMappings are set but no new user namespace is requested: add {\"type\": \"user\"} to linux.namespaces".into(),
        ));
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !plan.has("uts") {
        return Err(RuntimeError::Invalid(
            "hostname is set but the container has no UTS namespace: add {\"type\": \"uts\"} to linux.namespaces".into(),
        ));
    }
    Ok(plan)
}

/// How a mount is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A bind mount of `source` (recursive for rbind).
    Bind { recursive: bool },
    /// A filesystem of the given type.
    Fs { fstype: String },
    /// The container's view of its cgroups (type "cgroup" or "cgroup2").
    Cgroup,
}

/// One mount of the spec, with its options turned into flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOp {
    /// Where inside the root (absolute, lexically cleaned; resolved in-root at run time).
    pub dest: PathBuf,
    pub source: Option<PathBuf>,
    pub kind: MountKind,
    /// MS_* flags to mount with (MS_BIND included for binds).
    pub flags: libc::c_ulong,
    /// Propagation changes applied after the mount (MS_SHARED, MS_SLAVE | MS_REC, ...).
    pub propagation: Vec<libc::c_ulong>,
    /// Recursive attributes (MOUNT_ATTR_*) to set and clear with mount_setattr(AT_RECURSIVE).
    pub rec_attr_set: u64,
    pub rec_attr_clr: u64,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
}

impl MountOp {
    /// Flags that need a second, remounting pass after a bind mount.
    pub fn bind_remount_flags(&self) -> libc::c_ulong {
        self.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT)
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_ATIME: u64 = 0x70;

/// Parses one spec mount.
pub fn mount_op(m: &Mount) -> Result<MountOp> {
    let dest = clean_dest(m.destination()).ok_or_else(|| {
        RuntimeError::Invalid(format!(
            "mount destination {:?} is empty",
            m.destination().display()
        ))
    })?;
    let fstype = m.typ().clone().unwrap_or_default();
    let mut flags: libc::c_ulong = 0;
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    let (mut rset, mut rclr) = (0u64, 0u64);
    let mut bind = None;
    for opt in m.options().iter().flatten() {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "bind" => {
                bind.get_or_insert(false);
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                bind = Some(true);
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => libc::MS_PRIVATE,
                    "shared" => libc::MS_SHARED,
                    "slave" => libc::MS_SLAVE,
                    _ => libc::MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') {
                    libc::MS_REC
                } else {
                    0
                };
                propagation.push(base | rec);
                (0, 0)
            }
            "tmpcopyup" => (0, 0),
            r if r.starts_with('r') && rec_attr(&r[1..]).is_some() => {
                let (s, c) = rec_attr(&r[1..]).unwrap_or((0, 0));
                rset |= s;
                rclr |= c;
                (0, 0)
            }
            "idmap" | "ridmap" => {
                return Err(RuntimeError::Invalid(format!(
                    "mount {}: idmapped mounts are not supported yet",
                    dest.display()
                )))
            }
            other => {
                data.push(other.to_string());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    let kind = match (bind, fstype.as_str()) {
        (Some(recursive), _) => MountKind::Bind { recursive },
        (None, "bind") => {
            flags |= libc::MS_BIND;
            MountKind::Bind { recursive: false }
        }
        (None, "cgroup" | "cgroup2") => MountKind::Cgroup,
        (None, "") => {
            return Err(RuntimeError::Invalid(format!(
                "mount {}: no type and not a bind mount: set \"type\" or add the \"bind\" option",
                dest.display()
            )))
        }
        (None, t) => MountKind::Fs {
            fstype: t.to_string(),
        },
    };
    if matches!(kind, MountKind::Bind { .. }) && m.source().is_none() {
        return Err(RuntimeError::Invalid(format!(
            "bind mount {} has no source",
            dest.display()
        )));
    }
    Ok(MountOp {
        dest,
        source: m.source().clone(),
        kind,
        flags,
        propagation,
        rec_attr_set: rset,
        rec_attr_clr: rclr,
        data: data.join(","),
    })
}

/// The MOUNT_ATTR_* to set and clear for a recursive option name without its leading 'r'.
fn rec_attr(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "ro" => (MOUNT_ATTR_RDONLY, 0),
        "rw" => (0, MOUNT_ATTR_RDONLY),
        "nosuid" => (MOUNT_ATTR_NOSUID, 0),
        "suid" => (0, MOUNT_ATTR_NOSUID),
        "nodev" => (MOUNT_ATTR_NODEV, 0),
        "dev" => (0, MOUNT_ATTR_NODEV),
        "noexec" => (MOUNT_ATTR_NOEXEC, 0),
        "exec" => (0, MOUNT_ATTR_NOEXEC),
        "nodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "diratime" => (0, MOUNT_ATTR_NODIRATIME),
        "relatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME),
        "norelatime" => (0, 0),
        "noatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME),
        "atime" => (0, MOUNT_ATTR_ATIME),
        "strictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME),
        "nostrictatime" => (0, 0),
        _ => return None,
    })
}

/// Cleans a mount destination lexically: relative paths are taken from `/`, `.` and empty
/// components vanish, `..` is kept (the in-root resolution clamps it at the root).
pub fn clean_dest(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut any = false;
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                any = true;
            }
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    if !any && p.as_os_str().is_empty() {
        return None;
    }
    Some(out)
}

/// A device node to create in /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: libc::mode_t,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (as runc and Docker give them), then the spec's own.
pub fn devices(spec: &Spec) -> Result<Vec<DeviceNode>> {
    let mut out: Vec<DeviceNode> = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|(n, ma, mi)| DeviceNode {
        path: PathBuf::from(format!("/dev/{n}")),
        kind: libc::S_IFCHR,
        major: *ma,
        minor: *mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for d in list {
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            T::C | T::U => libc::S_IFCHR,
            T::B => libc::S_IFBLK,
            T::P => libc::S_IFIFO,
            T::A => {
                return Err(RuntimeError::Invalid(format!(
                    "device {}: type \"a\" is only valid in cgroup rules",
                    d.path().display()
                )))
            }
        };
        let path = clean_dest(d.path()).unwrap_or_default();
        if !path.starts_with("/dev") {
            return Err(RuntimeError::Invalid(format!(
                "device {} must be under /dev",
                d.path().display()
            )));
        }
        if d.major() < 0 || d.minor() < 0 {
            return Err(RuntimeError::Invalid(format!(
                "device {}: negative major/minor",
                d.path().display()
            )));
        }
        let node = DeviceNode {
            path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|n| n.path != node.path);
        out.push(node);
    }
    Ok(out)
}

/// The links every container's /dev gets.
pub const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

/// The rootfs propagation as mount flags: the spec's rootfsPropagation or rslave by default.
pub fn rootfs_propagation(spec: &Spec) -> Result<libc::c_ulong> {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    Ok(match p.as_str() {
        "" | "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "private" => libc::MS_PRIVATE,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        other => {
            return Err(RuntimeError::Invalid(format!(
                "unknown rootfsPropagation {other:?}: use shared, slave, private or unbindable (r-prefixed for recursive)"
            )))
        }
    })
}

/// An rlimit as (resource, soft, hard).
pub fn rlimits(spec_rlimits: &[oci_spec::runtime::PosixRlimit]) -> Result<Vec<(i32, u64, u64)>> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for r in spec_rlimits {
        let res = match r.typ() {
            PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
            PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
            PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
            PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
            PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
            PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
            PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
            PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
            PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
            PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
            PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
            PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
            PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
            PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
            PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        } as i32;
        if seen.contains(&res) {
            return Err(RuntimeError::Invalid(format!(
                "rlimit {:?} is listed twice",
                r.typ()
            )));
        }
        seen.push(res);
        if r.soft() > r.hard() {
            return Err(RuntimeError::Invalid(format!(
                "rlimit {:?}: soft limit {} is above the hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            )));
        }
        out.push((res, r.soft(), r.hard()));
    }
    Ok(out)
}

/// Checks a sysctl is namespaced for the namespaces the container has (as runc does), so a
/// container can never change a host-wide setting.
pub fn check_sysctl(key: &str, ns: &NsPlan) -> Result<()> {
    const IPC: [&str; 5] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
    ];
    const IPC2: [&str; 3] = ["kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
    let ok = if IPC.contains(&key) || IPC2.contains(&key) || key.starts_with("fs.mqueue.") {
        ns.has("ipc")
    } else if key.starts_with("net.") {
        ns.has("net")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        ns.has("uts")
    } else {
        false
    };
    if key.is_empty() || key.contains("..") || key.contains('/') {
        return Err(RuntimeError::Invalid(format!(
            "sysctl {key:?} is not a valid name"
        )));
    }
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "sysctl {key:?} is not allowed: it is not namespaced, or the container lacks the namespace it belongs to"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Spec;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn mnt(dest: &str, typ: &str, opts: &[&str]) -> Mount {
        serde_json::from_value(serde_json::json!({
            "destination": dest, "type": typ, "source": "src", "options": opts
        }))
        .unwrap()
    }

    #[test]
    fn default_spec_creates_all_but_cgroup_then_unshares_it() {
        let s = Spec::default();
        let p = namespaces(&s).unwrap();
        assert!(p.creates(libc::CLONE_NEWPID) && p.creates(libc::CLONE_NEWNS));
        assert!(p.creates(libc::CLONE_NEWNET) && p.creates(libc::CLONE_NEWIPC));
        assert!(!p.creates(libc::CLONE_NEWCGROUP));
        assert!(p.new_cgroup);
        assert!(p.join.is_empty());
    }

    #[test]
    fn joins_user_first_and_mnt_last() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[
            {"type":"mount","path":"/proc/1/ns/mnt"},{"type":"network","path":"/var/run/netns/x"},
            {"type":"user","path":"/proc/1/ns/user"},{"type":"pid"}]}}"#,
        );
        let p = namespaces(&s).unwrap();
        let order: Vec<_> = p.join.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["user", "net", "mnt"]);
        assert!(p.creates(libc::CLONE_NEWPID));
        assert!(!p.creates(libc::CLONE_NEWNET));
    }

    #[test]
    fn rejects_bad_namespace_lists() {
        let dup = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"pid"},{"type":"mount"}]}}"#,
        );
        assert!(namespaces(&dup).unwrap_err().to_string().contains("twice"));
        let user = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"},{"type":"mount"}]}}"#,
        );
        assert!(namespaces(&user)
            .unwrap_err()
            .to_string()
            .contains("uidMappings"));
        let host = spec(
            r#"{"ociVersion":"1.0.2","hostname":"x","linux":{"namespaces":[{"type":"mount"}]}}"#,
        );
        assert!(namespaces(&host).unwrap_err().to_string().contains("UTS"));
        let rel = spec(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"x"}]}}"#,
        );
        assert!(namespaces(&rel)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(serde_json::from_str::<Spec>(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"bogus"}]}}"#
        )
        .is_err());
    }

    #[test]
    fn bind_options_become_flags_and_remount_flags() {
        let op = mount_op(&mnt("/data", "none", &["rbind", "ro", "nosuid", "rslave"])).unwrap();
        assert_eq!(op.kind, MountKind::Bind { recursive: true });
        assert_eq!(op.flags & libc::MS_BIND, libc::MS_BIND);
        assert_eq!(op.bind_remount_flags(), libc::MS_RDONLY | libc::MS_NOSUID);
        assert_eq!(op.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
    }

    #[test]
    fn fs_options_split_flags_from_data() {
        let op = mount_op(&mnt(
            "dev/shm/",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ))
        .unwrap();
        assert_eq!(op.dest, PathBuf::from("/dev/shm"));
        assert_eq!(
            op.kind,
            MountKind::Fs {
                fstype: "tmpfs".into()
            }
        );
        assert_eq!(op.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        assert_eq!(op.data, "mode=1777,size=65536k");
        let ro_then_rw = mount_op(&mnt("/x", "tmpfs", &["ro", "rw"])).unwrap();
        assert_eq!(ro_then_rw.flags & libc::MS_RDONLY, 0);
        let rro = mount_op(&mnt("/x", "none", &["rbind", "rro"])).unwrap();
        assert_eq!(rro.rec_attr_set, MOUNT_ATTR_RDONLY);
        assert_eq!(
            mount_op(&mnt("/c", "cgroup", &["ro"])).unwrap().kind,
            MountKind::Cgroup
        );
    }

    #[test]
    fn destinations_are_cleaned_but_dotdot_kept_for_in_root_resolution() {
        assert_eq!(
            clean_dest(Path::new("/a/./b//c/")),
            Some(PathBuf::from("/a/b/c"))
        );
        assert_eq!(
            clean_dest(Path::new("../../etc")),
            Some(PathBuf::from("/etc"))
        );
        assert_eq!(clean_dest(Path::new("")), None);
    }

    #[test]
    fn default_devices_then_spec_devices_override() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[
            {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438},
            {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":432}]}}"#,
        );
        let d = devices(&s).unwrap();
        assert_eq!(d.len(), 7);
        let null = d.iter().find(|n| n.path == Path::new("/dev/null")).unwrap();
        assert_eq!(null.mode, 0o660);
        let bad = spec(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"/etc/x","type":"c","major":1,"minor":3}]}}"#,
        );
        assert!(devices(&bad).is_err());
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let ns = namespaces(&Spec::default()).unwrap();
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(check_sysctl("kernel.shmmax", &ns).is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max", &ns).is_ok());
        assert!(check_sysctl("kernel.pid_max", &ns).is_err());
        assert!(check_sysctl("vm.swappiness", &ns).is_err());
    }

    #[test]
    fn propagation_and_rlimits() {
        assert_eq!(
            rootfs_propagation(&Spec::default()).unwrap(),
            libc::MS_SLAVE | libc::MS_REC
        );
        let s = spec(r#"{"ociVersion":"1.0.2","linux":{"rootfsPropagation":"sideways"}}"#);
        assert!(rootfs_propagation(&s).is_err());
        let rl: Vec<oci_spec::runtime::PosixRlimit> =
            serde_json::from_str(r#"[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]"#).unwrap();
        assert!(rlimits(&rl).unwrap_err().to_string().contains("soft"));
    }
}
