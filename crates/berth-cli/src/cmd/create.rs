//! `berth create`: the container flags shared with `run`, turned into the `ContainerCreateBody`
//! docker's CLI sends, and the create call itself (pulling a missing image first, as docker does).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use berth_types::api::{
    ContainerCreateBody, ContainerCreateResponse, DeviceMapping, EndpointIpamConfig,
    EndpointSettings, HealthConfig, HostConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum,
};
use clap::{ArgAction, Args};

use crate::client::{enc, ApiError, Client};
use crate::cmd::run_error;
use crate::format::{go_quote, parse_go_duration};

// The flags of `run` and `create` that shape the container. (A plain comment: a doc comment
// here would become the `about` of every command that flattens these flags.)
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
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
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
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
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
    /// Storage driver options for the container (size=10G limits its writable layer)
    #[arg(long = "storage-opt")]
    pub storage_opt: Vec<String>,
    /// Connect a container to a network (NAME, or name=NAME,alias=A,ip=IP,... ; repeatable)
    #[arg(long = "network", visible_alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
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
    let mut vol = MountVolumeOptions::default();
    let mut vol_driver = MountVolumeOptionsDriverConfig::default();
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
            "consistency" => {}
            "volume-nocopy" => vol.no_copy = Some(truthy(v, &k)?),
            "volume-driver" => vol_driver.name = Some(need(v)?),
            "volume-label" | "volume-opt" => {
                let kv = need(v)?;
                let (a, b) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                let map = if k == "volume-label" {
                    vol.labels.get_or_insert_with(Default::default)
                } else {
                    vol_driver.options.get_or_insert_with(Default::default)
                };
                map.insert(a.to_string(), b.to_string());
            }
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
    if vol_driver != MountVolumeOptionsDriverConfig::default() {
        vol.driver_config = Some(vol_driver);
    }
    if vol != MountVolumeOptions::default() {
        if m.typ != Some(MountType::VOLUME) {
            bail!(
                "cannot mix 'volume-*' options with mount type '{}'",
                m.typ.map(|t| t.to_string()).unwrap_or_default()
            );
        }
        m.volume_options = Some(vol);
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

/// `--storage-opt size=10G` (as docker: KEY=VALUE; the daemon checks keys and values).
pub fn parse_storage_opts(specs: &[String]) -> Result<std::collections::HashMap<String, String>> {
    specs
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("invalid storage option"))
        })
        .collect()
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

/// Go's `strconv.ParseUint(s, 10, bits)`, with its error text.
pub fn go_parse_uint(s: &str, bits: u32) -> std::result::Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )),
    }
}

/// go-connections' `nat.ParsePortRange`: "80" or "80-90" → (start, end).
pub fn parse_port_range(ports: &str) -> std::result::Result<(u16, u16), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let (a, b) = match ports.split_once('-') {
        None => (ports, ports),
        // Like Go's strings.Split: a third part ("1-2-3") is ignored.
        Some((a, rest)) => (a, rest.split('-').next().unwrap_or("")),
    };
    let start = go_parse_uint(a, 16)?;
    let end = go_parse_uint(b, 16)?;
    if end < start {
        return Err(format!("invalid range specified for port: {ports}"));
    }
    // Both fit 16 bits: go_parse_uint checked.
    Ok((start as u16, end as u16))
}

/// docker's long `--publish` syntax (`target=80,published=8080,protocol=udp,mode=host`) turned
/// into the short one, as its CLI does first; anything without '=' is returned as is.
pub fn publish_standard_notation(spec: &str) -> Result<String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut params: HashMap<&str, &str> = HashMap::from([("protocol", "tcp")]);
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => bail!("invalid publish opts format (should be name=value but got '{param}')"),
        }
    }
    let Some(target) = params.get("target") else {
        bail!("missing 'target' for publish opts");
    };
    Ok(format!(
        "{}:{target}/{}",
        params.get("published").copied().unwrap_or(""),
        params.get("protocol").copied().unwrap_or("tcp")
    ))
}

