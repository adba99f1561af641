//! Overlay snapshots: a container's root filesystem as one overlay mount of its image's unpacked
//! layers (read-only lowerdirs, top first) plus its own `containers/<id>/upper` and `work`, at
//! `containers/<id>/rootfs`. A new container's writable layer costs ~0 bytes.
//!
//! It mounts with the new mount API (`fsopen("overlay")`, one `fsconfig("lowerdir+")` per layer,
//! so deep images have no 4 KiB option-string limit; kernel ≥ 6.8) and falls back to classic
//! `mount(2)` with a `lowerdir=` string. It must never modify a lowerdir, and never mount with
//! `redirect_dir` or `metacopy` on: the diff of an upper dir relies on an upper that holds whole
//! files and whole directories.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

/// What went wrong preparing or removing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("overlay lowerdir {0:?} cannot be used with classic mount(2): it contains ':', ',' or '\\' (a kernel ≥ 6.8 takes any path)")]
    UnsafeLowerPath(PathBuf),
    #[error("overlay options for {layers} layers are {len} bytes, over the page size of classic mount(2): use a kernel ≥ 6.8")]
    OptionsTooLong { layers: usize, len: usize },
    #[error("mount overlay at {target:?}: {source}{}", kernel_says(.log))]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
        log: Vec<String>,
    },
    #[error("unmount {target:?}: {source}; is a process still using the container's filesystem?")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn kernel_says(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How an overlay was mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMethod {
    /// fsopen + fsconfig(lowerdir+) + fsmount + move_mount.
    NewApi,
    /// mount(2) with an option string.
    Classic,
}

/// The directories of one container's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPaths {
    /// `containers/<id>`: owned by the engine; the snapshot uses the three below.
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The merged view: the container's root filesystem.
    pub rootfs: PathBuf,
}

/// Options every berth overlay gets: no inode index tying layers to one upper, and no
/// redirects or metacopy, so that an upper dir always diffs to a plain layer.
const FIXED_OPTIONS: &[(&str, &str)] = &[
    ("index", "off"),
    ("redirect_dir", "off"),
    ("metacopy", "off"),
];

/// Mounts an overlay of `lowers` (top first) with `upper` and `work` at `target`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<MountMethod, SnapshotError> {
    match mount_new_api(lowers, upper, work, target) {
        Ok(()) => Ok(MountMethod::NewApi),
        // ENOSYS: no new mount API; EINVAL on lowerdir+: kernel < 6.8.
        Err(NewApiError::Unsupported) => {
            mount_classic(lowers, upper, work, target).map(|()| MountMethod::Classic)
        }
        Err(NewApiError::Failed(e)) => Err(e),
    }
}

enum NewApiError {
    Unsupported,
    Failed(SnapshotError),
}

/// Reads the messages the kernel left in a filesystem context (one per read).
fn fs_log(fd: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while out.len() < 16 {
        match rustix::io::read(fd, &mut buf) {
            Ok(n) if n > 0 => out.push(
                String::from_utf8_lossy(buf.get(..n).unwrap_or(&[]))
                    .trim()
                    .to_string(),
            ),
            _ => break,
        }
    }
    out
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), NewApiError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(NewApiError::Unsupported),
        Err(e) => {
            return Err(NewApiError::Failed(SnapshotError::Mount {
                target: target.to_path_buf(),
                source: e.into(),
                log: Vec::new(),
            }))
        }
    };
    let failed = |e: Errno, fs: &OwnedFd| {
        NewApiError::Failed(SnapshotError::Mount {
            target: target.to_path_buf(),
            source: e.into(),
            log: fs_log(fs),
        })
    };
    for (i, l) in lowers.iter().enumerate() {
        match fsconfig_set_string(&fs, "lowerdir+", l.as_path()) {
            Ok(()) => {}
            Err(Errno::INVAL) if i == 0 => {
                // Only an old kernel refuses the key itself; drain its message and fall back.
                let log = fs_log(&fs);
                if log.iter().any(|m| m.contains("lowerdir+")) || log.is_empty() {
                    return Err(NewApiError::Unsupported);
                }
                return Err(NewApiError::Failed(SnapshotError::Mount {
                    target: target.to_path_buf(),
                    source: Errno::INVAL.into(),
                    log,
                }));
            }
            Err(e) => return Err(failed(e, &fs)),
        }
    }
    fsconfig_set_string(&fs, "upperdir", upper).map_err(|e| failed(e, &fs))?;
    fsconfig_set_string(&fs, "workdir", work).map_err(|e| failed(e, &fs))?;
    for (k, v) in FIXED_OPTIONS {
        // A kernel without one of these options cannot turn it on either: ignore.
        let _ = fsconfig_set_string(&fs, *k, *v);
    }
    fsconfig_create(&fs).map_err(|e| failed(e, &fs))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| failed(e, &fs))?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| failed(e, &fs))?;
    Ok(())
}

