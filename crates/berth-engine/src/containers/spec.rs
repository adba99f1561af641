//! The OCI runtime spec of a container run, built from its record (the create request merged
//! with the image's defaults) with Docker's defaults: its capability set, its seccomp profile,
//! its masked and read-only /proc paths, its mounts and device rules.
//!
//! Pure: no I/O except [`resolve_user`], which reads /etc/passwd and /etc/group inside the
//! rootfs through `openat2(RESOLVE_IN_ROOT)` (a hostile image cannot point them outside).

use std::path::Path;

use serde_json::{json, Value};

use super::Record;

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
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

/// Every capability this kernel may know (for --privileged and `--cap-add ALL`).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where the init binary of `--init` is mounted, as Docker does.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Errors of building a spec; all are the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified")]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid capability {0:?}: use names such as NET_ADMIN or ALL")]
    BadCap(String),
    #[error("invalid --security-opt {0:?}: {1}")]
    BadSecurityOpt(String, String),
    #[error("invalid bind mount spec {0:?}: {1}")]
    BadBind(String, String),
    #[error("invalid ulimit {0:?}")]
    BadUlimit(String),
    #[error("invalid mount config for type {0:?}: {1}")]
    BadMount(String, String),
    #[error("error gathering device information while adding custom device {0:?}: {1}")]
    BadDevice(String, String),
}

/// The user a container's process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// What a spec is built from besides the record.
pub struct Inputs<'a> {
    pub rec: &'a Record,
    /// Absolute path of the mounted rootfs.
    pub rootfs: &'a Path,
    /// The container's directory, holding hostname, hosts and resolv.conf.
    pub dir: &'a Path,
    pub user: User,
    /// The converted seccomp filter (`linux.seccomp`), None for unconfined.
    pub seccomp: Option<Value>,
    /// The binary `--init` mounts at [`INIT_PATH`].
    pub init_binary: Option<&'a Path>,
    pub cgroup_v2: bool,
    /// The network namespace to join (its own, made by the network setup, or another
    /// container's); None = a new empty one (`--network none`) unless the host's.
    pub netns: Option<&'a Path>,
}

/// The seccomp choice in `--security-opt`: `None` = the default profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    Default,
    Unconfined,
    /// A profile's JSON text (the docker CLI sends the file's contents).
    Profile(String),
}

/// Reads `--security-opt` values: no-new-privileges and seccomp.
pub fn security_opts(opts: &[String]) -> Result<(bool, Seccomp), SpecError> {
    let mut nnp = false;
    let mut seccomp = Seccomp::Default;
    for o in opts {
        let (k, v) = o
            .split_once(['=', ':'])
            .map_or((o.as_str(), None), |(k, v)| (k, Some(v)));
        match (k, v) {
            ("no-new-privileges", None) => nnp = true,
            ("no-new-privileges", Some(v)) => {
                nnp = v.parse::<bool>().map_err(|_| {
                    SpecError::BadSecurityOpt(o.clone(), "expected true or false".into())
                })?
            }
            ("seccomp", Some("unconfined")) => seccomp = Seccomp::Unconfined,
            ("seccomp", Some(p)) if p.trim_start().starts_with('{') => {
                seccomp = Seccomp::Profile(p.to_string())
            }
            ("seccomp", Some(p)) => {
                return Err(SpecError::BadSecurityOpt(
                    o.clone(),
                    format!(
                        "{p} is not a profile's JSON (the client should send the file's contents)"
                    ),
                ))
            }
            ("label" | "apparmor", _) => {}
            _ => {
                return Err(SpecError::BadSecurityOpt(
                    o.clone(),
                    "supported: no-new-privileges[=true|false], seccomp=unconfined|PROFILE".into(),
                ))
            }
        }
    }
    Ok((nnp, seccomp))
}

fn norm_cap(c: &str) -> Result<String, SpecError> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::BadCap(c.to_string()))
    }
}

