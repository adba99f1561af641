//! The last steps before the user's program runs, shared by a container's init and by exec:
//! rlimits, user and groups, capabilities, no_new_privs, seccomp, cwd, closing inherited fds,
//! execve. The plan is built in the runtime before clone; the child only applies it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, Process};

use crate::error::{Result, RuntimeError};
use crate::seccomp::Program;
use crate::sys;

/// The five capability sets as bit masks (bit N = capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Turns a set of OCI capabilities into a bit mask; capabilities this kernel or the `caps` crate
/// does not know are skipped, as runc does.
pub fn cap_mask(set: Option<&Capabilities>) -> u64 {
    let mut mask = 0u64;
    for c in set.into_iter().flatten() {
        let Ok(serde_json::Value::String(name)) = serde_json::to_value(c) else {
            continue;
        };
        if let Ok(cap) = name.parse::<caps::Capability>() {
            if cap.index() < 64 {
                mask |= 1 << cap.index();
            }
        }
    }
    mask
}

/// Everything needed to turn the current process into the user's process.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from the process env, for looking up a bare program name.
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: Option<CapSets>,
    pub no_new_privs: bool,
    pub rlimits: Vec<(i32, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub seccomp: Option<Program>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// fds 3..3+N are passed to the process (LISTEN_FDS style).
    pub preserve_fds: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::Invalid(format!("{what} {s:?} contains a NUL byte")))
}

