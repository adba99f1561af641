//! Docker/moby-format seccomp profiles → the OCI `LinuxSeccomp` of one container.
//!
//! Docker's profile format (its default profile, Podman's `/usr/share/containers/seccomp.json`,
//! user files given with `--security-opt seccomp=…`) extends the OCI section with `archMap` and
//! per-rule `includes`/`excludes` filters on capabilities, architectures and kernel versions. The
//! engine resolves those for a given container exactly as moby's `setupSeccomp` does, and the
//! runtime then only ever sees plain OCI. This module never reads files or guesses capabilities:
//! the caller passes the profile bytes, the container's capability names and the architecture.

use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::SeccompError;

/// A kernel version as compared by `minKernel` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl KernelVersion {
    /// Parses the leading `MAJOR.MINOR[.PATCH]` of a version or a kernel release string such as
    /// `6.1.0-18-amd64`; anything after the numbers is ignored, as moby does.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        // "5.8" must have a '.' between the numbers, not any other separator.
        let dot = s.get(major_len(s)..)?.starts_with('.');
        dot.then_some(Self {
            major,
            minor,
            patch,
        })
    }

    /// The running kernel's version, from uname(2).
    pub fn host() -> Result<Self, SeccompError> {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        Self::parse(&release).ok_or_else(|| SeccompError::HostKernelVersion {
            release: release.into_owned(),
        })
    }
}

fn major_len(s: &str) -> usize {
    s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
}

/// The architecture name moby's profiles use in `includes.arches`/`excludes.arches` (libseccomp's
/// names: `amd64`, `x86`, `arm64`, …) for the architecture this binary was built for.
pub fn native_arch() -> &'static str {
    normalize_arch(std::env::consts::ARCH)
}

/// Maps uname/Rust/Go architecture spellings to the libseccomp names profiles use.
fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "x86" | "i386" | "i486" | "i586" | "i686" | "386" => "x86",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" | "armhf" => "arm",
        "powerpc" => "ppc",
        "powerpc64" => "ppc64",
        "powerpc64le" => "ppc64le",
        "mipsle" | "mipsel" => "mipsel",
        "mips64le" | "mips64el" => "mipsel64",
        "mips64p32" => "mips64n32",
        "mips64p32le" => "mipsel64n32",
        "loong64" | "loongarch64" => "loongarch64",
        other => other,
    }
}

/// The SCMP_ARCH_* name of a libseccomp architecture name (moby's `nativeToSeccomp`).
fn seccomp_arch_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "x32" => "SCMP_ARCH_X32",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "mips" => "SCMP_ARCH_MIPS",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64n32" => "SCMP_ARCH_MIPS64N32",
        "mipsel" => "SCMP_ARCH_MIPSEL",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "mipsel64n32" => "SCMP_ARCH_MIPSEL64N32",
        "ppc" => "SCMP_ARCH_PPC",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390" => "SCMP_ARCH_S390",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Converts a Docker/moby-format seccomp profile into the OCI section for one container whose
/// capability set is `caps` (names such as `"CAP_SYS_ADMIN"`; the `CAP_` prefix and case are
/// optional) on architecture `arch` (`"amd64"`/`"x86_64"`, `"arm64"`/`"aarch64"`, … — see
/// [`native_arch`]).
///
/// Filtering follows moby's `setupSeccomp`: `archMap` contributes the entry for `arch` and its
/// sub-architectures; a rule is dropped if `excludes.arches` names `arch`, if any of
/// `excludes.caps` is held, if the kernel is at least `excludes.minKernel`, if `includes.arches`
/// does not name `arch`, if any of `includes.caps` is missing, or if the kernel is older than
/// `includes.minKernel`. `defaultErrnoRet`, `flags`, `listenerPath` and `listenerMetadata` pass
/// through. `minKernel` conditions are evaluated against the running kernel (uname).
///
/// Unlike moby, a profile without `defaultAction` is an error rather than "unconfined": the caller
/// decides to run unconfined, not a typo in a file.
pub fn from_docker_profile(
    json: &[u8],
    caps: &[String],
    arch: &str,
) -> Result<LinuxSeccomp, SeccompError> {
    convert(json, caps, arch, None)
}

/// [`from_docker_profile`] with `minKernel` conditions evaluated against `kernel` instead of the
/// running kernel (for a profile compiled for another host, and for tests).
pub fn from_docker_profile_for_kernel(
    json: &[u8],
    caps: &[String],
    arch: &str,
    kernel: KernelVersion,
) -> Result<LinuxSeccomp, SeccompError> {
    convert(json, caps, arch, Some(kernel))
}

