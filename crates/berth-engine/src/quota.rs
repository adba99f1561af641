//! Disk quotas: `--storage-opt size=` for a container's writable layer and `-o size=` for a
//! volume, each enforced by a filesystem of exactly that capacity: writing past it fails with
//! ENOSPC ("No space left on device") inside the container, and nothing else on the host is
//! limited or touched.
//!
//! Why not project quotas (Docker's overlay2-over-xfs-pquota): the data root's filesystem is
//! usually ext4 without them, and a loop-mounted XFS with `prjquota` needs CONFIG_XFS_QUOTA
//! (ext4's project quotas need CONFIG_QFMT_V2) — kernels without them exist (this project's CI
//! kernel has neither), and ext4 and btrfs answer EDQUOT, not Docker's ENOSPC. A sparse ext4
//! image per limited thing works on any kernel with loop devices and ext4, holds only what was
//! written, and its limit is a hard capacity.
//!
//! Layout: `<data root>/quota/<name>.img` (sparse, made with `mkfs.ext4 -m 0`, sized so that at
//! least the asked bytes are usable: ext4's own metadata is added on top), attached to a loop
//! device with `LOOP_CONFIGURE` + `LO_FLAGS_AUTOCLEAR` (the device detaches itself when its last
//! mount goes: a crashed or killed daemon leaks no loop device once its mounts are gone) and
//! mounted at `<data root>/quota/mnt/<name>`. Names: `c-<container id>`, `v-<volume name>`.
//! Mounts are made again at daemon start ([`Quotas::restore`]); this module unmounts one only
//! in [`Quotas::remove`], after its owner stopped using it.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What went wrong making or using a quota filesystem.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("--storage-opt is supported only for overlay over xfs with 'pquota' mount option, or where berth can make a loop-mounted filesystem ({0})")]
    Unsupported(String),
    #[error("invalid quota name {0:?}")]
    BadName(String),
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QuotaError + 'a {
    move |source| QuotaError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