/// Mounts with classic mount(2) only (what [`mount_overlay`] falls back to on kernels < 6.8).
pub fn mount_overlay_classic(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), SnapshotError> {
    mount_classic(lowers, upper, work, target)
}

fn mount_classic(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), SnapshotError> {
    let mut lowerdir = String::new();
    for (i, l) in lowers.iter().enumerate() {
        let s = l
            .to_str()
            .filter(|s| !s.contains([':', ',', '\\']))
            .ok_or_else(|| SnapshotError::UnsafeLowerPath(l.clone()))?;
        if i > 0 {
            lowerdir.push(':');
        }
        lowerdir.push_str(s);
    }
    for p in [upper, work] {
        if p.to_str().is_none_or(|s| s.contains([':', ',', '\\'])) {
            return Err(SnapshotError::UnsafeLowerPath(p.to_path_buf()));
        }
    }
    let mut opts = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    for (k, v) in FIXED_OPTIONS {
        opts.push_str(&format!(",{k}={v}"));
    }
    let page = rustix::param::page_size();
    if opts.len() >= page {
        return Err(SnapshotError::OptionsTooLong {
            layers: lowers.len(),
            len: opts.len(),
        });
    }
    let data = std::ffi::CString::new(opts)
        .map_err(|_| SnapshotError::UnsafeLowerPath(target.to_path_buf()))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| SnapshotError::Mount {
        target: target.to_path_buf(),
        source: e.into(),
        log: Vec::new(),
    })
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    let (Ok(m), Some(parent)) = (fs::symlink_metadata(path), path.parent()) else {
        return false;
    };
    match fs::symlink_metadata(parent) {
        Ok(p) => p.dev() != m.dev() || p.ino() == m.ino(),
        Err(_) => false,
    }
}

/// The snapshots of one data root, under `<root>/containers/<id>/`.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    containers: PathBuf,
}

