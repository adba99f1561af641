//! Networks: the records of the predefined `bridge`, `host` and `none` networks and of
//! user-defined bridge networks, their address pools, and the network side of a container's
//! start and stop. The kernel objects (bridges, namespaces, veths, the nft table, DNS
//! servers) belong to berth-net; this module decides which must exist, from the records,
//! so that a restart after a crash rebuilds them and nothing leaks.
//!
//! It never forks and never changes the namespace of a daemon thread: berth-net does its
//! namespace work on short-lived threads.

pub mod ops;
pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_net::dns::Dns;
use berth_net::ipam::{self, Pool};
use berth_net::link::{self, Bridge, Endpoint};
use berth_net::nft::{self, NetworkRules, PortRule, Proto, Ruleset};
use berth_net::ports::{self, Reservation};
use berth_net::{netns, NetError};
use berth_types::api::{EndpointIpamConfig, EndpointSettings, PortBinding};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::containers::Record;
use crate::error::EngineError;

impl From<NetError> for EngineError {
    fn from(e: NetError) -> Self {
        EngineError::new(e.kind(), e.to_string())
    }
}

/// The default MTU of berth's bridges and veths.
pub const JUMBO_MTU: u32 = 65520;
/// The MTU of a container's default routes when its link is bigger: traffic that leaves the
/// host never counts on path-MTU discovery.
pub const UPLINK_MTU: u32 = 1500;

/// Names of the networks every daemon has.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// A network as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetRecord {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub subnets: Vec<SubnetRec>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The bridge interface (bridge driver only).
    #[serde(default)]
    pub bridge: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubnetRec {
    pub subnet: String,
    pub gateway: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

impl NetRecord {
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }
    pub fn is_predefined(&self) -> bool {
        PREDEFINED.contains(&self.name.as_str())
    }
    /// User-defined bridge networks get the embedded DNS server and aliases.
    pub fn user_defined(&self) -> bool {
        self.is_bridge() && self.name != "bridge"
    }
    /// The links' MTU: `-o com.docker.network.driver.mtu=N`, else 65520 (jumbo inside the
    /// host: container↔container and host↔container TCP at ~97 % of loopback against ~65 % at
    /// 1500, measured here); the default routes keep [`UPLINK_MTU`] for what leaves the host.
    fn mtu(&self) -> u32 {
        self.options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
            .unwrap_or(JUMBO_MTU)
    }
    fn masquerade(&self) -> bool {
        !self.internal
            && self
                .options
                .get("com.docker.network.bridge.enable_ip_masquerade")
                .is_none_or(|v| v != "false")
    }
    fn nets(&self) -> Vec<IpNet> {
        self.subnets
            .iter()
            .filter_map(|s| s.subnet.parse().ok())
            .collect()
    }
    fn gateway4(&self) -> Option<Ipv4Net> {
        self.subnets.iter().find_map(|s| {
            let n: Ipv4Net = s.subnet.parse().ok()?;
            let g: Ipv4Addr = s.gateway.parse().ok()?;
            Ipv4Net::new(g, n.prefix_len()).ok()
        })
    }
    fn gateway6(&self) -> Option<Ipv6Net> {
        self.subnets.iter().find_map(|s| {
            let n: Ipv6Net = s.subnet.parse().ok()?;
            let g: std::net::Ipv6Addr = s.gateway.parse().ok()?;
            Ipv6Net::new(g, n.prefix_len()).ok()
        })
    }
    fn link_bridge(&self) -> Option<Bridge> {
        Some(Bridge {
            name: self.bridge.clone(),
            gateway4: self.gateway4()?,
            gateway6: self.gateway6(),
            mtu: self.mtu(),
            internal: self.internal,
        })
    }
}

/// A network in memory: its record and one pool per subnet.
struct Net {
    rec: NetRecord,
    pool4: Option<Pool>,
    pool6: Option<Pool>,
}

impl Net {
    fn new(rec: NetRecord) -> Result<Self, EngineError> {
        let mut pool4 = None;
        let mut pool6 = None;
        for s in &rec.subnets {
            let subnet: IpNet = s
                .subnet
                .parse()
                .map_err(|_| EngineError::invalid(format!("invalid subnet {}", s.subnet)))?;
            let gw: IpAddr = s
                .gateway
                .parse()
                .map_err(|_| EngineError::invalid(format!("invalid gateway {}", s.gateway)))?;
            let range = match &s.ip_range {
                Some(r) if !r.is_empty() => Some(
                    r.parse::<IpNet>()
                        .map_err(|_| EngineError::invalid(format!("invalid ip-range {r}")))?,
                ),
                _ => None,
            };
            let pool = Pool::new(subnet, gw, range)?;
            match subnet {
                IpNet::V4(_) if pool4.is_none() => pool4 = Some(pool),
                IpNet::V6(_) if pool6.is_none() => pool6 = Some(pool),
                _ => {}
            }
        }
        Ok(Self { rec, pool4, pool6 })
    }
}

