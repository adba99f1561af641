//! `berth create`: the container flags shared with `run`, turned into the `ContainerCreateBody`
//! docker's CLI sends, and the create call itself (pulling a missing image first, as docker does).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use berth_types::api::{
    ContainerCreateBody, ContainerCreateResponse, DeviceMapping, EndpointSettings, HealthConfig,
    HostConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountTmpfsOptions,
    MountType, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum,
};
use clap::{ArgAction, Args};

use crate::client::{enc, ApiError, Client};
use crate::cmd::run_error;
use crate::format::parse_go_duration;

/// The flags of `run` and `create` that shape the container.
#[derive(Args, Debug, Default, Clone)]
pub struct ContainerOpts {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|tmpfs,src=,dst=,readonly,...)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMS]])
    #[arg(long)]
    pub device: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", visible_alias = "net")]
    pub network: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true
    )]
    pub image_and_args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// docker's RAMInBytes: "512m", "1.5g", "1024", "64MB" → bytes (binary multiples).
/// `--mount type=bind,src=/a,dst=/b,readonly` as docker's CLI reads it (csv of key[=value]).
pub fn parse_mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    let mut bind = MountBindOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let truthy = |v: Option<&str>, k: &str| -> Result<bool> {
        match v {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(o) => bail!("invalid value for {k}: {o}"),
        }
    };
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| anyhow!("invalid field '{field}' must be a key=value pair"))
        };
        match k.as_str() {
            "type" => {
                m.typ = Some(match need(v)?.as_str() {
                    "bind" => MountType::BIND,
                    "tmpfs" => MountType::TMPFS,
                    "volume" => MountType::VOLUME,
                    other => bail!("invalid mount type {other:?}: use bind, tmpfs or volume"),
                })
            }
            "source" | "src" => m.source = Some(need(v)?),
            "target" | "dst" | "destination" => m.target = Some(need(v)?),
            "readonly" | "ro" => m.read_only = Some(truthy(v, &k)?),
            "bind-propagation" => {
                bind.propagation = Some(
                    need(v)?
                        .parse::<MountBindOptionsPropagationEnum>()
                        .map_err(|_| anyhow!("invalid bind-propagation in '{field}'"))?,
                )
            }
            "bind-nonrecursive" => bind.non_recursive = Some(truthy(v, &k)?),
            "tmpfs-size" => tmpfs.size_bytes = Some(ram_in_bytes(&need(v)?)?),
            "tmpfs-mode" => {
                tmpfs.mode = Some(
                    i64::from_str_radix(&need(v)?, 8)
                        .map_err(|_| anyhow!("invalid tmpfs-mode in '{field}': octal expected"))?,
                )
            }
            "consistency" | "volume-nocopy" | "volume-driver" | "volume-label" | "volume-opt" => {}
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if m.target.as_deref().is_none_or(|t| t.is_empty()) {
        bail!("target is required");
    }
    if bind != MountBindOptions::default() {
        m.bind_options = Some(bind);
    }
    if tmpfs != MountTmpfsOptions::default() {
        m.tmpfs_options = Some(tmpfs);
    }
    Ok(m)
}

/// `--device /dev/x[:/dev/y[:rwm]]`.
pub fn parse_device(spec: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|x| matches!(x, 'r' | 'w' | 'm')) && !c.is_empty() => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("invalid device specification: {spec}"),
    };
    if host.is_empty() || !perms.chars().all(|x| matches!(x, 'r' | 'w' | 'm')) {
        bail!("invalid device specification: {spec}");
    }
    Ok(DeviceMapping {
        path_on_host: Some(host.to_string()),
        path_in_container: Some(ctr.to_string()),
        cgroup_permissions: Some(perms.to_string()),
    })
}

/// `--ulimit nofile=1024[:2048]`.
pub fn parse_ulimit(spec: &str) -> Result<ResourcesUlimits> {
    let (name, vals) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {spec}"))?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let num = |v: &str| -> Result<i64> {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {spec}"))
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if name.is_empty() || soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {spec}");
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

