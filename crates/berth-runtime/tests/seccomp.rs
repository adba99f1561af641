//! Installs real seccomp filters in forked children and checks what the kernel then answers.
//!
//! Each test compiles a program in the test process, forks, and the child sets no_new_privs,
//! installs the program and runs raw syscalls ("probes"), sending each result (the return value,
//! or minus the errno) back through a pipe. Between fork and _exit the child only makes raw
//! syscalls: the test harness is multi-threaded, so it must not allocate or lock.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use berth_runtime::seccomp::{self, Program, SeccompError};
use oci_spec::runtime::LinuxSeccomp;

const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";
const MAX_PROBES: usize = 32;

/// Docker's default capability set.
const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn docker_caps() -> Vec<String> {
    DOCKER_CAPS.iter().map(|s| s.to_string()).collect()
}

/// One raw syscall with its arguments.
#[derive(Clone, Copy)]
struct Probe {
    nr: libc::c_long,
    args: [libc::c_long; 5],
}

fn probe(nr: libc::c_long, args: &[libc::c_long]) -> Probe {
    let mut a = [0; 5];
    a[..args.len()].copy_from_slice(args);
    Probe { nr, args: a }
}

/// What the kernel answered: `Ok(return value)` or `Err(errno)`.
type Answer = Result<i64, i32>;

/// Child exit codes other than 0.
const EXIT_NNP: i32 = 10;
const EXIT_INSTALL: i32 = 11;
const EXIT_WRITE: i32 = 12;

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-int array for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Writes `v` to `fd` with a raw write(2); returns false if the write was short.
fn write_i64(fd: libc::c_int, v: i64) -> bool {
    let bytes = v.to_ne_bytes();
    // SAFETY: `bytes` is a live 8-byte buffer for the duration of the call.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    n == 8
}

/// Raw syscall returning the value or minus the errno. No allocation.
fn raw(p: &Probe) -> i64 {
    // SAFETY: probes pass only integers, null pointers or pointers to static NUL-terminated
    // strings; the kernel validates every argument and the calling child exits right after.
    let rc = unsafe { libc::syscall(p.nr, p.args[0], p.args[1], p.args[2], p.args[3], p.args[4]) };
    if rc < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        rc
    }
}

/// Sets no_new_privs and installs `p` (with a listener when `listener`), in the child.
/// Exits the child on failure; returns the listener fd number or -1.
fn child_setup(p: &Program, listener: bool) -> i64 {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        // SAFETY: _exit is always safe to call; it does not return.
        unsafe { libc::_exit(EXIT_NNP) };
    }
    if listener {
        match seccomp::install_with_listener(p) {
            Ok(Some(fd)) => {
                // into_raw_fd: the listener stays open for the parent to fetch.
                i64::from(fd.into_raw_fd())
            }
            Ok(None) => -1,
            // SAFETY: as above.
            Err(_) => unsafe { libc::_exit(EXIT_INSTALL) },
        }
    } else {
        match seccomp::install(p) {
            Ok(()) => -1,
            // SAFETY: as above.
            Err(_) => unsafe { libc::_exit(EXIT_INSTALL) },
        }
    }
}

fn wait_child(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        panic!("child died abnormally (wait status {status:#x}): killed by its seccomp filter?");
    }
}