/// A `-p` spec as go-connections' `nat.ParsePortSpec` reads it: `[ip:][hostPort:]containerPort
/// [/proto]`, an IPv6 ip in brackets or bare (`::1:80:80`), ranges on both sides of equal size,
/// or a host range for a single container port (docker then picks a free port in it: the range
/// is sent as the HostPort). Returns ("port/proto", binding) pairs, errors in docker's words.
pub fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host_port, container) = match parts.as_slice() {
        [c] => ("".to_string(), "", *c),
        [h, c] => ("".to_string(), *h, *c),
        [i, h, c] => (i.to_string(), *h, *c),
        [ip @ .., h, c] => (ip.join(":"), *h, *c),
        [] => ("".to_string(), "", ""),
    };
    // SplitProtoPort.
    let (proto, container) = {
        let mut it = container.split('/');
        let port = it.next().unwrap_or("");
        let proto = it.next();
        if port.is_empty() {
            ("", "")
        } else {
            match proto {
                None | Some("") => ("tcp", port),
                Some(p) => (p, port),
            }
        }
    };
    let mut ip = ip;
    if ip.starts_with('[') {
        // net.SplitHostPort(ip + ":") strips the brackets.
        match ip.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) if !inner.contains(['[', ']']) => ip = inner.to_string(),
            _ => bail!("invalid IP address {ip}: address {ip}:: missing ']' in address"),
        }
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address: {ip}");
    }
    if container.is_empty() {
        bail!("no port specified: {raw}<empty>");
    }
    let (c0, c1) =
        parse_port_range(container).map_err(|_| anyhow!("invalid containerPort: {container}"))?;
    let (h0, h1) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_port_range(host_port).map_err(|_| anyhow!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && c1 - c0 != h1 - h0 && c0 != c1 {
        bail!("invalid ranges specified for container and host Ports: {container} and {host_port}");
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let mut out = Vec::new();
    for i in 0..=(c1 - c0) {
        let mut hp = if host_port.is_empty() {
            String::new()
        } else {
            (u32::from(h0) + u32::from(i)).to_string()
        };
        if c0 == c1 && h0 != h1 {
            hp = format!("{hp}-{h1}");
        }
        out.push((
            format!("{}/{proto}", u32::from(c0) + u32::from(i)),
            PortBinding {
                host_ip: Some(ip.clone()),
                host_port: Some(hp),
            },
        ));
    }
    Ok(out)
}

/// `--expose 80`, `--expose 7000-7002/udp` as docker's CLI reads it.
pub fn parse_expose(e: &str) -> Result<Vec<String>> {
    if e.contains(':') {
        bail!("invalid port format for --expose: {e}");
    }
    let (port, proto) = match e.split_once('/') {
        None => (e, "tcp"),
        Some((p, proto)) => (p, if proto.is_empty() { "tcp" } else { proto }),
    };
    let proto = proto.split('/').next().unwrap_or(proto);
    let (a, b) = parse_port_range(port)
        .map_err(|err| anyhow!("invalid range format for --expose: {e}, error: {err}"))?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// `--add-host host:ip` / `host=ip` / `host:[v6]` / `host:host-gateway`, checked and rewritten as
/// docker's CLI does (the API only knows "host:ip").
pub fn parse_extra_host(val: &str) -> Result<String> {
    let (k, v) = val
        .split_once('=')
        .or_else(|| val.split_once(':'))
        .filter(|(k, _)| !k.is_empty() && !k.contains(':'))
        .ok_or_else(|| anyhow!("bad format for add-host: {}", go_quote(val)))?;
    let mut v = v;
    if v != "host-gateway" {
        if v.len() > 2 && v.starts_with('[') && v.ends_with(']') {
            v = &v[1..v.len() - 1];
        }
        if v.trim().parse::<std::net::IpAddr>().is_err() {
            bail!("invalid IP address in add-host: {}", go_quote(v));
        }
    }
    Ok(format!("{k}:{v}"))
}

/// `--dns`: an IP address, sent in its canonical form (docker's ValidateIPAddress).
pub fn parse_dns(val: &str) -> Result<String> {
    val.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| anyhow!("IP address is not correctly formatted: {val}"))
}

/// `--dns-search`: "." or a domain name (docker's ValidateDNSSearch; a trailing dot dropped).
pub fn parse_dns_search(val: &str) -> Result<String> {
    let v = val.trim_matches(' ');
    if v == "." {
        return Ok(v.to_string());
    }
    let d = v.trim_end();
    let d = d.strip_suffix('.').unwrap_or(d);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !v.bytes().any(|b| b.is_ascii_alphabetic()) || d.len() >= 255 || !d.split('.').all(label_ok)
    {
        bail!("{val} is not a valid domain");
    }
    Ok(d.to_string())
}

/// Go's `net.ParseMAC`: 6, 8 or 20 bytes as hex pairs separated by ':' or '-', or groups of
/// four hex digits separated by '.'.
pub fn is_valid_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let sizes = [6usize, 8, 20];
    if s.len() >= 14 && s.as_bytes().get(4) == Some(&b'.') {
        let groups: Vec<&str> = s.split('.').collect();
        return sizes.contains(&(groups.len() * 2)) && groups.iter().all(|g| hex(g, 4));
    }
    for sep in [':', '-'] {
        if s.as_bytes().get(2) == Some(&(sep as u8)) {
            let pairs: Vec<&str> = s.split(sep).collect();
            return sizes.contains(&pairs.len()) && pairs.iter().all(|p| hex(p, 2));
        }
    }
    false
}

