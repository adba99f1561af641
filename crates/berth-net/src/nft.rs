//! berth's packet rules: one nftables table (`inet berth`) that the host firewall can see,
//! replaced as a whole in one atomic `nft -f -` transaction on every change, so that the
//! kernel's rules are always a function of the engine's state and a restart after a crash
//! just rewrites them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::link::check_ifname;
use crate::NetError;

/// The default table's name, `inet` family.
pub const TABLE: &str = "berth";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// The table's name (`inet` family); empty = TABLE. Each berthd instance owns one table
    /// (a second daemon with its own --bridge, e.g. in tests, uses "berth_<bridge>"), checked
    /// like an interface name ([A-Za-z0-9_], ≤ 32 bytes).
    pub table: String,
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PortRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnets: Vec<IpNet>,
    /// No traffic in or out of the bridge except between its own members (and to the
    /// gateway address for DNS).
    pub internal: bool,
    /// Masquerade traffic from the subnets leaving through another interface.
    pub masquerade: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: traffic to `host_ip:host_port` (any local address when `host_ip` is
/// None or unspecified) goes to `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
    pub bridge: String,
}

/// The nft script for a ruleset: `add table inet <t>; delete table inet <t>;` then the
/// whole table (so it replaces any previous one atomically). Contents:
/// - nat prerouting + output (for locally generated traffic, incl. 127.0.0.1): DNAT of
///   published ports for destinations of `fib daddr type local` (and the host_ip when set);
/// - nat postrouting: masquerade of subnets leaving through another interface (networks with
///   `masquerade`), masquerade of 127.0.0.0/8 sources going out a berth bridge (loopback
///   publishing), and hairpin (a container reaching its own network's published port);
/// - filter forward: accept established/related; drop between two different berth bridges
///   (networks are isolated); drop anything in or out of internal networks' bridges; accept
///   DNAT'd traffic to published ports and traffic from berth bridges; berth never changes
///   the forward policy of other tables.
pub fn render(rules: &Ruleset) -> String {
    // Only valid names reach the script (apply refuses invalid ones; render leaves them
    // out), and everything is sorted so that equal rulesets give equal scripts.
    let table = match table_name(&rules.table) {
        t if check_table(t).is_ok() => t,
        _ => TABLE,
    };
    let mut nets: Vec<NetworkRules> = rules
        .networks
        .iter()
        .filter(|n| check_ifname(&n.bridge).is_ok())
        .map(|n| {
            let mut n = n.clone();
            n.subnets = n.subnets.iter().map(|s| s.trunc()).collect();
            n.subnets.sort();
            n.subnets.dedup();
            n
        })
        .collect();
    nets.sort_by(|a, b| a.bridge.cmp(&b.bridge));
    nets.dedup_by(|a, b| a.bridge == b.bridge);
    let mut ports: Vec<&PortRule> = rules
        .ports
        .iter()
        .filter(|p| check_ifname(&p.bridge).is_ok())
        .collect();
    ports.sort_by(|a, b| port_key(a).cmp(&port_key(b)));
    ports.dedup();

    let all_bridges = set_of(nets.iter().map(|n| n.bridge.as_str()));
    let mut s = String::with_capacity(1024 + 200 * ports.len() + 300 * nets.len());
    let _ = writeln!(s, "add table inet {table}");
    let _ = writeln!(s, "delete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");

    // Published ports, shared by prerouting and output.
    let _ = writeln!(s, "\tchain published {{");
    for p in &ports {
        if let Some(rule) = dnat_rule(p) {
            let _ = writeln!(s, "\t\t{rule}");
        }
    }
    let _ = writeln!(s, "\t}}");

    let _ = writeln!(s, "\tchain prerouting {{");
    let _ = writeln!(
        s,
        "\t\ttype nat hook prerouting priority dstnat; policy accept;"
    );
    let _ = writeln!(s, "\t\tfib daddr type local jump published");
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "\tchain output {{");
    let _ = writeln!(s, "\t\ttype nat hook output priority -100; policy accept;");
    let _ = writeln!(s, "\t\tfib daddr type local jump published");
    let _ = writeln!(s, "\t}}");

    let _ = writeln!(s, "\tchain postrouting {{");
    let _ = writeln!(
        s,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    if let Some(set) = &all_bridges {
        // Published on 127.0.0.1: the source must not stay a loopback address on the wire.
        let _ = writeln!(s, "\t\tip saddr 127.0.0.0/8 oifname {set} masquerade");
    }
    for n in &nets {
        // Hairpin: a member reaching a published port of its own network via the host.
        for sub in &n.subnets {
            let fam = family(sub);
            let _ = writeln!(
                s,
                "\t\tct status dnat {fam} saddr {sub} {fam} daddr {sub} masquerade"
            );
        }
    }
    for n in nets.iter().filter(|n| n.masquerade && !n.internal) {
        for sub in &n.subnets {
            let fam = family(sub);
            let _ = writeln!(
                s,
                "\t\t{fam} saddr {sub} oifname != \"{}\" masquerade",
                n.bridge
            );
        }
    }
    let _ = writeln!(s, "\t}}");

    let _ = writeln!(s, "\tchain forward {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook forward priority filter; policy accept;"
    );
    for n in nets.iter().filter(|n| n.internal) {
        let b = &n.bridge;
        let _ = writeln!(s, "\t\tiifname \"{b}\" oifname != \"{b}\" drop");
        let _ = writeln!(s, "\t\toifname \"{b}\" iifname != \"{b}\" drop");
    }
    let _ = writeln!(s, "\t\tct state established,related accept");
    for p in &ports {
        if let Some(rule) = forward_rule(p) {
            let _ = writeln!(s, "\t\t{rule}");
        }
    }
    for n in &nets {
        let others = set_of(
            nets.iter()
                .filter(|o| o.bridge != n.bridge)
                .map(|o| o.bridge.as_str()),
        );
        if let Some(others) = others {
            let _ = writeln!(s, "\t\tiifname \"{}\" oifname {others} drop", n.bridge);
        }
    }
    if let Some(set) = &all_bridges {
        let _ = writeln!(s, "\t\tiifname {set} accept");
    }
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "}}");
    s
}

