//! Where a container's cgroup lives: parsing `/proc/self/mountinfo` and `/proc/self/cgroup`,
//! normalising the OCI `cgroupsPath` (runc's semantics, systemd "slice:prefix:name" included), and
//! joining the two into one directory per hierarchy.
//!
//! Must never produce a directory outside a cgroup mount: `..` that climbs above the base of a path
//! is refused, and the container's cgroup is never a hierarchy root or the runtime's own cgroup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// v1 controllers the kernel knows (the superblock options that name a controller rather than a
/// mount option).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One hierarchy and the container's directory in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// v1 controllers as the kernel names them ("cpu", "cpuacct", "name=systemd"); empty for v2.
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted on the host.
    pub mountpoint: PathBuf,
    /// The container's cgroup directory in it.
    pub dir: PathBuf,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The container's cgroup directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Layout {
    /// v1: one directory per mounted hierarchy (named ones included); on hybrid hosts also one in
    /// the cgroup2 hierarchy, which the process joins but which holds no controllers.
    V1 {
        hierarchies: Vec<Hierarchy>,
        unified: Option<Hierarchy>,
    },
    /// Pure v2: one directory.
    V2 { hierarchy: Hierarchy },
}

impl Layout {
    /// Every hierarchy, v2/unified included.
    pub fn all(&self) -> impl Iterator<Item = &Hierarchy> {
        let (many, one): (&[Hierarchy], Option<&Hierarchy>) = match self {
            Layout::V1 {
                hierarchies,
                unified,
            } => (hierarchies, unified.as_ref()),
            Layout::V2 { hierarchy } => (&[], Some(hierarchy)),
        };
        many.iter().chain(one)
    }

    pub(super) fn resolve(
        mounts: &[CgroupMountInfo],
        own: &HashMap<String, String>,
        wanted: &WantedPath,
    ) -> Result<Layout, CgroupError> {
        let mut v1: Vec<&CgroupMountInfo> = Vec::new();
        let mut v2: Option<&CgroupMountInfo> = None;
        for m in mounts {
            match &m.controllers {
                Some(ctrls) => {
                    if !v1.iter().any(|o| o.controllers.as_ref() == Some(ctrls)) {
                        v1.push(m);
                    }
                }
                None => {
                    if v2.is_none() {
                        v2 = Some(m);
                    }
                }
            }
        }
        let has_real_v1 = v1.iter().any(|m| {
            m.controllers
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| !c.starts_with("name=")))
        });
        if has_real_v1 {
            let hierarchies = v1
                .iter()
                .map(|m| m.hierarchy(own, wanted))
                .collect::<Result<Vec<_>, _>>()?;
            let unified = v2.map(|m| m.hierarchy(own, wanted)).transpose()?;
            Ok(Layout::V1 {
                hierarchies,
                unified,
            })
        } else if let Some(m) = v2 {
            Ok(Layout::V2 {
                hierarchy: m.hierarchy(own, wanted)?,
            })
        } else {
            Err(CgroupError::NoCgroupFs)
        }
    }
}

/// A cgroup mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CgroupMountInfo {
    /// `None` for cgroup2; the v1 controllers otherwise.
    pub controllers: Option<Vec<String>>,
    /// The mount's root inside the hierarchy (not "/" inside a cgroup namespace or bind mount).
    pub root: String,
    pub mountpoint: PathBuf,
}

impl CgroupMountInfo {
    fn key(&self) -> String {
        match &self.controllers {
            Some(c) => controllers_key(c.iter().map(String::as_str)),
            None => String::new(),
        }
    }

    fn hierarchy(
        &self,
        own: &HashMap<String, String>,
        wanted: &WantedPath,
    ) -> Result<Hierarchy, CgroupError> {
        let mut dir = self.mountpoint.clone();
        if !wanted.absolute {
            let own_path = own.get(&self.key()).map(String::as_str).unwrap_or("/");
            let root = self.root.trim_end_matches('/');
            let below = if root.is_empty() {
                Some(own_path)
            } else {
                own_path
                    .strip_prefix(root)
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            };
            let Some(below) = below else {
                return Err(CgroupError::InvalidPath {
                    path: wanted.display(),
                    reason: format!(
                        "this process's cgroup {own_path:?} is outside the mount of {} (root \
                         {:?}); use an absolute cgroups path",
                        self.mountpoint.display(),
                        self.root
                    ),
                });
            };
            for c in below.split('/').filter(|c| !c.is_empty() && *c != ".") {
                if c == ".." {
                    return Err(CgroupError::InvalidPath {
                        path: wanted.display(),
                        reason: format!("this process's cgroup {own_path:?} contains \"..\""),
                    });
                }
                dir.push(c);
            }
        }
        for c in &wanted.components {
            dir.push(c);
        }
        Ok(Hierarchy {
            controllers: self.controllers.clone().unwrap_or_default(),
            mountpoint: self.mountpoint.clone(),
            dir,
        })
    }
}