/// The capability set after `--cap-add`/`--cap-drop` (Docker: drop first, then add; ALL works).
pub fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, SpecError> {
    if privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let add: Vec<String> = add.iter().map(|c| norm_cap(c)).collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop.iter().map(|c| norm_cap(c)).collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
    } else {
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    Ok(caps)
}

/// Docker's environment: PATH and HOSTNAME first, TERM with a terminal, then the container's.
pub fn environment(rec: &Record, hostname: &str, home: &str) -> Vec<String> {
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if rec.tty() {
        env.push("TERM=xterm".to_string());
    }
    merge_env(&mut env, rec.config.env.iter().flatten());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", if home.is_empty() { "/" } else { home }));
    }
    env
}

/// Sets each `KEY=value` of `extra` in `env`: replacing the same key in place, else appending
/// (Docker's ReplaceOrAppendEnvValues).
pub fn merge_env<'a>(env: &mut Vec<String>, extra: impl IntoIterator<Item = &'a String>) {
    for kv in extra {
        let key = kv.split('=').next().unwrap_or(kv);
        if let Some(slot) = env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            *slot = kv.clone();
        } else {
            env.push(kv.clone());
        }
    }
}

/// The container's hostname: asked, or the short id.
pub fn hostname(rec: &Record) -> String {
    match rec.config.hostname.as_deref() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => rec.short_id().to_string(),
    }
}

fn parse_size_opt(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 1024),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mul)
}