type PortKey<'a> = (Proto, Option<IpAddr>, u16, IpAddr, u16, &'a str);

fn port_key(p: &PortRule) -> PortKey<'_> {
    (
        p.proto,
        p.host_ip,
        p.host_port,
        p.container_ip,
        p.container_port,
        p.bridge.as_str(),
    )
}

fn table_name(t: &str) -> &str {
    if t.is_empty() {
        TABLE
    } else {
        t
    }
}

/// A table name: 1–32 bytes of `[A-Za-z0-9_]`.
fn check_table(t: &str) -> Result<(), NetError> {
    let ok =
        !t.is_empty() && t.len() <= 32 && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid {
            what: "nftables table name",
            value: t.to_string(),
        })
    }
}

fn family(n: &IpNet) -> &'static str {
    match n {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// `"a"` or `{ "a", "b" }`; None for no names.
fn set_of<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let v: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    match v.len() {
        0 => None,
        1 => v.into_iter().next(),
        _ => Some(format!("{{ {} }}", v.join(", "))),
    }
}

/// The DNAT of one published port, or None when the host address's family cannot reach
/// the container's (an IPv6 host address for an IPv4 container: no NAT between families).
fn dnat_rule(p: &PortRule) -> Option<String> {
    let proto = p.proto.as_str();
    let (nfproto, fam) = match p.container_ip {
        IpAddr::V4(_) => ("ipv4", "ip"),
        IpAddr::V6(_) => ("ipv6", "ip6"),
    };
    let dest = match p.container_ip {
        IpAddr::V4(a) => format!("{a}:{}", p.container_port),
        IpAddr::V6(a) => format!("[{a}]:{}", p.container_port),
    };
    let host = match p.host_ip {
        Some(h) if h.is_ipv4() != p.container_ip.is_ipv4() => return None,
        Some(h) if !h.is_unspecified() => format!("{fam} daddr {h} "),
        _ => format!("meta nfproto {nfproto} "),
    };
    Some(format!(
        "{host}{proto} dport {} dnat {fam} to {dest}",
        p.host_port
    ))
}

/// Lets DNAT'd traffic to a published port into the container's bridge.
fn forward_rule(p: &PortRule) -> Option<String> {
    if let Some(h) = p.host_ip {
        if h.is_ipv4() != p.container_ip.is_ipv4() {
            return None;
        }
    }
    let fam = if p.container_ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    };
    Some(format!(
        "ct status dnat oifname \"{}\" {fam} daddr {} {} dport {} accept",
        p.bridge,
        p.container_ip,
        p.proto.as_str(),
        p.container_port
    ))
}

/// Refuses what could not be put into a script safely: bad table or interface names, port 0.
/// `apply` calls it; `render` leaves such entries out.
pub fn validate(rules: &Ruleset) -> Result<(), NetError> {
    check_table(table_name(&rules.table))?;
    for n in &rules.networks {
        check_ifname(&n.bridge)?;
    }
    for p in &rules.ports {
        check_ifname(&p.bridge)?;
        if p.host_port == 0 || p.container_port == 0 {
            return Err(NetError::Invalid {
                what: "published port",
                value: format!("{}:{}", p.host_port, p.container_port),
            });
        }
    }
    Ok(())
}