fn fork() -> libc::pid_t {
    // SAFETY: fork has no preconditions; the child only makes raw syscalls and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

/// Installs `p` in a forked child, runs `probes` there, and returns the answers.
fn run(p: &Program, probes: &[Probe]) -> Vec<Answer> {
    assert!(probes.len() <= MAX_PROBES);
    let (rd, wr) = pipe();
    let pid = fork();
    if pid == 0 {
        child_setup(p, false);
        let mut out = [0i64; MAX_PROBES];
        for (slot, pr) in out.iter_mut().zip(probes) {
            *slot = raw(pr);
        }
        for v in &out[..probes.len()] {
            if !write_i64(wr.as_raw_fd(), *v) {
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(EXIT_WRITE) };
            }
        }
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let mut bytes = Vec::new();
    File::from(rd).read_to_end(&mut bytes).unwrap();
    let code = wait_child(pid);
    assert_eq!(
        code, 0,
        "child exit code {code} (10: prctl, 11: install, 12: write)"
    );
    bytes
        .chunks_exact(8)
        .map(|c| {
            let v = i64::from_ne_bytes(c.try_into().unwrap());
            if v < 0 {
                Err(i32::try_from(-v).unwrap())
            } else {
                Ok(v)
            }
        })
        .collect()
}

fn oci(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

fn podman_profile() -> Option<Vec<u8>> {
    match std::fs::read(PODMAN_PROFILE) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!(
                "skipping: cannot read {PODMAN_PROFILE} ({e}); install golang-github-containers-common"
            );
            None
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn dev_null() -> File {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap()
}

const EPERM: Answer = Err(libc::EPERM);
const ENOSYS: Answer = Err(libc::ENOSYS);

#[test]
fn podman_profile_with_docker_caps() {
    let Some(json) = podman_profile() else { return };
    let spec = seccomp::from_docker_profile(&json, &docker_caps(), seccomp::native_arch()).unwrap();
    let p = seccomp::compile(&spec).unwrap();
    let null = dev_null();
    let fd = libc::c_long::from(null.as_raw_fd());
    let name = c"/nonexistent-berth-seccomp-test";
    let name = name.as_ptr() as libc::c_long;
    let probes = [
        probe(libc::SYS_getpid, &[]),
        probe(libc::SYS_read, &[fd, 0, 0]),
        probe(libc::SYS_write, &[fd, 0, 0]),
        // CAP_SYS_ADMIN-gated: unfiltered, root gets EINVAL (bad length / command).
        probe(libc::SYS_sethostname, &[0, 100_000]),
        probe(libc::SYS_bpf, &[-1, 0, 0]),
        // Always denied with EPERM by the profile's first rule.
        probe(libc::SYS_kexec_load, &[0, 0, 0, 0xffff_0000]),
        // Not in the profile: the default action, ERRNO(ENOSYS). Unfiltered: EFAULT.
        probe(libc::SYS_add_key, &[0, 0, 0, 0, 0]),
        // personality: 0xffffffff (query) allowed, other values fall to the default.
        probe(libc::SYS_personality, &[0xffff_ffff]),
        probe(libc::SYS_personality, &[0x0400_0000]),
        // Podman's profile (unlike Docker's own) allows these; capabilities guard them instead.
        probe(libc::SYS_keyctl, &[0 /* KEYCTL_GET_KEYRING_ID */, -2, 0]),
        probe(libc::SYS_mount, &[0, name, 0, 0, 0]),
        probe(
            libc::SYS_unshare,
            &[libc::c_long::from(libc::CLONE_NEWNS | libc::CLONE_NEWUSER)],
        ),
        // Podman's file lists setns in its big ALLOW rule and again in the ERRNO rule for
        // containers without CAP_SYS_ADMIN; libseccomp keeps the first rule added, so it is
        // allowed (EBADF from the kernel), as under runc or crun with the same file.
        probe(libc::SYS_setns, &[-1, 0]),
    ];
    let a = run(&p, &probes);
    assert!(matches!(a[0], Ok(pid) if pid > 0), "getpid: {:?}", a[0]);
    assert_eq!(a[1], Ok(0), "read");
    assert_eq!(a[2], Ok(0), "write");
    assert_eq!(a[3], EPERM, "sethostname");
    assert_eq!(a[4], EPERM, "bpf");
    assert_eq!(a[5], EPERM, "kexec_load");
    assert_eq!(a[6], ENOSYS, "add_key");
    assert!(a[7].is_ok(), "personality(0xffffffff): {:?}", a[7]);
    assert_eq!(a[8], ENOSYS, "personality(other)");
    for (i, what) in [(9, "keyctl"), (10, "mount"), (11, "unshare")] {
        assert_ne!(a[i], ENOSYS, "{what} is allowed by Podman's profile");
        if is_root() {
            assert_ne!(a[i], EPERM, "{what} is allowed by Podman's profile");
        }
    }
    assert_eq!(a[12], Err(libc::EBADF), "setns");
}

/// Docker's own default profile differs from Podman's on the syscalls below: it gates mount,
/// umount2, unshare and setns on CAP_SYS_ADMIN, does not list keyctl/add_key/request_key, and
/// answers unlisted syscalls with EPERM. Rewrite Podman's file that way (the shape of moby's rules,
/// not a copy of its file) and check the result for Docker's capability set.
fn docker_like_profile(podman: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(podman).unwrap();
    let gated = ["mount", "umount", "umount2", "unshare", "setns"];
    let dropped = ["keyctl", "add_key", "request_key"];
    v["defaultErrnoRet"] = serde_json::json!(libc::EPERM);
    for rule in v["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| {
                let n = n.as_str().unwrap_or("");
                !gated.contains(&n) && !dropped.contains(&n)
            });
        }
    }
    v["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "names": gated,
            "action": "SCMP_ACT_ALLOW",
            "includes": {"caps": ["CAP_SYS_ADMIN"]},
        }));
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn docker_rules_deny_unshare_mount_keyctl_without_sys_admin() {
    let Some(json) = podman_profile() else { return };
    let json = docker_like_profile(&json);
    let arch = seccomp::native_arch();
    let null = dev_null();
    let fd = libc::c_long::from(null.as_raw_fd());
    let name = c"/nonexistent-berth-seccomp-test".as_ptr() as libc::c_long;
    let probes = [
        probe(libc::SYS_getpid, &[]),
        probe(libc::SYS_read, &[fd, 0, 0]),
        probe(libc::SYS_write, &[fd, 0, 0]),
        probe(libc::SYS_keyctl, &[0, -2, 0]),
        probe(libc::SYS_mount, &[0, name, 0, 0, 0]),
        probe(libc::SYS_umount2, &[name, 0]),
        probe(libc::SYS_setns, &[-1, 0]),
        probe(
            libc::SYS_unshare,
            &[libc::c_long::from(libc::CLONE_NEWNS | libc::CLONE_NEWUSER)],
        ),
    ];

    let spec = seccomp::from_docker_profile(&json, &docker_caps(), arch).unwrap();
    let a = run(&seccomp::compile(&spec).unwrap(), &probes);
    assert!(matches!(a[0], Ok(pid) if pid > 0), "getpid: {:?}", a[0]);
    assert_eq!(a[1], Ok(0), "read");
    assert_eq!(a[2], Ok(0), "write");
    for (i, what) in [
        (3, "keyctl"),
        (4, "mount"),
        (5, "umount2"),
        (6, "setns"),
        (7, "unshare"),
    ] {
        assert_eq!(a[i], EPERM, "{what}");
    }

    // With CAP_SYS_ADMIN the gated syscalls reach the kernel (keyctl stays denied).
    let mut caps = docker_caps();
    caps.push("CAP_SYS_ADMIN".into());
    let spec = seccomp::from_docker_profile(&json, &caps, arch).unwrap();
    let a = run(&seccomp::compile(&spec).unwrap(), &probes);
    assert_eq!(a[3], EPERM, "keyctl");
    assert_eq!(a[6], Err(libc::EBADF), "setns(-1) reaches the kernel");
    if is_root() {
        assert_eq!(a[4], Err(libc::ENOENT), "mount reaches the kernel");
        assert_eq!(a[7], Ok(0), "unshare reaches the kernel");
    }
}

