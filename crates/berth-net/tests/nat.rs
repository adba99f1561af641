//! The nft ruleset on a real kernel: checked by `nft -c`, applied and removed, and published
//! ports working end to end — all inside private network namespaces (see netkit). Needs
//! root and nftables.

mod netkit;

use std::net::SocketAddr;

use berth_net::link::{self, Bridge, Endpoint};
use berth_net::nft::{self, NetworkRules, PortRule, Proto, Ruleset};
use netkit::{blocked, fetch, serve, Ns};

fn sample() -> Ruleset {
    Ruleset {
        table: String::new(),
        networks: vec![
            NetworkRules {
                bridge: "berth0".into(),
                subnets: vec![
                    "172.17.0.0/16".parse().unwrap(),
                    "fd00:17::/64".parse().unwrap(),
                ],
                internal: false,
                masquerade: true,
            },
            NetworkRules {
                bridge: "br-0123456789ab".into(),
                subnets: vec!["172.18.0.0/16".parse().unwrap()],
                internal: true,
                masquerade: false,
            },
            NetworkRules {
                bridge: "br-ba9876543210".into(),
                subnets: vec!["172.19.0.0/16".parse().unwrap()],
                internal: false,
                masquerade: true,
            },
        ],
        ports: vec![
            PortRule {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                container_ip: "172.17.0.2".parse().unwrap(),
                container_port: 80,
                bridge: "berth0".into(),
            },
            PortRule {
                proto: Proto::Udp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 5353,
                container_ip: "172.19.0.2".parse().unwrap(),
                container_port: 53,
                bridge: "br-ba9876543210".into(),
            },
            PortRule {
                proto: Proto::Tcp,
                host_ip: Some("::".parse().unwrap()),
                host_port: 8080,
                container_ip: "fd00:17::2".parse().unwrap(),
                container_port: 80,
                bridge: "berth0".into(),
            },
            PortRule {
                proto: Proto::Tcp,
                host_ip: Some("0.0.0.0".parse().unwrap()),
                host_port: 9000,
                container_ip: "172.17.0.3".parse().unwrap(),
                container_port: 9000,
                bridge: "berth0".into(),
            },
        ],
    }
}

#[test]
fn nft_accepts_the_rendered_script() {
    let ns = Ns::new();
    for rules in [sample(), Ruleset::default()] {
        let script = nft::render(&rules);
        ns.run(move || nft::run_nft(&["-c"], &script))
            .unwrap_or_else(|e| panic!("{e}\n{}", nft::render(&rules)));
    }
}

#[test]
fn apply_replaces_and_remove_deletes_the_table() {
    let ns = Ns::new();
    ns.run(|| nft::apply(&sample())).unwrap();
    let (ok, out) = ns.sh("nft list table inet berth");
    assert!(ok, "{out}");
    assert!(out.contains("dnat ip to 172.17.0.2:80"), "{out}");
    // A second apply replaces the table instead of adding to it.
    let mut smaller = sample();
    smaller.ports.truncate(1);
    ns.run(move || nft::apply(&smaller)).unwrap();
    let (_, out) = ns.sh("nft list table inet berth");
    assert_eq!(out.matches("dnat ip to").count(), 1, "{out}");
    // Another table of the same kind (a second daemon) lives beside it.
    let mut other = sample();
    other.table = "berth_br1".into();
    ns.run(move || nft::apply(&other)).unwrap();
    let (_, out) = ns.sh("nft list tables");
    assert!(
        out.contains("table inet berth\n") && out.contains("table inet berth_br1"),
        "{out}"
    );
    ns.run(|| nft::remove("")).unwrap();
    ns.run(|| nft::remove("")).unwrap();
    ns.run(|| nft::remove("berth_br1")).unwrap();
    let (_, out) = ns.sh("nft list tables");
    assert!(!out.contains("berth"), "{out}");
    // Invalid input is refused before nft runs.
    let mut bad = sample();
    bad.networks[0].bridge = "a b".into();
    assert!(ns.run(move || nft::apply(&bad)).is_err());
    assert!(ns.run(|| nft::remove("x;y")).is_err());
}

#[test]
fn other_tables_keep_their_policy() {
    let ns = Ns::new();
    let (ok, out) = ns.sh(
        "nft add table inet host && nft 'add chain inet host hostfw { type filter hook forward priority 0; policy drop; }'",
    );
    assert!(ok, "{out}");
    ns.run(|| nft::apply(&sample())).unwrap();
    let (_, out) = ns.sh("nft list table inet host");
    assert!(out.contains("policy drop"), "{out}");
}