impl ProcessPlan {
    /// Builds the plan from the spec's process section.
    pub fn from_spec(p: &Process, seccomp: Option<Program>, preserve_fds: u32) -> Result<Self> {
        let args = p
            .args()
            .as_ref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| RuntimeError::Invalid("process.args is empty".into()))?
            .iter()
            .map(|a| cstring(a, "argument"))
            .collect::<Result<Vec<_>>>()?;
        let mut env = Vec::new();
        let mut path_var = DEFAULT_PATH.to_string();
        for kv in p.env().iter().flatten() {
            if let Some(v) = kv.strip_prefix("PATH=") {
                path_var = v.to_string();
            }
            env.push(cstring(kv, "environment variable")?);
        }
        let caps = p.capabilities().as_ref().map(|c| CapSets {
            bounding: cap_mask(c.bounding().as_ref()),
            effective: cap_mask(c.effective().as_ref()),
            permitted: cap_mask(c.permitted().as_ref()),
            inheritable: cap_mask(c.inheritable().as_ref()),
            ambient: cap_mask(c.ambient().as_ref()),
        });
        Ok(Self {
            args,
            env,
            path_var,
            cwd: p.cwd().clone(),
            uid: p.user().uid(),
            gid: p.user().gid(),
            additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
            umask: p.user().umask(),
            caps,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            rlimits: crate::plan::rlimits(p.rlimits().as_deref().unwrap_or_default())?,
            oom_score_adj: p.oom_score_adj(),
            seccomp,
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            preserve_fds,
        })
    }

    /// Finds the program to run, as execvp would, in the current root. Done before the container
    /// reports "created", so a missing program is a create error, as with runc.
    pub fn resolve_program(&self) -> Result<CString> {
        let arg0 = Path::new(std::ffi::OsStr::from_bytes(self.args[0].as_bytes()));
        let candidates: Vec<PathBuf> = if arg0.as_os_str().as_bytes().contains(&b'/') {
            vec![arg0.to_path_buf()]
        } else {
            self.path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(arg0))
                .collect()
        };
        // execvp's rules, with runc's messages (Docker's client maps "not found"/"no such
        // file" to exit 127 and "permission denied"/"is a directory" to 126).
        let explicit = candidates.len() == 1 && arg0.as_os_str().as_bytes().contains(&b'/');
        let (mut saw_dir, mut saw_noexec) = (false, false);
        for c in &candidates {
            if let Ok(m) = std::fs::metadata(c) {
                use std::os::unix::fs::PermissionsExt;
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    return sys::cstr(c).map_err(|e| RuntimeError::sys("program path", e));
                }
                saw_dir |= m.is_dir();
                saw_noexec |= !m.is_dir();
            }
        }
        let why = if saw_noexec {
            "permission denied"
        } else if saw_dir && explicit {
            "is a directory"
        } else if explicit {
            "no such file or directory"
        } else {
            "executable file not found in $PATH"
        };
        Err(RuntimeError::Invalid(format!(
            "exec: {:?}: {why}",
            arg0.display()
        )))
    }

    /// Sets rlimits and the OOM score adjustment (done early, while still privileged).
    pub fn apply_limits(&self) -> Result<()> {
        for &(res, soft, hard) in &self.rlimits {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: `lim` is a valid rlimit struct; setrlimit only reads it.
            if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
                return Err(RuntimeError::sys(
                    format!("setrlimit {res} to {soft}:{hard} (the hard limit cannot be raised without CAP_SYS_RESOURCE)"),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        if let Some(adj) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string())
                .map_err(|e| RuntimeError::sys("set oom_score_adj", e))?;
        }
        Ok(())
    }

    /// Switches user and capabilities, installs seccomp, enters cwd, closes inherited fds and
    /// execs `program`. Returns only on failure.
    pub fn exec(&self, program: &CString) -> RuntimeError {
        match self.finish(program) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn finish(&self, program: &CString) -> Result<std::convert::Infallible> {
        let home = self.prepare()?;
        self.exec_prepared(program, home.as_ref())
    }

    /// Everything before the exec but no_new_privs and a seccomp filter that comes with it:
    /// fds, umask, cwd, seccomp without no_new_privs, capabilities, user. What follows needs
    /// only the exec fifo's open and write, then [`Process::exec_prepared`] (runc's order).
    /// Returns the `HOME=` to add.
    pub fn prepare(&self) -> Result<Option<CString>> {
        // HOME as runc sets it, read (and closed again) while still root, before the fd sweep.
        let home = self.home_env();
        // Then, before a seccomp profile can forbid it: nothing of the runtime's may leak into
        // the container (CVE-2024-21626). No fd is opened after this point.
        sys::cloexec_from(3 + self.preserve_fds)
            .map_err(|e| RuntimeError::sys("close inherited fds", e))?;
        if let Some(mask) = self.umask {
            rustix::process::umask(rustix::fs::Mode::from_bits_truncate(mask));
        }
        // Create cwd if it is missing (as root, like runc), before dropping privileges.
        if !self.cwd.exists() {
            let _ = std::fs::create_dir_all(&self.cwd);
        }
        // Without no_new_privs, seccomp needs CAP_SYS_ADMIN, which the user may be about to lose:
        // install it now. With no_new_privs it goes last, so the filter does not see our setup.
        if !self.no_new_privs {
            self.install_seccomp()?;
        }
        if let Some(c) = &self.caps {
            for cap in 0..64u8 {
                if c.bounding & (1 << cap) == 0 {
                    // SAFETY: prctl(PR_CAPBSET_DROP) takes plain integers.
                    let r = unsafe {
                        libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
                    };
                    if r != 0
                        && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
                    {
                        return Err(RuntimeError::sys(
                            format!("drop capability {cap} from the bounding set"),
                            std::io::Error::last_os_error(),
                        ));
                    }
                }
            }
        }
        fix_stdio_owner(self.uid)?;
        self.switch_user()?;
        if let Some(c) = &self.caps {
            set_caps(c)?;
        }
        std::env::set_current_dir(&self.cwd)
            .map_err(|e| RuntimeError::io("cannot enter cwd", &self.cwd, e))?;
        // CVE-2024-21626: the cwd must be inside the container's root. getcwd(2) prefixes a path
        // outside the root with "(unreachable)".
        let here =
            rustix::process::getcwd(Vec::new()).map_err(|e| RuntimeError::sys("getcwd", e))?;
        if !here.as_bytes().starts_with(b"/") {
            return Err(RuntimeError::Invalid(format!(
                "process.cwd {} resolves outside the container's root",
                self.cwd.display()
            )));
        }
        Ok(home)
    }

    /// no_new_privs (and the seccomp filter that waits for it), then the exec: what follows
    /// [`Process::prepare`]. Returns only on failure.
    pub fn exec_prepared(
        &self,
        program: &CString,
        home: Option<&CString>,
    ) -> Result<std::convert::Infallible> {
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true)
                .map_err(|e| RuntimeError::sys("set no_new_privs", e))?;
            self.install_seccomp()?;
        }
        let argv: Vec<*const libc::c_char> = self
            .args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .env
            .iter()
            .chain(home)
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        crate::timing::mark("init: execve");
        // SAFETY: `program`, argv and envp are NUL-terminated strings kept alive by `self` (and
        // `home`), and
        // both arrays end in a null pointer, as execve requires.
        unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Err(RuntimeError::sys(
            format!("exec {:?}", program),
            std::io::Error::last_os_error(),
        ))
    }

    /// `HOME=` for a process whose environment has none, as runc (and crun) set it: the user's
    /// home in the container's /etc/passwd, else "/". Containers started through containerd
    /// (`ctr run`, Kubernetes) rely on this; Docker puts HOME in the spec itself.
    fn home_env(&self) -> Option<CString> {
        if self.env.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
            return None;
        }
        let passwd = read_passwd().unwrap_or_default();
        let home = home_from_passwd(&passwd, self.uid).unwrap_or(b"/");
        CString::new([b"HOME=", home].concat()).ok()
    }

    fn install_seccomp(&self) -> Result<()> {
        if let Some(p) = &self.seccomp {
            crate::seccomp::install(p)?;
        }
        Ok(())
    }

    fn switch_user(&self) -> Result<()> {
        use rustix::process::{Gid, Uid};
        let groups: Vec<Gid> = self
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        // setgroups is denied in a user namespace whose setgroups file says "deny"; only fail if
        // groups were actually asked for.
        if let Err(e) = rustix::thread::set_thread_groups(&groups) {
            if !groups.is_empty() || e != rustix::io::Errno::PERM {
                return Err(RuntimeError::sys("setgroups", e));
            }
        }
        let gid = Gid::from_raw(self.gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid)
            .map_err(|e| RuntimeError::sys(format!("setgid {}", self.gid), e))?;
        rustix::thread::set_keep_capabilities(true)
            .map_err(|e| RuntimeError::sys("keep capabilities", e))?;
        let uid = Uid::from_raw(self.uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid)
            .map_err(|e| RuntimeError::sys(format!("setuid {}", self.uid), e))?;
        rustix::thread::set_keep_capabilities(false)
            .map_err(|e| RuntimeError::sys("keep capabilities", e))?;
        Ok(())
    }
}

