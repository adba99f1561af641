//! Seccomp: a container's syscall filter, compiled from the OCI spec to classic BPF and installed
//! with seccomp(2) by the container's init right before execve.
//!
//! Why it exists: the filter is the last line between a container process and the host kernel's
//! syscall surface. Compiling goes through libseccomp, the same C library runc and crun use, so a
//! profile (Docker's default, a user's `--security-opt seccomp=…`) behaves exactly as it does under
//! them. Compiling is slow and allocates; it happens in the runtime before clone (or once in the
//! daemon, cached), and only the finished [`Program`] crosses into the child.
//!
//! What it must never do: allocate, lock or log in [`install`] / [`install_with_listener`] — they
//! run in a forked child of a possibly multi-threaded parent, after every other setup step and right
//! before execve. They never set no_new_privs themselves: the caller does that (or holds
//! CAP_SYS_ADMIN in the container's user namespace) before installing. Compilation must not
//! silently weaken a profile: anything it cannot express is an error, with two exceptions.
//! Syscall names this libseccomp does not know are skipped, as runc does (a profile may name syscalls
//! newer than the library; under a default-allow profile a skipped deny rule leaves that syscall
//! allowed, so keep libseccomp current). Architectures it does not know are skipped, which is
//! fail-closed: syscalls from an architecture absent from the filter hit its bad-arch action,
//! which kills.
//!
//! [`from_docker_profile`] converts Docker/moby-format profiles (with `includes`/`excludes`) to
//! the OCI form that [`compile`] takes.

pub mod cache;
mod docker;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};

pub use docker::{from_docker_profile, from_docker_profile_for_kernel, native_arch, KernelVersion};