fn controllers_key<'a>(c: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = c.filter(|s| !s.is_empty()).collect();
    v.sort_unstable();
    v.join(",")
}

/// Undoes mountinfo's octal escapes (`\040` for space and friends).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = (u32::from(oct[0] - b'0') << 6)
                    | (u32::from(oct[1] - b'0') << 3)
                    | u32::from(oct[2] - b'0');
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The controllers (and `name=` of a named hierarchy) in a v1 cgroup mount's options.
pub(super) fn v1_controllers_of(superopts: &str) -> Vec<String> {
    superopts
        .split(',')
        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

/// The cgroup mounts in a mountinfo text, mount points placed below `prefix` when given.
pub(super) fn parse_mountinfo(text: &str, prefix: Option<&Path>) -> Vec<CgroupMountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 5 || fields.len() < sep + 4 {
            continue;
        }
        let (root, mountpoint) = (unescape(fields[3]), unescape(fields[4]));
        let (fstype, superopts) = (fields[sep + 1], fields[sep + 3]);
        let controllers = match fstype {
            "cgroup2" => None,
            "cgroup" => {
                let c = v1_controllers_of(superopts);
                if c.is_empty() {
                    continue;
                }
                Some(c)
            }
            _ => continue,
        };
        let mountpoint = match prefix {
            Some(p) => p.join(mountpoint.trim_start_matches('/')),
            None => PathBuf::from(mountpoint),
        };
        out.push(CgroupMountInfo {
            controllers,
            root,
            mountpoint,
        });
    }
    out
}

/// `/proc/<pid>/cgroup` as a map from the sorted controller list ("" for v2) to the path.
pub(super) fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        out.insert(controllers_key(ctrls.split(',')), path.to_string());
    }
    out
}

/// A normalised cgroups path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WantedPath {
    pub absolute: bool,
    pub components: Vec<String>,
}

impl WantedPath {
    pub fn display(&self) -> String {
        let joined = self.components.join("/");
        if self.absolute {
            format!("/{joined}")
        } else {
            joined
        }
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Normalises an OCI `cgroupsPath` the way runc reads it.
pub(super) fn resolve_path(
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
) -> Result<WantedPath, CgroupError> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    if given.is_none()
        && (id.is_empty() || id.contains(['/', '\0', ':']) || id == "." || id == "..")
    {
        return Err(invalid(
            id,
            "the container id cannot name a cgroup; pass a valid id or a cgroups path",
        ));
    }
    if systemd {
        let owned;
        let p = match given {
            Some(p) => p,
            None => {
                owned = format!("system.slice:berth:{id}");
                &owned
            }
        };
        return systemd_path(p);
    }
    let p = match given {
        Some(p) => p.to_string(),
        None => format!("/berth/{id}"),
    };
    if p.contains('\0') {
        return Err(invalid(&p, "it contains a NUL byte"));
    }
    let absolute = p.starts_with('/');
    let mut components: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if components.pop().is_none() {
                    return Err(invalid(
                        &p,
                        "\"..\" climbs out of the hierarchy root (or the runtime's cgroup); remove it",
                    ));
                }
            }
            c => components.push(c.to_string()),
        }
    }
    if components.is_empty() {
        return Err(invalid(
            &p,
            "it names the hierarchy root or the runtime's own cgroup; give the container a cgroup \
             of its own",
        ));
    }
    Ok(WantedPath {
        absolute,
        components,
    })
}

/// "slice:prefix:name" → `/<expanded slice>/<prefix>-<name>.scope`, as systemd would place it.
fn systemd_path(p: &str) -> Result<WantedPath, CgroupError> {
    let parts: Vec<&str> = p.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(
            p,
            "with --systemd-cgroup it must be \"slice:prefix:name\" (e.g. system.slice:docker:<id>)",
        ));
    };
    let bad = |s: &str| s.contains(['/', '\0']) || s == "." || s == "..";
    if name.is_empty() || bad(name) || bad(prefix) || bad(slice) {
        return Err(invalid(
            p,
            "slice, prefix and name cannot contain '/' and the name cannot be empty",
        ));
    }
    let mut components = expand_slice(if slice.is_empty() {
        "system.slice"
    } else {
        slice
    })
    .map_err(|reason| invalid(p, reason))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    components.push(unit);
    Ok(WantedPath {
        absolute: true,
        components,
    })
}