fn convert(
    json: &[u8],
    caps: &[String],
    arch: &str,
    kernel: Option<KernelVersion>,
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile =
        serde_json::from_slice(json).map_err(|source| SeccompError::InvalidProfile { source })?;
    if profile.default_action.is_empty() {
        return Err(SeccompError::MissingDefaultAction);
    }
    let arch = normalize_arch(arch);
    let caps: Vec<String> = caps.iter().map(|c| normalize_cap(c)).collect();
    let mut kernel = kernel;
    let mut kernel_at_least = |min: &str| -> Result<bool, SeccompError> {
        let min = KernelVersion::parse(min).ok_or_else(|| SeccompError::InvalidMinKernel {
            value: min.to_string(),
        })?;
        let current = match kernel {
            Some(k) => k,
            None => *kernel.insert(KernelVersion::host()?),
        };
        Ok(current >= min)
    };

    let architectures = profile.architectures.unwrap_or_default();
    let arch_map = profile.arch_map.unwrap_or_default();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(SeccompError::ArchitecturesAndArchMap);
    }
    let mut arches: Vec<Arch> = architectures
        .iter()
        .map(|a| parse_arch(a))
        .collect::<Result<_, _>>()?;
    if let Some(native) = seccomp_arch_name(arch) {
        if let Some(entry) = arch_map.iter().find(|m| m.architecture == native) {
            arches.push(parse_arch(&entry.architecture)?);
            for sub in entry.sub_architectures.iter().flatten() {
                arches.push(parse_arch(sub)?);
            }
        }
    }

    let mut syscalls = Vec::new();
    for call in profile.syscalls.unwrap_or_default() {
        let excludes = call.excludes.unwrap_or_default();
        let includes = call.includes.unwrap_or_default();
        if excludes.arches.iter().flatten().any(|a| a == arch) {
            continue;
        }
        if excludes.caps.iter().flatten().any(|c| has_cap(&caps, c)) {
            continue;
        }
        if let Some(min) = excludes.min_kernel.as_deref() {
            if kernel_at_least(min)? {
                continue;
            }
        }
        if let Some(list) = &includes.arches {
            if !list.is_empty() && !list.iter().any(|a| a == arch) {
                continue;
            }
        }
        if !includes.caps.iter().flatten().all(|c| has_cap(&caps, c)) {
            continue;
        }
        if let Some(min) = includes.min_kernel.as_deref() {
            if !kernel_at_least(min)? {
                continue;
            }
        }

        let names = match (call.name, call.names) {
            (Some(name), Some(names)) if !name.is_empty() && !names.is_empty() => {
                return Err(SeccompError::NameAndNames { name })
            }
            (Some(name), _) if !name.is_empty() => vec![name],
            (_, names) => names.unwrap_or_default(),
        };
        let action: LinuxSeccompAction =
            parse_enum(&call.action).ok_or_else(|| SeccompError::UnknownAction {
                action: call.action.clone(),
            })?;
        let args = call
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let op: LinuxSeccompOperator = parse_enum(&a.op)
                    .ok_or_else(|| SeccompError::UnknownOperator { op: a.op.clone() })?;
                LinuxSeccompArgBuilder::default()
                    .index(a.index)
                    .value(a.value)
                    .value_two(a.value_two)
                    .op(op)
                    .build()
                    .map_err(|source| SeccompError::Spec { source })
            })
            .collect::<Result<Vec<_>, SeccompError>>()?;
        let mut rule = LinuxSyscall::default();
        rule.set_names(names);
        rule.set_action(action);
        rule.set_errno_ret(call.errno_ret);
        rule.set_args((!args.is_empty()).then_some(args));
        syscalls.push(rule);
    }

    let default_action: LinuxSeccompAction =
        parse_enum(&profile.default_action).ok_or_else(|| SeccompError::UnknownAction {
            action: profile.default_action.clone(),
        })?;
    let flags = profile
        .flags
        .unwrap_or_default()
        .iter()
        .map(|f| {
            parse_enum::<LinuxSeccompFilterFlag>(f)
                .ok_or_else(|| SeccompError::UnknownFlag { flag: f.clone() })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures((!arches.is_empty()).then_some(arches));
    out.set_flags((!flags.is_empty()).then_some(flags));
    out.set_listener_path(profile.listener_path);
    out.set_listener_metadata(profile.listener_metadata);
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

/// Parses one of oci-spec's string enums (actions, operators, architectures, flags) from its
/// SCREAMING_SNAKE_CASE name.
fn parse_enum<T: DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn parse_arch(s: &str) -> Result<Arch, SeccompError> {
    parse_enum(s).ok_or_else(|| SeccompError::UnknownArch {
        arch: s.to_string(),
    })
}

fn normalize_cap(c: &str) -> String {
    let upper = c.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

fn has_cap(caps: &[String], cap: &str) -> bool {
    let cap = normalize_cap(cap);
    caps.contains(&cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

    /// Docker's default capability set.
    pub(crate) fn docker_caps() -> Vec<String> {
        [
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn podman_profile() -> Option<Vec<u8>> {
        match std::fs::read(PODMAN_PROFILE) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("skipping: cannot read {PODMAN_PROFILE} ({e}); install golang-github-containers-common");
                None
            }
        }
    }

    /// The actions of the rules naming `syscall`, with whether they have argument conditions.
    fn rules_for(s: &LinuxSeccomp, syscall: &str) -> Vec<(LinuxSeccompAction, bool)> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == syscall))
            .map(|r| (r.action(), r.args().is_some()))
            .collect()
    }

    const KERNEL: KernelVersion = KernelVersion {
        major: 6,
        minor: 1,
        patch: 0,
    };

    #[test]
    fn podman_profile_for_docker_caps_on_amd64() {
        let Some(json) = podman_profile() else { return };
        let s = from_docker_profile_for_kernel(&json, &docker_caps(), "amd64", KERNEL).unwrap();
        use LinuxSeccompAction::*;
        assert_eq!(s.default_action(), ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(libc::ENOSYS as u32));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // Capability-gated pairs: Docker's set has SYS_CHROOT but not SYS_ADMIN.
        assert_eq!(rules_for(&s, "chroot"), vec![(ScmpActAllow, false)]);
        assert_eq!(rules_for(&s, "bpf"), vec![(ScmpActErrno, false)]);
        // Podman's file lists setns both in its big allow rule and in the CAP_SYS_ADMIN-excluded
        // ERRNO rule; both survive, as under moby.
        assert_eq!(
            rules_for(&s, "setns"),
            vec![(ScmpActAllow, false), (ScmpActErrno, false)]
        );
        assert_eq!(
            rules_for(&s, "open_by_handle_at"),
            vec![(ScmpActErrno, false)]
        );
        // AUDIT_WRITE is held: the unconditional socket rule replaces the netlink-audit ones.
        assert_eq!(rules_for(&s, "socket"), vec![(ScmpActAllow, false)]);
        // Arch-gated rules.
        assert_eq!(rules_for(&s, "arch_prctl"), vec![(ScmpActAllow, false)]);
        assert_eq!(rules_for(&s, "modify_ldt"), vec![(ScmpActAllow, false)]);
        assert!(rules_for(&s, "s390_runtime_instr").is_empty());
        assert!(rules_for(&s, "breakpoint").is_empty());
        // personality: five allowed values, one rule each.
        assert_eq!(rules_for(&s, "personality").len(), 5);
        // errnoRet passes through.
        let bpf = s
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names().iter().any(|n| n == "bpf"))
            .unwrap();
        assert_eq!(bpf.errno_ret(), Some(libc::EPERM as u32));
        // Unlike Docker's own default profile, Podman's allows these unconditionally.
        for name in ["mount", "umount2", "unshare", "keyctl"] {
            assert_eq!(rules_for(&s, name), vec![(ScmpActAllow, false)], "{name}");
        }
    }

    #[test]
    fn podman_profile_with_sys_admin_and_without_audit_write() {
        let Some(json) = podman_profile() else { return };
        let mut caps: Vec<String> = docker_caps()
            .into_iter()
            .filter(|c| c != "CAP_AUDIT_WRITE")
            .collect();
        caps.push("sys_admin".into()); // prefix and case are normalised
        let s = from_docker_profile_for_kernel(&json, &caps, "x86_64", KERNEL).unwrap();
        use LinuxSeccompAction::*;
        assert_eq!(rules_for(&s, "bpf"), vec![(ScmpActAllow, false)]);
        assert_eq!(
            rules_for(&s, "setns"),
            vec![(ScmpActAllow, false), (ScmpActAllow, false)]
        );
        let socket = rules_for(&s, "socket");
        assert_eq!(socket.len(), 4, "{socket:?}");
        assert!(socket.iter().all(|&(_, has_args)| has_args));
        super::super::compile(&s).unwrap();
    }

    #[test]
    fn podman_profile_on_arm64_and_s390x() {
        let Some(json) = podman_profile() else { return };
        let s = from_docker_profile_for_kernel(&json, &docker_caps(), "aarch64", KERNEL).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert!(rules_for(&s, "arch_prctl").is_empty());
        assert_eq!(rules_for(&s, "breakpoint").len(), 1);
        let s = from_docker_profile_for_kernel(&json, &[], "s390x", KERNEL).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchS390x, Arch::ScmpArchS390][..])
        );
        assert_eq!(rules_for(&s, "s390_runtime_instr").len(), 1);
        // An architecture without an archMap entry gets no extra architectures.
        let s = from_docker_profile_for_kernel(&json, &[], "riscv64", KERNEL).unwrap();
        assert_eq!(s.architectures(), &None);
    }

    #[test]
    fn podman_profile_compiles_for_every_cap_set() {
        let Some(json) = podman_profile() else { return };
        for caps in [Vec::new(), docker_caps()] {
            let s = from_docker_profile_for_kernel(&json, &caps, native_arch(), KERNEL).unwrap();
            let p = super::super::compile(&s).unwrap();
            assert!(p.len() > 100 && p.len() <= super::super::MAX_INSTRUCTIONS);
            assert!(!p.notify);
        }
    }

    #[test]
    fn min_kernel_includes_and_excludes() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["new_one"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
                {"names": ["old_one"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.8"}}
            ]
        }"#;
        let at = |major, minor| KernelVersion {
            major,
            minor,
            patch: 0,
        };
        let s = from_docker_profile_for_kernel(json, &[], "amd64", at(5, 8)).unwrap();
        assert_eq!(rules_for(&s, "new_one").len(), 1);
        assert!(rules_for(&s, "old_one").is_empty());
        let s = from_docker_profile_for_kernel(json, &[], "amd64", at(5, 4)).unwrap();
        assert!(rules_for(&s, "new_one").is_empty());
        assert_eq!(rules_for(&s, "old_one").len(), 1);
        // The running kernel is used when none is given.
        from_docker_profile(json, &[], "amd64").unwrap();

        let bad = br#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "five"}}]}"#;
        let err = from_docker_profile_for_kernel(bad, &[], "amd64", at(5, 8)).unwrap_err();
        assert!(
            matches!(err, SeccompError::InvalidMinKernel { .. }),
            "{err}"
        );
    }

    #[test]
    fn kernel_version_parsing() {
        let v = |s| KernelVersion::parse(s);
        assert_eq!(
            v("6.18.44-fc-v595"),
            Some(KernelVersion {
                major: 6,
                minor: 18,
                patch: 44
            })
        );
        assert_eq!(
            v("5.8"),
            Some(KernelVersion {
                major: 5,
                minor: 8,
                patch: 0
            })
        );
        assert_eq!(v("5"), None);
        assert_eq!(v("5-8"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("x.y"), None);
        assert_eq!(v("99999999999999999999999.1"), None);
        KernelVersion::host().unwrap();
    }

    #[test]
    fn malformed_profiles_are_clear_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not valid JSON"),
            (br#"{"syscalls": []}"#, "no defaultAction"),
            (br#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, "\"SCMP_ACT_BOGUS\""),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}"#,
                "action \"ALLOW\" is not known",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SAME"}]}]}"#,
                "\"SCMP_CMP_SAME\"",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
                "\"SCMP_ARCH_Z80\"",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
                    "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
                "both 'architectures' and 'archMap'",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "both 'name' and 'names'",
            ),
            (
                br#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
                "\"SECCOMP_FILTER_FLAG_FAST\"",
            ),
        ];
        for (json, want) in cases {
            let err = from_docker_profile_for_kernel(json, &[], "amd64", KERNEL).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{}: {err}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn passthrough_fields_and_single_name() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "syscalls": [
                {"name": "getppid", "action": "SCMP_ACT_ERRNO", "errnoRet": 42, "args": null},
                {"names": ["mmap"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }"#;
        let s = from_docker_profile_for_kernel(json, &[], "amd64", KERNEL).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        assert_eq!(
            s.flags().as_deref(),
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagLog][..])
        );
        assert_eq!(
            s.listener_path().as_deref(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
        assert_eq!(s.listener_metadata().as_deref(), Some("meta"));
        let rules = s.syscalls().as_ref().unwrap();
        assert_eq!(rules[0].names(), &["getppid".to_string()]);
        assert_eq!(rules[0].errno_ret(), Some(42));
        let arg = rules[1].args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.value_two(), arg.op()),
            (2, 4, Some(4), LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        assert_eq!(
            super::super::compile(&s).unwrap().flags,
            super::super::FLAG_LOG
        );
    }

    #[test]
    fn arch_names() {
        assert_eq!(normalize_arch("x86_64"), "amd64");
        assert_eq!(normalize_arch("aarch64"), "arm64");
        assert_eq!(normalize_arch("i686"), "x86");
        assert_eq!(seccomp_arch_name("amd64"), Some("SCMP_ARCH_X86_64"));
        for name in [
            "x86",
            "amd64",
            "x32",
            "arm",
            "arm64",
            "mips64n32",
            "ppc64le",
            "s390x",
        ] {
            parse_arch(seccomp_arch_name(name).unwrap()).unwrap();
        }
        assert!(seccomp_arch_name(native_arch()).is_some());
    }
}