/// The network service.
pub struct Networks {
    store: store::Store,
    nets: Mutex<BTreeMap<String, Net>>,
    pub dns: Dns,
    /// Host ports held for running containers, by container id.
    reservations: Mutex<HashMap<String, Vec<Reservation>>>,
    /// Published-port rules of running containers, by container id.
    port_rules: Mutex<BTreeMap<String, Vec<PortRule>>>,
    /// Serializes ruleset renders and applies, so the newest state always wins.
    nft_lock: Mutex<()>,
    /// `<exec root>/netns`: one bind-mounted namespace file per running container.
    pub netns_dir: PathBuf,
    table: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> String {
    berth_runtime::container::rfc3339_now()
}

/// Holds a host-wide lock while a subnet is picked and its bridge made, so that two
/// daemons (tests run several) never pick the same free subnet.
struct SubnetLock(#[allow(dead_code)] Option<std::fs::File>);

fn subnet_lock() -> SubnetLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/berth-subnets.lock")
        .ok();
    if let Some(f) = &f {
        let _ = rustix::fs::flock(f, rustix::fs::FlockOperation::LockExclusive);
    }
    SubnetLock(f)
}

/// The upstream resolvers of the embedded DNS: berthd's --dns, else the host's.
fn upstreams(config: &Config) -> Vec<SocketAddr> {
    if !config.dns.is_empty() {
        return config
            .dns
            .iter()
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse::<IpAddr>().ok())
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Docker's rule for network names.
fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
}

/// What `docker network create` asks for, already read from the request body.
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub subnets: Vec<SubnetRec>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// How a container is networked, from its NetworkMode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    None,
    Host,
    /// Shares the namespace of another container (name or id as given).
    Container(String),
    /// Its own namespace on bridge networks: the primary one's name.
    Bridge(String),
}

pub fn mode_of(rec: &Record) -> Mode {
    match rec.host_config.network_mode.as_deref().unwrap_or("") {
        "" | "default" | "bridge" => Mode::Bridge("bridge".into()),
        "none" => Mode::None,
        "host" => Mode::Host,
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_string()),
            None => Mode::Bridge(m.to_string()),
        },
    }
}

/// A port key "80/tcp" → (80, Tcp); "80" means tcp. Other protocols (sctp) are refused.
fn parse_port_key(k: &str) -> Result<(u16, Proto), EngineError> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(EngineError::invalid(format!(
                "invalid proto '{other}' in port {k}: berth publishes tcp and udp"
            )))
        }
    };
    let port = p
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::invalid(format!("invalid port {k}")))?;
    Ok((port, proto))
}

/// A host port field: "" → any, "8080", or a range "8000-8010" (the first free one).
fn parse_host_ports(s: &str) -> Result<(u16, u16), EngineError> {
    let bad = || EngineError::invalid(format!("invalid host port {s}"));
    if s.is_empty() {
        return Ok((0, 0));
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            );
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

/// The published ports a container asks for: (port key, host ip, host port range).
pub fn wanted_ports(rec: &Record) -> Result<Vec<(String, String, String)>, EngineError> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut keys: Vec<&String> = Vec::new();
    if let Some(pb) = &rec.host_config.port_bindings {
        keys.extend(pb.keys());
    }
    keys.sort();
    for k in keys {
        parse_port_key(k)?;
        let bindings = rec
            .host_config
            .port_bindings
            .as_ref()
            .and_then(|pb| pb.get(k).cloned().flatten())
            .unwrap_or_default();
        if bindings.is_empty() {
            out.push((k.clone(), String::new(), String::new()));
        }
        for b in bindings {
            let ip = b.host_ip.unwrap_or_default();
            if !ip.is_empty() {
                ip.parse::<IpAddr>()
                    .map_err(|_| EngineError::invalid(format!("invalid host IP {ip}")))?;
            }
            let hp = b.host_port.unwrap_or_default();
            parse_host_ports(&hp)?;
            out.push((k.clone(), ip, hp));
        }
    }
    if rec.host_config.publish_all_ports == Some(true) {
        for k in rec.config.exposed_ports.iter().flatten() {
            if parse_port_key(k).is_ok() && !out.iter().any(|(o, _, _)| o == k) {
                out.push((k.clone(), String::new(), String::new()));
            }
        }
    }
    Ok(out)
}

/// The host-side veth name of an endpoint: "vb" + 12 hex of its id.
fn host_if(endpoint_id: &str) -> String {
    format!("vb{}", &endpoint_id[..12.min(endpoint_id.len())])
}