// --- kernel ABI (linux/loop.h, linux/fs.h, linux/dqblk_xfs.h, linux/quota.h) ---------------

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LOOP_MAJOR: u32 = 7;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Bytes usable in an image of `size` bytes is less (journal, inode tables, group
/// descriptors): the image gets this much more than asked (measured: 8M → 6.6M usable).
fn image_size(bytes: u64) -> u64 {
    bytes
        .saturating_add(bytes / 16)
        .saturating_add(3 << 20)
        .checked_next_multiple_of(1 << 20)
        .unwrap_or(u64::MAX)
}

const EXT4_SUPER_MAGIC: i128 = 0xEF53;

/// The quota filesystems of one data root.
pub struct Quotas {
    dir: PathBuf,
    /// Serializes making, mounting and removing.
    lock: Mutex<()>,
}

impl Quotas {
    /// No I/O: `<data root>/quota` is made on first need ([`Quotas::dir_with_limit`]).
    pub fn new(data_root: &Path) -> Self {
        Self {
            dir: data_root.join("quota"),
            lock: Mutex::new(()),
        }
    }

    fn image(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.img"))
    }

    /// Where the quota filesystem `name` is mounted (whether or not it exists):
    /// `quota/mnt/<name>`, or the target [`Quotas::dir_with_limit_at`] linked there.
    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.join("mnt").join(name);
        fs::read_link(&p)
            .ok()
            .filter(|t| t.is_absolute())
            .unwrap_or(p)
    }

    /// At daemon start: mounts again every image not mounted (after a reboot, or a harness
    /// that unmounted them). Returns the names that failed, with why.
    pub fn restore(&self) -> Vec<(String, QuotaError)> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = Vec::new();
        for name in self.names_locked() {
            if let Err(e) = self.ensure_mounted(&name) {
                failed.push((name, e));
            }
        }
        failed
    }

    /// The names of the quota filesystems that exist (have an image).
    pub fn names(&self) -> Vec<String> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.names_locked()
    }

    fn names_locked(&self) -> Vec<String> {
        fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let n = n.strip_suffix(".img")?.to_string();
                check_name(&n).is_ok().then_some(n)
            })
            .collect()
    }

    fn is_mounted(&self, name: &str) -> bool {
        let p = self.path(name);
        rustix::fs::statfs(&p).is_ok_and(|s| i128::from(s.f_type) == EXT4_SUPER_MAGIC)
            && berth_image::snapshot::is_mount_point(&p)
    }

    /// Attaches and mounts the image `name`. Caller holds the lock.
    fn ensure_mounted(&self, name: &str) -> Result<PathBuf, QuotaError> {
        let mnt = self.path(name);
        if self.is_mounted(name) {
            return Ok(mnt);
        }
        fs::create_dir_all(&mnt).map_err(io_err("create directory", &mnt))?;
        let img = self.image(name);
        let (dev_path, dev) = loop_attach(&img)?;
        let res = rustix::mount::mount(
            &dev_path,
            &mnt,
            "ext4",
            rustix::mount::MountFlags::NOSUID,
            c"errors=remount-ro",
        );
        // The mount holds the device now; with AUTOCLEAR, closing ours after a failed mount
        // detaches it.
        drop(dev);
        res.map_err(|e| {
            QuotaError::Unsupported(format!(
                "mount {} at {}: {e}",
                dev_path.display(),
                mnt.display()
            ))
        })?;
        Ok(mnt)
    }

    /// Makes (or, if it exists, mounts) the quota filesystem `name` with room for at least
    /// `bytes` and returns its mount point. An existing one keeps its size.
    pub fn dir_with_limit(&self, name: &str, bytes: u64) -> Result<PathBuf, QuotaError> {
        self.dir_with_limit_at(name, bytes, None)
    }

    /// As [`Quotas::dir_with_limit`], mounted at `target` (an existing empty directory, e.g.
    /// a volume's `_data`) instead of `quota/mnt/<name>`; `quota/mnt/<name>` then links there,
    /// so that [`Quotas::restore`] and [`Quotas::remove`] find it.
    pub fn dir_with_limit_at(
        &self,
        name: &str,
        bytes: u64,
        target: Option<&Path>,
    ) -> Result<PathBuf, QuotaError> {
        check_name(name)?;
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let img = self.image(name);
        if img.exists() {
            return self.ensure_mounted(name);
        }
        let mnt_dir = self.dir.join("mnt");
        fs::create_dir_all(&mnt_dir).map_err(io_err("create directory", &mnt_dir))?;
        let link = mnt_dir.join(name);
        if let Some(t) = target {
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(t, &link).map_err(io_err("link", &link))?;
        }
        let made =
            make_image(&self.dir, &img, image_size(bytes)).and_then(|()| self.ensure_mounted(name));
        if made.is_err() {
            let _ = fs::remove_file(&img);
            if target.is_some() {
                let _ = fs::remove_file(&link);
            } else {
                let _ = fs::remove_dir(&link);
            }
        }
        made
    }

    /// Unmounts and deletes the quota filesystem `name`. No-op if it does not exist. Its owner
    /// must have stopped using it (a busy mount is detached lazily; its loop device goes when
    /// the last user does).
    pub fn remove(&self, name: &str) -> Result<(), QuotaError> {
        check_name(name)?;
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mnt = self.path(name);
        if berth_image::snapshot::is_mount_point(&mnt) {
            use rustix::mount::{unmount, UnmountFlags};
            if unmount(&mnt, UnmountFlags::empty()).is_err() {
                unmount(&mnt, UnmountFlags::DETACH)
                    .map_err(|e| io_err("unmount", &mnt)(e.into()))?;
            }
        }
        let link = self.dir.join("mnt").join(name);
        let removed = if link != mnt {
            // Mounted elsewhere (a volume's `_data`): that directory is its owner's.
            fs::remove_file(&link)
        } else {
            fs::remove_dir(&mnt)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &mnt)(e)),
        }
        let img = self.image(name);
        match fs::remove_file(&img) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &img)(e)),
        }
    }

    /// Bytes used in the quota filesystem `name` (beyond an empty one's), if mounted.
    pub fn usage(&self, name: &str) -> Option<u64> {
        check_name(name).ok()?;
        if !self.is_mounted(name) {
            return None;
        }
        let s = rustix::fs::statvfs(self.path(name)).ok()?;
        Some(
            s.f_blocks
                .saturating_sub(s.f_bfree)
                .saturating_mul(s.f_frsize),
        )
    }
}

