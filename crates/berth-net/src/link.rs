//! Links over rtnetlink: bridges, veth pairs, addresses, routes and the few sysctls they
//! need. Synchronous netlink sockets; a socket opened inside a container's namespace (via
//! `netns::run_in`) configures that namespace from any thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::NetError;

pub(crate) mod nl;

use nl::{Msg, Socket};

/// The alias berth gives the bridges it makes, so that cleanup never touches another
/// engine's `br-…` bridges (Docker names its bridges the same way).
pub const BRIDGE_ALIAS: &str = "berth";

/// A bridge network's kernel side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Interface name: "berth0" for the default network, "br-<first 12 hex of the id>"
    /// for user networks (≤ 15 bytes).
    pub name: String,
    /// The gateway address with the subnet's prefix length (172.17.0.1/16).
    pub gateway4: Ipv4Net,
    /// The IPv6 gateway with its prefix (networks made with --ipv6), added with NODAD.
    pub gateway6: Option<Ipv6Net>,
    /// 0 = default (1500).
    pub mtu: u32,
    /// Internal networks get no IP forwarding out (the nft ruleset drops it); the bridge
    /// itself is the same.
    pub internal: bool,
}

/// Creates the bridge if missing (or fixes it if it exists: addresses, up), sets
/// route_localnet=1 on it (published ports on 127.0.0.1), net.ipv4.ip_forward=1 (and IPv6
/// forwarding when gateway6 is set). Idempotent and cheap when everything is in place.
pub fn ensure_bridge(b: &Bridge) -> Result<(), NetError> {
    check_ifname(&b.name)?;
    let mut s = open_socket()?;
    // The common case (the bridge exists) is one filtered dump, see nl::link_of_kind.
    let link = match nl::link_of_kind(&mut s, &b.name, "bridge").map_err(nl_err)? {
        Some(l) => l,
        None => create_bridge(&mut s, b)?,
    };
    if b.gateway6.is_some() {
        sysctl(
            &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", b.name),
            "0",
        )?;
    }
    set_addresses(&mut s, &b.name, link.index as u32, b.gateway4, b.gateway6)?;
    let want_up = link.flags & nl::IFF_UP == 0;
    let want_mtu = b.mtu != 0 && link.mtu != b.mtu;
    let want_alias = link.alias != BRIDGE_ALIAS;
    if want_up || want_mtu || want_alias {
        let mut m = Msg::new(nl::RTM_NEWLINK, 0, format!("set up bridge {}", b.name)).ifinfo(
            nl::AF_UNSPEC,
            link.index,
            nl::IFF_UP,
            nl::IFF_UP,
        );
        if want_mtu {
            m = m.attr_u32(nl::IFLA_MTU, b.mtu);
        }
        if want_alias {
            m = m.attr_str(nl::IFLA_IFALIAS, BRIDGE_ALIAS);
        }
        s.request(m).map_err(nl_err)?;
    }
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", b.name),
        "1",
    )?;
    sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    if b.gateway6.is_some() {
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

fn create_bridge(s: &mut Socket, b: &Bridge) -> Result<nl::LinkInfo, NetError> {
    // A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and the gateway's
    // MAC changes under the containers' ARP caches as they come and go.
    let mut mac = [0u8; 6];
    fill_random(&mut mac);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    let mut m = Msg::new(
        nl::RTM_NEWLINK,
        nl::NLM_F_CREATE | nl::NLM_F_EXCL,
        format!("create bridge {}", b.name),
    )
    .ifinfo(nl::AF_UNSPEC, 0, 0, 0)
    .attr_str(nl::IFLA_IFNAME, &b.name)
    .attr(nl::IFLA_ADDRESS, &mac);
    if b.mtu != 0 {
        m = m.attr_u32(nl::IFLA_MTU, b.mtu);
    }
    let at = m.begin(nl::IFLA_LINKINFO);
    m.put_str(nl::IFLA_INFO_KIND, "bridge");
    m.end(at);
    match s.request(m) {
        Ok(()) => {}
        // Another interface of that name, or a bridge made meanwhile.
        Err(e) if e.errno() == Some(EEXIST) => {}
        Err(e) => return Err(nl_err(e)),
    }
    match nl::link_by_name(s, &b.name).map_err(nl_err)? {
        Some(l) if l.kind == "bridge" => Ok(l),
        Some(_) => Err(NetError::Invalid {
            what: "bridge",
            value: format!(
                "{}: an interface of that name exists and is not a bridge",
                b.name
            ),
        }),
        None => Err(NetError::Netlink {
            op: format!("create bridge {}", b.name),
            source: io::Error::from_raw_os_error(ENODEV),
        }),
    }
}

/// Makes the bridge's global addresses exactly the gateways (stale ones from an earlier
/// subnet go; IPv6 link-local addresses stay).
fn set_addresses(
    s: &mut Socket,
    name: &str,
    index: u32,
    gw4: Ipv4Net,
    gw6: Option<Ipv6Net>,
) -> Result<(), NetError> {
    let mut have = Vec::new();
    let m = Msg::new(nl::RTM_GETADDR, 0, format!("list addresses of {name}")).ifaddr(
        nl::AF_UNSPEC,
        0,
        0,
        index,
    );
    s.dump(m, |_, p| {
        if let Some(a) = nl::parse_addr(p) {
            if a.index == index {
                have.push(a);
            }
        }
    })
    .map_err(nl_err)?;
    let mut has4 = false;
    let mut has6 = false;
    let mut msgs = Vec::new();
    for a in &have {
        let (keep, is_ours) = match (a.family, to_ip(&a.addr)) {
            (nl::AF_INET, Some(IpAddr::V4(ip))) => {
                let ours = ip == gw4.addr() && a.prefix == gw4.prefix_len();
                has4 |= ours;
                (ours, true)
            }
            (nl::AF_INET6, Some(IpAddr::V6(ip))) if a.scope == nl::RT_SCOPE_UNIVERSE => {
                let ours = gw6.is_some_and(|g| g.addr() == ip && g.prefix_len() == a.prefix);
                has6 |= ours;
                (ours, true)
            }
            _ => (true, false),
        };
        if is_ours && !keep {
            msgs.push(
                Msg::new(
                    nl::RTM_DELADDR,
                    0,
                    format!("remove a stale address of {name}"),
                )
                .ifaddr(a.family, a.prefix, a.scope, index)
                .attr(nl::IFA_ADDRESS, &a.addr)
                .attr(nl::IFA_LOCAL, &a.addr),
            );
        }
    }
    if !has4 {
        msgs.push(addr4_msg(name, index, gw4));
    }
    if let (false, Some(g)) = (has6, gw6) {
        msgs.push(addr6_msg(name, index, g));
    }
    batch_ignoring_exists(s, msgs)
}

fn addr4_msg(name: &str, index: u32, a: Ipv4Net) -> Msg {
    let mut m = Msg::new(
        nl::RTM_NEWADDR,
        nl::NLM_F_CREATE | nl::NLM_F_EXCL,
        format!("add address {a} to {name}"),
    )
    .ifaddr(nl::AF_INET, a.prefix_len(), nl::RT_SCOPE_UNIVERSE, index)
    .attr(nl::IFA_LOCAL, &a.addr().octets())
    .attr(nl::IFA_ADDRESS, &a.addr().octets());
    if a.prefix_len() < 31 {
        m = m.attr(nl::IFA_BROADCAST, &a.broadcast().octets());
    }
    m
}

fn addr6_msg(name: &str, index: u32, a: Ipv6Net) -> Msg {
    Msg::new(
        nl::RTM_NEWADDR,
        nl::NLM_F_CREATE | nl::NLM_F_EXCL,
        format!("add address {a} to {name}"),
    )
    .ifaddr(nl::AF_INET6, a.prefix_len(), nl::RT_SCOPE_UNIVERSE, index)
    .attr(nl::IFA_ADDRESS, &a.addr().octets())
    .attr_u32(nl::IFA_FLAGS, nl::IFA_F_NODAD | nl::IFA_F_PERMANENT)
}

fn batch_ignoring_exists(s: &mut Socket, msgs: Vec<Msg>) -> Result<(), NetError> {
    if msgs.is_empty() {
        return Ok(());
    }
    match s.batch(msgs) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(EEXIST) => Ok(()),
        Err(e) => Err(nl_err(e)),
    }
}