impl Networks {
    /// Opens the records and makes sure the predefined networks exist. Touches no kernel
    /// object except for choosing the default bridge's subnet the first time.
    pub fn open(config: &Config) -> Result<Self, EngineError> {
        let store = store::Store::open(&config.data_root.join("networks.db"))?;
        let mut recs = store.all()?;
        let table = if config.bridge == "berth0" {
            nft::TABLE.to_string()
        } else {
            format!(
                "berth_{}",
                config
                    .bridge
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            )
        };
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if recs.iter().any(|r| r.name == name) {
                continue;
            }
            let r = NetRecord {
                id: crate::containers::new_id(),
                name: name.into(),
                driver: driver.into(),
                created: now(),
                internal: false,
                attachable: false,
                enable_ipv6: false,
                subnets: Vec::new(),
                options: BTreeMap::new(),
                labels: BTreeMap::new(),
                bridge: String::new(),
            };
            store.insert(&r)?;
            recs.push(r);
        }
        let n = Self {
            store,
            nets: Mutex::new(BTreeMap::new()),
            dns: Dns::new(upstreams(config)),
            reservations: Mutex::new(HashMap::new()),
            port_rules: Mutex::new(BTreeMap::new()),
            nft_lock: Mutex::new(()),
            netns_dir: config.exec_root.join("netns"),
            table,
        };
        // The default bridge: its interface and subnet (--bip, else what it had, else a
        // free one).
        if let Some(mut b) = recs.iter().find(|r| r.name == "bridge").cloned() {
            let mut changed = b.bridge != config.bridge;
            b.bridge = config.bridge.clone();
            if let Some(bip) = &config.bip {
                let gw: Ipv4Net = bip.parse().map_err(|_| {
                    EngineError::invalid(format!(
                        "--bip {bip}: expected an address with a prefix, e.g. 172.30.0.1/16"
                    ))
                })?;
                let s = SubnetRec {
                    subnet: gw.trunc().to_string(),
                    gateway: gw.addr().to_string(),
                    ip_range: None,
                };
                if b.subnets != vec![s.clone()] {
                    b.subnets = vec![s];
                    changed = true;
                }
            }
            let _lock = if b.subnets.is_empty() {
                let l = subnet_lock();
                let taken: Vec<IpNet> = recs.iter().flat_map(NetRecord::nets).collect();
                let subnet = ipam::pick_subnet4(&taken)?;
                b.subnets = vec![SubnetRec {
                    subnet: subnet.to_string(),
                    gateway: ipam::first_host(subnet).to_string(),
                    ip_range: None,
                }];
                changed = true;
                // Made now, under the lock, so that the next daemon sees its route.
                if let Some(lb) = b.link_bridge() {
                    link::ensure_bridge(&lb)?;
                }
                Some(l)
            } else {
                None
            };
            if changed {
                n.store.update(&b)?;
            }
            if let Some(r) = recs.iter_mut().find(|r| r.name == "bridge") {
                *r = b;
            }
        }
        {
            let mut nets = lock(&n.nets);
            for r in recs {
                match Net::new(r.clone()) {
                    Ok(net) => {
                        nets.insert(r.id.clone(), net);
                    }
                    Err(e) => tracing::warn!("network {}: {}", r.name, e.message),
                }
            }
        }
        Ok(n)
    }

    /// Makes the kernel match the records: bridges up, DNS servers listening, the ruleset
    /// written. Called once at start (inside the runtime), before containers are restored.
    pub fn bring_up(&self) -> Result<(), EngineError> {
        let recs: Vec<NetRecord> = lock(&self.nets).values().map(|n| n.rec.clone()).collect();
        for r in recs.iter().filter(|r| r.is_bridge()) {
            if let Some(b) = r.link_bridge() {
                if let Err(e) = link::ensure_bridge(&b) {
                    tracing::warn!("network {}: bridge {}: {e}", r.name, r.bridge);
                }
            }
            if r.user_defined() {
                self.serve_dns(r);
            }
        }
        Ok(())
    }

    fn serve_dns(&self, r: &NetRecord) {
        if let Some(g) = r.gateway4() {
            if let Err(e) = self.dns.serve(&r.id, IpAddr::V4(g.addr()), r.nets()) {
                tracing::warn!("network {}: embedded DNS: {e}", r.name);
            }
        }
    }

    /// Writes the ruleset for the current state (one nft transaction).
    pub fn apply_rules(&self) -> Result<(), EngineError> {
        let _g = lock(&self.nft_lock);
        let networks = lock(&self.nets)
            .values()
            .filter(|n| n.rec.is_bridge())
            .map(|n| NetworkRules {
                bridge: n.rec.bridge.clone(),
                subnets: n.rec.nets(),
                internal: n.rec.internal,
                masquerade: n.rec.masquerade(),
            })
            .collect();
        let ports = lock(&self.port_rules).values().flatten().cloned().collect();
        nft::apply(&Ruleset {
            table: self.table.clone(),
            networks,
            ports,
        })?;
        Ok(())
    }

    /// All records, ordered by name.
    pub fn list(&self) -> Vec<NetRecord> {
        let mut v: Vec<NetRecord> = lock(&self.nets).values().map(|n| n.rec.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// By exact name, full id, then unique id prefix (Docker's order).
    pub fn get(&self, key: &str) -> Result<NetRecord, EngineError> {
        let nets = lock(&self.nets);
        if let Some(n) = nets.values().find(|n| n.rec.name == key) {
            return Ok(n.rec.clone());
        }
        if let Some(n) = nets.get(key) {
            return Ok(n.rec.clone());
        }
        if !key.is_empty() {
            let m: Vec<&Net> = nets
                .values()
                .filter(|n| n.rec.id.starts_with(key))
                .collect();
            match m.len() {
                1 => return Ok(m[0].rec.clone()),
                0 => {}
                _ => {
                    return Err(EngineError::invalid(format!(
                        "network {key} is ambiguous ({} matches found based on ID prefix)",
                        m.len()
                    )))
                }
            }
        }
        Err(EngineError::not_found(format!("network {key} not found")))
    }

    /// Creates a user-defined bridge network: record, bridge, DNS server, rules.
    pub fn create(&self, req: CreateRequest) -> Result<NetRecord, EngineError> {
        if !valid_name(&req.name) {
            return Err(EngineError::invalid(format!(
                "invalid network name \"{}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(EngineError::new(
                berth_types::ErrorKind::PermissionDenied,
                format!(
                    "{} is a pre-defined network and cannot be created",
                    req.name
                ),
            ));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            d => {
                return Err(EngineError::not_found(format!(
                    "plugin \"{d}\" not found: berth networks use the bridge driver"
                )))
            }
        }
        if lock(&self.nets).values().any(|n| n.rec.name == req.name) {
            return Err(EngineError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let id = crate::containers::new_id();
        let bridge = match req.options.get("com.docker.network.bridge.name") {
            Some(b) if !b.is_empty() => {
                if b.len() > 15
                    || !b
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                {
                    return Err(EngineError::invalid(format!("invalid bridge name {b}")));
                }
                if lock(&self.nets).values().any(|n| &n.rec.bridge == b) {
                    return Err(EngineError::conflict(format!(
                        "bridge name {b} is used by another network"
                    )));
                }
                b.clone()
            }
            _ => format!("br-{}", &id[..12]),
        };
        if let Some(m) = req.options.get("com.docker.network.driver.mtu") {
            if m.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .is_none()
            {
                return Err(EngineError::invalid(format!("invalid MTU {m}")));
            }
        }
        let _lock = subnet_lock();
        let taken: Vec<IpNet> = lock(&self.nets)
            .values()
            .flat_map(|n| n.rec.nets())
            .collect();
        let mut subnets = Vec::new();
        let mut have4 = false;
        let mut have6 = false;
        for s in &req.subnets {
            if s.subnet.is_empty() {
                if !s.gateway.is_empty() || s.ip_range.as_ref().is_some_and(|r| !r.is_empty()) {
                    return Err(EngineError::invalid(
                        "a gateway or an ip-range needs a subnet (--subnet)",
                    ));
                }
                continue;
            }
            let net: IpNet = s.subnet.parse().map_err(|_| {
                EngineError::invalid(format!("invalid subnet {}: invalid CIDR address", s.subnet))
            })?;
            if net.trunc() != net {
                return Err(EngineError::invalid(format!(
                    "invalid subnet {}: it has host bits set (did you mean {}?)",
                    s.subnet,
                    net.trunc()
                )));
            }
            match net {
                IpNet::V4(_) if have4 => {
                    return Err(EngineError::invalid("berth networks take one IPv4 subnet"))
                }
                IpNet::V6(_) if have6 => {
                    return Err(EngineError::invalid("berth networks take one IPv6 subnet"))
                }
                IpNet::V4(n) if n.prefix_len() > 30 => {
                    return Err(EngineError::invalid(format!(
                        "subnet {net} is too small: it leaves no address for a container"
                    )))
                }
                IpNet::V6(_) if !req.enable_ipv6 => {
                    return Err(EngineError::invalid(
                        "an IPv6 subnet needs --ipv6 (EnableIPv6)",
                    ))
                }
                IpNet::V4(_) => have4 = true,
                IpNet::V6(_) => have6 = true,
            }
            if ipam::overlaps_host(net, &taken)? {
                return Err(NetError::SubnetOverlap(net.to_string()).into());
            }
            let gateway = if s.gateway.is_empty() {
                ipam::first_host(net)
            } else {
                let g: IpAddr = s
                    .gateway
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid gateway {}", s.gateway)))?;
                if !net.contains(&g) {
                    return Err(EngineError::invalid(format!(
                        "gateway {g} is not in subnet {net}"
                    )));
                }
                g
            };
            if let Some(r) = s.ip_range.as_ref().filter(|r| !r.is_empty()) {
                let rn: IpNet = r
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid ip-range {r}")))?;
                if !net.contains(&rn) {
                    return Err(EngineError::invalid(format!(
                        "ip-range {rn} is not inside subnet {net}"
                    )));
                }
            }
            subnets.push(SubnetRec {
                subnet: net.to_string(),
                gateway: gateway.to_string(),
                ip_range: s.ip_range.clone().filter(|r| !r.is_empty()),
            });
        }
        if !have4 {
            let net = ipam::pick_subnet4(&taken)?;
            subnets.insert(
                0,
                SubnetRec {
                    subnet: net.to_string(),
                    gateway: ipam::first_host(net).to_string(),
                    ip_range: None,
                },
            );
        }
        if req.enable_ipv6 && !have6 {
            let net = ipam::pick_subnet6(&taken);
            subnets.push(SubnetRec {
                subnet: net.to_string(),
                gateway: ipam::first_host(net).to_string(),
                ip_range: None,
            });
        }
        let rec = NetRecord {
            id: id.clone(),
            name: req.name,
            driver: "bridge".into(),
            created: now(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6: req.enable_ipv6,
            subnets,
            options: req.options,
            labels: req.labels,
            bridge,
        };
        let net = Net::new(rec.clone())?;
        let lb = rec
            .link_bridge()
            .ok_or_else(|| EngineError::internal("the network has no IPv4 gateway"))?;
        link::ensure_bridge(&lb)?;
        if let Err(e) = self.store.insert(&rec) {
            let _ = link::remove_bridge(&rec.bridge);
            return Err(e);
        }
        lock(&self.nets).insert(id, net);
        self.serve_dns(&rec);
        if let Err(e) = self.apply_rules() {
            tracing::warn!("network {}: rules: {}", rec.name, e.message);
        }
        Ok(rec)
    }

    /// Removes a user-defined network that no running container uses (`in_use` names them).
    pub fn remove(&self, key: &str, in_use: &[String]) -> Result<NetRecord, EngineError> {
        let rec = self.get(key)?;
        if rec.is_predefined() {
            return Err(EngineError::new(
                berth_types::ErrorKind::PermissionDenied,
                format!(
                    "{} is a pre-defined network and cannot be removed",
                    rec.name
                ),
            ));
        }
        if !in_use.is_empty() {
            return Err(EngineError::new(
                berth_types::ErrorKind::PermissionDenied,
                format!(
                    "error while removing network: network {} id {} has active endpoints ({})",
                    rec.name,
                    rec.id,
                    in_use.join(", ")
                ),
            ));
        }
        self.dns.stop(&rec.id);
        link::remove_bridge(&rec.bridge)?;
        self.store.delete(&rec.id)?;
        lock(&self.nets).remove(&rec.id);
        if let Err(e) = self.apply_rules() {
            tracing::warn!("network {}: rules: {}", rec.name, e.message);
        }
        Ok(rec)
    }

    /// The namespace file of a container.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    /// Checks a create's network settings and returns the endpoint configs to store (keyed by
    /// network name): the primary network's, from NetworkingConfig.
    pub fn check_create(
        &self,
        rec: &Record,
        asked: &HashMap<String, EndpointSettings>,
    ) -> Result<BTreeMap<String, EndpointSettings>, EngineError> {
        let mut out = BTreeMap::new();
        match mode_of(rec) {
            Mode::None | Mode::Host | Mode::Container(_) => {
                if wanted_ports(rec)?.iter().any(|(_, _, hp)| !hp.is_empty())
                    && rec
                        .host_config
                        .port_bindings
                        .as_ref()
                        .is_some_and(|p| !p.is_empty())
                {
                    // Docker ignores published ports with these modes (and warns).
                    tracing::debug!("published ports ignored for network mode");
                }
            }
            Mode::Bridge(name) => {
                let net = self.get(&name)?;
                if !net.is_bridge() {
                    return Err(EngineError::invalid(format!(
                        "network {} is not a bridge network",
                        net.name
                    )));
                }
                wanted_ports(rec)?;
                let key = rec.host_config.network_mode.clone().unwrap_or_default();
                let cfg = asked
                    .get(&key)
                    .or_else(|| asked.get(&net.name))
                    .or_else(|| asked.get(&net.id))
                    .cloned()
                    .unwrap_or_default();
                out.insert(net.name.clone(), self.check_endpoint(&net, cfg)?);
            }
        }
        Ok(out)
    }

    /// Checks one endpoint config against its network (Docker's rules) and keeps what is
    /// stored: IPAM config, aliases, MAC, network id.
    pub fn check_endpoint(
        &self,
        net: &NetRecord,
        cfg: EndpointSettings,
    ) -> Result<EndpointSettings, EngineError> {
        let aliases: Vec<String> = cfg.aliases.clone().unwrap_or_default();
        let ipam_cfg = cfg.ipam_config.clone();
        let v4 = ipam_cfg
            .as_ref()
            .and_then(|c| c.ipv4_address.clone())
            .filter(|s| !s.is_empty());
        let v6 = ipam_cfg
            .as_ref()
            .and_then(|c| c.ipv6_address.clone())
            .filter(|s| !s.is_empty());
        if !net.user_defined() {
            if !aliases.is_empty() {
                return Err(EngineError::invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            if v4.is_some() || v6.is_some() {
                return Err(EngineError::invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
        }
        for (ip, want6) in [(&v4, false), (&v6, true)] {
            if let Some(ip) = ip {
                let a: IpAddr = ip
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid IP address {ip}")))?;
                if a.is_ipv6() != want6 {
                    return Err(EngineError::invalid(format!(
                        "invalid IP{} address {ip}",
                        if want6 { "v6" } else { "v4" }
                    )));
                }
                if !net.nets().iter().any(|n| n.contains(&a)) {
                    return Err(NetError::OutOfSubnet {
                        addr: a,
                        subnet: net
                            .subnets
                            .iter()
                            .map(|s| s.subnet.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                    .into());
                }
            }
        }
        let mac = cfg.mac_address.clone().filter(|m| !m.is_empty());
        if let Some(m) = &mac {
            ipam::parse_mac(m)?;
        }
        Ok(EndpointSettings {
            ipam_config: ipam_cfg.filter(|_| v4.is_some() || v6.is_some()).map(|_| {
                EndpointIpamConfig {
                    ipv4_address: v4,
                    ipv6_address: v6,
                    link_local_ips: None,
                }
            }),
            aliases: (!aliases.is_empty()).then_some(aliases),
            mac_address: mac,
            network_id: Some(net.id.clone()),
            ..Default::default()
        })
    }

    /// Allocates addresses and makes one endpoint in the namespace at `ns`. Returns its live
    /// settings. On error nothing stays allocated.
    fn up_endpoint(
        &self,
        rec: &Record,
        ns: &Path,
        net_name: &str,
        cfg: &EndpointSettings,
        index: usize,
    ) -> Result<EndpointSettings, EngineError> {
        let net = match cfg.network_id.as_deref() {
            Some(id) => self
                .get(id)
                .map_err(|_| EngineError::not_found(format!("network {net_name} not found")))?,
            None => self.get(net_name)?,
        };
        let want4 = cfg
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .and_then(|s| s.parse::<IpAddr>().ok());
        let want6 = cfg
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv6_address.as_deref())
            .and_then(|s| s.parse::<IpAddr>().ok());
        let (ip4, subnet4, gw4, ip6) = {
            let mut nets = lock(&self.nets);
            let n = nets
                .get_mut(&net.id)
                .ok_or_else(|| EngineError::not_found(format!("network {net_name} not found")))?;
            let pool4 = n.pool4.as_mut().ok_or_else(|| {
                EngineError::internal(format!("network {net_name} has no IPv4 subnet"))
            })?;
            let ip4 = pool4.allocate(want4, &net.name)?;
            let subnet4 = pool4.subnet();
            let gw4 = pool4.gateway();
            let ip6 = match n.pool6.as_mut() {
                Some(p6) => match p6.allocate(want6, &net.name) {
                    Ok(a) => Some((a, p6.subnet(), p6.gateway())),
                    Err(e) => {
                        if let Some(p) = n.pool4.as_mut() {
                            p.release(ip4);
                        }
                        return Err(e.into());
                    }
                },
                None => None,
            };
            (ip4, subnet4, gw4, ip6)
        };
        let release = || {
            let mut nets = lock(&self.nets);
            if let Some(n) = nets.get_mut(&net.id) {
                if let Some(p) = n.pool4.as_mut() {
                    p.release(ip4);
                }
                if let (Some(p), Some((a, _, _))) = (n.pool6.as_mut(), ip6) {
                    p.release(a);
                }
            }
        };
        // Docker's classic MAC, 02:42 + the IPv4 address: an address handed out again comes
        // back with the same MAC, so the host's neighbour cache is never stale (a random MAC
        // left the new owner of a reused address unreachable for ~30 s).
        let mac_text = cfg.mac_address.clone().unwrap_or_else(|| match ip4 {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
            }
            IpAddr::V6(_) => ipam::random_mac(),
        });
        let endpoint_id = crate::containers::new_id();
        let built = (|| -> Result<(), EngineError> {
            let mac = ipam::parse_mac(&mac_text)?;
            let (IpAddr::V4(a4), IpAddr::V4(g4)) = (ip4, gw4) else {
                return Err(EngineError::internal(
                    "an IPv4 pool gave a non-IPv4 address",
                ));
            };
            let addr4 = Ipv4Net::new(a4, subnet4.prefix_len())
                .map_err(|e| EngineError::internal(e.to_string()))?;
            let (addr6, gateway6) = match ip6 {
                Some((IpAddr::V6(a6), s6, IpAddr::V6(g6))) => (
                    Some(
                        Ipv6Net::new(a6, s6.prefix_len())
                            .map_err(|e| EngineError::internal(e.to_string()))?,
                    ),
                    Some(g6),
                ),
                _ => (None, None),
            };
            link::attach(
                ns,
                &Endpoint {
                    bridge: net.bridge.clone(),
                    host_if: host_if(&endpoint_id),
                    ifname: format!("eth{index}"),
                    mac,
                    addr4,
                    gateway4: g4,
                    addr6,
                    gateway6,
                    default_route: index == 0 && !net.internal,
                    mtu: net.mtu(),
                    route_mtu: if net.mtu() > UPLINK_MTU {
                        UPLINK_MTU
                    } else {
                        0
                    },
                },
            )?;
            Ok(())
        })();
        if let Err(e) = built {
            release();
            return Err(e);
        }
        let mut names = vec![rec.name.clone()];
        names.extend(cfg.aliases.clone().unwrap_or_default());
        names.push(rec.short_id().to_string());
        let dns_names = names.clone();
        if net.user_defined() {
            let mut all = names.clone();
            all.extend(names.iter().map(|n| format!("{n}.{}", net.name)));
            let mut addrs = vec![ip4];
            if let Some((a, _, _)) = ip6 {
                addrs.push(a);
            }
            self.dns.set(&net.id, &rec.id, all, addrs);
        }
        Ok(EndpointSettings {
            ipam_config: cfg.ipam_config.clone(),
            links: None,
            aliases: cfg.aliases.clone(),
            mac_address: Some(mac_text),
            driver_opts: None,
            gw_priority: Some(0),
            network_id: Some(net.id.clone()),
            endpoint_id: Some(endpoint_id),
            gateway: Some(gw4.to_string()),
            ip_address: Some(ip4.to_string()),
            ip_prefix_len: Some(subnet4.prefix_len() as i64),
            ipv6_gateway: Some(ip6.map(|(_, _, g)| g.to_string()).unwrap_or_default()),
            global_ipv6_address: Some(ip6.map(|(a, _, _)| a.to_string()).unwrap_or_default()),
            global_ipv6_prefix_len: Some(ip6.map(|(_, s, _)| s.prefix_len() as i64).unwrap_or(0)),
            dns_names: net.user_defined().then_some(dns_names),
        })
    }

    /// Frees one live endpoint's addresses and names (its veth goes with the namespace, or
    /// with `detach` for a disconnect).
    fn down_endpoint(&self, owner: &str, ep: &EndpointSettings) {
        let Some(id) = ep.network_id.as_deref() else {
            return;
        };
        self.dns.remove(id, owner);
        let mut nets = lock(&self.nets);
        if let Some(n) = nets.get_mut(id) {
            for a in [&ep.ip_address, &ep.global_ipv6_address]
                .into_iter()
                .flatten()
                .filter_map(|s| s.parse::<IpAddr>().ok())
            {
                if let Some(p) = n.pool4.as_mut().filter(|_| a.is_ipv4()) {
                    p.release(a);
                }
                if let Some(p) = n.pool6.as_mut().filter(|_| a.is_ipv6()) {
                    p.release(a);
                }
            }
        }
    }

    /// The network side of a start, for a container in its own namespace on bridge
    /// networks: namespace, endpoints (primary first), published ports, names. Fills the
    /// record's live fields. Blocking. On error everything made is undone.
    pub fn setup(&self, rec: &mut Record) -> Result<PathBuf, EngineError> {
        let Mode::Bridge(primary) = mode_of(rec) else {
            return Err(EngineError::internal(
                "setup of a container without its own network",
            ));
        };
        let ns = self.netns_path(&rec.id);
        if ns.exists() {
            let _ = netns::remove(&ns);
        }
        netns::create(&ns)?;
        rec.sandbox_key = ns.display().to_string();
        let r = self.setup_inner(rec, &ns, &primary);
        if let Err(e) = r {
            self.teardown(rec);
            return Err(e);
        }
        Ok(ns)
    }

    fn setup_inner(&self, rec: &mut Record, ns: &Path, primary: &str) -> Result<(), EngineError> {
        let primary_name = self.get(primary)?.name;
        let mut order: Vec<String> = vec![primary_name.clone()];
        order.extend(
            rec.net_config
                .keys()
                .filter(|k| **k != primary_name)
                .cloned(),
        );
        for (i, name) in order.iter().enumerate() {
            let cfg = rec.net_config.get(name).cloned().unwrap_or_default();
            let snapshot = rec.clone();
            let live = self.up_endpoint(&snapshot, ns, name, &cfg, i)?;
            rec.net_live.insert(name.clone(), live);
        }
        // Published ports go to the primary endpoint's address.
        let wanted = wanted_ports(rec)?;
        if wanted.is_empty() {
            return Ok(());
        }
        let primary_ep = rec.net_live.get(&primary_name).cloned().unwrap_or_default();
        let cip: IpAddr = primary_ep
            .ip_address
            .as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| EngineError::internal("the primary endpoint has no address"))?;
        let bridge = self.get(&primary_name)?.bridge;
        let mut held = Vec::new();
        let mut rules = Vec::new();
        let mut live: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for (key, hip, hports) in wanted {
            let (cport, proto) = parse_port_key(&key)?;
            let host_ip: Option<IpAddr> = if hip.is_empty() {
                None
            } else {
                hip.parse().ok()
            };
            let (lo, hi) = parse_host_ports(&hports)?;
            let mut last = None;
            let mut got = None;
            for p in lo..=hi {
                match ports::reserve(proto, host_ip, p) {
                    Ok(r) => {
                        got = Some(r);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let res = match (got, last) {
                (Some(r), _) => r,
                (None, Some(e)) => {
                    return Err(EngineError::internal(format!(
                        "driver failed programming external connectivity on endpoint {}: {e}",
                        rec.name
                    )))
                }
                (None, None) => {
                    return Err(EngineError::invalid(format!("invalid host port {hports}")))
                }
            };
            let hport = res.port();
            held.push(res);
            rules.push(PortRule {
                proto,
                host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
                host_port: hport,
                container_ip: cip,
                container_port: cport,
                bridge: bridge.clone(),
            });
            live.entry(format!("{cport}/{}", proto.as_str()))
                .or_default()
                .push(PortBinding {
                    host_ip: Some(host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string())),
                    host_port: Some(hport.to_string()),
                });
        }
        lock(&self.reservations).insert(rec.id.clone(), held);
        lock(&self.port_rules).insert(rec.id.clone(), rules);
        rec.ports_live = live;
        self.apply_rules()
    }

    /// Undoes `setup` (idempotent): names, ports, addresses, the namespace. Clears the
    /// record's live fields. Blocking.
    pub fn teardown(&self, rec: &mut Record) {
        for ep in rec.net_live.values() {
            self.down_endpoint(&rec.id, ep);
        }
        rec.net_live.clear();
        let had_ports = lock(&self.port_rules).remove(&rec.id).is_some();
        lock(&self.reservations).remove(&rec.id);
        if had_ports {
            if let Err(e) = self.apply_rules() {
                tracing::warn!("container {}: rules: {}", rec.short_id(), e.message);
            }
        }
        rec.ports_live.clear();
        let ns = self.netns_path(&rec.id);
        if let Err(e) = netns::remove(&ns) {
            tracing::warn!("container {}: {e}", rec.short_id());
        }
        rec.sandbox_key.clear();
    }

    /// After a daemon restart: takes back what a running container holds (addresses, ports,
    /// names). The ruleset is written once afterwards by the caller.
    pub fn adopt(&self, rec: &Record) {
        for ep in rec.net_live.values() {
            let Some(id) = ep.network_id.as_deref() else {
                continue;
            };
            let mut addrs = Vec::new();
            {
                let mut nets = lock(&self.nets);
                let Some(n) = nets.get_mut(id) else {
                    continue;
                };
                for a in [&ep.ip_address, &ep.global_ipv6_address]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.parse::<IpAddr>().ok())
                {
                    addrs.push(a);
                    if let Some(p) = n.pool4.as_mut().filter(|_| a.is_ipv4()) {
                        p.mark(a);
                    }
                    if let Some(p) = n.pool6.as_mut().filter(|_| a.is_ipv6()) {
                        p.mark(a);
                    }
                }
                if !n.rec.user_defined() {
                    continue;
                }
                let mut all = ep.dns_names.clone().unwrap_or_default();
                let net_name = n.rec.name.clone();
                all.extend(
                    ep.dns_names
                        .iter()
                        .flatten()
                        .map(|d| format!("{d}.{net_name}")),
                );
                drop(nets);
                self.dns.set(id, &rec.id, all, addrs);
            }
        }
        let Some(primary) = rec.net_live.values().find(|e| {
            e.network_id.is_some() && e.ip_address.as_deref().is_some_and(|a| !a.is_empty())
        }) else {
            return;
        };
        let primary_name = match mode_of(rec) {
            Mode::Bridge(p) => self.get(&p).map(|n| n.name).unwrap_or_default(),
            _ => return,
        };
        let primary = rec.net_live.get(&primary_name).unwrap_or(primary);
        let Some(cip) = primary.ip_address.as_deref().and_then(|s| s.parse().ok()) else {
            return;
        };
        let bridge = self
            .get(&primary_name)
            .map(|n| n.bridge)
            .unwrap_or_default();
        let mut held = Vec::new();
        let mut rules = Vec::new();
        for (key, bindings) in &rec.ports_live {
            let Ok((cport, proto)) = parse_port_key(key) else {
                continue;
            };
            for b in bindings {
                let hip: Option<IpAddr> = b.host_ip.as_deref().and_then(|s| s.parse().ok());
                let Some(hport) = b.host_port.as_deref().and_then(|s| s.parse::<u16>().ok()) else {
                    continue;
                };
                match ports::reserve(proto, hip.filter(|i| !i.is_unspecified()), hport) {
                    Ok(r) => held.push(r),
                    Err(e) => tracing::warn!("container {}: {e}", rec.short_id()),
                }
                rules.push(PortRule {
                    proto,
                    host_ip: hip.filter(|i| !i.is_unspecified()),
                    host_port: hport,
                    container_ip: cip,
                    container_port: cport,
                    bridge: bridge.clone(),
                });
            }
        }
        if !rules.is_empty() {
            lock(&self.reservations).insert(rec.id.clone(), held);
            lock(&self.port_rules).insert(rec.id.clone(), rules);
        }
    }

    /// Removes namespace files of containers that no longer run (a crash left them).
    pub fn sweep(&self, running: &HashSet<String>) {
        for name in netns::list(&self.netns_dir) {
            if !running.contains(&name) {
                let _ = netns::remove(&self.netns_dir.join(&name));
            }
        }
    }

    /// Connects a running container (namespace at `ns`) to one more network.
    pub fn connect_live(
        &self,
        rec: &mut Record,
        net_name: &str,
        cfg: &EndpointSettings,
    ) -> Result<(), EngineError> {
        let ns = PathBuf::from(&rec.sandbox_key);
        let index = rec.net_live.len();
        let snapshot = rec.clone();
        let live = self.up_endpoint(&snapshot, &ns, net_name, cfg, index)?;
        rec.net_live.insert(net_name.to_string(), live);
        Ok(())
    }

    /// Disconnects a running container from a network: its veth goes now.
    pub fn disconnect_live(&self, rec: &mut Record, net_name: &str) {
        if let Some(ep) = rec.net_live.remove(net_name) {
            if let Some(eid) = ep.endpoint_id.as_deref() {
                if let Err(e) = link::detach(&host_if(eid)) {
                    tracing::warn!("container {}: {e}", rec.short_id());
                }
            }
            self.down_endpoint(&rec.id, &ep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys_and_host_ports() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port_key("80").unwrap(), (80, Proto::Tcp));
        assert!(parse_port_key("80/sctp").is_err());
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("x/tcp").is_err());
        assert_eq!(parse_host_ports("").unwrap(), (0, 0));
        assert_eq!(parse_host_ports("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_host_ports("8000-8010").unwrap(), (8000, 8010));
        assert!(parse_host_ports("9-8").is_err());
        assert!(parse_host_ports("70000").is_err());
    }

    #[test]
    fn names_as_docker() {
        assert!(valid_name("my-net_1.x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn host_if_fits_ifnamsiz() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(host_if(id), "vb0123456789ab");
        assert!(host_if(id).len() <= 15);
    }
}