/// One path component of `[A-Za-z0-9][A-Za-z0-9_.-]*`.
fn check_name(name: &str) -> Result<(), QuotaError> {
    let ok = name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(QuotaError::BadName(name.to_string()))
    }
}

/// A sparse ext4 image of `size` bytes: no reserved blocks (the limit is the user's), made
/// under a temporary name and renamed, so that an image that exists is a whole one.
fn make_image(dir: &Path, img: &Path, size: u64) -> Result<(), QuotaError> {
    let tmp = dir.join(".making.img");
    let _ = fs::remove_file(&tmp);
    let f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.set_len(size).map_err(io_err("size", &tmp))?;
    drop(f);
    let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new("mkfs.ext4"));
    let out = std::process::Command::new(mkfs)
        .args(["-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=1"])
        .arg(&tmp)
        .stdin(std::process::Stdio::null())
        .output();
    let failed = match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "mkfs.ext4: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("run mkfs.ext4 (install e2fsprogs): {e}")),
    };
    if let Some(m) = failed {
        let _ = fs::remove_file(&tmp);
        return Err(QuotaError::Unsupported(m));
    }
    fs::rename(&tmp, img).map_err(io_err("rename", img))
}

/// Attaches `img` to a free loop device (auto-clearing) and returns its path and an open fd.
fn loop_attach(img: &Path) -> Result<(PathBuf, OwnedFd), QuotaError> {
    use rustix::fs::{Mode, OFlags};
    let unsupported = |what: &str, e: io::Error| QuotaError::Unsupported(format!("{what}: {e}"));
    let ctl = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| unsupported("open /dev/loop-control", e.into()))?;
    let file = rustix::fs::open(img, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| unsupported("open the quota image", e.into()))?;
    // Another process can take the free device between GET_FREE and CONFIGURE: try again.
    let mut last = io::Error::other("no free loop device");
    for _ in 0..32 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1;
        // `ctl` is an open fd of /dev/loop-control.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(unsupported(
                "find a free loop device",
                io::Error::last_os_error(),
            ));
        }
        let n = n as u32;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) => {
                // No devtmpfs node (yet): make it.
                let _ = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::FileType::BlockDevice,
                    Mode::from_raw_mode(0o660),
                    rustix::fs::makedev(LOOP_MAJOR, n),
                );
                rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| unsupported("open the loop device", e.into()))?
            }
            Err(e) => return Err(unsupported("open the loop device", e.into())),
        };
        let mut cfg = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        let name = img.as_os_str().as_encoded_bytes();
        let len = name.len().min(63);
        if let (Some(dst), Some(src)) = (cfg.info.lo_file_name.get_mut(..len), name.get(..len)) {
            dst.copy_from_slice(src);
        }
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which `LoopConfig` lays out
        // exactly (repr(C), 304 bytes); `cfg` outlives the call; `dev` is an open loop device.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &mut cfg) };
        if r == 0 {
            return Ok((path, dev));
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            break;
        }
    }
    Err(unsupported("attach the quota image to a loop device", last))
}

/// The `size` of `--storage-opt size=10G` or `-o size=20M`, as Docker reads it (go-units
/// RAMInBytes: binary multiples, optional `b`/`ib`); zero and nonsense refused.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        'p' => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    let bytes = n * mul as f64;
    (n.is_finite() && n > 0.0 && bytes < u64::MAX as f64 && bytes >= 1.0).then_some(bytes as u64)
}

/// The size asked by a create's `HostConfig.StorageOpt`: only `size` is known (what berth's
/// overlay driver supports); unknown options and bad sizes are refused with a message for
/// the user.
pub fn storage_opt_size(
    opts: Option<&std::collections::HashMap<String, String>>,
) -> Result<Option<u64>, String> {
    let mut size = None;
    for (k, v) in opts.into_iter().flatten() {
        match k.to_ascii_lowercase().as_str() {
            "size" => {
                size = Some(parse_size(v).ok_or_else(|| {
                    format!("invalid size: '{v}' (--storage-opt size= wants a positive size such as 10M or 2G)")
                })?)
            }
            _ => {
                return Err(format!(
                    "unknown storage option {k:?}: berth's overlay driver supports only \"size\""
                ))
            }
        }
    }
    Ok(size)
}