pub fn ram_in_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size: '{s}'"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('b')
        .filter(|u| !u.is_empty())
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => bail!("invalid size: '{s}'"),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > i64::MAX as f64 {
        bail!("invalid size: '{s}'");
    }
    Ok(v as i64)
}

/// `-e KEY=VAL` or `-e KEY` (taken from our environment, dropped when unset).
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

/// An env file: KEY=VAL or KEY lines; `#` comments and blank lines skipped.
pub fn parse_env_file(content: &str) -> Vec<String> {
    content
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(env_entry)
        .collect()
}

/// A port spec (`[ip:][host:]container[/proto]`, ranges allowed) → (port/proto, bindings).
pub fn parse_port_spec(spec: &str) -> Result<Vec<(String, PortBinding)>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    // An IPv6 address comes in brackets.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| anyhow!("invalid IP address in {spec}"))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => bail!("invalid port format: {spec}"),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    if container.is_empty() {
        bail!("no port specified: {spec}<empty>");
    }
    let range = |s: &str| -> Result<(u16, u16)> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a
            .parse()
            .map_err(|_| anyhow!("invalid containerPort: {s}"))?;
        let b: u16 = b
            .parse()
            .map_err(|_| anyhow!("invalid containerPort: {s}"))?;
        if b < a {
            bail!("invalid range: {s}");
        }
        Ok((a, b))
    };
    let (c0, c1) = range(&container)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(&host).map_err(|_| anyhow!("invalid hostPort: {host}"))?)
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 && h0 != h1 {
            bail!("invalid ranges specified for container and host Ports: {container} and {host}");
        }
    }
    let mut out = Vec::new();
    for (i, p) in (c0..=c1).enumerate() {
        let host_port = match hosts {
            None => String::new(),
            Some((h0, h1)) if h0 == h1 => h0.to_string(),
            Some((h0, _)) => (h0 as usize + i).to_string(),
        };
        out.push((
            format!("{p}/{proto}"),
            PortBinding {
                host_ip: Some(ip.clone()),
                host_port: Some(host_port),
            },
        ));
    }
    Ok(out)
}

/// Capability names as docker's CLI sends them: upper case, `CAP_` prefixed (except `ALL`).
pub fn normalize_caps(caps: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in caps {
        let c = c.trim().to_uppercase();
        let c = if c == "ALL" || c.starts_with("CAP_") {
            c
        } else {
            format!("CAP_{c}")
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// `--restart` → RestartPolicy.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            Some(c.parse::<i64>().map_err(|_| {
                anyhow!("invalid restart policy format: maximum retry count must be an integer")
            })?),
        ),
        None => (s, None),
    };
    let name = match name {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => bail!("invalid restart policy format: unknown policy '{other}'"),
    };
    if count.is_some() && name != RestartPolicyNameEnum::ON_FAILURE {
        bail!(
            "invalid restart policy format: maximum retry count can only be used with 'on-failure'"
        );
    }
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// `--security-opt`: checked like docker's CLI; a `seccomp=FILE` becomes the profile's JSON.
pub fn parse_security_opts(opts: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for opt in opts {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None if opt == "no-new-privileges" => (opt.as_str(), None),
            None => match opt.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            },
        };
        if k != "no-new-privileges" && v.is_none_or(str::is_empty) {
            bail!("Invalid --security-opt: {opt:?}");
        }
        if k == "seccomp" {
            let v = v.unwrap_or_default();
            if v != "unconfined" && v != "builtin" {
                let raw = std::fs::read(v)
                    .map_err(|e| anyhow!("opening seccomp profile ({v}) failed: {e}"))?;
                let profile: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
                    anyhow!("compacting json for seccomp profile ({v}) failed: {e}")
                })?;
                out.push(format!("seccomp={profile}"));
                continue;
            }
        }
        out.push(opt.clone());
    }
    Ok(out)
}