#[test]
fn errno_ret_rule_returns_that_errno() {
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}"#);
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[probe(libc::SYS_getppid, &[]), probe(libc::SYS_getpid, &[])],
    );
    assert_eq!(a[0], Err(42));
    assert!(a[1].is_ok());
}

#[test]
fn default_allow_with_one_errno_rule() {
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}"#);
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[
            probe(libc::SYS_getppid, &[]),
            probe(libc::SYS_getpid, &[]),
            probe(libc::SYS_getuid, &[]),
        ],
    );
    assert_eq!(a[0], EPERM, "ERRNO without errnoRet is EPERM");
    assert!(a[1].is_ok() && a[2].is_ok(), "{a:?}");
}

#[test]
fn default_errno_ret_applies_to_unlisted_syscalls() {
    let spec = oci(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["getpid", "write", "exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[probe(libc::SYS_getppid, &[]), probe(libc::SYS_getpid, &[])],
    );
    assert_eq!(a[0], ENOSYS);
    assert!(a[1].is_ok());
}

#[test]
fn argument_conditions() {
    // personality(0xffffffff) only queries; other values are denied, each way the conditions
    // can be written: NE, several EQ on one index (one rule per condition), MASKED_EQ.
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
              {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
               "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_NE"}]}
            ]}"#);
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[
            probe(libc::SYS_personality, &[0xffff_ffff]),
            probe(libc::SYS_personality, &[0x0008]),
        ],
    );
    assert!(a[0].is_ok(), "{:?}", a[0]);
    assert_eq!(a[1], Err(libc::EACCES));

    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
              {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
              {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6,
               "args": [{"index": 0, "value": 65280, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]},
              {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7,
               "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"},
                        {"index": 1, "value": 20, "op": "SCMP_CMP_LT"}]}
            ]}"#);
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[
            probe(libc::SYS_personality, &[1]),
            probe(libc::SYS_personality, &[2]),
            probe(libc::SYS_personality, &[0x0123]),
            probe(libc::SYS_personality, &[0xffff_ffff]),
            // conditions on different indexes are ANDed
            probe(libc::SYS_getppid, &[11, 19]),
            probe(libc::SYS_getppid, &[11, 21]),
            probe(libc::SYS_getppid, &[9, 19]),
        ],
    );
    assert_eq!(a[0], Err(5), "arg0 == 1");
    assert_eq!(a[1], Err(5), "arg0 == 2");
    assert_eq!(a[2], Err(6), "(arg0 & 0xff00) == 0x100");
    assert!(a[3].is_ok(), "{:?}", a[3]);
    assert_eq!(a[4], Err(7), "arg0 > 10 && arg1 < 20");
    assert!(a[5].is_ok() && a[6].is_ok(), "{a:?}");
}