/// One `--network` value: a name, or docker's csv form
/// `name=NET,alias=A,ip=IP,ip6=IP,mac-address=MAC,link-local-ip=IP,driver-opt=K=V`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetworkAttachment {
    pub target: String,
    pub aliases: Vec<String>,
    pub ipv4: String,
    pub ipv6: String,
    pub mac: String,
    pub link_local_ips: Vec<String>,
    pub driver_opts: HashMap<String, String>,
    pub gw_priority: i64,
}

/// docker's `--network` parsing: the csv form when the value has `\w+=\w+`, else a name.
pub fn parse_network_flag(value: &str) -> Result<NetworkAttachment> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = value.as_bytes();
    let long = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'=' && i > 0 && word(bytes[i - 1]) && bytes.get(i + 1).is_some_and(|&n| word(n))
    });
    if !long {
        return Ok(NetworkAttachment {
            target: value.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachment::default();
    for field in split_csv(value)? {
        let lower = field.to_lowercase();
        let (k, v) = lower
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow!("invalid field {field}"))?;
        let (k, v) = (k.trim(), v.trim().to_string());
        match k {
            "name" => n.target = v,
            "alias" => n.aliases.push(v),
            "ip" => n.ipv4 = v,
            "ip6" => n.ipv6 = v,
            "mac-address" => n.mac = v,
            "link-local-ip" => n.link_local_ips.push(v),
            "driver-opt" => {
                let (dk, dv) = v
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| anyhow!("invalid key value pair format in driver options"))?;
                n.driver_opts.insert(dk.to_string(), dv.to_string());
            }
            "gw-priority" => {
                n.gw_priority = v.parse().map_err(|_| anyhow!("invalid gw-priority: {v}"))?
            }
            other => bail!("invalid field key {other}"),
        }
    }
    if n.target.is_empty() {
        bail!("network name not specified");
    }
    Ok(n)
}

/// One line of Go's encoding/csv: fields split on ',', a field may be quoted ("a,b" or "a""b").
fn split_csv(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                    if chars.peek().is_some_and(|&n| n != ',') {
                        bail!("parse error: extraneous or missing \" in quoted-field");
                    }
                }
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            c => {
                if c == '"' {
                    bail!("parse error: bare \" in non-quoted-field");
                }
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        bail!("parse error: extraneous or missing \" in quoted-field");
    }
    out.push(cur);
    Ok(out)
}

/// Whether docker calls a network mode user-defined (not default/bridge/host/none/container:).
pub fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
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

