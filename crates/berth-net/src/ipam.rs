//! IP address management: subnets for new networks that avoid the host's routes and the
//! other networks, and addresses inside a subnet. Pure data; the engine persists nothing
//! here: it rebuilds pools from its records at start (`mark`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::NetError;

/// The addresses of one subnet of a network. The network address, the broadcast address
/// (IPv4) and the gateway are never handed out.
#[derive(Debug, Clone)]
pub struct Pool {
    subnet: IpNet,
    gateway: IpAddr,
    /// The subnet's first address as a number (IPv4 in the low 32 bits).
    base: u128,
    /// The highest offset in the subnet (size - 1).
    last_offset: u128,
    /// Offsets dynamic allocation hands out from: [lo, hi].
    lo: u128,
    hi: u128,
    /// Offsets handed out or marked (never the reserved ones).
    used: BTreeSet<u128>,
    /// The offset handed out last by a dynamic allocation.
    cursor: Option<u128>,
}

impl Pool {
    /// `range` (Docker's --ip-range) narrows where dynamic addresses come from; static ones
    /// (`allocate(Some(ip))`) may be anywhere in the subnet.
    pub fn new(subnet: IpNet, gateway: IpAddr, range: Option<IpNet>) -> Result<Pool, NetError> {
        let subnet = subnet.trunc();
        if !subnet.contains(&gateway) {
            return Err(NetError::OutOfSubnet {
                addr: gateway,
                subnet: subnet.to_string(),
            });
        }
        let base = to_u128(subnet.network());
        let host_bits = u32::from(subnet.max_prefix_len() - subnet.prefix_len());
        let last_offset = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let (lo, hi) = match range {
            None => (0, last_offset),
            Some(r) => {
                let r = r.trunc();
                if !subnet.contains(&r) {
                    return Err(NetError::Invalid {
                        what: "ip range",
                        value: format!("{r} is not inside subnet {subnet}"),
                    });
                }
                let rb = to_u128(r.network()) - base;
                let rbits = u32::from(r.max_prefix_len() - r.prefix_len());
                let rlen = if rbits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << rbits) - 1
                };
                (rb, rb.saturating_add(rlen))
            }
        };
        Ok(Pool {
            subnet,
            gateway,
            base,
            last_offset,
            lo,
            hi,
            used: BTreeSet::new(),
            cursor: None,
        })
    }

    /// The offsets never handed out: network address (and broadcast for IPv4) when the
    /// subnet is large enough to have them, and the gateway.
    fn reserved(&self, off: u128) -> bool {
        let v4 = self.subnet.max_prefix_len() == 32;
        let small = self.last_offset < 3;
        (off == 0 && !small)
            || (v4 && !small && off == self.last_offset)
            || self.base.wrapping_add(off) == to_u128(self.gateway)
    }

    fn offset(&self, ip: IpAddr) -> Option<u128> {
        if self.subnet.contains(&ip) {
            Some(to_u128(ip) - self.base)
        } else {
            None
        }
    }

    fn addr(&self, off: u128) -> IpAddr {
        from_u128(self.base + off, self.subnet.max_prefix_len() == 32)
    }

    /// The lowest free offset in [from, to], if any. Steps over used offsets with the
    /// ordered set, so the cost is bounded by the number of used addresses.
    fn free_in(&self, from: u128, to: u128) -> Option<u128> {
        if from > to {
            return None;
        }
        let mut c = from;
        let mut used = self.used.range(from..=to).peekable();
        loop {
            while used.peek().is_some_and(|&&u| u < c) {
                used.next();
            }
            let taken = used.peek().is_some_and(|&&u| u == c) || self.reserved(c);
            if !taken {
                return Some(c);
            }
            if c >= to {
                return None;
            }
            c += 1;
        }
    }
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }
    /// `Some(ip)`: that address (OutOfSubnet / AddressInUse errors); `None`: the lowest free
    /// address after the last one handed out (wrapping), as Docker does, so a released
    /// address is not reused at once. `name` is the network's name for the error message.
    pub fn allocate(&mut self, want: Option<IpAddr>, name: &str) -> Result<IpAddr, NetError> {
        if let Some(ip) = want {
            let off = self.offset(ip).ok_or_else(|| NetError::OutOfSubnet {
                addr: ip,
                subnet: self.subnet.to_string(),
            })?;
            if self.reserved(off) || !self.used.insert(off) {
                return Err(NetError::AddressInUse(ip));
            }
            return Ok(ip);
        }
        let start = match self.cursor {
            Some(c) if c >= self.lo && c < self.hi => c + 1,
            _ => self.lo,
        };
        let found = self
            .free_in(start, self.hi)
            .or_else(|| self.free_in(self.lo, start.saturating_sub(1).max(self.lo)));
        match found {
            Some(off) => {
                self.used.insert(off);
                self.cursor = Some(off);
                Ok(self.addr(off))
            }
            None => Err(NetError::PoolExhausted(name.to_string())),
        }
    }
    /// Marks an address used (rebuilding after a restart). Idempotent.
    pub fn mark(&mut self, ip: IpAddr) {
        if let Some(off) = self.offset(ip) {
            if !self.reserved(off) {
                self.used.insert(off);
            }
        }
    }
    /// Frees an address. Idempotent; addresses outside the subnet are ignored.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(off) = self.offset(ip) {
            self.used.remove(&off);
        }
    }
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// The first of Docker's default IPv4 pools (172.17.0.0/16 … 172.31.0.0/16, then
/// 192.168.0.0/20 … 192.168.240.0/20) that overlaps neither `taken` (other networks'
/// subnets) nor any route in the host's main routing table (read over netlink).
pub fn pick_subnet4(taken: &[IpNet]) -> Result<IpNet, NetError> {
    let routes = crate::link::main_routes(false)?;
    default_pools4()
        .find(|c| !overlaps_any(*c, taken) && !overlaps_any(*c, &routes))
        .ok_or(NetError::NoSubnet)
}