/// Deletes a bridge by name; a missing one is not an error.
pub fn remove_bridge(name: &str) -> Result<(), NetError> {
    check_ifname(name)?;
    delete_link(name, "bridge")
}

fn delete_link(name: &str, what: &str) -> Result<(), NetError> {
    let mut s = open_socket()?;
    let m = Msg::new(nl::RTM_DELLINK, 0, format!("delete {what} {name}"))
        .ifinfo(nl::AF_UNSPEC, 0, 0, 0)
        .attr_str(nl::IFLA_IFNAME, name);
    match s.request(m) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(ENODEV) => Ok(()),
        Err(e) => Err(nl_err(e)),
    }
}

/// Names of bridges in the host namespace whose names start with "br-" or equal "berth0"
/// and that berth made (cleanup of bridges whose network no longer exists).
pub fn list_bridges() -> Result<Vec<String>, NetError> {
    let mut s = open_socket()?;
    let mut out = Vec::new();
    let m = Msg::new(nl::RTM_GETLINK, 0, "list links").ifinfo(nl::AF_UNSPEC, 0, 0, 0);
    s.dump(m, |ty, p| {
        if ty != nl::RTM_NEWLINK {
            return;
        }
        if let Some(l) = nl::parse_link(p) {
            if l.kind == "bridge"
                && l.alias == BRIDGE_ALIAS
                && (l.name.starts_with("br-") || l.name == "berth0")
            {
                out.push(l.name);
            }
        }
    })
    .map_err(nl_err)?;
    out.sort();
    Ok(out)
}