/// docker's parseNetworkAttachmentOpt: one attachment → its EndpointSettings.
pub fn endpoint_settings(n: &NetworkAttachment) -> Result<EndpointSettings> {
    if n.target.trim().is_empty() {
        bail!("no name set for network");
    }
    if !is_user_defined(&n.target) && !n.aliases.is_empty() {
        bail!("network-scoped aliases are only supported for user-defined networks");
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut ep = EndpointSettings {
        aliases: (!n.aliases.is_empty()).then(|| n.aliases.clone()),
        driver_opts: (!n.driver_opts.is_empty()).then(|| n.driver_opts.clone()),
        gw_priority: (n.gw_priority != 0).then_some(n.gw_priority),
        ..Default::default()
    };
    if !n.ipv4.is_empty() || !n.ipv6.is_empty() || !n.link_local_ips.is_empty() {
        ep.ipam_config = Some(EndpointIpamConfig {
            ipv4_address: some(&n.ipv4),
            ipv6_address: some(&n.ipv6),
            link_local_ips: (!n.link_local_ips.is_empty()).then(|| n.link_local_ips.clone()),
        });
    }
    if !n.mac.is_empty() {
        if !is_valid_mac(n.mac.trim()) {
            bail!("{} is not a valid mac address", n.mac);
        }
        ep.mac_address = Some(n.mac.clone());
    }
    Ok(ep)
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

    /// NetworkingConfig.EndpointsConfig as docker CLI 28 builds it (parseNetworkOpts): with no
    /// `--network`, an endpoint for "default" carrying --network-alias/--ip/--ip6/--mac-address;
    /// otherwise those go to the first network, whose endpoint is left out when it would be
    /// empty and it is the only one. Aliases on a network that is not user-defined (default,
    /// bridge, host, none, container:) are refused here, as docker's CLI does.
    pub fn endpoints(&self) -> Result<HashMap<String, EndpointSettings>> {
        let mut nets = self
            .network
            .iter()
            .map(|n| parse_network_flag(n))
            .collect::<Result<Vec<_>>>()?;
        let implicit = nets.is_empty();
        if implicit {
            nets.push(NetworkAttachment {
                target: "default".into(),
                ..Default::default()
            });
        }
        let count = nets.len();
        let mut out = HashMap::new();
        let (mut user, mut builtin) = (false, false);
        for (i, mut n) in nets.into_iter().enumerate() {
            if !implicit {
                if is_user_defined(&n.target) {
                    user = true;
                } else {
                    builtin = true;
                }
            }
            if i == 0 {
                self.apply_endpoint_flags(&mut n)?;
            }
            let ep = endpoint_settings(&n)?;
            if out.contains_key(&n.target) {
                bail!(
                    "network {} is specified multiple times",
                    go_quote(&n.target)
                );
            }
            if !implicit && i == 0 && count == 1 && ep == EndpointSettings::default() {
                continue;
            }
            out.insert(n.target, ep);
        }
        if user && builtin {
            bail!("conflicting options: cannot attach both user-defined and non-user-defined network-modes");
        }
        Ok(out)
    }

    /// docker's applyContainerOptions: the endpoint flags onto the first network.
    fn apply_endpoint_flags(&self, n: &mut NetworkAttachment) -> Result<()> {
        let conflict = |what: &str| anyhow!("conflicting options: cannot specify both {what}");
        if !n.aliases.is_empty() && !self.network_alias.is_empty() {
            return Err(conflict("--network-alias and per-network alias"));
        }
        if !n.ipv4.is_empty() && self.ip.as_deref().is_some_and(|i| !i.is_empty()) {
            return Err(conflict("--ip and per-network IPv4 address"));
        }
        if !n.ipv6.is_empty() && self.ip6.as_deref().is_some_and(|i| !i.is_empty()) {
            return Err(conflict("--ip6 and per-network IPv6 address"));
        }
        if !n.mac.is_empty() && self.mac_address.as_deref().is_some_and(|m| !m.is_empty()) {
            return Err(conflict("--mac-address and per-network MAC address"));
        }
        if !n.link_local_ips.is_empty() && !self.link_local_ip.is_empty() {
            return Err(conflict(
                "--link-local-ip and per-network link-local IP addresses",
            ));
        }
        if !self.network_alias.is_empty() {
            n.aliases = self.network_alias.clone();
        }
        if let Some(ip) = self.ip.as_ref().filter(|i| !i.is_empty()) {
            n.ipv4 = ip.clone();
        }
        if let Some(ip) = self.ip6.as_ref().filter(|i| !i.is_empty()) {
            n.ipv6 = ip.clone();
        }
        if let Some(mac) = self.mac_address.as_ref().filter(|m| !m.is_empty()) {
            n.mac = mac.clone();
        }
        if !self.link_local_ip.is_empty() {
            n.link_local_ips = self.link_local_ip.clone();
        }
        Ok(())
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
            for (port, b) in parse_port_spec(&publish_standard_notation(p)?)? {
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
            for k in parse_expose(e)? {
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

        let network_mode = self
            .network
            .first()
            .map(|n| parse_network_flag(n).map(|a| a.target))
            .transpose()?
            .unwrap_or_else(|| "default".into());
        let networking_config = Some(NetworkingConfig {
            endpoints_config: Some(self.endpoints()?),
        });
        let extra_hosts = self
            .add_host
            .iter()
            .map(|h| {
                parse_extra_host(h).map_err(|e| {
                    anyhow!(
                        "invalid argument {} for \"--add-host\" flag: {e}",
                        go_quote(h)
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dns = self
            .dns
            .iter()
            .map(|d| {
                parse_dns(d).map_err(|e| {
                    anyhow!("invalid argument {} for \"--dns\" flag: {e}", go_quote(d))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dns_search = self
            .dns_search
            .iter()
            .map(|d| {
                parse_dns_search(d).map_err(|e| {
                    anyhow!(
                        "invalid argument {} for \"--dns-search\" flag: {e}",
                        go_quote(d)
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let host_config = HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            volumes_from: (!self.volumes_from.is_empty()).then(|| self.volumes_from.clone()),
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
            cgroup_parent: self.cgroup_parent.clone(),
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
            storage_opt: (!self.storage_opt.is_empty())
                .then(|| parse_storage_opts(&self.storage_opt))
                .transpose()?,
            extra_hosts: (!extra_hosts.is_empty()).then_some(extra_hosts),
            dns: (!dns.is_empty()).then_some(dns),
            dns_search: (!dns_search.is_empty()).then_some(dns_search),
            dns_options: (!self.dns_option.is_empty()).then(|| self.dns_option.clone()),
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

    fn ports_of(spec: &str) -> Vec<(String, String, String)> {
        parse_port_spec(&publish_standard_notation(spec).unwrap())
            .unwrap()
            .into_iter()
            .map(|(p, b)| (p, b.host_ip.unwrap(), b.host_port.unwrap()))
            .collect()
    }

    fn port_err(spec: &str) -> String {
        format!("{:#}", parse_port_spec(spec).unwrap_err())
    }

    fn t(p: &str, ip: &str, hp: &str) -> (String, String, String) {
        (p.into(), ip.into(), hp.into())
    }

    /// Each case: what docker CLI 28 sent (captured on a socket) or printed for the same -p.
    #[test]
    fn ports_like_docker() {
        assert_eq!(ports_of("8080:80"), vec![t("80/tcp", "", "8080")]);
        assert_eq!(
            ports_of("127.0.0.1:53:53/udp"),
            vec![t("53/udp", "127.0.0.1", "53")]
        );
        assert_eq!(ports_of("[::1]:70:70"), vec![t("70/tcp", "::1", "70")]);
        assert_eq!(ports_of("::1:80:80"), vec![t("80/tcp", "::1", "80")]);
        assert_eq!(ports_of("[::1]::80"), vec![t("80/tcp", "::1", "")]);
        assert_eq!(ports_of("1.2.3.4::80"), vec![t("80/tcp", "1.2.3.4", "")]);
        assert_eq!(ports_of(":80"), vec![t("80/tcp", "", "")]);
        assert_eq!(ports_of("80"), vec![t("80/tcp", "", "")]);
        assert_eq!(ports_of("80/TCP"), vec![t("80/tcp", "", "")]);
        assert_eq!(ports_of("80:0"), vec![t("0/tcp", "", "80")]);
        assert_eq!(
            ports_of("8000-8001:80-81"),
            vec![t("80/tcp", "", "8000"), t("81/tcp", "", "8001")]
        );
        assert_eq!(
            ports_of("0-1:80-81"),
            vec![t("80/tcp", "", "0"), t("81/tcp", "", "1")]
        );
        assert_eq!(
            ports_of("127.0.0.1:80-81:90-91/udp"),
            vec![
                t("90/udp", "127.0.0.1", "80"),
                t("91/udp", "127.0.0.1", "81")
            ]
        );
        // A host range for one container port: docker picks a port in it.
        assert_eq!(ports_of("80-81:90"), vec![t("90/tcp", "", "80-81")]);
        assert_eq!(ports_of("8080-8090:80"), vec![t("80/tcp", "", "8080-8090")]);
        assert_eq!(
            ports_of("80-81/sctp"),
            vec![t("80/sctp", "", ""), t("81/sctp", "", "")]
        );
        assert_eq!(
            ports_of("published=8080,target=80,protocol=udp,mode=host"),
            vec![t("80/udp", "", "8080")]
        );
        assert_eq!(ports_of("target=80"), vec![t("80/tcp", "", "")]);
        assert_eq!(
            port_err("80:90-91"),
            "invalid ranges specified for container and host Ports: 90-91 and 80"
        );
        assert_eq!(
            port_err("80-82:90-91"),
            "invalid ranges specified for container and host Ports: 90-91 and 80-82"
        );
        assert_eq!(port_err("1.2.3.4:80"), "invalid hostPort: 1.2.3.4");
        assert_eq!(port_err("bogus:80:80"), "invalid IP address: bogus");
        assert_eq!(port_err("80/xyz"), "invalid proto: xyz");
        assert_eq!(port_err("70000:80"), "invalid hostPort: 70000");
        assert_eq!(
            port_err("[::1]:80"),
            "invalid IP address [:: address [::: missing ']' in address"
        );
        assert_eq!(port_err("80:"), "no port specified: 80:<empty>");
        assert_eq!(port_err("x:80"), "invalid hostPort: x");
        assert_eq!(port_err("90-80"), "invalid containerPort: 90-80");
        assert_eq!(port_err("1:2:3:4"), "invalid IP address: 1:2");
        assert!(publish_standard_notation("published=80").is_err());
        assert!(publish_standard_notation("target=80,=x").is_err());
    }

    #[test]
    fn expose_like_docker() {
        assert_eq!(
            parse_expose("80-82/udp").unwrap(),
            vec!["80/udp", "81/udp", "82/udp"]
        );
        assert_eq!(parse_expose("80/xyz").unwrap(), vec!["80/xyz"]);
        assert_eq!(parse_expose("5").unwrap(), vec!["5/tcp"]);
        let e = |s| format!("{:#}", parse_expose(s).unwrap_err());
        assert_eq!(
            e("80-70"),
            "invalid range format for --expose: 80-70, error: invalid range specified for port: 80-70"
        );
        assert_eq!(
            e("bogus"),
            "invalid range format for --expose: bogus, error: strconv.ParseUint: parsing \"bogus\": invalid syntax"
        );
        assert_eq!(
            e("70000"),
            "invalid range format for --expose: 70000, error: strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert_eq!(e("80:90"), "invalid port format for --expose: 80:90");
    }

    #[test]
    fn hosts_and_dns_like_docker() {
        assert_eq!(parse_extra_host("h:1.2.3.4").unwrap(), "h:1.2.3.4");
        assert_eq!(parse_extra_host("h=1.2.3.4").unwrap(), "h:1.2.3.4");
        assert_eq!(
            parse_extra_host("h2:host-gateway").unwrap(),
            "h2:host-gateway"
        );
        assert_eq!(parse_extra_host("h3:::1").unwrap(), "h3:::1");
        assert_eq!(parse_extra_host("h4=[::1]").unwrap(), "h4:::1");
        let e = |s| format!("{:#}", parse_extra_host(s).unwrap_err());
        assert_eq!(e("bogus"), "bad format for add-host: \"bogus\"");
        assert_eq!(e(":1.2.3.4"), "bad format for add-host: \":1.2.3.4\"");
        assert_eq!(e("h:bogus"), "invalid IP address in add-host: \"bogus\"");
        assert_eq!(parse_dns("1.1.1.1").unwrap(), "1.1.1.1");
        assert_eq!(parse_dns("::0001").unwrap(), "::1");
        assert_eq!(
            format!("{:#}", parse_dns("bogus").unwrap_err()),
            "IP address is not correctly formatted: bogus"
        );
        assert_eq!(parse_dns_search(".").unwrap(), ".");
        assert_eq!(parse_dns_search("ex.com.").unwrap(), "ex.com");
        assert_eq!(parse_dns_search("a-b.c1").unwrap(), "a-b.c1");
        for bad in ["bad domain", "-a.com", "a..b", "123", ""] {
            assert!(parse_dns_search(bad).is_err(), "{bad}");
        }
        assert!(is_valid_mac("02:42:ac:11:00:02"));
        assert!(is_valid_mac("02-42-AC-11-00-02"));
        assert!(is_valid_mac("0242.ac11.0002"));
        assert!(!is_valid_mac("zz"));
        assert!(!is_valid_mac("02:42:ac:11:00"));
    }

    fn body_err(argv: &[&str]) -> String {
        let mut full = vec!["t"];
        full.extend_from_slice(argv);
        let t = T::try_parse_from(full).unwrap();
        format!("{:#}", t.o.to_body(true).unwrap_err())
    }

    /// NetworkingConfig and the DNS fields as docker CLI 28 sent them (captured on a socket).
    #[test]
    fn networking_like_docker() {
        let b = body(&[
            "--network",
            "mynet",
            "--network-alias",
            "a1",
            "--network-alias",
            "a2",
            "--ip",
            "10.9.0.9",
            "--ip6",
            "fd00::9",
            "--mac-address",
            "02:42:ac:11:00:02",
            "--dns-search",
            "ex.com",
            "--dns-option",
            "ndots:2",
            "--dns",
            "1.1.1.1",
            "--add-host",
            "h:1.2.3.4",
            "busybox",
            "true",
        ]);
        assert_eq!(b["HostConfig"]["NetworkMode"], "mynet");
        assert_eq!(b["HostConfig"]["Dns"], serde_json::json!(["1.1.1.1"]));
        assert_eq!(b["HostConfig"]["DnsSearch"], serde_json::json!(["ex.com"]));
        assert_eq!(
            b["HostConfig"]["DnsOptions"],
            serde_json::json!(["ndots:2"])
        );
        assert_eq!(
            b["HostConfig"]["ExtraHosts"],
            serde_json::json!(["h:1.2.3.4"])
        );
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"mynet": {
                "IPAMConfig": {"IPv4Address": "10.9.0.9", "IPv6Address": "fd00::9"},
                "Aliases": ["a1", "a2"],
                "MacAddress": "02:42:ac:11:00:02"
            }})
        );
        assert!(b.get("MacAddress").is_none());
        // No --network: docker always names the "default" endpoint.
        let b = body(&["busybox"]);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"default": {}})
        );
        let b = body(&["--mac-address", "02:42:ac:11:00:02", "busybox"]);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"default": {"MacAddress": "02:42:ac:11:00:02"}})
        );
        let b = body(&["--ip", "1.2.3.4", "--network", "bridge", "busybox"]);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"bridge": {"IPAMConfig": {"IPv4Address": "1.2.3.4"}}})
        );
        for mode in ["none", "default", "container:abc", "host"] {
            let b = body(&["--network", mode, "busybox"]);
            assert_eq!(b["HostConfig"]["NetworkMode"], mode);
            assert_eq!(
                b["NetworkingConfig"]["EndpointsConfig"],
                serde_json::json!({})
            );
        }
        // Several networks: the flags go to the first; the others get empty endpoints.
        let b = body(&[
            "--network",
            "n",
            "--network-alias",
            "x",
            "--network",
            "m",
            "busybox",
        ]);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"n": {"Aliases": ["x"]}, "m": {}})
        );
        let b = body(&[
            "--network",
            "name=n,alias=x,ip=10.0.0.2,driver-opt=a=b",
            "busybox",
        ]);
        assert_eq!(b["HostConfig"]["NetworkMode"], "n");
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"n": {"Aliases": ["x"], "IPAMConfig": {"IPv4Address": "10.0.0.2"},
                                     "DriverOpts": {"a": "b"}}})
        );
        for argv in [
            &["--network-alias", "x", "busybox"][..],
            &["--network", "bridge", "--network-alias", "x", "busybox"],
            &["--network", "host", "--network-alias", "x", "busybox"],
            &[
                "--network",
                "container:x",
                "--network-alias",
                "x",
                "busybox",
            ],
        ] {
            assert_eq!(
                body_err(argv),
                "network-scoped aliases are only supported for user-defined networks"
            );
        }
        assert_eq!(
            body_err(&["--network", "n", "--mac-address", "zz", "busybox"]),
            "zz is not a valid mac address"
        );
        assert_eq!(
            body_err(&["--network", "a", "--network", "host", "busybox"]),
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
        assert_eq!(
            body_err(&["--network", "a", "--network", "a", "busybox"]),
            "network \"a\" is specified multiple times"
        );
        assert_eq!(
            body_err(&[
                "--network",
                "name=n,alias=y",
                "--network-alias",
                "x",
                "busybox"
            ]),
            "conflicting options: cannot specify both --network-alias and per-network alias"
        );
        assert_eq!(
            body_err(&["--network", "name=n,bogus=1", "busybox"]),
            "invalid field key bogus"
        );
        assert_eq!(
            body_err(&["--network", "alias=x", "busybox"]),
            "network name not specified"
        );
        assert_eq!(
            body_err(&["--dns", "bogus", "busybox"]),
            "invalid argument \"bogus\" for \"--dns\" flag: IP address is not correctly formatted: bogus"
        );
        assert_eq!(
            body_err(&["--dns-search", "bad domain", "busybox"]),
            "invalid argument \"bad domain\" for \"--dns-search\" flag: bad domain is not a valid domain"
        );
        assert_eq!(
            body_err(&["--add-host", "bogus", "busybox"]),
            "invalid argument \"bogus\" for \"--add-host\" flag: bad format for add-host: \"bogus\""
        );
        assert_eq!(
            body_err(&["--add-host", "h:bogus", "busybox"]),
            "invalid argument \"h:bogus\" for \"--add-host\" flag: invalid IP address in add-host: \"bogus\""
        );
        // The daemon judges addresses (docker's CLI sends "--ip bogus" as is).
        let b = body(&["--network", "n", "--ip", "bogus", "busybox"]);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["n"]["IPAMConfig"]["IPv4Address"],
            "bogus"
        );
    }

    #[test]
    fn parsers_never_panic() {
        for s in [
            "",
            "é",
            "[é]:1:1",
            "[]:1:1",
            "1-2-3:1-2-3",
            "target=",
            "a=b,c",
            "name=,alias=",
            "\"",
            "name=\"a,b\"",
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
            let _ = publish_standard_notation(s);
            let _ = parse_expose(s);
            let _ = parse_extra_host(s);
            let _ = parse_dns_search(s);
            let _ = is_valid_mac(s);
            let _ = parse_network_flag(s);
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
            "--cgroup-parent",
            "/bench/x",
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
        assert_eq!(b["HostConfig"]["CgroupParent"], "/bench/x");
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
        // docker CLI 28 leaves out the endpoint of a lone network given no endpoint flags.
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({})
        );
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