/// The OCI spec (`config.json`).
pub fn build(i: &Inputs) -> Result<Value, SpecError> {
    let rec = i.rec;
    let hc = &rec.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let mut args: Vec<String> = std::iter::once(rec.path.clone())
        .chain(rec.args.iter().cloned())
        .collect();
    if rec.path.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let init = hc.init.unwrap_or(false) && i.init_binary.is_some();
    if init {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let host = hostname(rec);
    let (nnp, _) = security_opts(hc.security_opt.as_deref().unwrap_or(&[]))?;
    let caps = capabilities(
        hc.cap_add.as_deref().unwrap_or(&[]),
        hc.cap_drop.as_deref().unwrap_or(&[]),
        privileged,
    )?;
    // Docker gives a non-root user no effective or permitted capabilities.
    let (eff, perm) = if i.user.uid == 0 {
        (caps.clone(), caps.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    let cwd = match rec.config.working_dir.as_deref() {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".to_string(),
    };
    let mut rlimits = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        if name.is_empty() || name.contains(|c: char| !c.is_ascii_alphabetic()) {
            return Err(SpecError::BadUlimit(name));
        }
        rlimits.push(json!({
            "type": format!("RLIMIT_{}", name.to_ascii_uppercase()),
            "soft": u.soft.unwrap_or(0).max(0),
            "hard": u.hard.unwrap_or(0).max(0),
        }));
    }
    let mut process = json!({
        "terminal": rec.tty(),
        "user": {
            "uid": i.user.uid,
            "gid": i.user.gid,
            "additionalGids": i.user.additional_gids,
        },
        "args": args,
        "env": environment(rec, &host, &i.user.home),
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": eff,
            "permitted": perm,
        },
        "noNewPrivileges": nnp,
    });
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if let Some(adj) = hc.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }

    let dir = i.dir.display().to_string();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let shm = hc.shm_size.filter(|s| *s > 0).unwrap_or(64 * 1024 * 1024);
    mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
    for f in ["resolv.conf", "hostname", "hosts"] {
        mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind", "source": format!("{dir}/{f}"), "options": ["rbind", "rprivate"]}));
    }
    let user_mounts = mounts.len();
    for b in hc.binds.iter().flatten() {
        if let Some(m) = bind_mount(b)? {
            mounts.push(m);
        }
    }
    for (path, opts) in hc.tmpfs.iter().flatten() {
        let mut o = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            "noexec".to_string(),
        ];
        o.extend(
            opts.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        if let Some(sz) = o
            .iter()
            .position(|x| x.starts_with("size="))
            .and_then(|p| parse_size_opt(&o[p][5..]).map(|n| (p, n)))
        {
            o[sz.0] = format!("size={}", sz.1);
        }
        mounts.push(json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    for m in hc.mounts.iter().flatten() {
        if let Some(m) = api_mount(m)? {
            mounts.push(m);
        }
    }
    // Volumes (resolved at create into the record) are binds of their host directories.
    for v in &rec.volumes {
        let mut o = vec!["rbind"];
        if !v.rw {
            o.push("ro");
        }
        o.push("rprivate");
        mounts.push(
            json!({"destination": v.destination, "type": "bind", "source": v.source, "options": o}),
        );
    }
    // Parents before children, as Docker sorts (a volume at /a/b over a bind at /a).
    mounts[user_mounts..].sort_by_key(|m| {
        m["destination"]
            .as_str()
            .map_or(0, |d| d.split('/').filter(|c| !c.is_empty()).count())
    });
    if init {
        if let Some(b) = i.init_binary {
            mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": b.display().to_string(), "options": ["bind", "ro"]}));
        }
    }

    let mut namespaces = vec![json!({"type": "mount"})];
    let mode = |m: &Option<String>| m.as_deref().unwrap_or("").to_string();
    if mode(&hc.pid_mode) != "host" {
        namespaces.push(json!({"type": "pid"}));
    }
    if mode(&hc.ipc_mode) != "host" {
        namespaces.push(json!({"type": "ipc"}));
    }
    if mode(&hc.uts_mode) != "host" {
        namespaces.push(json!({"type": "uts"}));
    }
    if mode(&hc.network_mode) != "host" {
        match i.netns {
            Some(p) => namespaces.push(json!({"type": "network", "path": p.display().to_string()})),
            None => namespaces.push(json!({"type": "network"})),
        }
    }
    if i.cgroup_v2 && hc.cgroupns_mode != Some(berth_types::api::HostConfigCgroupnsModeEnum::HOST) {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = json!({
        "devices": default_device_rules(privileged),
    });
    let mut linux_devices = Vec::new();
    for dm in hc.devices.iter().flatten() {
        let (dev, rule) = device(dm)?;
        linux_devices.push(dev);
        if let Some(rules) = resources["devices"].as_array_mut() {
            rules.push(rule);
        }
    }
    let mut memory = serde_json::Map::new();
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
        match hc.memory_swap {
            Some(s) if s > 0 || s == -1 => {
                memory.insert("swap".into(), json!(s));
            }
            // Docker: swap defaults to twice the memory limit.
            _ => {
                memory.insert("swap".into(), json!(m * 2));
            }
        }
    }
    if let Some(r) = hc.memory_reservation.filter(|m| *m > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    if hc.oom_kill_disable == Some(true) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(n * period / 1_000_000_000));
    } else {
        if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
            cpu.insert("period".into(), json!(p));
        }
        if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
            cpu.insert("quota".into(), json!(q));
        }
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(c) = hc.cpuset_mems.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("mems".into(), json!(c));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        resources["blockIO"] = json!({"weight": w});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": cgroups_path(hc.cgroup_parent.as_deref(), &rec.id),
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    if let Some(s) = &i.seccomp {
        if !privileged {
            linux["seccomp"] = s.clone();
        }
    }
    if !linux_devices.is_empty() {
        linux["devices"] = json!(linux_devices);
    }
    if let Some(sysctls) = &hc.sysctls {
        linux["sysctl"] = json!(sysctls);
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": i.rootfs.display().to_string(), "readonly": hc.readonly_rootfs.unwrap_or(false)},
        "hostname": host,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// The container's cgroup: `/berth/<id>`, or `<parent>/<id>` with `--cgroup-parent` (as Docker's
/// cgroupfs driver joins them; a relative parent is taken from the hierarchy's root, where Docker's
/// daemon runs). A `..` that would climb out of the hierarchy is refused by the runtime.
fn cgroups_path(parent: Option<&str>, id: &str) -> String {
    match parent
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => format!("/{p}/{id}"),
        None => format!("/berth/{id}"),
    }
}

/// Docker's device cgroup rules: deny all, allow the standard character devices.
fn default_device_rules(privileged: bool) -> Value {
    if privileged {
        return json!([{"allow": true, "access": "rwm"}]);
    }
    let allow = |t: &str, maj: i64, min: Option<i64>, access: &str| {
        let mut v = json!({"allow": true, "type": t, "major": maj, "access": access});
        if let Some(m) = min {
            v["minor"] = json!(m);
        }
        v
    };
    json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        allow("c", 1, Some(3), "rwm"),
        allow("c", 1, Some(5), "rwm"),
        allow("c", 1, Some(7), "rwm"),
        allow("c", 1, Some(8), "rwm"),
        allow("c", 1, Some(9), "rwm"),
        allow("c", 5, Some(0), "rwm"),
        allow("c", 5, Some(1), "rwm"),
        allow("c", 5, Some(2), "rwm"),
        allow("c", 136, None, "rwm"),
        allow("c", 10, Some(200), "rwm"),
    ])
}