fn duration_ns(flag: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => {
            let secs = parse_go_duration(s).ok_or_else(|| {
                anyhow!("invalid argument {s:?} for \"{flag}\" flag: time: invalid duration {s:?}")
            })?;
            Ok(Some((secs * 1e9) as i64))
        }
    }
}

impl ContainerOpts {
    pub fn image(&self) -> &str {
        self.image_and_args.first().map_or("", String::as_str)
    }

    /// The request body docker's CLI would send for these flags (`attach`: run in the
    /// foreground with our stdio attached).
    pub fn to_body(&self, attach: bool) -> Result<ContainerCreateBody> {
        let mut env: Vec<String> = Vec::new();
        for f in &self.env_file {
            let content = std::fs::read_to_string(f).with_context(|| format!("open {f}"))?;
            env.extend(parse_env_file(&content));
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));

        let mut labels = HashMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), v.to_string());
        }

        let mut exposed: Vec<String> = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &self.publish {
            for (port, b) in parse_port_spec(p)? {
                if !exposed.contains(&port) {
                    exposed.push(port.clone());
                }
                bindings
                    .entry(port)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(b);
            }
        }
        for e in &self.expose {
            let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let (a, b): (u16, u16) = (
                a.parse()
                    .map_err(|_| anyhow!("invalid range format for --expose: {e}"))?,
                b.parse()
                    .map_err(|_| anyhow!("invalid range format for --expose: {e}"))?,
            );
            for port in a..=b {
                let k = format!("{port}/{proto}");
                if !exposed.contains(&k) {
                    exposed.push(k);
                }
            }
        }

        // `-v /path` is an anonymous volume; anything with a source is a bind or named volume.
        let mut binds = Vec::new();
        let mut volumes = Vec::new();
        for v in &self.volume {
            if v.contains(':') {
                binds.push(v.clone());
            } else {
                volumes.push(v.clone());
            }
        }
        let mut tmpfs = HashMap::new();
        for t in &self.tmpfs {
            let (p, o) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(p.to_string(), o.to_string());
        }

        let healthcheck = if self.no_healthcheck {
            if self.health_cmd.is_some() || self.health_interval.is_some() {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            })
        } else {
            let h = HealthConfig {
                test: self
                    .health_cmd
                    .as_ref()
                    .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
                interval: duration_ns("--health-interval", &self.health_interval)?,
                timeout: duration_ns("--health-timeout", &self.health_timeout)?,
                start_period: duration_ns("--health-start-period", &self.health_start_period)?,
                retries: self.health_retries,
                ..Default::default()
            };
            if h.retries.is_some_and(|r| r < 0) {
                bail!("--health-retries cannot be negative");
            }
            if h == HealthConfig::default() {
                None
            } else {
                Some(h)
            }
        };

        let nano_cpus = match &self.cpus {
            None => None,
            Some(c) => {
                let f: f64 = c
                    .parse()
                    .map_err(|_| anyhow!("invalid argument {c:?} for \"--cpus\" flag: failed to parse {c:?} as a rational number"))?;
                if !f.is_finite() || f < 0.0 {
                    bail!("invalid argument {c:?} for \"--cpus\" flag: value is out of range");
                }
                Some((f * 1e9) as i64)
            }
        };
        let memory = self.memory.as_deref().map(ram_in_bytes).transpose()?;
        let memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => Some(ram_in_bytes(s)?),
        };

        let network_mode = self.network.clone().unwrap_or_else(|| "default".into());
        let networking_config = self.network.as_ref().and_then(|n| {
            let builtin = matches!(n.as_str(), "host" | "none" | "bridge" | "default")
                || n.starts_with("container:");
            (!builtin).then(|| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(n.clone(), EndpointSettings::default())])),
            })
        });

        let host_config = HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            network_mode: Some(network_mode),
            // docker's CLI always sends these two, even empty.
            port_bindings: Some(bindings),
            restart_policy: Some(parse_restart(self.restart.as_deref().unwrap_or("no"))?),
            auto_remove: self.rm.then_some(true),
            cap_add: (!self.cap_add.is_empty()).then(|| normalize_caps(&self.cap_add)),
            cap_drop: (!self.cap_drop.is_empty()).then(|| normalize_caps(&self.cap_drop)),
            security_opt: (!self.security_opt.is_empty())
                .then(|| parse_security_opts(&self.security_opt))
                .transpose()?,
            readonly_rootfs: self.read_only.then_some(true),
            privileged: self.privileged.then_some(true),
            publish_all_ports: self.publish_all.then_some(true),
            init: self.init.then_some(true),
            memory,
            memory_swap,
            nano_cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            mounts: (!self.mount.is_empty())
                .then(|| self.mount.iter().map(|m| parse_mount(m)).collect())
                .transpose()?,
            devices: (!self.device.is_empty())
                .then(|| self.device.iter().map(|d| parse_device(d)).collect())
                .transpose()?,
            ulimits: (!self.ulimit.is_empty())
                .then(|| self.ulimit.iter().map(|u| parse_ulimit(u)).collect())
                .transpose()?,
            extra_hosts: (!self.add_host.is_empty()).then(|| self.add_host.clone()),
            dns: (!self.dns.is_empty()).then(|| self.dns.clone()),
            shm_size: self.shm_size.as_deref().map(ram_in_bytes).transpose()?,
            console_size: if self.tty {
                crate::stream::terminal_size().map(|(h, w)| vec![h as usize, w as usize])
            } else {
                None
            },
            ..Default::default()
        };

        let args = &self.image_and_args;
        let attach_stdin = attach && self.interactive;
        Ok(ContainerCreateBody {
            image: Some(self.image().to_string()),
            cmd: (args.len() > 1).then(|| args[1..].to_vec()),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![String::new()]
                } else {
                    vec![e.clone()]
                }
            }),
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            working_dir: self.workdir.clone(),
            env: (!env.is_empty()).then_some(env),
            labels: (!labels.is_empty()).then_some(labels),
            tty: Some(self.tty),
            open_stdin: Some(self.interactive),
            stdin_once: Some(attach_stdin),
            attach_stdin: Some(attach_stdin),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            volumes: (!volumes.is_empty()).then_some(volumes),
            healthcheck,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        })
    }
}