/// Runs `nft` with `script` on its stdin (`args` come before `-f -`; `["-c"]` only checks).
/// The child runs in the calling thread's network namespace.
pub fn run_nft(args: &[&str], script: &str) -> Result<(), NetError> {
    let bin = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nft");
    let mut child = Command::new(bin)
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Nft(format!("cannot run {bin}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means nft exited early; its status and stderr tell why.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Nft(format!("waiting for {bin}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(NetError::Nft(if msg.is_empty() {
            format!("{bin} failed: {}", out.status)
        } else {
            msg
        }))
    }
}

/// Applies `render(rules)` with `nft -f -` (one transaction).
pub fn apply(rules: &Ruleset) -> Result<(), NetError> {
    validate(rules)?;
    run_nft(&[], &render(rules))
}

/// Deletes the table `table` (empty = TABLE; missing is fine).
pub fn remove(table: &str) -> Result<(), NetError> {
    let t = table_name(table);
    check_table(t)?;
    run_nft(&[], &format!("add table inet {t}\ndelete table inet {t}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Ruleset {
        Ruleset {
            table: String::new(),
            networks: vec![
                NetworkRules {
                    bridge: "br-0123456789ab".into(),
                    subnets: vec!["172.18.0.0/16".parse().unwrap()],
                    internal: true,
                    masquerade: false,
                },
                NetworkRules {
                    bridge: "berth0".into(),
                    subnets: vec![
                        "fd00:1::/64".parse().unwrap(),
                        "172.17.0.0/16".parse().unwrap(),
                    ],
                    internal: false,
                    masquerade: true,
                },
            ],
            ports: vec![
                PortRule {
                    proto: Proto::Udp,
                    host_ip: Some("10.1.2.3".parse().unwrap()),
                    host_port: 5353,
                    container_ip: "172.17.0.3".parse().unwrap(),
                    container_port: 53,
                    bridge: "berth0".into(),
                },
                PortRule {
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    container_ip: "172.17.0.2".parse().unwrap(),
                    container_port: 80,
                    bridge: "berth0".into(),
                },
                PortRule {
                    proto: Proto::Tcp,
                    host_ip: Some("::".parse().unwrap()),
                    host_port: 8080,
                    container_ip: "fd00:1::2".parse().unwrap(),
                    container_port: 80,
                    bridge: "berth0".into(),
                },
            ],
        }
    }

    #[test]
    fn script_replaces_the_table_and_holds_every_rule() {
        let s = render(&sample());
        let lines: Vec<&str> = s.lines().map(str::trim).collect();
        assert_eq!(lines[0], "add table inet berth");
        assert_eq!(lines[1], "delete table inet berth");
        assert_eq!(lines[2], "table inet berth {");
        for want in [
            "meta nfproto ipv4 tcp dport 8080 dnat ip to 172.17.0.2:80",
            "meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd00:1::2]:80",
            "ip daddr 10.1.2.3 udp dport 5353 dnat ip to 172.17.0.3:53",
            "fib daddr type local jump published",
            "ip saddr 127.0.0.0/8 oifname { \"berth0\", \"br-0123456789ab\" } masquerade",
            "ct status dnat ip saddr 172.17.0.0/16 ip daddr 172.17.0.0/16 masquerade",
            "ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade",
            "ip6 saddr fd00:1::/64 oifname != \"berth0\" masquerade",
            "iifname \"br-0123456789ab\" oifname != \"br-0123456789ab\" drop",
            "oifname \"br-0123456789ab\" iifname != \"br-0123456789ab\" drop",
            "iifname \"berth0\" oifname \"br-0123456789ab\" drop",
            "ct status dnat oifname \"berth0\" ip daddr 172.17.0.2 tcp dport 80 accept",
            "type filter hook forward priority filter; policy accept;",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{s}");
        }
        // The internal network is never masqueraded out.
        assert!(!s.contains("172.18.0.0/16 oifname !="), "{s}");
        // Only accept policies: berth never decides for other tables.
        assert!(!s.contains("policy drop"));
    }

    #[test]
    fn render_is_deterministic() {
        let a = sample();
        let mut b = sample();
        b.networks.reverse();
        b.ports.reverse();
        b.ports.push(b.ports[0].clone());
        assert_eq!(render(&a), render(&b));
    }

    #[test]
    fn bad_names_are_refused_and_never_rendered() {
        let mut r = sample();
        r.networks[0].bridge = "x\" accept; #".into();
        assert!(matches!(validate(&r), Err(NetError::Invalid { .. })));
        assert!(!render(&r).contains("accept; #"));
        let mut r = sample();
        r.ports[0].bridge = "waytoolonginterfacename".into();
        assert!(validate(&r).is_err());
        let mut r = sample();
        r.table = "berth;flush ruleset".into();
        assert!(validate(&r).is_err());
        assert!(render(&r).starts_with("add table inet berth\n"));
        let mut r = sample();
        r.table = "berth_br1".into();
        validate(&r).unwrap();
        assert!(render(&r).contains("table inet berth_br1 {"));
    }

    #[test]
    fn family_mismatch_is_left_out() {
        let r = Ruleset {
            ports: vec![PortRule {
                proto: Proto::Tcp,
                host_ip: Some("::1".parse().unwrap()),
                host_port: 1,
                container_ip: "172.17.0.2".parse().unwrap(),
                container_port: 1,
                bridge: "berth0".into(),
            }],
            ..Ruleset::default()
        };
        assert!(!render(&r).contains("dport"));
    }

    #[test]
    fn empty_ruleset_renders() {
        let s = render(&Ruleset::default());
        assert!(s.contains("chain forward"));
        assert!(!s.contains("oifname"));
    }
}