/// Checks what `docker create` can check before anything is made: `--mount` entries (a bind
/// source must exist) and `--device` paths.
pub fn check_host_config(hc: &berth_types::api::HostConfig) -> Result<(), SpecError> {
    for b in hc.binds.iter().flatten() {
        check_bind(b)?;
    }
    for m in hc.mounts.iter().flatten() {
        api_mount(m)?;
        if m.typ == Some(berth_types::api::MountType::BIND) {
            let src = m.source.clone().unwrap_or_default();
            if std::fs::symlink_metadata(&src).is_err() {
                return Err(SpecError::BadMount(
                    "bind".into(),
                    format!("bind source path does not exist: {src}"),
                ));
            }
        }
    }
    for d in hc.devices.iter().flatten() {
        device(d)?;
    }
    Ok(())
}

/// One `--mount` (HostConfig.Mounts): bind and tmpfs; None for a volume (checked and resolved
/// by `crate::volumes`, mounted from the record's `volumes`).
fn api_mount(m: &berth_types::api::Mount) -> Result<Option<Value>, SpecError> {
    use berth_types::api::MountType;
    let typ = m.typ.map_or_else(|| "".to_string(), |t| t.to_string());
    let bad = |why: &str| SpecError::BadMount(typ.clone(), why.to_string());
    let target = m.target.clone().unwrap_or_default();
    if !target.starts_with('/') || target == "/" {
        return Err(bad("the target must be an absolute path other than /"));
    }
    match m.typ {
        Some(MountType::BIND) => {
            let src = m.source.clone().unwrap_or_default();
            if !src.starts_with('/') {
                return Err(bad("the source must be an absolute host path"));
            }
            let bo = m.bind_options.clone().unwrap_or_default();
            let mut o = vec![if bo.non_recursive == Some(true) {
                "bind".to_string()
            } else {
                "rbind".to_string()
            }];
            if m.read_only == Some(true) {
                o.push("ro".into());
            }
            let prop = bo.propagation.map(|p| p.to_string()).unwrap_or_default();
            o.push(if prop.is_empty() {
                "rprivate".into()
            } else {
                prop
            });
            Ok(Some(
                json!({"destination": target, "type": "bind", "source": src, "options": o}),
            ))
        }
        Some(MountType::TMPFS) => {
            if m.source.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(bad("a tmpfs mount takes no source"));
            }
            let t = m.tmpfs_options.clone().unwrap_or_default();
            let mut o = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            if let Some(sz) = t.size_bytes.filter(|s| *s > 0) {
                o.push(format!("size={sz}"));
            }
            if let Some(mode) = t.mode.filter(|m| *m > 0) {
                o.push(format!("mode={mode:o}"));
            }
            if m.read_only == Some(true) {
                o.push("ro".into());
            }
            Ok(Some(
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o}),
            ))
        }
        Some(MountType::VOLUME) => Ok(None),
        _ => Err(bad("supported types: bind, tmpfs")),
    }
}