#[test]
fn unknown_syscall_name_is_skipped() {
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["berth_no_such_syscall", "getppid"], "action": "SCMP_ACT_ERRNO"}]}"#);
    let a = run(
        &seccomp::compile(&spec).unwrap(),
        &[probe(libc::SYS_getppid, &[])],
    );
    assert_eq!(a[0], EPERM);
}

#[test]
fn malformed_action_is_a_clear_error() {
    let json = br#"{"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_PERMIT"}]}"#;
    let err = seccomp::from_docker_profile(json, &[], seccomp::native_arch()).unwrap_err();
    assert!(matches!(err, SeccompError::UnknownAction { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"SCMP_ACT_PERMIT\"") && msg.contains("SCMP_ACT_ERRNO"),
        "{msg}"
    );
    // In OCI form the action is typed, so the spec itself does not parse.
    assert!(
        serde_json::from_str::<LinuxSeccomp>(r#"{"defaultAction": "SCMP_ACT_PERMIT"}"#).is_err()
    );
}

#[test]
fn kill_process_kills() {
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#);
    let p = seccomp::compile(&spec).unwrap();
    let pid = fork();
    if pid == 0 {
        child_setup(&p, false);
        raw(&probe(libc::SYS_getppid, &[]));
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
}

#[test]
fn install_without_no_new_privs_needs_cap_sys_admin() {
    if is_root() {
        eprintln!("skipping: as root (CAP_SYS_ADMIN) the kernel does not require no_new_privs");
        return;
    }
    let spec = oci(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let p = seccomp::compile(&spec).unwrap();
    let pid = fork();
    if pid == 0 {
        let code = match seccomp::install(&p) {
            Err(SeccompError::Install { errno, .. }) if errno == libc::EACCES => 0,
            _ => 1,
        };
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(code) };
    }
    assert_eq!(wait_child(pid), 0, "expected EACCES without no_new_privs");
}

#[test]
fn notify_hands_the_syscall_to_a_listener() {
    let spec = oci(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}"#);
    let p = seccomp::compile(&spec).unwrap();
    assert!(p.notify);
    let (rd, wr) = pipe();
    let pid = fork();
    if pid == 0 {
        let fd = child_setup(&p, true);
        let ok = write_i64(wr.as_raw_fd(), fd)
            && write_i64(wr.as_raw_fd(), raw(&probe(libc::SYS_getppid, &[])));
        // SAFETY: _exit is always safe to call.
        unsafe { libc::_exit(if ok { 0 } else { EXIT_WRITE }) };
    }
    drop(wr);
    let mut rd = File::from(rd);
    let mut buf = [0u8; 8];
    rd.read_exact(&mut buf).unwrap();
    let child_fd = i64::from_ne_bytes(buf);
    assert!(child_fd >= 0, "no listener fd");

    // Take the listener from the child (pidfd_getfd), as a seccomp agent would receive it.
    // SAFETY: pidfd_open with a pid we own and no flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_getfd with integer arguments.
    let listener = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, child_fd, 0) };
    if listener < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: killing and reaping our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_child_any(pid);
        eprintln!("skipping the listener round trip: pidfd_getfd failed ({e})");
        return;
    }
    let listener = listener as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(ready, 1, "no notification within 10s");
    // SAFETY: seccomp_notif is plain data; all-zero is the required initial state for RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a valid seccomp_notif for the kernel to fill.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 4242,
        error: 0,
        flags: 0,
    };
    // SAFETY: `resp` is a valid seccomp_notif_resp.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    rd.read_exact(&mut buf).unwrap();
    assert_eq!(i64::from_ne_bytes(buf), 4242, "the agent's answer");
    assert_eq!(wait_child(pid), 0);
    // SAFETY: closing fds this test opened and owns.
    unsafe {
        libc::close(listener);
        libc::close(pidfd as libc::c_int);
    }
}

fn wait_child_any(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}
