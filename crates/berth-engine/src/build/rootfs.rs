//! Read-only views of images' root filesystems for a build (COPY --from, RUN --mount from=):
//! an image of one layer is that layer's directory as it is; an image of several layers is a
//! read-only overlay of its layer directories (lowerdirs only: nothing can be written through
//! it) mounted under the build's directory; scratch is an empty directory. Views are made once
//! per image per build and unmounted when the build ends. `RUN --mount=type=bind,rw` gets a
//! writable overlay over its source instead, whose writes go with the build directory.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

/// Errors of view mounts.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("mount a read-only view of {layers} layers at {target}: {source}")]
    Mount {
        target: PathBuf,
        layers: usize,
        #[source]
        source: io::Error,
    },
    #[error("create the view directory {0}: {1}")]
    Create(PathBuf, #[source] io::Error),
}

/// Mounts a read-only overlay of `lowers` (top layer first, at least two) at `target`, which
/// must exist.
pub fn mount_ro_overlay(lowers: &[PathBuf], target: &Path) -> Result<(), ViewError> {
    mount_overlay(lowers, None, target)
}

/// Mounts a writable overlay of the directory `lower` at `target` whose writes land in `upper`
/// (with `work`), all three existing: `RUN --mount=type=bind,rw`, where the writes are thrown
/// away with the build directory.
pub fn mount_scratch_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), ViewError> {
    mount_overlay(&[lower.to_path_buf()], Some((upper, work)), target)
}

/// An overlay of `lowers`, read-only without `upper_work`, writable into it with.
fn mount_overlay(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), ViewError> {
    let err = |source: io::Error| ViewError::Mount {
        target: target.to_path_buf(),
        layers: lowers.len(),
        source,
    };
    match mount_new_api(lowers, upper_work, target) {
        Ok(()) => Ok(()),
        // No new mount API, or no `lowerdir+` (kernel < 6.8): one option string.
        Err(Errno::NOSYS) | Err(Errno::INVAL) => {
            mount_classic(lowers, upper_work, target).map_err(err)
        }
        Err(e) => Err(err(e.into())),
    }
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), Errno> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NODEV;
    match upper_work {
        Some((upper, work)) => {
            fsconfig_set_string(&fs, "upperdir", upper)?;
            fsconfig_set_string(&fs, "workdir", work)?;
        }
        None => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
    }
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// A path as a mount(2) overlay option value (no `:`, `,` or `\\`, which the option syntax uses).
fn option_path(p: &Path) -> io::Result<&str> {
    p.to_str()
        .filter(|s| !s.contains([':', ',', '\\']))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} cannot be named in overlay mount options", p.display()),
            )
        })
}

fn mount_classic(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> io::Result<()> {
    let mut opts = String::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            opts.push(':');
        }
        opts.push_str(option_path(l)?);
    }
    let mut flags = MountFlags::NODEV;
    match upper_work {
        Some((upper, work)) => {
            opts.push_str(",upperdir=");
            opts.push_str(option_path(upper)?);
            opts.push_str(",workdir=");
            opts.push_str(option_path(work)?);
        }
        None => flags |= MountFlags::RDONLY,
    }
    let data = std::ffi::CString::new(opts)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(io::Error::from)
}

/// Unmounts a view (lazily: a process still reading it keeps it until it is done).
pub fn unmount(target: &Path) {
    let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (mounts): skipped otherwise.
    #[test]
    fn overlay_views_merge_layers_and_refuse_writes() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (a, b, m) = (t.path().join("a"), t.path().join("b"), t.path().join("m"));
        for d in [&a, &b, &m] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(a.join("x"), b"bottom").unwrap();
        std::fs::write(a.join("y"), b"bottom").unwrap();
        std::fs::write(b.join("x"), b"top").unwrap();
        mount_ro_overlay(&[b.clone(), a.clone()], &m).unwrap();
        let x = std::fs::read(m.join("x"));
        let y = std::fs::read(m.join("y"));
        let w = std::fs::write(m.join("z"), b"no");
        unmount(&m);
        assert_eq!(x.unwrap(), b"top");
        assert_eq!(y.unwrap(), b"bottom");
        assert!(w.is_err(), "the view is read-only");
        assert!(!a.join("z").exists() && !b.join("z").exists());
        let _ = mount_classic(&[b, a], None, &m).map(|()| unmount(&m));
    }

    /// Needs root (mounts): skipped otherwise.
    #[test]
    fn scratch_overlays_take_writes_away_from_the_source() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let [src, up, wk, m] = ["src", "up", "wk", "m"].map(|n| t.path().join(n));
        for d in [&src, &up, &wk, &m] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(src.join("x"), b"orig").unwrap();
        mount_scratch_overlay(&src, &up, &wk, &m).unwrap();
        let w = std::fs::write(m.join("x"), b"changed");
        let seen = std::fs::read(m.join("x"));
        unmount(&m);
        assert!(w.is_ok());
        assert_eq!(seen.unwrap(), b"changed");
        assert_eq!(std::fs::read(src.join("x")).unwrap(), b"orig");
        // The mount(2) fallback makes the same overlay.
        let (up2, wk2) = (t.path().join("up2"), t.path().join("wk2"));
        std::fs::create_dir(&up2).unwrap();
        std::fs::create_dir(&wk2).unwrap();
        mount_classic(std::slice::from_ref(&src), Some((&up2, &wk2)), &m).unwrap();
        let w = std::fs::write(m.join("y"), b"new");
        unmount(&m);
        assert!(w.is_ok());
        assert!(up2.join("y").exists() && !src.join("y").exists());
    }
}