/// One container's attachment to one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub bridge: String,
    /// Host-side veth name ("vb" + 10 hex + index digit, ≤ 15 bytes); the engine picks it and
    /// stores it, so that disconnect and cleanup can find it.
    pub host_if: String,
    /// Name inside the container: "eth0", "eth1", …
    pub ifname: String,
    pub mac: [u8; 6],
    /// Address with the subnet's prefix length.
    pub addr4: Ipv4Net,
    pub gateway4: Ipv4Addr,
    pub addr6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    /// Only one endpoint of a container carries the default routes.
    pub default_route: bool,
    pub mtu: u32,
    /// The MTU of the default routes (RTAX_MTU), 0 = the link's. A network with a jumbo MTU
    /// inside (65520: ~97 % of loopback instead of ~65 % at 1500) keeps 1500 for what leaves
    /// the host.
    pub route_mtu: u32,
}

/// RTA_METRICS holding one RTAX_MTU.
fn mtu_metrics(mtu: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(8);
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&nl::RTAX_MTU.to_ne_bytes());
    m.extend_from_slice(&mtu.to_ne_bytes());
    m
}

/// Creates the veth pair with its peer directly in the namespace at `netns`, renames the
/// peer to `ifname`, sets its MAC, addresses (IPv6 with NODAD) and brings it up, adds the
/// default routes via the gateways when `default_route`; attaches the host side to the
/// bridge with hairpin mode on and brings it up. On any error it removes what it made.
pub fn attach(netns: &Path, ep: &Endpoint) -> Result<(), NetError> {
    check_ifname(&ep.bridge)?;
    check_ifname(&ep.host_if)?;
    check_ifname(&ep.ifname)?;
    let ns = std::fs::File::open(netns).map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })?;
    let mut host = open_socket()?;
    let br = nl::link_of_kind(&mut host, &ep.bridge, "bridge")
        .map_err(nl_err)?
        .ok_or_else(|| NetError::Netlink {
            op: format!("find bridge {}", ep.bridge),
            source: io::Error::from_raw_os_error(ENODEV),
        })?;
    // The container side's socket: opened on a thread that joined the namespace.
    let mut ctr = crate::netns::run_in(netns, Socket::open)?.map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })?;

    // One request makes both ends: the host side enslaved to the bridge and up, the peer
    // born in the container's namespace with its final name, MAC and MTU.
    let mut m = Msg::new(
        nl::RTM_NEWLINK,
        nl::NLM_F_CREATE | nl::NLM_F_EXCL,
        format!(
            "create veth {} ({} in {})",
            ep.host_if,
            ep.ifname,
            netns.display()
        ),
    )
    .ifinfo(nl::AF_UNSPEC, 0, nl::IFF_UP, nl::IFF_UP)
    .attr_str(nl::IFLA_IFNAME, &ep.host_if)
    .attr_u32(nl::IFLA_MASTER, br.index as u32);
    if ep.mtu != 0 {
        m = m.attr_u32(nl::IFLA_MTU, ep.mtu);
    }
    let li = m.begin(nl::IFLA_LINKINFO);
    m.put_str(nl::IFLA_INFO_KIND, "veth");
    let data = m.begin(nl::IFLA_INFO_DATA);
    let peer = m.begin(nl::VETH_INFO_PEER);
    // Not up yet: the kernel opens the peer before it is linked to its twin (ENOTCONN).
    m.put_ifinfo(nl::AF_UNSPEC, 0, 0, 0);
    m.put_str(nl::IFLA_IFNAME, &ep.ifname);
    m.put_attr(nl::IFLA_ADDRESS, &ep.mac);
    if ep.mtu != 0 {
        m.put_attr(nl::IFLA_MTU, &ep.mtu.to_ne_bytes());
    }
    m.put_attr(nl::IFLA_NET_NS_FD, &(ns.as_raw_fd() as u32).to_ne_bytes());
    m.end(peer);
    m.end(data);
    m.end(li);
    // Hairpin: a container reaching its own published port is DNAT'd back out the port
    // it came in through.
    let mut hp = Msg::new(
        nl::RTM_NEWLINK,
        0,
        format!("set hairpin mode on {}", ep.host_if),
    )
    .ifinfo(nl::AF_UNSPEC, 0, 0, 0)
    .attr_str(nl::IFLA_IFNAME, &ep.host_if);
    let li = hp.begin(nl::IFLA_LINKINFO);
    hp.put_str(nl::IFLA_INFO_SLAVE_KIND, "bridge");
    let sd = hp.begin(nl::IFLA_INFO_SLAVE_DATA);
    hp.put_attr(nl::IFLA_BRPORT_MODE, &[1]);
    hp.end(sd);
    hp.end(li);
    match host.batch(vec![m, hp]) {
        Ok(()) => {}
        Err(e) => {
            // The create may have worked and the hairpin failed.
            if e.errno() != Some(EEXIST) {
                let _ = delete_link(&ep.host_if, "veth");
            }
            return Err(nl_err(e));
        }
    }
    drop(ns);
    let r = configure_peer(&mut ctr, ep);
    if r.is_err() {
        let _ = delete_link(&ep.host_if, "veth");
    }
    r
}

