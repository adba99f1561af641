//! The cgroup mounts at and directly below `/sys/fs/cgroup`, asked of the kernel one mount at a
//! time with `listmount(2)` and `statmount(2)` (Linux 6.8; the mount options that name a v1
//! hierarchy's controllers since 6.11).
//!
//! Reading `/proc/self/mountinfo` makes the kernel print every mount of the namespace, and every
//! container's root file system is one more overlay mount there, with its layer paths in the
//! options: with 1000 containers, printing that text was a quarter of the CPU a container's start
//! took in its shim. Asking for the dozen cgroup mounts does not grow with the containers.
//! Where these calls are missing or refused (older kernels, seccomp, another layout), the caller
//! reads mountinfo as before.

use std::path::{Path, PathBuf};

use super::layout::{v1_controllers_of, CgroupMountInfo};

const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
const STATMOUNT_SB_BASIC: u64 = 0x1;
const STATMOUNT_MNT_ROOT: u64 = 0x8;
const STATMOUNT_MNT_POINT: u64 = 0x10;
const STATMOUNT_MNT_OPTS: u64 = 0x80;
const CGROUP_SUPER_MAGIC: u64 = 0x27e0eb;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `struct statmount`'s fixed part; its string offsets count from here.
const HEADER: usize = 512;
/// Room for one mount's header and strings (a cgroup mount's are short).
const BUF: usize = 4096;
/// At most this many mounts directly below /sys/fs/cgroup are looked at.
const MAX_CHILDREN: usize = 64;

/// `struct mnt_id_req`, version 0.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

impl MntIdReq {
    fn new(mnt_id: u64, param: u64) -> Self {
        MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id,
            param,
        }
    }
}

/// The cgroup mounts at `/sys/fs/cgroup` and directly below it, in mount order; `None` when the
/// kernel cannot say (the caller then reads mountinfo) or there are none.
pub(super) fn cgroup_mounts() -> Option<Vec<CgroupMountInfo>> {
    let root = Path::new("/sys/fs/cgroup");
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        root,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE),
    )
    .ok()?;
    if st.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
        return None;
    }
    let mut buf = vec![0u64; BUF / 8];
    let mut out = Vec::new();
    let top = stat_mount(st.stx_mnt_id, &mut buf)?;
    // The path must be that mount's own (not a directory inside some other mount).
    if top.mountpoint != root {
        return None;
    }
    out.extend(top.cgroup);
    for id in children(st.stx_mnt_id)? {
        if let Some(m) = stat_mount(id, &mut buf)?.cgroup {
            out.push(m);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The mount ids directly below mount `parent`.
fn children(parent: u64) -> Option<Vec<u64>> {
    let mut ids = vec![0u64; MAX_CHILDREN + 1];
    let req = MntIdReq::new(parent, 0);
    // SAFETY: `req` is a valid version-0 mnt_id_req that outlives the call; `ids` has room for
    // `ids.len()` u64s, the count passed; the kernel writes at most that many.
    let n = unsafe {
        libc::syscall(
            SYS_LISTMOUNT,
            &req as *const MntIdReq,
            ids.as_mut_ptr(),
            ids.len(),
            0u32,
        )
    };
    if n < 0 || n as usize > MAX_CHILDREN {
        return None;
    }
    ids.truncate(n as usize);
    Some(ids)
}

struct Stated {
    mountpoint: PathBuf,
    /// `Some` for a cgroup (v1 with controllers or a named hierarchy) or cgroup2 mount.
    cgroup: Option<CgroupMountInfo>,
}

/// One mount: where it is and, when it is a cgroup file system, what `parse_mountinfo` would
/// have made of its line. `None`: the kernel did not answer all of it.
fn stat_mount(id: u64, buf: &mut [u64]) -> Option<Stated> {
    let want = STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT | STATMOUNT_MNT_POINT | STATMOUNT_MNT_OPTS;
    let req = MntIdReq::new(id, want);
    let len = std::mem::size_of_val(buf);
    // SAFETY: `req` is a valid version-0 mnt_id_req that outlives the call; `buf` is writable
    // for `len` bytes (u64-aligned, as struct statmount needs) and the kernel writes at most that.
    let r = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            len,
            0u32,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: reinterpreting initialised u64s as bytes (alignment 1, same length).
    let b: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let size = u32_at(0) as usize;
    let mask = u64_at(8);
    // The options come only when a mount has any (a cgroup2 mount may have none).
    let must = want & !STATMOUNT_MNT_OPTS;
    if mask & must != must || size > len || size < HEADER {
        return None;
    }
    let text = &b[HEADER..size];
    let string = |off: u32| -> Option<&str> {
        let s = text.get(off as usize..)?;
        let end = s.iter().position(|&c| c == 0)?;
        std::str::from_utf8(&s[..end]).ok()
    };
    let magic = u64_at(24);
    let root = string(u32_at(104))?;
    let mountpoint = PathBuf::from(string(u32_at(108))?);
    let controllers = match magic {
        CGROUP2_SUPER_MAGIC => Some(None),
        CGROUP_SUPER_MAGIC => {
            // A v1 hierarchy always shows its controllers or name: without options the kernel
            // cannot report them (before 6.11), and mountinfo must be read.
            if mask & STATMOUNT_MNT_OPTS == 0 {
                return None;
            }
            let c = v1_controllers_of(string(u32_at(4))?);
            (!c.is_empty()).then_some(Some(c))
        }
        _ => None,
    };
    Some(Stated {
        cgroup: controllers.map(|controllers| CgroupMountInfo {
            controllers,
            root: root.to_string(),
            mountpoint: mountpoint.clone(),
        }),
        mountpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel version as (major, minor).
    fn kernel() -> (u32, u32) {
        let un = rustix::system::uname();
        let rel = un.release().to_string_lossy().into_owned();
        let mut it = rel.split(|c: char| !c.is_ascii_digit());
        let major = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let minor = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        (major, minor)
    }

    /// The kernel's answer must be what mountinfo lists at and directly below /sys/fs/cgroup.
    /// From Linux 6.11 on (mount options in statmount) it must answer at all.
    #[test]
    fn agrees_with_mountinfo() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let mut slow: Vec<CgroupMountInfo> = super::super::layout::parse_mountinfo(&text, None)
            .into_iter()
            .filter(|m| {
                m.mountpoint == Path::new("/sys/fs/cgroup")
                    || m.mountpoint.parent() == Some(Path::new("/sys/fs/cgroup"))
            })
            .collect();
        let Some(mut fast) = cgroup_mounts() else {
            assert!(
                kernel() < (6, 11) || slow.is_empty(),
                "Linux {:?} has statmount with mount options, yet no cgroup mounts came back",
                kernel()
            );
            return;
        };
        fast.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
        slow.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
        assert_eq!(fast, slow);
    }
}