/// Gives container `id` a writable layer limited to `bytes`: its quota directory, with the
/// snapshot's upper and work inside (nothing left behind on failure).
pub fn place_container_rw(
    quotas: &Quotas,
    snapshotter: &berth_image::Snapshotter,
    id: &str,
    bytes: u64,
) -> Result<(), QuotaError> {
    let key = container_key(id);
    let cid = berth_types::ContainerId::new(id).map_err(|_| QuotaError::BadName(key.clone()))?;
    let base = quotas.dir_with_limit(&key, bytes)?;
    if let Err(e) = snapshotter.place_rw(&cid, &base) {
        let _ = quotas.remove(&key);
        return Err(QuotaError::Io {
            op: "place the writable layer in",
            path: base,
            source: io::Error::other(e.to_string()),
        });
    }
    Ok(())
}

impl From<QuotaError> for crate::error::EngineError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Unsupported(_) | QuotaError::BadName(_) => Self::invalid(e.to_string()),
            QuotaError::Io { .. } => Self::internal(e.to_string()),
        }
    }
}

/// The volume hook (`docker volume create -o size=20M`): mounts a filesystem of `size` on the
/// new volume's empty `data` directory (`<data root>/volumes/<name>/_data`), so that its
/// Mountpoint, binds and measuring stay as for any volume. Made again at daemon start.
pub fn volume_size(
    data_root: &Path,
    name: &str,
    data: &Path,
    size: &str,
) -> Result<(), QuotaError> {
    let bytes = parse_size(size)
        .ok_or_else(|| QuotaError::Unsupported(format!("invalid size: '{size}'")))?;
    Quotas::new(data_root)
        .dir_with_limit_at(&volume_key(name), bytes, Some(data))
        .map(|_| ())
}

/// The volume hook of removal: unmounts and deletes volume `name`'s size-limited filesystem
/// (no-op for a volume without `size`); call before deleting its directory.
pub fn volume_remove(data_root: &Path, name: &str) -> Result<(), QuotaError> {
    Quotas::new(data_root).remove(&volume_key(name))
}

/// The quota directory name of a container.
pub fn container_key(id: &str) -> String {
    format!("c-{id}")
}

/// The quota directory name of a volume.
pub fn volume_key(name: &str) -> String {
    format!("v-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        // Room for ext4's metadata on top of what was asked.
        assert_eq!(image_size(8 << 20), 12 << 20);
        assert!(image_size(1 << 30) > (1 << 30) + (64 << 20));
        assert_eq!(image_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn sizes_parse_as_docker() {
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("20MiB"), Some(20 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1kb"), Some(1024));
        for bad in ["", "0", "-1M", "abc", "10X", "M", "NaN", "inf", "1e40g"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn storage_opts_are_checked() {
        let m = |k: &str, v: &str| std::collections::HashMap::from([(k.into(), v.into())]);
        assert_eq!(storage_opt_size(None), Ok(None));
        assert_eq!(storage_opt_size(Some(&m("size", "8M"))), Ok(Some(8 << 20)));
        assert!(storage_opt_size(Some(&m("size", "lots")))
            .unwrap_err()
            .contains("invalid size: 'lots'"));
        assert!(storage_opt_size(Some(&m("inodes", "10")))
            .unwrap_err()
            .contains("unknown storage option"));
    }

    #[test]
    fn names_are_one_component() {
        assert!(check_name("c-0123abc").is_ok());
        assert!(check_name("v-my_vol.1").is_ok());
        for bad in ["", "..", "a/b", "-x", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_is_made_before_first_need() {
        let t = tempfile::tempdir().unwrap();
        let q = Quotas::new(t.path());
        assert!(q.restore().is_empty());
        assert!(!t.path().join("quota").exists());
        assert!(q.remove("c-x").is_ok());
        assert_eq!(q.usage("c-x"), None);
        assert!(q.names().is_empty());
    }
}