/// One `--device HOST[:CONTAINER[:PERMS]]`: the device node to create and its cgroup rule.
fn device(d: &berth_types::api::DeviceMapping) -> Result<(Value, Value), SpecError> {
    let host = d.path_on_host.clone().unwrap_or_default();
    let bad = |why: String| SpecError::BadDevice(host.clone(), why);
    let ctr = d
        .path_in_container
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| host.clone());
    let perms = d
        .cgroup_permissions
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "rwm".into());
    if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad(format!(
            "invalid permissions {perms:?}: use r, w and m"
        )));
    }
    if !ctr.starts_with('/') {
        return Err(bad(format!("{ctr:?} is not an absolute path")));
    }
    let st = rustix::fs::stat(host.as_str()).map_err(|e| bad(e.to_string()))?;
    let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::CharacterDevice => "c",
        rustix::fs::FileType::BlockDevice => "b",
        _ => return Err(bad("not a device node".into())),
    };
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    Ok((
        json!({"path": ctr, "type": kind, "major": major, "minor": minor,
               "fileMode": st.st_mode & 0o777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

/// Checks a `-v` bind spec without building it.
pub fn check_bind(spec: &str) -> Result<(), SpecError> {
    bind_mount(spec).map(drop)
}

/// `-v /host:/ctr[:ro|rw|z|Z|...]`: absolute host paths; None for a volume (`NAME:/ctr`,
/// `/ctr`), checked and resolved by `crate::volumes`.
fn bind_mount(spec: &str) -> Result<Option<Value>, SpecError> {
    if !spec.starts_with('/') || !spec.contains(':') {
        return Ok(None);
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(SpecError::BadBind(
                spec.into(),
                "expected SRC:DEST[:OPTIONS]".into(),
            ))
        }
    };
    if !dst.starts_with('/') || dst == "/" {
        return Err(SpecError::BadBind(
            spec.into(),
            "the destination must be an absolute path other than /".into(),
        ));
    }
    let mut o = vec!["rbind".to_string()];
    for opt in opts.split(',').filter(|s| !s.is_empty()) {
        match opt {
            "ro" => o.push("ro".into()),
            "rw" | "z" | "Z" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                o.push(opt.into())
            }
            other => {
                return Err(SpecError::BadBind(
                    spec.into(),
                    format!("unknown option {other:?}"),
                ))
            }
        }
    }
    if !o
        .iter()
        .any(|x| x.ends_with("private") || x.ends_with("shared") || x.ends_with("slave"))
    {
        o.push("rprivate".into());
    }
    Ok(Some(
        json!({"destination": dst, "type": "bind", "source": src, "options": o}),
    ))
}

/// Reads a file inside `rootfs` without following links out of it; None if absent.
fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut f = std::fs::File::from(fd);
    let mut s = String::new();
    use std::io::Read;
    // /etc/passwd is small; a huge one is an attack: cap it.
    (&mut f).take(4 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Resolves Docker's `-u` forms (`name`, `uid`, `name:group`, `uid:gid`, empty = root) against
/// the rootfs's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User, SpecError> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    resolve_user_in(&passwd, &group, user)
}

/// [`resolve_user`] over the files' contents.
pub fn resolve_user_in(passwd: &str, group: &str, user: &str) -> Result<User, SpecError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entries = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7);
    let mut out = User {
        home: "/".into(),
        ..Default::default()
    };
    let mut name = String::new();
    if u.is_empty() {
        // root, with root's home if the image names it.
        if let Some(f) = entries.clone().find(|f| f[2] == "0") {
            out.home = f[5].to_string();
            name = f[0].to_string();
        }
    } else if let Some(f) = entries
        .clone()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u))
    {
        out.uid = f[2].parse().unwrap_or(0);
        out.gid = f[3].parse().unwrap_or(0);
        out.home = f[5].to_string();
        name = f[0].to_string();
    } else if let Ok(uid) = u.parse::<u32>() {
        out.uid = uid;
    } else {
        return Err(SpecError::NoUser(u.to_string()));
    }
    let groups = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4);
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        if let Some(f) = groups.clone().find(|f| f[0] == g) {
            out.gid = f[2].parse().unwrap_or(0);
        } else if let Ok(gid) = g.parse::<u32>() {
            out.gid = gid;
        } else {
            return Err(SpecError::NoGroup(g.to_string()));
        }
    }
    if !name.is_empty() {
        for f in groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(gid) = f[2].parse::<u32>() {
                    if gid != out.gid && !out.additional_gids.contains(&gid) {
                        out.additional_gids.push(gid);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::api::{ContainerConfig, HostConfig};

    fn record(hc: HostConfig) -> Record {
        Record {
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            created: String::new(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            config: ContainerConfig {
                env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
                tty: Some(true),
                ..Default::default()
            },
            host_config: hc,
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            net_config: Default::default(),
            net_live: Default::default(),
            ports_live: Default::default(),
            sandbox_key: String::new(),
            volumes: Vec::new(),
        }
    }

    fn spec_of(hc: HostConfig) -> Value {
        let r = record(hc);
        build(&Inputs {
            rec: &r,
            rootfs: Path::new("/r"),
            dir: Path::new("/d"),
            user: User::default(),
            seccomp: Some(json!({"defaultAction": "SCMP_ACT_ERRNO"})),
            init_binary: Some(Path::new("/usr/bin/tini-static")),
            cgroup_v2: false,
            netns: None,
        })
        .unwrap()
    }

    #[test]
    fn cgroup_parent_is_joined_with_the_id() {
        let path = |p: Option<&str>| {
            spec_of(HostConfig {
                cgroup_parent: p.map(String::from),
                ..Default::default()
            })["linux"]["cgroupsPath"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(path(None), format!("/berth/{id}"));
        assert_eq!(path(Some("")), format!("/berth/{id}"));
        assert_eq!(path(Some("/mine")), format!("/mine/{id}"));
        assert_eq!(path(Some("mine/sub/")), format!("/mine/sub/{id}"));
    }

    #[test]
    fn flags_become_spec_fields() {
        let s = spec_of(HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(50),
            readonly_rootfs: Some(true),
            cap_add: Some(vec!["net_admin".into()]),
            cap_drop: Some(vec!["CAP_CHOWN".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            init: Some(true),
            ..Default::default()
        });
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], 128 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(s["linux"]["resources"]["cpu"]["cpus"], "0");
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 50);
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(!caps.contains(&json!("CAP_CHOWN")));
        assert_eq!(s["process"]["args"][0], INIT_PATH);
        assert_eq!(s["process"]["args"][2], "sh");
        let env = s["process"]["env"].as_array().unwrap();
        assert_eq!(env[0], "PATH=/bin");
        assert!(env.contains(&json!("TERM=xterm")));
        assert!(env.contains(&json!("A=1")));
        assert_eq!(s["hostname"], "0123456789ab");
        assert!(s["linux"]["seccomp"].is_object());
        assert!(s["linux"]["maskedPaths"].as_array().unwrap().len() > 5);
    }

    #[test]
    fn privileged_and_host_modes() {
        let s = spec_of(HostConfig {
            privileged: Some(true),
            network_mode: Some("host".into()),
            ..Default::default()
        });
        assert!(s["linux"].get("seccomp").is_none());
        assert!(s["linux"].get("maskedPaths").is_none());
        let ns: Vec<_> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        assert!(!ns.contains(&"network".to_string()));
        assert!(ns.contains(&"pid".to_string()));
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            capabilities(&["BOGUS".into()], &[], false),
            Err(SpecError::BadCap(_))
        ));
        assert!(security_opts(&["seccomp=/etc/x.json".into()]).is_err());
        assert!(security_opts(&["foo=bar".into()]).is_err());
        assert_eq!(
            security_opts(&["seccomp=unconfined".into(), "no-new-privileges:true".into()]).unwrap(),
            (true, Seccomp::Unconfined)
        );
        assert!(bind_mount("/a:relative").is_err());
        assert!(bind_mount("/a:/b:bogus").is_err());
        assert_eq!(bind_mount("/a:/b:ro").unwrap().unwrap()["options"][1], "ro");
        assert!(bind_mount("vol:/b").unwrap().is_none());
        assert!(bind_mount("/anon").unwrap().is_none());
        let caps = capabilities(&[], &["ALL".into()], false).unwrap();
        assert!(caps.is_empty());
    }

    #[test]
    fn mounts_and_devices_from_the_api() {
        use berth_types::api::{DeviceMapping, Mount, MountTmpfsOptions, MountType};
        let hc = HostConfig {
            mounts: Some(vec![
                Mount {
                    target: Some("/data".into()),
                    source: Some("/tmp".into()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                },
                Mount {
                    target: Some("/scratch".into()),
                    typ: Some(MountType::TMPFS),
                    tmpfs_options: Some(MountTmpfsOptions {
                        size_bytes: Some(1 << 20),
                        mode: Some(0o1777),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/mynull".into()),
                cgroup_permissions: Some("rw".into()),
            }]),
            ..Default::default()
        };
        check_host_config(&hc).unwrap();
        let s = spec_of(hc);
        let mounts = s["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "ro", "rprivate"]));
        let scratch = mounts
            .iter()
            .find(|m| m["destination"] == "/scratch")
            .unwrap();
        assert!(scratch["options"]
            .as_array()
            .unwrap()
            .contains(&json!("size=1048576")));
        assert!(scratch["options"]
            .as_array()
            .unwrap()
            .contains(&json!("mode=1777")));
        assert_eq!(s["linux"]["devices"][0]["path"], "/dev/mynull");
        assert_eq!(s["linux"]["devices"][0]["major"], 1);
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.last().unwrap()["access"], "rw");
        // Refused: relative targets, missing bind sources, non-devices, bad perms (volumes are
        // checked by crate::volumes).
        let bad = |m: Mount| {
            check_host_config(&HostConfig {
                mounts: Some(vec![m]),
                ..Default::default()
            })
        };
        assert!(bad(Mount {
            target: Some("/v".into()),
            source: Some("vol".into()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .is_ok());
        assert!(bad(Mount {
            target: Some("rel".into()),
            source: Some("/tmp".into()),
            typ: Some(MountType::BIND),
            ..Default::default()
        })
        .is_err());
        assert!(bad(Mount {
            target: Some("/x".into()),
            source: Some("/no/such/dir".into()),
            typ: Some(MountType::BIND),
            ..Default::default()
        })
        .is_err());
        let dev = |p: &str, perms: &str| {
            check_host_config(&HostConfig {
                devices: Some(vec![DeviceMapping {
                    path_on_host: Some(p.into()),
                    path_in_container: None,
                    cgroup_permissions: Some(perms.into()),
                }]),
                ..Default::default()
            })
        };
        assert!(dev("/etc/passwd", "rwm").is_err());
        assert!(dev("/dev/null", "rwx").is_err());
        assert!(dev("/dev/no-such", "rwm").is_err());
    }

    #[test]
    fn users_resolve_like_docker() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww:x:33:33::/var/www:/bin/sh\n";
        let group = "root:x:0:\nwww-data:x:33:\nstaff:x:50:www,nobody\n";
        let u = resolve_user_in(passwd, group, "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        let u = resolve_user_in(passwd, group, "www").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, vec![50]);
        let u = resolve_user_in(passwd, group, "1234:5").unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5));
        let u = resolve_user_in(passwd, group, "nobody:www-data").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 33));
        assert!(matches!(
            resolve_user_in(passwd, group, "ghost"),
            Err(SpecError::NoUser(_))
        ));
        assert!(matches!(
            resolve_user_in(passwd, group, "root:ghosts"),
            Err(SpecError::NoGroup(_))
        ));
    }
}