/// "a-b-c.slice" → ["a.slice", "a-b.slice", "a-b-c.slice"]; "-.slice" is the root.
fn expand_slice(slice: &str) -> Result<Vec<String>, String> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} must end in \".slice\""));
    };
    if base == "-" {
        return Ok(Vec::new());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(format!("slice {slice:?} is not a valid systemd slice name"));
    }
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in base.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        out.push(format!("{acc}.slice"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(w: &WantedPath) -> String {
        w.display()
    }

    #[test]
    fn default_path_is_under_berth() {
        assert_eq!(
            comps(&resolve_path(None, "abc", false).unwrap()),
            "/berth/abc"
        );
        assert_eq!(
            comps(&resolve_path(Some(""), "abc", false).unwrap()),
            "/berth/abc"
        );
        assert!(resolve_path(None, "../x", false).is_err());
        assert!(resolve_path(None, "", false).is_err());
        assert!(resolve_path(None, "..", false).is_err());
    }

    #[test]
    fn dotdot_is_normalised_or_refused() {
        assert_eq!(
            comps(&resolve_path(Some("/a/./b/../c"), "x", false).unwrap()),
            "/a/c"
        );
        assert!(resolve_path(Some("/a/../../etc"), "x", false).is_err());
        assert!(resolve_path(Some("../x"), "x", false).is_err());
        assert!(resolve_path(Some("/"), "x", false).is_err());
        assert!(resolve_path(Some("a/.."), "x", false).is_err());
        let rel = resolve_path(Some("a//b/"), "x", false).unwrap();
        assert!(!rel.absolute);
        assert_eq!(comps(&rel), "a/b");
    }

    #[test]
    fn systemd_paths_map_to_scopes() {
        let w = resolve_path(Some("system.slice:docker:abc"), "abc", true).unwrap();
        assert_eq!(comps(&w), "/system.slice/docker-abc.scope");
        let w = resolve_path(
            Some("kubepods-besteffort-pod1.slice:cri-containerd:abc"),
            "abc",
            true,
        )
        .unwrap();
        assert_eq!(
            comps(&w),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
        );
        let w = resolve_path(Some(":berth:abc"), "abc", true).unwrap();
        assert_eq!(comps(&w), "/system.slice/berth-abc.scope");
        let w = resolve_path(Some("-.slice::abc"), "abc", true).unwrap();
        assert_eq!(comps(&w), "/abc.scope");
        let w = resolve_path(None, "abc", true).unwrap();
        assert_eq!(comps(&w), "/system.slice/berth-abc.scope");
        assert!(resolve_path(Some("/berth/abc"), "abc", true).is_err());
        assert!(resolve_path(Some("a.slice:p:../x"), "abc", true).is_err());
        assert!(resolve_path(Some("notaslice:p:x"), "abc", true).is_err());
        assert!(resolve_path(Some("a--b.slice:p:x"), "abc", true).is_err());
        assert!(resolve_path(Some("system.slice:p:"), "abc", true).is_err());
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 /docker/x /sys/fs/cgroup/my\\040dir rw shared:1 master:2 - cgroup2 cgroup2 rw
42 31 0:39 / /mnt rw - cgroup none rw,noprefix
garbage
";
        let m = parse_mountinfo(text, None);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].controllers,
            Some(vec!["cpu".to_string(), "cpuacct".to_string()])
        );
        assert_eq!(m[1].controllers, Some(vec!["name=systemd".to_string()]));
        assert_eq!(m[2].controllers, None);
        assert_eq!(m[2].root, "/docker/x");
        assert_eq!(m[2].mountpoint, PathBuf::from("/sys/fs/cgroup/my dir"));
        let m = parse_mountinfo(text, Some(Path::new("/tmp/fake")));
        assert_eq!(
            m[0].mountpoint,
            PathBuf::from("/tmp/fake/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn unescape_handles_edges() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("\\999x"), "\\999x");
        assert_eq!(unescape("\\777"), "\\777");
    }

    #[test]
    fn relative_path_under_mount_root_inside_namespace() {
        let mounts = parse_mountinfo(
            "1 0 0:1 /docker/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            None,
        );
        let own = parse_proc_cgroup("0::/docker/c1/sub\n");
        let w = resolve_path(Some("k"), "x", false).unwrap();
        let l = Layout::resolve(&mounts, &own, &w).unwrap();
        let Layout::V2 { hierarchy } = l else {
            panic!("expected v2")
        };
        assert_eq!(hierarchy.dir, PathBuf::from("/sys/fs/cgroup/sub/k"));
        let own = parse_proc_cgroup("0::/elsewhere\n");
        assert!(Layout::resolve(&mounts, &own, &w).is_err());
    }

    #[test]
    fn proc_cgroup_keys_are_sorted() {
        let m = parse_proc_cgroup("2:cpuacct,cpu:/a:b\n0::/x\nbad\n");
        assert_eq!(m.get("cpu,cpuacct").map(String::as_str), Some("/a:b"));
        assert_eq!(m.get("").map(String::as_str), Some("/x"));
    }
}
