//! Costs on the `docker run` path, printed, not asserted (run with --nocapture):
//! netns::create, link::attach (veth + addresses + routes) and netns::remove, medians of 50,
//! inside a private "host" namespace. Needs root.

mod netkit;

use std::time::{Duration, Instant};

use berth_net::link::{self, Bridge, Endpoint};
use berth_net::netns;
use berth_net::nft::{self, NetworkRules, PortRule, Proto, Ruleset};
use netkit::Ns;

/// "min / median / p90" of the samples. On a loaded machine (2 shared cores, other builds)
/// each thread hand-off can wait for a scheduler tick (4 ms at HZ=250): the minimum is the
/// cost of the work itself, the median includes that noise.
fn median(mut v: Vec<Duration>) -> String {
    v.sort();
    if std::env::var_os("BERTH_BENCH_ALL").is_some() {
        let all: Vec<u128> = v.iter().map(|d| d.as_micros()).collect();
        println!("sorted µs: {all:?}");
    }
    format!(
        "{:?} / {:?} / {:?}",
        v[0],
        v[v.len() / 2],
        v[v.len() * 9 / 10]
    )
}

#[test]
fn cost_of_netns_and_attach() {
    const N: usize = 50;
    let host = Ns::new();
    let dir = tempfile::tempdir().unwrap();
    let br = Bridge {
        name: "berth0".into(),
        gateway4: "10.50.0.1/16".parse().unwrap(),
        gateway6: Some("fd00:50::1/64".parse().unwrap()),
        mtu: 0,
        internal: false,
    };
    let dirp = dir.path().to_path_buf();
    let (create, attach, remove, ensure) = host.run(move || {
        let t = Instant::now();
        link::ensure_bridge(&br).unwrap();
        let first = t.elapsed();
        let t = Instant::now();
        link::ensure_bridge(&br).unwrap();
        let ensure = (first, t.elapsed());
        let (mut c, mut a, mut r) = (Vec::new(), Vec::new(), Vec::new());
        let paths: Vec<_> = (0..N).map(|i| dirp.join(format!("ns{i}"))).collect();
        for p in &paths {
            let t = Instant::now();
            netns::create(p).unwrap();
            c.push(t.elapsed());
        }
        for (i, p) in paths.iter().enumerate() {
            let ep = Endpoint {
                bridge: "berth0".into(),
                host_if: format!("vbbench{i:06}"),
                ifname: "eth0".into(),
                mac: [0x02, 0x42, 10, 50, 0, i as u8 + 2],
                addr4: format!("10.50.0.{}/16", i + 2).parse().unwrap(),
                gateway4: "10.50.0.1".parse().unwrap(),
                addr6: Some(format!("fd00:50::{:x}/64", i + 2).parse().unwrap()),
                gateway6: Some("fd00:50::1".parse().unwrap()),
                default_route: true,
                route_mtu: 0,
                mtu: 0,
            };
            let t = Instant::now();
            link::attach(p, &ep).unwrap();
            a.push(t.elapsed());
        }
        for p in &paths {
            let t = Instant::now();
            netns::remove(p).unwrap();
            r.push(t.elapsed());
        }
        (median(c), median(a), median(r), ensure)
    });
    // One nft transaction per ruleset change (a `-p` container start), 20 published ports.
    let rules = Ruleset {
        table: String::new(),
        networks: vec![NetworkRules {
            bridge: "berth0".into(),
            subnets: vec!["10.50.0.0/16".parse().unwrap()],
            internal: false,
            masquerade: true,
        }],
        ports: (0..20)
            .map(|i| PortRule {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 20000 + i,
                container_ip: "10.50.0.2".parse().unwrap(),
                container_port: 80,
                bridge: "berth0".into(),
            })
            .collect(),
    };
    let apply = host.run(move || {
        let mut v = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            nft::apply(&rules).unwrap();
            v.push(t.elapsed());
        }
        median(v)
    });
    println!("berth-net costs, min / median / p90 of 20: nft::apply with 20 ports {apply}");
    println!(
        "berth-net costs, min / median / p90 of {N}: netns::create {create}; link::attach (veth, \
         v4+v6 addresses, default routes) {attach}; netns::remove {remove}; ensure_bridge \
         first {:?}, again {:?}",
        ensure.0, ensure.1
    );
}