/// Docker's default address pools, in order.
fn default_pools4() -> impl Iterator<Item = IpNet> {
    let first = (17u8..=31).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let second = (0u8..=15).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    first.chain(second).filter_map(|n| n.ok()).map(IpNet::V4)
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlaps_any(a: IpNet, list: &[IpNet]) -> bool {
    list.iter().any(|b| overlaps(a, *b))
}

/// A unique-local IPv6 /64 for a `--ipv6` network created without an IPv6 subnet:
/// fdXX:XXXX:XXXX:XXXX::/64 with random bits, not overlapping `taken`.
pub fn pick_subnet6(taken: &[IpNet]) -> IpNet {
    let mut net = ula64();
    for _ in 0..64 {
        if !overlaps_any(net, taken) {
            break;
        }
        net = ula64();
    }
    net
}

fn ula64() -> IpNet {
    let mut b = [0u8; 16];
    crate::link::fill_random(&mut b[1..8]);
    b[0] = 0xfd;
    b[8..].fill(0);
    let net = Ipv6Net::new(Ipv6Addr::from(b), 64).unwrap_or_default();
    IpNet::V6(net)
}

/// True if `subnet` overlaps any of `taken` or a route of the host's main table (the engine
/// refuses such a --subnet with SubnetOverlap).
pub fn overlaps_host(subnet: IpNet, taken: &[IpNet]) -> Result<bool, NetError> {
    let subnet = subnet.trunc();
    if overlaps_any(subnet, taken) {
        return Ok(true);
    }
    let routes = crate::link::main_routes(matches!(subnet, IpNet::V6(_)))?;
    Ok(overlaps_any(subnet, &routes))
}

/// The first usable address of a subnet (Docker's default gateway).
pub fn first_host(subnet: IpNet) -> IpAddr {
    let subnet = subnet.trunc();
    let v4 = subnet.max_prefix_len() == 32;
    let n = to_u128(subnet.network());
    if subnet.max_prefix_len() - subnet.prefix_len() <= 1 {
        return subnet.network();
    }
    from_u128(n + 1, v4)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// A random locally administered unicast MAC (Docker ≥ 26 randomises: no stale ARP entries
/// when an address is reused), formatted "02:xx:xx:xx:xx:xx".
pub fn random_mac() -> String {
    let mut b = [0u8; 6];
    crate::link::fill_random(&mut b[1..]);
    b[0] = 0x02;
    format_mac(&b)
}

/// "02:42:ac:11:00:02".
pub fn format_mac(b: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// Parses "aa:bb:cc:dd:ee:ff" (any case); refuses multicast and all-zero addresses.
pub fn parse_mac(s: &str) -> Result<[u8; 6], NetError> {
    let bad = || NetError::Invalid {
        what: "mac address",
        value: s.to_string(),
    };
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() || out[0] & 1 == 1 || out == [0u8; 6] {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn dynamic_allocation_skips_network_gateway_and_broadcast() {
        let mut p = Pool::new(net("10.0.0.0/29"), ip("10.0.0.1"), None).unwrap();
        let got: Vec<IpAddr> = (0..5).map(|_| p.allocate(None, "n").unwrap()).collect();
        let want: Vec<IpAddr> = (2..=6).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        assert_eq!(got, want);
        assert_eq!(p.in_use(), 5);
        let e = p.allocate(None, "mynet").unwrap_err();
        assert!(
            matches!(e, NetError::PoolExhausted(ref n) if n == "mynet"),
            "{e}"
        );
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let mut p = Pool::new(net("172.17.0.0/16"), ip("172.17.0.1"), None).unwrap();
        let a = p.allocate(None, "n").unwrap();
        let b = p.allocate(None, "n").unwrap();
        assert_eq!((a, b), (ip("172.17.0.2"), ip("172.17.0.3")));
        p.release(a);
        assert_eq!(p.allocate(None, "n").unwrap(), ip("172.17.0.4"));
        p.release(a); // idempotent
        p.release(ip("10.1.1.1")); // outside: ignored
        assert_eq!(p.in_use(), 2);
    }

    #[test]
    fn allocation_wraps_to_freed_addresses() {
        let mut p = Pool::new(net("10.0.0.0/29"), ip("10.0.0.1"), None).unwrap();
        for _ in 0..5 {
            p.allocate(None, "n").unwrap();
        }
        p.release(ip("10.0.0.3"));
        assert_eq!(p.allocate(None, "n").unwrap(), ip("10.0.0.3"));
    }

    #[test]
    fn static_addresses() {
        let mut p = Pool::new(net("10.0.0.0/24"), ip("10.0.0.1"), None).unwrap();
        assert_eq!(
            p.allocate(Some(ip("10.0.0.50")), "n").unwrap(),
            ip("10.0.0.50")
        );
        assert!(matches!(
            p.allocate(Some(ip("10.0.0.50")), "n"),
            Err(NetError::AddressInUse(_))
        ));
        assert!(matches!(
            p.allocate(Some(ip("10.0.0.1")), "n"),
            Err(NetError::AddressInUse(_))
        ));
        assert!(matches!(
            p.allocate(Some(ip("10.0.1.5")), "n"),
            Err(NetError::OutOfSubnet { .. })
        ));
        assert!(matches!(
            p.allocate(Some(ip("fd00::5")), "n"),
            Err(NetError::OutOfSubnet { .. })
        ));
        let e = p.allocate(Some(ip("10.0.1.5")), "n").unwrap_err();
        assert_eq!(e.kind(), berth_types::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("10.0.0.0/24"), "{e}");
    }

    #[test]
    fn mark_rebuilds_and_is_idempotent() {
        let mut p = Pool::new(net("10.0.0.0/24"), ip("10.0.0.1"), None).unwrap();
        p.mark(ip("10.0.0.2"));
        p.mark(ip("10.0.0.2"));
        p.mark(ip("10.0.0.1")); // the gateway is never counted
        p.mark(ip("192.168.1.1"));
        assert_eq!(p.in_use(), 1);
        assert_eq!(p.allocate(None, "n").unwrap(), ip("10.0.0.3"));
    }

    #[test]
    fn ip_range_narrows_dynamic_allocation_only() {
        let mut p =
            Pool::new(net("10.0.0.0/16"), ip("10.0.0.1"), Some(net("10.0.5.0/30"))).unwrap();
        let got: Vec<IpAddr> = (0..4).map(|_| p.allocate(None, "n").unwrap()).collect();
        assert_eq!(got[0], ip("10.0.5.0"));
        assert_eq!(got[3], ip("10.0.5.3"));
        assert!(p.allocate(None, "n").is_err());
        assert!(p.allocate(Some(ip("10.0.9.9")), "n").is_ok());
        assert!(Pool::new(net("10.0.0.0/16"), ip("10.0.0.1"), Some(net("10.1.0.0/24"))).is_err());
        assert!(Pool::new(net("10.0.0.0/16"), ip("10.9.0.1"), None).is_err());
    }

    #[test]
    fn ipv6_pool() {
        let mut p = Pool::new(net("fd00:1::/64"), ip("fd00:1::1"), None).unwrap();
        assert_eq!(p.allocate(None, "n").unwrap(), ip("fd00:1::2"));
        assert_eq!(p.allocate(None, "n").unwrap(), ip("fd00:1::3"));
        assert_eq!(
            p.allocate(Some(ip("fd00:1::ffff:ffff:ffff:ffff")), "n")
                .unwrap(),
            ip("fd00:1::ffff:ffff:ffff:ffff")
        );
        assert_eq!(p.subnet(), net("fd00:1::/64"));
        assert_eq!(p.gateway(), ip("fd00:1::1"));
    }

    #[test]
    fn tiny_subnets() {
        let mut p = Pool::new(net("10.0.0.0/31"), ip("10.0.0.0"), None).unwrap();
        assert_eq!(p.allocate(None, "n").unwrap(), ip("10.0.0.1"));
        assert!(p.allocate(None, "n").is_err());
    }

    #[test]
    fn first_hosts() {
        assert_eq!(first_host(net("172.17.0.0/16")), ip("172.17.0.1"));
        assert_eq!(first_host(net("172.17.3.9/16")), ip("172.17.0.1"));
        assert_eq!(first_host(net("fd00::/64")), ip("fd00::1"));
    }

    #[test]
    fn default_pools_in_docker_order() {
        let all: Vec<IpNet> = default_pools4().collect();
        assert_eq!(all.len(), 15 + 16);
        assert_eq!(all[0], net("172.17.0.0/16"));
        assert_eq!(all[14], net("172.31.0.0/16"));
        assert_eq!(all[15], net("192.168.0.0/20"));
        assert_eq!(all[30], net("192.168.240.0/20"));
    }

    #[test]
    fn overlap_rules() {
        assert!(overlaps(net("10.0.0.0/8"), net("10.1.0.0/16")));
        assert!(overlaps(net("10.1.0.0/16"), net("10.0.0.0/8")));
        assert!(!overlaps(net("10.1.0.0/16"), net("10.2.0.0/16")));
        assert!(!overlaps(net("10.0.0.0/8"), net("fd00::/8")));
    }

    #[test]
    fn subnet6_is_a_random_ula_64() {
        let a = pick_subnet6(&[]);
        let b = pick_subnet6(&[a]);
        assert_eq!(a.prefix_len(), 64);
        assert!(matches!(a, IpNet::V6(n) if n.addr().octets()[0] == 0xfd));
        assert_ne!(a, b);
    }

    #[test]
    fn macs() {
        let m = random_mac();
        assert!(m.starts_with("02:") && m.len() == 17, "{m}");
        let b = parse_mac(&m).unwrap();
        assert_eq!(format_mac(&b), m);
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        for bad in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:0:02",
            "02:42:ac:11:+0:02",
            "zz:42:ac:11:00:02",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
