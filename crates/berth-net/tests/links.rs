//! netns, bridges, veths and IPAM's route reading on real kernel objects, each test in its
//! own private network namespaces (see netkit). Needs root.

mod netkit;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use berth_net::link::{self, Bridge, Endpoint};
use berth_net::{ipam, netns, NetError};
use netkit::{fetch, serve, Ns};

fn bridge(name: &str, gw4: &str, gw6: Option<&str>) -> Bridge {
    Bridge {
        name: name.into(),
        gateway4: gw4.parse().unwrap(),
        gateway6: gw6.map(|g| g.parse().unwrap()),
        mtu: 0,
        internal: false,
    }
}

fn endpoint(br: &str, host_if: &str, a4: &str, gw4: &str, a6: Option<(&str, &str)>) -> Endpoint {
    Endpoint {
        bridge: br.into(),
        host_if: host_if.into(),
        ifname: "eth0".into(),
        mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        addr4: a4.parse().unwrap(),
        gateway4: gw4.parse().unwrap(),
        addr6: a6.map(|(a, _)| a.parse().unwrap()),
        gateway6: a6.map(|(_, g)| g.parse().unwrap()),
        default_route: true,
        route_mtu: 0,
        mtu: 0,
    }
}

#[test]
fn netns_create_remove_and_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/ns1");
    netns::create(&path).unwrap();
    assert!(path.exists());
    assert_eq!(
        netns::list(&dir.path().join("sub/dir")),
        vec!["ns1".to_string()]
    );
    // An existing file is an error, and leaves the existing namespace alone.
    assert!(matches!(netns::create(&path), Err(NetError::Netns { .. })));
    // lo is up: a loopback connection works inside.
    let ns = |p: &std::path::Path| {
        netns::run_in(p, || {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            std::net::TcpStream::connect(l.local_addr()?)?;
            Ok::<_, std::io::Error>(())
        })
    };
    ns(&path).unwrap().unwrap();
    // It is a different namespace: a port bound inside is free outside.
    let inside = netns::run_in(&path, || {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .unwrap();
    let port = inside.local_addr().unwrap().port();
    drop(std::net::TcpListener::bind(("127.0.0.1", port)));
    netns::remove(&path).unwrap();
    assert!(!path.exists());
    netns::remove(&path).unwrap();
    netns::create(&path).unwrap();
    ns(&path).unwrap().unwrap();
    netns::remove(&path).unwrap();
}

#[test]
fn run_in_a_missing_namespace_is_an_error() {
    let r = netns::run_in(std::path::Path::new("/nonexistent/berth/ns"), || ());
    assert!(matches!(r, Err(NetError::Netns { .. })));
}

#[test]
fn bridge_attach_traffic_hairpin_detach() {
    let host = Ns::new();
    let ctr = Ns::new();
    let br = bridge("br-test0000001", "10.88.0.1/24", Some("fd00:88::1/64"));
    let b2 = br.clone();
    host.run(move || {
        link::ensure_bridge(&b2)?;
        // Idempotent, and cheap the second time.
        link::ensure_bridge(&b2)
    })
    .unwrap();
    let (ok, out) = host.sh("ip -d addr show br-test0000001");
    assert!(ok, "{out}");
    assert!(out.contains("inet 10.88.0.1/24"), "{out}");
    assert!(out.contains("inet6 fd00:88::1/64"), "{out}");
    assert!(out.contains("state UP") || out.contains(",UP"), "{out}");
    assert!(out.contains("alias berth"), "{out}");
    let (_, fw) = host.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/br-test0000001/route_localnet /proc/sys/net/ipv6/conf/all/forwarding");
    assert_eq!(fw.split_whitespace().collect::<Vec<_>>(), ["1", "1", "1"]);
    assert_eq!(
        host.run(link::list_bridges).unwrap(),
        vec!["br-test0000001".to_string()]
    );

    let ep = endpoint(
        "br-test0000001",
        "vbtest00000010",
        "10.88.0.2/24",
        "10.88.0.1",
        Some(("fd00:88::2/64", "fd00:88::1")),
    );
    let path = ctr.path.clone();
    let e2 = ep.clone();
    host.run(move || link::attach(&path, &e2)).unwrap();

    let (ok, out) = ctr.sh("ip addr show eth0; ip route; ip -6 route");
    assert!(ok, "{out}");
    assert!(out.contains("link/ether 02:42:ac:11:00:02"), "{out}");
    assert!(out.contains("inet 10.88.0.2/24 brd 10.88.0.255"), "{out}");
    assert!(out.contains("inet6 fd00:88::2/64"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("fd00:88::2/64") && !l.contains("tentative")),
        "{out}"
    );
    assert!(out.contains("default via 10.88.0.1 dev eth0"), "{out}");
    assert!(out.contains("default via fd00:88::1 dev eth0"), "{out}");
    let (ok, out) = host.sh("ip -d link show vbtest00000010");
    assert!(ok, "{out}");
    assert!(out.contains("master br-test0000001"), "{out}");
    assert!(out.contains("hairpin on"), "{out}");

    // Traffic both ways, IPv4 and IPv6.
    let srv = serve(&ctr, "0.0.0.0:0", "from-ctr");
    let to_ctr = SocketAddr::new("10.88.0.2".parse().unwrap(), srv.port());
    assert_eq!(fetch(&host, to_ctr).unwrap(), "from-ctr");
    let srv6 = serve(&ctr, "[::]:0", "from-ctr6");
    let to_ctr6 = SocketAddr::new("fd00:88::2".parse().unwrap(), srv6.port());
    assert_eq!(fetch(&host, to_ctr6).unwrap(), "from-ctr6");
    let gw = serve(&host, "10.88.0.1:0", "from-gw");
    assert_eq!(fetch(&ctr, gw).unwrap(), "from-gw");

    // A second endpoint with the same name is refused and leaves the first alone.
    let path = ctr.path.clone();
    let e3 = ep.clone();
    assert!(host.run(move || link::attach(&path, &e3)).is_err());
    assert_eq!(fetch(&host, to_ctr).unwrap(), "from-ctr");

    host.run(|| link::detach("vbtest00000010")).unwrap();
    host.run(|| link::detach("vbtest00000010")).unwrap();
    let (ok, _) = host.sh("ip link show vbtest00000010");
    assert!(!ok);
    let (ok, _) = ctr.sh("ip link show eth0");
    assert!(!ok);

    host.run(|| link::remove_bridge("br-test0000001")).unwrap();
    host.run(|| link::remove_bridge("br-test0000001")).unwrap();
    assert!(host.run(link::list_bridges).unwrap().is_empty());
}

#[test]
fn attach_errors_leave_nothing_behind() {
    let host = Ns::new();
    let ctr = Ns::new();
    let path = ctr.path.clone();
    // No such bridge.
    let ep = endpoint(
        "br-missing0001",
        "vbtest00000020",
        "10.89.0.2/24",
        "10.89.0.1",
        None,
    );
    let e = host.run(move || link::attach(&path, &ep)).unwrap_err();
    assert!(e.to_string().contains("br-missing0001"), "{e}");
    // A gateway the container cannot reach: the route fails after the veth exists.
    let b = bridge("br-test0000002", "10.89.0.1/24", None);
    host.run(move || link::ensure_bridge(&b)).unwrap();
    let ep = endpoint(
        "br-test0000002",
        "vbtest00000021",
        "10.89.0.2/24",
        "10.99.9.9",
        None,
    );
    let path = ctr.path.clone();
    assert!(host.run(move || link::attach(&path, &ep)).is_err());
    let (ok, _) = host.sh("ip link show vbtest00000021");
    assert!(!ok, "the veth was left behind");
    // Bad names are refused before anything is made.
    let mut ep = endpoint("br-test0000002", "vb\"x", "10.89.0.2/24", "10.89.0.1", None);
    let path = ctr.path.clone();
    let bad = ep.clone();
    assert!(matches!(
        host.run(move || link::attach(&path, &bad)),
        Err(NetError::Invalid { .. })
    ));
    ep.host_if = "way-too-long-name".into();
    assert!(link::check_ifname(&ep.host_if).is_err());
    // A missing namespace file.
    let ep = endpoint(
        "br-test0000002",
        "vbtest00000022",
        "10.89.0.2/24",
        "10.89.0.1",
        None,
    );
    let e = host
        .run(move || link::attach(std::path::Path::new("/nonexistent/ns"), &ep))
        .unwrap_err();
    assert!(matches!(e, NetError::Netns { .. }), "{e}");
}

#[test]
fn ensure_bridge_fixes_an_existing_one() {
    let host = Ns::new();
    let (ok, out) = host.sh(
        "ip link add br-test0000003 type bridge && ip addr add 10.70.0.1/24 dev br-test0000003",
    );
    assert!(ok, "{out}");
    // Not berth's (no alias) until ensure_bridge adopts it.
    assert!(host.run(link::list_bridges).unwrap().is_empty());
    let b = bridge("br-test0000003", "10.71.0.1/16", None);
    let b2 = b.clone();
    host.run(move || link::ensure_bridge(&b2)).unwrap();
    let (_, out) = host.sh("ip addr show br-test0000003");
    assert!(out.contains("inet 10.71.0.1/16"), "{out}");
    assert!(!out.contains("10.70.0.1"), "stale address kept: {out}");
    assert!(out.contains(",UP"), "{out}");
    // A non-bridge of that name is refused.
    let (ok, out) = host.sh("ip link add br-test0000004 type veth peer name vbtestpeer");
    assert!(ok, "{out}");
    let mut b = b;
    b.name = "br-test0000004".into();
    assert!(matches!(
        host.run(move || link::ensure_bridge(&b)),
        Err(NetError::Invalid { .. })
    ));
}

#[test]
fn bridge_mtu() {
    let host = Ns::new();
    let mut b = bridge("br-test0000005", "10.72.0.1/24", None);
    b.mtu = 1400;
    host.run(move || link::ensure_bridge(&b)).unwrap();
    let (_, out) = host.sh("ip link show br-test0000005");
    assert!(out.contains("mtu 1400"), "{out}");
}

#[test]
fn host_routes_shape_subnet_choice() {
    let host = Ns::new();
    let b = bridge("berth0", "172.17.0.1/16", None);
    host.run(move || link::ensure_bridge(&b)).unwrap();
    let taken: Vec<ipnet::IpNet> = vec!["172.18.0.0/16".parse().unwrap()];
    let t2 = taken.clone();
    let got = host.run(move || ipam::pick_subnet4(&t2)).unwrap();
    assert_eq!(got, "172.19.0.0/16".parse::<ipnet::IpNet>().unwrap());
    let over = host
        .run(|| ipam::overlaps_host("172.17.5.0/24".parse().unwrap(), &[]))
        .unwrap();
    assert!(over);
    let free = host
        .run(|| ipam::overlaps_host("10.5.0.0/16".parse().unwrap(), &[]))
        .unwrap();
    assert!(!free);
    let t3 = taken.clone();
    let taken_hit = host
        .run(move || ipam::overlaps_host("172.18.3.0/24".parse().unwrap(), &t3))
        .unwrap();
    assert!(taken_hit);
    // Every default pool taken → NoSubnet.
    let all: Vec<ipnet::IpNet> = vec![
        "172.16.0.0/12".parse().unwrap(),
        "192.168.0.0/16".parse().unwrap(),
    ];
    let e = host.run(move || ipam::pick_subnet4(&all)).unwrap_err();
    assert!(matches!(e, NetError::NoSubnet));
    let _ = IpAddr::V4(Ipv4Addr::LOCALHOST);
}

#[test]
fn wildcard_port_reservations_inside_a_namespace() {
    use berth_net::nft::Proto;
    use berth_net::ports;
    let ns = Ns::new();
    ns.run(|| {
        let r = ports::reserve(Proto::Tcp, None, 0).unwrap();
        let p = r.port();
        assert!(matches!(
            ports::reserve(Proto::Tcp, None, p),
            Err(NetError::PortAllocated { .. })
        ));
        // Both families are held.
        assert!(std::net::TcpListener::bind(("0.0.0.0", p)).is_err());
        assert!(std::net::TcpListener::bind(("::", p)).is_err());
        let u = ports::reserve(Proto::Udp, None, p).unwrap();
        assert_eq!(u.port(), p);
        assert!(std::net::UdpSocket::bind(("127.0.0.1", p)).is_err());
        drop(r);
        let _host_service = std::net::TcpListener::bind(("0.0.0.0", p)).unwrap();
        let e = ports::reserve(Proto::Tcp, None, p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Bind for 0.0.0.0:{p} failed: port is already allocated")
        );
    });
}