/// The container's /etc/passwd, at most 1 MiB of it. The image is untrusted: O_NONBLOCK so that
/// a fifo cannot block the open, and only a regular file is read.
fn read_passwd() -> Option<Vec<u8>> {
    use std::io::Read;
    let fd = sys::open(
        Path::new("/etc/passwd"),
        libc::O_RDONLY | libc::O_NONBLOCK,
        0,
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    file.take(1 << 20).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The home directory of `uid` in passwd(5) text (name:pw:uid:gid:gecos:home:shell); the first
/// matching line wins; an empty home counts as none.
fn home_from_passwd(passwd: &[u8], uid: u32) -> Option<&[u8]> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        let line_uid: u32 = std::str::from_utf8(f.get(2)?).ok()?.trim().parse().ok()?;
        let home = *f.get(5)?;
        (line_uid == uid && !home.is_empty()).then_some(home)
    })
}

/// fstat of a descriptor number; None when it is not open.
fn fstat_fd(fd: libc::c_int) -> Option<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into our local `st`; a closed `fd` only makes it fail with EBADF.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// Whether `st` describes the null device (character device 1:3), wherever it is mounted.
fn is_dev_null(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
}

/// Gives stdio to the process's user, as runc does, so that after dropping root it can still
/// reopen them (`echo > /dev/stdout` reopens /proc/self/fd/1, which checks the pipe's or fifo's
/// owner and mode: containerd's shim hands over 0600 pipes owned by root). Descriptors already
/// owned by `uid` and the null device are left alone; so is an owner the user namespace cannot
/// map (EINVAL, EPERM) or a read-only file system (EROFS).
fn fix_stdio_owner(uid: u32) -> Result<()> {
    for fd in 0..3 {
        let Some(st) = fstat_fd(fd) else { continue };
        if st.st_uid == uid || is_dev_null(&st) {
            continue;
        }
        // SAFETY: fchown takes a descriptor number and ids; gid -1 leaves the group unchanged.
        if unsafe { libc::fchown(fd, uid, libc::gid_t::MAX) } != 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::EPERM | libc::EROFS)
            ) {
                return Err(RuntimeError::sys(
                    format!("give stdio fd {fd} to uid {uid}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// Replaces stdio descriptors that are the null device with the container's own /dev/null
/// opened read-write, as runc does. containerd's shim hands over a /dev/null it opened
/// read-only for every stdio of a null-IO task (`ctr run --null-io`), so that writing to
/// stdout fails with EBADF; it is also an fd of the host's /dev. Call it after pivot_root.
pub(crate) fn reopen_dev_null() -> Result<()> {
    let mut null: Option<std::os::fd::OwnedFd> = None;
    for fd in 0..3 {
        if !fstat_fd(fd).is_some_and(|st| is_dev_null(&st)) {
            continue;
        }
        if null.is_none() {
            let f = sys::open(Path::new("/dev/null"), libc::O_RDWR | libc::O_NOFOLLOW, 0)
                .map_err(|e| RuntimeError::io("cannot open", "/dev/null", e))?;
            let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
            if !fstat_fd(raw).is_some_and(|st| is_dev_null(&st)) {
                return Err(RuntimeError::Invalid(
                    "/dev/null in the container is not the null device".into(),
                ));
            }
            null = Some(f);
        }
        let src = null.as_ref().map_or(-1, std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: dup2 of an fd we own onto a standard descriptor number; `null` stays open.
        if unsafe { libc::dup2(src, fd) } < 0 {
            return Err(RuntimeError::sys(
                format!("reopen /dev/null as fd {fd}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

fn set_caps(c: &CapSets) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let split = |m: u64| (m as u32, (m >> 32) as u32);
    let (e0, e1) = split(c.effective);
    let (p0, p1) = split(c.permitted);
    let (i0, i1) = split(c.inheritable);
    let data = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: hdr and data are the v3 capset structures (a header and two data words), valid for
    // the duration of the call; capset only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    if r != 0 {
        return Err(RuntimeError::sys(
            "set capabilities",
            std::io::Error::last_os_error(),
        ));
    }
    for cap in 0..64u8 {
        if c.ambient & (1 << cap) != 0 {
            // SAFETY: prctl(PR_CAP_AMBIENT) takes plain integers.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            // An ambient capability not in permitted+inheritable cannot be raised: runc ignores it.
            let _ = r;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_comes_from_passwd_by_uid() {
        let passwd = b"root:x:0:0:root:/root:/bin/sh\nbad line\nweb:x:33:33::/var/www:/bin/false\nnohome:x:7:7::::\n";
        assert_eq!(home_from_passwd(passwd, 0), Some(&b"/root"[..]));
        assert_eq!(home_from_passwd(passwd, 33), Some(&b"/var/www"[..]));
        assert_eq!(home_from_passwd(passwd, 7), None);
        assert_eq!(home_from_passwd(passwd, 1000), None);
        assert_eq!(home_from_passwd(b"", 0), None);
    }

    fn process(json: serde_json::Value) -> Process {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn capability_names_become_bits() {
        let p = process(serde_json::json!({
            "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"], "effective": ["CAP_KILL"]}
        }));
        let plan = ProcessPlan::from_spec(&p, None, 0).unwrap();
        let c = plan.caps.unwrap();
        assert_eq!(c.bounding, 1 << 0 | 1 << 5 | 1 << 21);
        assert_eq!(c.effective, 1 << 5);
        assert_eq!(c.ambient, 0);
    }

    #[test]
    fn path_comes_from_the_process_env() {
        let p = process(serde_json::json!({
            "cwd": "/", "args": ["sh", "-c", "x"], "user": {"uid": 1, "gid": 2, "additionalGids": [3]},
            "env": ["A=1", "PATH=/nowhere:/bin"]
        }));
        let plan = ProcessPlan::from_spec(&p, None, 0).unwrap();
        assert_eq!(plan.path_var, "/nowhere:/bin");
        assert_eq!(plan.resolve_program().unwrap().to_str().unwrap(), "/bin/sh");
        assert_eq!(
            (plan.uid, plan.gid, plan.additional_gids.clone()),
            (1, 2, vec![3])
        );
        let missing = process(
            serde_json::json!({"cwd": "/", "args": ["no-such-prog"], "user": {"uid": 0, "gid": 0}}),
        );
        let e = ProcessPlan::from_spec(&missing, None, 0)
            .unwrap()
            .resolve_program()
            .unwrap_err();
        assert!(e.to_string().contains("no-such-prog"), "{e}");
    }
}