impl Snapshotter {
    /// Opens (creating if needed) `root/containers`.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        let containers = root.join("containers");
        fs::create_dir_all(&containers).map_err(io_err("create directory", &containers))?;
        Ok(Self { containers })
    }

    /// Where the snapshot of container `id` lives. `ContainerId` is validated to be one safe
    /// path component. The upper and work dirs are `containers/<id>/{upper,work}` unless
    /// [`Snapshotter::place_rw`] put them elsewhere (then those names are absolute symlinks
    /// to where they are, and the paths returned are the targets).
    pub fn paths(&self, id: &ContainerId) -> SnapshotPaths {
        let dir = self.containers.join(id.as_str());
        let placed = |name: &str| {
            let p = dir.join(name);
            fs::read_link(&p)
                .ok()
                .filter(|t| t.is_absolute())
                .unwrap_or(p)
        };
        SnapshotPaths {
            upper: placed("upper"),
            work: placed("work"),
            rootfs: dir.join("rootfs"),
            dir,
        }
    }

    /// Puts the container's upper and work dirs under `base` (another filesystem: a quota'd
    /// directory), before its first [`Snapshotter::prepare`]: makes `base/upper` and
    /// `base/work` and links `containers/<id>/{upper,work}` to them. Removing the links (with
    /// `containers/<id>`) leaves `base` to its owner.
    pub fn place_rw(&self, id: &ContainerId, base: &Path) -> Result<(), SnapshotError> {
        let dir = self.containers.join(id.as_str());
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        for name in ["upper", "work"] {
            let target = base.join(name);
            fs::create_dir_all(&target).map_err(io_err("create directory", &target))?;
            let link = dir.join(name);
            match fs::read_link(&link) {
                Ok(t) if t == target => continue,
                _ => {}
            }
            std::os::unix::fs::symlink(&target, &link).map_err(io_err("link", &link))?;
        }
        Ok(())
    }

    /// Creates the container's upper, work and rootfs directories (keeping an existing upper:
    /// a restarted container keeps its changes) and mounts the overlay of `lowers` (layer diff
    /// directories, top first) on rootfs. An image with no layers gets an empty lowerdir.
    pub fn prepare(
        &self,
        id: &ContainerId,
        lowers: &[PathBuf],
    ) -> Result<(SnapshotPaths, MountMethod), SnapshotError> {
        let p = self.paths(id);
        for d in [&p.dir, &p.upper, &p.work, &p.rootfs] {
            fs::create_dir_all(d).map_err(io_err("create directory", d))?;
        }
        let mut lowers = lowers.to_vec();
        if lowers.is_empty() {
            let empty = p.dir.join("empty");
            fs::create_dir_all(&empty).map_err(io_err("create directory", &empty))?;
            lowers.push(empty);
        }
        if is_mount_point(&p.rootfs) {
            return Err(SnapshotError::Mount {
                target: p.rootfs.clone(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "already mounted"),
                log: Vec::new(),
            });
        }
        let method = mount_overlay(&lowers, &p.upper, &p.work, &p.rootfs)?;
        Ok((p, method))
    }

    /// Unmounts the container's rootfs if mounted. `detach` unmounts lazily even while busy.
    pub fn unmount(&self, id: &ContainerId, detach: bool) -> Result<(), SnapshotError> {
        let p = self.paths(id);
        if !is_mount_point(&p.rootfs) {
            return Ok(());
        }
        let flags = if detach {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
        match unmount(&p.rootfs, flags) {
            Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(SnapshotError::Unmount {
                target: p.rootfs,
                source: e.into(),
            }),
        }
    }

    /// Unmounts and removes the snapshot's directories (upper, work, rootfs), leaving the rest
    /// of `containers/<id>` to the engine.
    pub fn remove(&self, id: &ContainerId) -> Result<(), SnapshotError> {
        self.unmount(id, false)?;
        let p = self.paths(id);
        if is_mount_point(&p.rootfs) {
            return Err(SnapshotError::Unmount {
                target: p.rootfs,
                source: io::Error::other("still mounted"),
            });
        }
        for d in [&p.rootfs, &p.work, &p.upper, &p.dir.join("empty")] {
            match fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", d)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_refuses_paths_that_break_the_option_string() {
        let t = Path::new("/nonexistent-target");
        let e = mount_classic(&[PathBuf::from("/a:b")], t, t, t).unwrap_err();
        assert!(matches!(e, SnapshotError::UnsafeLowerPath(_)), "{e}");
        let e = mount_classic(&[PathBuf::from("/a,upperdir=/")], t, t, t).unwrap_err();
        assert!(matches!(e, SnapshotError::UnsafeLowerPath(_)), "{e}");
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/berth/layers/{i:064}/diff")))
            .collect();
        let e = mount_classic(&many, t, t, t).unwrap_err();
        assert!(
            matches!(e, SnapshotError::OptionsTooLong { layers: 200, .. }),
            "{e}"
        );
    }

    #[test]
    fn paths_are_under_containers() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path()).unwrap();
        let id = ContainerId::new("abc").unwrap();
        let p = s.paths(&id);
        assert_eq!(p.rootfs, dir.path().join("containers/abc/rootfs"));
        assert_eq!(p.upper, dir.path().join("containers/abc/upper"));
        // Nothing mounted: unmount and remove are no-ops.
        s.unmount(&id, false).unwrap();
        s.remove(&id).unwrap();
    }

    #[test]
    fn placed_rw_dirs_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path()).unwrap();
        let id = ContainerId::new("abc").unwrap();
        let base = dir.path().join("elsewhere/c-abc");
        s.place_rw(&id, &base).unwrap();
        s.place_rw(&id, &base).unwrap();
        let p = s.paths(&id);
        assert_eq!(p.upper, base.join("upper"));
        assert_eq!(p.work, base.join("work"));
        assert!(p.upper.is_dir() && p.work.is_dir());
        assert_eq!(p.rootfs, dir.path().join("containers/abc/rootfs"));
    }
}