/// `SECCOMP_FILTER_FLAG_TSYNC`: synchronise all threads of the process to the new filter.
pub const FLAG_TSYNC: u32 = 1 << 0;
/// `SECCOMP_FILTER_FLAG_LOG`: log every action but ALLOW.
pub const FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: do not force the Speculative Store Bypass mitigation.
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: return a user-notification fd (added by
/// [`install_with_listener`], never stored in [`Program::flags`]).
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`: with TSYNC, fail with ESRCH instead of returning a thread id.
pub const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a notified task waits killably (Linux 5.19).
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// `SECCOMP_SET_MODE_FILTER`, the seccomp(2) operation that attaches a BPF filter.
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
/// The kernel's limit on the length of one classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;
/// Syscalls have at most six arguments, indexed 0 to 5.
const MAX_ARG_INDEX: usize = 5;

/// Errors from converting, compiling or installing a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile is not valid JSON in the Docker profile format: fix the file (see the cause below)")]
    InvalidProfile {
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp profile has no defaultAction: set one (e.g. SCMP_ACT_ERRNO) or run the container unconfined")]
    MissingDefaultAction,
    #[error("seccomp profile sets both 'architectures' and 'archMap': use only one of them")]
    ArchitecturesAndArchMap,
    #[error("seccomp rule {name:?} sets both 'name' and 'names': use only one of them")]
    NameAndNames { name: String },
    #[error("seccomp action {action:?} is not known: use SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG or SCMP_ACT_NOTIFY")]
    UnknownAction { action: String },
    #[error("seccomp operator {op:?} is not known: use SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT or SCMP_CMP_MASKED_EQ")]
    UnknownOperator { op: String },
    #[error("seccomp architecture {arch:?} is not known: use an SCMP_ARCH_* name such as SCMP_ARCH_X86_64")]
    UnknownArch { arch: String },
    #[error("seccomp flag {flag:?} is not known: use SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW or SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")]
    UnknownFlag { flag: String },
    #[error("seccomp minKernel {value:?} is not a kernel version: write it as MAJOR.MINOR, e.g. \"5.8\"")]
    InvalidMinKernel { value: String },
    #[error("cannot read the running kernel's version {release:?} to evaluate a minKernel condition: pass the version explicitly")]
    HostKernelVersion { release: String },
    #[error("seccomp rule for {syscall:?} has argument index {index}: syscall arguments are numbered 0 to 5")]
    ArgIndex { syscall: String, index: usize },
    #[error("seccomp errno return value {value} does not fit in 16 bits: use an errno number below 65536")]
    ErrnoOutOfRange { value: u32 },
    #[error("SCMP_ACT_NOTIFY cannot be the default seccomp action: use it on named syscalls only")]
    DefaultNotify,
    #[error("cannot build the OCI seccomp section")]
    Spec {
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("libseccomp could not create a filter with default action {action:?}")]
    Init {
        action: LinuxSeccompAction,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("libseccomp rejected the seccomp rule for syscall {syscall:?}: check its action and argument conditions")]
    Rule {
        syscall: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("libseccomp could not export the compiled seccomp filter")]
    Export {
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot read back the exported seccomp filter through a memfd")]
    ExportIo {
        #[source]
        source: std::io::Error,
    },
    #[error("libseccomp exported {len} bytes, not a whole number of 8-byte BPF instructions")]
    ExportTruncated { len: usize },
    #[error("the seccomp program is empty: compile it from a profile first")]
    Empty,
    #[error("the seccomp program has {len} instructions, over the kernel's limit of 4096: remove rules from the profile")]
    TooLong { len: usize },
    #[error("the seccomp program uses SCMP_ACT_NOTIFY: install it with install_with_listener and hand the listener fd to the seccomp agent")]
    NeedsListener,
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}) failed: {}; set no_new_privs or hold CAP_SYS_ADMIN first (EACCES), drop flags this kernel does not know (EINVAL)", std::io::Error::from_raw_os_error(*errno))]
    Install { errno: i32, flags: u32 },
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) with TSYNC failed: thread {tid} cannot be synchronised; install before starting threads")]
    Tsync { tid: libc::c_long },
}

/// A compiled BPF filter, ready to install. Plain data: it can be built in the runtime (or the
/// daemon, and cached) and moved into the forked child that installs it.
#[derive(Debug, Clone)]
pub struct Program {
    /// The classic BPF instructions, in native byte order, as `struct sock_filter`.
    pub filters: Vec<libc::sock_filter>,
    /// seccomp(2) filter flags from the spec: a combination of [`FLAG_TSYNC`], [`FLAG_LOG`],
    /// [`FLAG_SPEC_ALLOW`] and [`FLAG_WAIT_KILLABLE_RECV`].
    pub flags: u32,
    /// True when at least one rule uses SCMP_ACT_NOTIFY: the filter must be installed with
    /// [`install_with_listener`], whose fd the caller hands to the agent at the spec's
    /// `listenerPath` (with `listenerMetadata`). Without a listener those syscalls fail with ENOSYS.
    pub notify: bool,
}

impl Program {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True when there are no instructions (never the case for a compiled program).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }
}

/// Compiles the spec's seccomp section to BPF for the native architecture plus the spec's
/// `architectures`, with libseccomp, following runc's rules:
///
/// - ERRNO and TRACE return `errnoRet` (rule) / `defaultErrnoRet` (default action), else EPERM;
/// - SCMP_ACT_KILL means kill the thread;
/// - a rule whose action equals the default action is skipped (libseccomp rejects it);
/// - syscall names this libseccomp does not know are skipped;
/// - several conditions on distinct argument indexes form one rule (AND); if any index repeats,
///   each condition becomes its own rule (OR), as runc does;
/// - `SCMP_CMP_MASKED_EQ` matches `(arg & value) == valueTwo`;
/// - architectures libseccomp does not know are skipped (fail-closed, see the module docs).
///
/// Flags go to [`Program::flags`]; a NOTIFY rule sets [`Program::notify`].
pub fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default = scmp_action(s.default_action(), s.default_errno_ret())?;
    if default == ScmpAction::Notify {
        return Err(SeccompError::DefaultNotify);
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(|source| SeccompError::Init {
        action: s.default_action(),
        source,
    })?;
    // A binary tree on the syscall number instead of libseccomp's default linear chain: the
    // kernel runs the filter once per syscall number when it is installed (to build its
    // always-allowed cache) and on every syscall after; with Docker's default profile the tree
    // costs 0.27 ms to install against 0.65 ms, on every container start. Level 2 needs
    // libseccomp 2.5; older ones keep the chain.
    let _ = ctx.set_ctl_optimize(2);
    for arch in s.architectures().iter().flatten() {
        if let Some(arch) = scmp_arch(*arch) {
            // An architecture this libseccomp cannot filter (e.g. loongarch64 before 2.6) is
            // left out: its syscalls then hit the bad-arch action, which kills.
            let _ = ctx.add_arch(arch);
        }
    }

    let mut notify = false;
    for rule in s.syscalls().iter().flatten() {
        let action = scmp_action(rule.action(), rule.errno_ret())?;
        if action == default {
            continue;
        }
        let (conditions, separate) = conditions(rule)?;
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue; // unknown to this libseccomp: skipped, as runc does
            };
            let added = if separate {
                conditions.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(action, syscall, std::slice::from_ref(c))
                        .map(|_| ())
                })
            } else {
                ctx.add_rule_conditional(action, syscall, &conditions)
                    .map(|_| ())
            };
            added.map_err(|source| SeccompError::Rule {
                syscall: name.clone(),
                source,
            })?;
            notify |= action == ScmpAction::Notify;
        }
    }

    let filters = export(&ctx)?;
    if filters.is_empty() {
        return Err(SeccompError::Empty);
    }
    if filters.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLong { len: filters.len() });
    }
    Ok(Program {
        filters,
        flags: flag_bits(s.flags().iter().flatten()),
        notify,
    })
}

/// Installs `p` on the calling thread with seccomp(2) `SECCOMP_SET_MODE_FILTER` and `p.flags`.
///
/// The caller must first set no_new_privs (`prctl(PR_SET_NO_NEW_PRIVS, 1)`) or hold CAP_SYS_ADMIN
/// in its user namespace; otherwise the kernel answers EACCES. Does not allocate, lock or log: safe
/// between fork and execve. Fails with [`SeccompError::NeedsListener`] if the program has NOTIFY
/// rules, which need [`install_with_listener`].
pub fn install(p: &Program) -> Result<(), SeccompError> {
    if p.notify {
        return Err(SeccompError::NeedsListener);
    }
    seccomp_set_mode_filter(p, p.flags).map(|_| ())
}

/// Like [`install`], and when the program has NOTIFY rules also asks the kernel for a
/// user-notification listener (`SECCOMP_FILTER_FLAG_NEW_LISTENER`, plus `TSYNC_ESRCH` when TSYNC is
/// set, as the kernel requires) and returns its fd. Returns `None` when the program has no NOTIFY
/// rule. Does not allocate.
///
/// The caller passes the fd to the seccomp agent (over the spec's `listenerPath`) and must not
/// itself make a notified syscall before the agent has the fd, or it blocks forever.
pub fn install_with_listener(p: &Program) -> Result<Option<OwnedFd>, SeccompError> {
    if !p.notify {
        return seccomp_set_mode_filter(p, p.flags).map(|_| None);
    }
    let mut flags = p.flags | FLAG_NEW_LISTENER;
    if flags & FLAG_TSYNC != 0 {
        flags |= FLAG_TSYNC_ESRCH;
    }
    let fd = seccomp_set_mode_filter(p, flags)?;
    // SAFETY: with NEW_LISTENER a successful seccomp(2) returns a new fd that nothing else in this
    // process knows about, so this OwnedFd is its only owner.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The raw seccomp(2) call. Returns the syscall's non-negative result (0, or the listener fd).
fn seccomp_set_mode_filter(p: &Program, flags: u32) -> Result<RawFd, SeccompError> {
    if p.filters.is_empty() {
        return Err(SeccompError::Empty);
    }
    let len = match u16::try_from(p.filters.len()) {
        Ok(len) if usize::from(len) <= MAX_INSTRUCTIONS => len,
        _ => {
            return Err(SeccompError::TooLong {
                len: p.filters.len(),
            })
        }
    };
    let prog = libc::sock_fprog {
        len,
        filter: p.filters.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` initialised sock_filter values owned by `p`, which outlives
    // the call; the kernel only reads (copies) them. The arguments have the types seccomp(2)
    // expects: an unsigned operation, unsigned flags and a pointer to a sock_fprog.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_uint::from(flags),
            std::ptr::addr_of!(prog),
        )
    };
    if rc < 0 {
        // last_os_error reads errno into an Os variant: no allocation.
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(SeccompError::Install { errno, flags });
    }
    if flags & FLAG_TSYNC != 0 && flags & (FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH) == 0 && rc > 0 {
        // With plain TSYNC a positive result is the id of the thread that could not sync.
        return Err(SeccompError::Tsync { tid: rc });
    }
    RawFd::try_from(rc).map_err(|_| SeccompError::Install {
        errno: libc::EINVAL,
        flags,
    })
}