/// Up, addresses and default routes of the container side, in one batch.
fn configure_peer(s: &mut Socket, ep: &Endpoint) -> Result<(), NetError> {
    let link = nl::link_of_kind(s, &ep.ifname, "veth")
        .map_err(nl_err)?
        .ok_or_else(|| NetError::Netlink {
            op: format!("find {} in the container's namespace", ep.ifname),
            source: io::Error::from_raw_os_error(ENODEV),
        })?;
    let index = link.index as u32;
    let up = Msg::new(nl::RTM_NEWLINK, 0, format!("set {} up", ep.ifname)).ifinfo(
        nl::AF_UNSPEC,
        link.index,
        nl::IFF_UP,
        nl::IFF_UP,
    );
    let mut msgs = vec![up, addr4_msg(&ep.ifname, index, ep.addr4)];
    if let Some(a6) = ep.addr6 {
        msgs.push(addr6_msg(&ep.ifname, index, a6));
    }
    if ep.default_route {
        msgs.push(
            Msg::new(
                nl::RTM_NEWROUTE,
                nl::NLM_F_CREATE | nl::NLM_F_EXCL,
                format!("add default route via {} on {}", ep.gateway4, ep.ifname),
            )
            .rtmsg(nl::AF_INET, 0, nl::RT_SCOPE_UNIVERSE)
            .attr(nl::RTA_GATEWAY, &ep.gateway4.octets())
            .attr_u32(nl::RTA_OIF, index),
        );
        if ep.route_mtu != 0 {
            if let Some(m) = msgs.pop() {
                msgs.push(m.attr(nl::RTA_METRICS, &mtu_metrics(ep.route_mtu)));
            }
        }
        if let (Some(_), Some(g6)) = (ep.addr6, ep.gateway6) {
            msgs.push(
                Msg::new(
                    nl::RTM_NEWROUTE,
                    nl::NLM_F_CREATE | nl::NLM_F_EXCL,
                    format!("add default route via {g6} on {}", ep.ifname),
                )
                .rtmsg(nl::AF_INET6, 0, nl::RT_SCOPE_UNIVERSE)
                .attr(nl::RTA_GATEWAY, &g6.octets())
                .attr_u32(nl::RTA_OIF, index),
            );
            if ep.route_mtu != 0 {
                if let Some(m) = msgs.pop() {
                    msgs.push(m.attr(nl::RTA_METRICS, &mtu_metrics(ep.route_mtu)));
                }
            }
        }
    }
    s.batch(msgs).map_err(nl_err)
}