/// POST /containers/create; on "No such image", pulls it (progress on stderr, as docker run
/// does) and tries once more. Returns the new container's id.
pub async fn create_container(
    client: &mut Client,
    opts: &ContainerOpts,
    attach: bool,
) -> Result<String> {
    let body = opts
        .to_body(attach)
        .map_err(|e| crate::cmd::status(125, format!("berth: {e:#}\n\nSee 'berth run --help'.")))?;
    let image = opts.image().to_string();
    if image.is_empty() {
        return Err(crate::cmd::status(
            125,
            "berth: requires at least 1 argument",
        ));
    }
    let path = match &opts.name {
        Some(n) => format!("/containers/create?name={}", enc(n)),
        None => "/containers/create".to_string(),
    };
    if opts.pull == "always" {
        crate::cmd::pull::pull_image(client, &image, opts.quiet, true).await?;
    }
    let resp: Result<ContainerCreateResponse> = client.post_json(&path, Some(&body)).await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let missing = e
                .downcast_ref::<ApiError>()
                .is_some_and(|a| a.is_not_found() && a.message.contains("image"));
            if !missing || opts.pull == "never" || opts.pull == "always" {
                return Err(e);
            }
            let shown = berth_types::Reference::parse_normalized(&image)
                .map(|r| r.with_default_tag().familiar_string())
                .unwrap_or_else(|_| image.clone());
            eprintln!("Unable to find image '{shown}' locally");
            crate::cmd::pull::pull_image(client, &image, opts.quiet, true).await?;
            client.post_json(&path, Some(&body)).await?
        }
    };
    for w in &resp.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(resp.id)
}