/// The libseccomp action for an OCI action; ERRNO and TRACE carry `errno_ret` or EPERM.
fn scmp_action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let ret = || -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(value) => {
                u16::try_from(value).map_err(|_| SeccompError::ErrnoOutOfRange { value })
            }
        }
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

/// The libseccomp architecture for an OCI one; `None` for "native" (always present).
fn scmp_arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => return None,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    })
}

/// The rule's argument conditions, and whether they must be added one rule each (some argument
/// index appears more than once, which libseccomp cannot AND together).
fn conditions(rule: &LinuxSyscall) -> Result<(Vec<ScmpArgCompare>, bool), SeccompError> {
    let mut seen = [0usize; MAX_ARG_INDEX + 1];
    let mut out = Vec::new();
    for arg in rule.args().iter().flatten() {
        let index = arg.index();
        let (Some(count), Ok(arg_no)) = (seen.get_mut(index), u32::try_from(index)) else {
            return Err(SeccompError::ArgIndex {
                syscall: rule.names().join(","),
                index,
            });
        };
        *count += 1;
        let (op, datum) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        out.push(ScmpArgCompare::new(arg_no, op, datum));
    }
    let separate = seen.iter().any(|&n| n > 1);
    Ok((out, separate))
}

/// The seccomp(2) flag bits for the spec's flags.
fn flag_bits<'a>(flags: impl Iterator<Item = &'a LinuxSeccompFilterFlag>) -> u32 {
    flags.fold(0, |bits, f| {
        bits | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        }
    })
}