/// The "host" is a private namespace with a bridge; the "container" a second one attached
/// to it with a listener on port 80, published on host port 18080.
#[test]
fn published_port_reaches_the_container() {
    let host = Ns::new();
    let ctr = Ns::new();
    let br = Bridge {
        name: "berth0".into(),
        gateway4: "10.77.0.1/24".parse().unwrap(),
        gateway6: None,
        mtu: 0,
        internal: false,
    };
    host.run(move || link::ensure_bridge(&br)).unwrap();
    let ep = Endpoint {
        bridge: "berth0".into(),
        host_if: "vbnat000000010".into(),
        ifname: "eth0".into(),
        mac: [0x02, 0x42, 10, 77, 0, 2],
        addr4: "10.77.0.2/24".parse().unwrap(),
        gateway4: "10.77.0.1".parse().unwrap(),
        addr6: None,
        gateway6: None,
        default_route: true,
        route_mtu: 0,
        mtu: 0,
    };
    let path = ctr.path.clone();
    host.run(move || link::attach(&path, &ep)).unwrap();
    serve(&ctr, "0.0.0.0:80", "hello from the container");
    let rules = Ruleset {
        table: String::new(),
        networks: vec![NetworkRules {
            bridge: "berth0".into(),
            subnets: vec!["10.77.0.0/24".parse().unwrap()],
            internal: false,
            masquerade: true,
        }],
        ports: vec![PortRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 18080,
            container_ip: "10.77.0.2".parse().unwrap(),
            container_port: 80,
            bridge: "berth0".into(),
        }],
    };
    host.run(move || nft::apply(&rules)).unwrap();
    let to = |a: &str| SocketAddr::new(a.parse().unwrap(), 18080);
    // Loopback publishing (output chain + route_localnet + masquerade of 127.0.0.0/8).
    assert_eq!(
        fetch(&host, to("127.0.0.1")).unwrap(),
        "hello from the container"
    );
    // Through a local address of the host.
    assert_eq!(
        fetch(&host, to("10.77.0.1")).unwrap(),
        "hello from the container"
    );
    // Hairpin: the container reaches its own published port through the host.
    assert_eq!(
        fetch(&ctr, to("10.77.0.1")).unwrap(),
        "hello from the container"
    );
    // Without the rules the port is closed.
    host.run(|| nft::remove("")).unwrap();
    assert!(fetch(&host, to("127.0.0.1")).is_err());
}

fn net_with_member(host: &Ns, bridge: &str, third: u8, internal: bool, host_if: &str) -> Ns {
    let ctr = Ns::new();
    let br = Bridge {
        name: bridge.into(),
        gateway4: format!("10.{third}.0.1/24").parse().unwrap(),
        gateway6: None,
        mtu: 0,
        internal,
    };
    host.run(move || link::ensure_bridge(&br)).unwrap();
    let ep = Endpoint {
        bridge: bridge.into(),
        host_if: host_if.into(),
        ifname: "eth0".into(),
        mac: [0x02, 0x42, 10, third, 0, 2],
        addr4: format!("10.{third}.0.2/24").parse().unwrap(),
        gateway4: format!("10.{third}.0.1").parse().unwrap(),
        addr6: None,
        gateway6: None,
        default_route: true,
        route_mtu: 0,
        mtu: 0,
    };
    let path = ctr.path.clone();
    host.run(move || link::attach(&path, &ep)).unwrap();
    ctr
}

#[test]
fn networks_are_isolated_and_internal_ones_closed() {
    let host = Ns::new();
    let a = net_with_member(&host, "br-aaaaaaaaaaaa", 61, false, "vbiso00000001");
    let b = net_with_member(&host, "br-bbbbbbbbbbbb", 62, false, "vbiso00000002");
    let i = net_with_member(&host, "br-iiiiiiiiiiii", 63, true, "vbiso00000003");
    let sa = serve(&a, "0.0.0.0:0", "a");
    let sb = serve(&b, "0.0.0.0:0", "b");
    let si = serve(&i, "0.0.0.0:0", "i");
    let at = |n: u8, p: u16| SocketAddr::new(format!("10.{n}.0.2").parse().unwrap(), p);
    // Routed between bridges before berth's rules exist.
    assert_eq!(fetch(&a, at(62, sb.port())).unwrap(), "b");
    let nets = |br: &str, n: u8, internal: bool| NetworkRules {
        bridge: br.into(),
        subnets: vec![format!("10.{n}.0.0/24").parse().unwrap()],
        internal,
        masquerade: !internal,
    };
    let rules = Ruleset {
        table: String::new(),
        networks: vec![
            nets("br-aaaaaaaaaaaa", 61, false),
            nets("br-bbbbbbbbbbbb", 62, false),
            nets("br-iiiiiiiiiiii", 63, true),
        ],
        ports: vec![PortRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 18081,
            container_ip: "10.62.0.2".parse().unwrap(),
            container_port: sb.port(),
            bridge: "br-bbbbbbbbbbbb".into(),
        }],
    };
    host.run(move || nft::apply(&rules)).unwrap();
    assert!(blocked(&a, at(62, sb.port())), "a reached b");
    assert!(blocked(&b, at(61, sa.port())), "b reached a");
    assert!(blocked(&a, at(63, si.port())), "a reached internal");
    assert!(blocked(&i, at(61, sa.port())), "internal reached a");
    // A published port is reachable from another network through the host's address.
    let published = SocketAddr::new("10.61.0.1".parse().unwrap(), 18081);
    assert_eq!(fetch(&a, published).unwrap(), "b");
    // The host itself still reaches every member.
    assert_eq!(fetch(&host, at(63, si.port())).unwrap(), "i");
}