pub async fn run(client: &mut Client, args: CreateArgs) -> Result<i32> {
    // docker's create attaches stdout/stderr (and stdin with -i) like a foreground run.
    let id = create_container(client, &args.opts, true)
        .await
        .map_err(|e| run_error("create", e))?;
    println!("{id}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        o: ContainerOpts,
    }

    fn body(argv: &[&str]) -> serde_json::Value {
        let mut full = vec!["t"];
        full.extend_from_slice(argv);
        let t = T::try_parse_from(full).unwrap();
        serde_json::to_value(t.o.to_body(true).unwrap()).unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("512m").unwrap(), 512 * 1024 * 1024);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 1024 * 1024 * 1024 * 3 / 2);
        assert_eq!(ram_in_bytes("64MB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert!(ram_in_bytes("12q").is_err());
        assert!(ram_in_bytes("").is_err());
        assert!(ram_in_bytes("1e400").is_err());
    }

    #[test]
    fn ports() {
        let p = parse_port_spec("8080:80").unwrap();
        assert_eq!(p[0].0, "80/tcp");
        assert_eq!(p[0].1.host_port.as_deref(), Some("8080"));
        let p = parse_port_spec("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(p[0].0, "53/udp");
        assert_eq!(p[0].1.host_ip.as_deref(), Some("127.0.0.1"));
        let p = parse_port_spec("[::1]:80:80").unwrap();
        assert_eq!(p[0].1.host_ip.as_deref(), Some("::1"));
        let p = parse_port_spec("8000-8001:80-81").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].0, "81/tcp");
        assert_eq!(p[1].1.host_port.as_deref(), Some("8001"));
        let p = parse_port_spec("80").unwrap();
        assert_eq!(p[0].1.host_port.as_deref(), Some(""));
        assert!(parse_port_spec("x:80").is_err());
        assert!(parse_port_spec("80/bogus").is_err());
        assert!(parse_port_spec("1:2:3:4").is_err());
        assert!(parse_port_spec("90-80").is_err());
    }

    #[test]
    fn parsers_never_panic() {
        for s in [
            "",
            "é",
            ":",
            "::",
            ":::",
            "[",
            "[::1]",
            "[::1]:",
            "-",
            "1-",
            "65536",
            "0-65535:1",
            "1:0-65535",
            "a/b/c",
            "/",
            "é:é",
            "1.5.5g",
            "9e99t",
            "on-failure:",
            ":1",
            "seccomp",
            "seccomp=",
        ] {
            let _ = parse_port_spec(s);
            let _ = ram_in_bytes(s);
            let _ = parse_restart(s);
            let _ = parse_security_opts(&[s.to_string()]);
            let _ = parse_env_file(s);
        }
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("always").unwrap().name,
            Some(RestartPolicyNameEnum::ALWAYS)
        );
        let r = parse_restart("on-failure:3").unwrap();
        assert_eq!(r.maximum_retry_count, Some(3));
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("on-failure:x").is_err());
    }

    #[test]
    fn mounts_devices_and_ulimits_parse_like_docker() {
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!(m.source.as_deref(), Some("/a"));
        assert_eq!(m.target.as_deref(), Some("/b"));
        assert_eq!(m.read_only, Some(true));
        assert_eq!(
            m.bind_options.unwrap().propagation,
            Some(MountBindOptionsPropagationEnum::RSLAVE)
        );
        let t = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        let o = t.tmpfs_options.unwrap();
        assert_eq!((o.size_bytes, o.mode), (Some(1 << 20), Some(0o1777)));
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=nfs,dst=/a").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,bogus=1").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,readonly=maybe").is_err());
        let d = parse_device("/dev/null").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/null"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        let d = parse_device("/dev/null:/dev/n:rw").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/n"));
        let d = parse_device("/dev/null:r").unwrap();
        assert_eq!(d.cgroup_permissions.as_deref(), Some("r"));
        assert!(parse_device("/dev/null:/x:rwx").is_err());
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        assert_eq!(parse_ulimit("nproc=10").unwrap().hard, Some(10));
        assert!(parse_ulimit("nofile=9:1").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
    }

    #[test]
    fn security_opts() {
        assert_eq!(
            parse_security_opts(&["no-new-privileges".into()]).unwrap(),
            vec!["no-new-privileges"]
        );
        assert!(parse_security_opts(&["bogus".into()]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        std::fs::write(&f, "{ \"defaultAction\" : \"SCMP_ACT_ALLOW\" }").unwrap();
        let o = parse_security_opts(&[format!("seccomp={}", f.display())]).unwrap();
        assert_eq!(o, vec!["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]);
        assert!(parse_security_opts(&["seccomp=/nonexistent".into()]).is_err());
        assert_eq!(
            parse_security_opts(&["seccomp=unconfined".into()]).unwrap(),
            vec!["seccomp=unconfined"]
        );
    }

    #[test]
    fn env_files() {
        std::env::set_var("BERTH_TEST_ENV_X", "x1");
        assert_eq!(
            parse_env_file("# c\nA=1\n\nBERTH_TEST_ENV_X\nBERTH_TEST_UNSET_Y\n"),
            vec!["A=1", "BERTH_TEST_ENV_X=x1"]
        );
    }

    #[test]
    fn flags_become_the_body() {
        let b = body(&[
            "-it",
            "--rm",
            "-e",
            "A=1",
            "-w",
            "/w",
            "-u",
            "1:2",
            "--name",
            "n",
            "-h",
            "hn",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "10",
            "--read-only",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--restart",
            "on-failure:2",
            "--entrypoint",
            "/bin/sh",
            "-l",
            "a=b",
            "-l",
            "c",
            "--init",
            "-p",
            "8080:80",
            "-v",
            "/h:/c:ro",
            "-v",
            "/anon",
            "--network",
            "mynet",
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "--health-retries",
            "3",
            "--health-timeout",
            "1s",
            "busybox",
            "echo",
            "-n",
            "hi",
        ]);
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], serde_json::json!(["echo", "-n", "hi"]));
        assert_eq!(b["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(b["Tty"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["Env"], serde_json::json!(["A=1"]));
        assert_eq!(b["WorkingDir"], "/w");
        assert_eq!(b["User"], "1:2");
        assert_eq!(b["Hostname"], "hn");
        assert_eq!(b["Labels"]["a"], "b");
        assert_eq!(b["Labels"]["c"], "");
        assert_eq!(b["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        assert_eq!(b["Volumes"], serde_json::json!({"/anon": {}}));
        assert_eq!(
            b["Healthcheck"]["Test"],
            serde_json::json!(["CMD-SHELL", "true"])
        );
        assert_eq!(b["Healthcheck"]["Interval"], 5_000_000_000i64);
        assert_eq!(b["Healthcheck"]["Retries"], 3);
        let h = &b["HostConfig"];
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["Memory"], 64 * 1024 * 1024);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["CpusetCpus"], "0");
        assert_eq!(h["PidsLimit"], 10);
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
        assert_eq!(h["CapDrop"], serde_json::json!(["ALL"]));
        assert_eq!(h["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
        assert_eq!(
            h["RestartPolicy"],
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
        );
        assert_eq!(h["Init"], true);
        assert_eq!(h["Binds"], serde_json::json!(["/h:/c:ro"]));
        assert_eq!(h["NetworkMode"], "mynet");
        assert_eq!(
            h["PortBindings"],
            serde_json::json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["mynet"].is_object());
    }

    #[test]
    fn defaults_and_no_healthcheck() {
        let b = body(&["--no-healthcheck", "--entrypoint", "", "img"]);
        assert_eq!(b["Healthcheck"]["Test"], serde_json::json!(["NONE"]));
        assert_eq!(b["Entrypoint"], serde_json::json!([""]));
        assert!(b.get("Cmd").is_none());
        assert_eq!(b["HostConfig"]["NetworkMode"], "default");
        assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(b["HostConfig"]["PortBindings"], serde_json::json!({}));
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["Tty"], false);
    }
}