/// Exports the filter as BPF. libseccomp 2.5 has no in-memory export, so it writes into a memfd
/// that is read back.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let io = |source| SeccompError::ExportIo { source };
    let fd = rustix::fs::memfd_create("berth-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| io(e.into()))?;
    ctx.export_bpf(&fd)
        .map_err(|source| SeccompError::Export { source })?;
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() % 8 != 0 {
        return Err(SeccompError::ExportTruncated { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(8)
        .filter_map(|c| match *c {
            [c0, c1, jt, jf, k0, k1, k2, k3] => Some(libc::sock_filter {
                code: u16::from_ne_bytes([c0, c1]),
                jt,
                jf,
                k: u32::from_ne_bytes([k0, k1, k2, k3]),
            }),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSyscall};

    fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
        let mut r = LinuxSyscall::default();
        r.set_names(names.iter().map(|s| s.to_string()).collect());
        r.set_action(action);
        r
    }

    fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
        arg2(index, value, 0, op)
    }

    fn arg2(index: usize, value: u64, two: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
        LinuxSeccompArgBuilder::default()
            .index(index)
            .value(value)
            .value_two(two)
            .op(op)
            .build()
            .unwrap()
    }

    fn spec(default: LinuxSeccompAction, rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
        let mut s = LinuxSeccomp::default();
        s.set_default_action(default);
        s.set_syscalls(Some(rules));
        s
    }

    /// The BPF return values (SECCOMP_RET_*) the program can produce.
    fn returns(p: &Program) -> Vec<u32> {
        // BPF_RET | BPF_K
        p.filters
            .iter()
            .filter(|f| f.code == 0x06)
            .map(|f| f.k)
            .collect()
    }

    #[test]
    fn allow_all_with_one_errno_rule_compiles() {
        let mut r = rule(&["getppid"], LinuxSeccompAction::ScmpActErrno);
        r.set_errno_ret(Some(42));
        let p = compile(&spec(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();
        assert!(!p.is_empty() && p.len() <= MAX_INSTRUCTIONS);
        assert!(!p.notify);
        assert_eq!(p.flags, 0);
        let rets = returns(&p);
        assert!(rets.contains(&0x7fff_0000), "ALLOW: {rets:x?}");
        assert!(rets.contains(&(0x0005_0000 | 42)), "ERRNO(42): {rets:x?}");
    }

    #[test]
    fn errno_defaults_to_eperm_and_default_errno_ret_is_used() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActErrno,
            vec![
                rule(&["getpid"], LinuxSeccompAction::ScmpActAllow),
                rule(&["getppid"], LinuxSeccompAction::ScmpActErrno),
            ],
        );
        s.set_default_errno_ret(Some(38));
        let rets = returns(&compile(&s).unwrap());
        assert!(
            rets.contains(&(0x0005_0000 | 38)),
            "default ENOSYS: {rets:x?}"
        );
        assert!(rets.contains(&(0x0005_0000 | 1)), "rule EPERM: {rets:x?}");
    }

    #[test]
    fn rule_equal_to_default_is_skipped() {
        let s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(&["getpid", "read"], LinuxSeccompAction::ScmpActAllow)],
        );
        let p = compile(&s).unwrap();
        assert!(returns(&p).iter().all(|&r| r == 0x7fff_0000 || r == 0));
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(
                &["no_such_syscall_berth", "getppid"],
                LinuxSeccompAction::ScmpActErrno,
            )],
        );
        let rets = returns(&compile(&s).unwrap());
        assert!(rets.contains(&0x0005_0001), "{rets:x?}");
    }

    #[test]
    fn every_action_compiles() {
        use LinuxSeccompAction::*;
        for (action, ret) in [
            (ScmpActKill, 0x0000_0000),
            (ScmpActKillThread, 0x0000_0000),
            (ScmpActKillProcess, 0x8000_0000),
            (ScmpActTrap, 0x0003_0000),
            (ScmpActErrno, 0x0005_0001),
            (ScmpActTrace, 0x7ff0_0001),
            (ScmpActLog, 0x7ffc_0000),
            (ScmpActNotify, 0x7fc0_0000),
        ] {
            let p = compile(&spec(ScmpActAllow, vec![rule(&["getppid"], action)])).unwrap();
            assert!(returns(&p).contains(&ret), "{action:?}: {:x?}", returns(&p));
            assert_eq!(p.notify, action == ScmpActNotify);
        }
    }

    #[test]
    fn notify_as_default_is_rejected() {
        let err = compile(&spec(LinuxSeccompAction::ScmpActNotify, vec![])).unwrap_err();
        assert!(matches!(err, SeccompError::DefaultNotify), "{err}");
    }

    #[test]
    fn notify_program_refuses_plain_install() {
        let s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(&["getppid"], LinuxSeccompAction::ScmpActNotify)],
        );
        let p = compile(&s).unwrap();
        assert!(p.notify);
        assert!(matches!(install(&p), Err(SeccompError::NeedsListener)));
    }

    #[test]
    fn errno_ret_over_16_bits_is_an_error() {
        let mut r = rule(&["getppid"], LinuxSeccompAction::ScmpActErrno);
        r.set_errno_ret(Some(70_000));
        let err = compile(&spec(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap_err();
        assert!(matches!(
            err,
            SeccompError::ErrnoOutOfRange { value: 70_000 }
        ));
        assert!(err.to_string().contains("70000"));
    }

    #[test]
    fn arg_index_out_of_range_is_an_error() {
        let mut r = rule(&["personality"], LinuxSeccompAction::ScmpActErrno);
        r.set_args(Some(vec![arg(6, 0, LinuxSeccompOperator::ScmpCmpEq)]));
        let err = compile(&spec(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap_err();
        assert!(
            matches!(err, SeccompError::ArgIndex { index: 6, .. }),
            "{err}"
        );
    }

    #[test]
    fn conditions_on_one_index_become_separate_rules() {
        let mut r = rule(&["personality"], LinuxSeccompAction::ScmpActErrno);
        r.set_args(Some(vec![
            arg(0, 1, LinuxSeccompOperator::ScmpCmpEq),
            arg(0, 2, LinuxSeccompOperator::ScmpCmpEq),
        ]));
        let (conds, separate) = conditions(&r).unwrap();
        assert_eq!(conds.len(), 2);
        assert!(separate);
        compile(&spec(LinuxSeccompAction::ScmpActAllow, vec![r])).unwrap();

        let mut r = rule(&["socket"], LinuxSeccompAction::ScmpActErrno);
        r.set_args(Some(vec![
            arg(0, 16, LinuxSeccompOperator::ScmpCmpEq),
            arg(2, 9, LinuxSeccompOperator::ScmpCmpEq),
        ]));
        assert!(!conditions(&r).unwrap().1);
    }

    #[test]
    fn every_operator_compiles() {
        use LinuxSeccompOperator::*;
        for op in [
            ScmpCmpNe,
            ScmpCmpLt,
            ScmpCmpLe,
            ScmpCmpEq,
            ScmpCmpGe,
            ScmpCmpGt,
            ScmpCmpMaskedEq,
        ] {
            let a = arg2(1, 0x10, 0x10, op);
            let mut r = rule(&["mmap"], LinuxSeccompAction::ScmpActErrno);
            r.set_args(Some(vec![a]));
            compile(&spec(LinuxSeccompAction::ScmpActAllow, vec![r]))
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
    }

    #[test]
    fn extra_architectures_and_flags() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActErrno,
            vec![rule(
                &["getpid", "_llseek", "socketcall"],
                LinuxSeccompAction::ScmpActAllow,
            )],
        );
        let native_only = compile(&s).unwrap();
        s.set_architectures(Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
            Arch::ScmpArchLoongarch64,
            Arch::ScmpArchNative,
        ]));
        s.set_flags(Some(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        ]));
        let multi = compile(&s).unwrap();
        assert!(multi.len() > native_only.len());
        assert_eq!(multi.flags, FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW);
    }

    #[test]
    fn empty_program_is_not_installed() {
        let p = Program {
            filters: Vec::new(),
            flags: 0,
            notify: false,
        };
        assert!(matches!(install(&p), Err(SeccompError::Empty)));
    }
}