/// Removes the endpoint's veth (by its host-side name); missing is not an error. Used by
/// `network disconnect`; a stopping container's veths go with its namespace instead.
pub fn detach(host_if: &str) -> Result<(), NetError> {
    check_ifname(host_if)?;
    delete_link(host_if, "veth")
}

/// An interface name the kernel accepts and that is safe to put in an nft script:
/// 1–15 bytes of `[A-Za-z0-9_.-]`, not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid {
            what: "interface name",
            value: name.to_string(),
        })
    }
}

/// The destinations of the main routing table of the caller's namespace for one family,
/// without default routes and host-scope routes (IPAM's overlap check).
pub(crate) fn main_routes(v6: bool) -> Result<Vec<IpNet>, NetError> {
    let mut s = open_socket()?;
    let family = if v6 { nl::AF_INET6 } else { nl::AF_INET };
    let m = Msg::new(nl::RTM_GETROUTE, 0, "list routes").rtmsg(family, 0, 0);
    let mut out = Vec::new();
    s.dump(m, |ty, p| {
        if ty != nl::RTM_NEWROUTE {
            return;
        }
        let Some(r) = nl::parse_route(p) else { return };
        if r.table != u32::from(nl::RT_TABLE_MAIN)
            || r.dst_len == 0
            || r.scope == nl::RT_SCOPE_HOST
            || r.family != family
        {
            return;
        }
        let net = match to_ip(&r.dst) {
            Some(ip) => IpNet::new(ip, r.dst_len).ok(),
            None => None,
        };
        if let Some(n) = net {
            out.push(n.trunc());
        }
    })
    .map_err(nl_err)?;
    Ok(out)
}

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

fn open_socket() -> Result<Socket, NetError> {
    Socket::open().map_err(|source| NetError::Netlink {
        op: "open a netlink socket".into(),
        source,
    })
}

fn nl_err(e: nl::NlError) -> NetError {
    NetError::Netlink {
        op: e.op,
        source: e.err,
    }
}

fn to_ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// Writes a sysctl only when it differs (the common case is a read).
fn sysctl(path: &str, value: &str) -> Result<(), NetError> {
    let ctx = |e: io::Error| NetError::Io(io::Error::new(e.kind(), format!("{path}: {e}")));
    let cur = std::fs::read_to_string(path).map_err(ctx)?;
    if cur.trim() == value {
        return Ok(());
    }
    std::fs::write(path, value).map_err(ctx)
}

/// Random bytes from the kernel; a per-process keyed hash as a fallback (MACs and ULA
/// prefixes only need to be unlikely to collide).
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Ok(n) = rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()) {
        if n == buf.len() {
            return;
        }
    }
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let v = h.finish().to_ne_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}
