//! Host port reservations: a published port is bound (not listened on) by berthd for as long
//! as it is published, so two containers or a host service cannot take the same port, and
//! `-p 80` gets a free ephemeral port from the kernel. The traffic itself never reaches these
//! sockets: the nft DNAT rules divert it in the kernel.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{
    bind, getsockname, socket_with, sockopt, AddressFamily, SocketFlags, SocketType,
};

use crate::nft::Proto;
use crate::NetError;

/// Holds the bound socket; dropping it frees the port.
#[derive(Debug)]
pub struct Reservation {
    port: u16,
    /// One socket per address family bound (two for 0.0.0.0 + [::]).
    _fds: Vec<OwnedFd>,
}

impl Reservation {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Binds `proto` on `host_ip` (None = 0.0.0.0, and [::] too when IPv6 is available, as
/// Docker publishes on both) at `port`; 0 = an ephemeral port chosen by the kernel. A port
/// in use → PortAllocated with Docker's message.
pub fn reserve(proto: Proto, host_ip: Option<IpAddr>, port: u16) -> Result<Reservation, NetError> {
    let shown = host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
    let allocated = |p: u16| NetError::PortAllocated {
        addr: shown.clone(),
        port: p,
    };
    let other = |e: Errno, ip: IpAddr, p: u16| {
        NetError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!("bind {} {}: {e}", proto.as_str(), SocketAddr::new(ip, p)),
        ))
    };
    if let Some(ip) = host_ip {
        return match bind_one(proto, ip, port) {
            Ok((fd, p)) => Ok(Reservation {
                port: p,
                _fds: vec![fd],
            }),
            Err(Errno::ADDRINUSE) => Err(allocated(port)),
            Err(e) => Err(other(e, ip, port)),
        };
    }
    // Both families on the same port. With port 0 the kernel picks the IPv4 one; if that
    // number is taken on IPv6, try another.
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    for _ in 0..16 {
        let (fd4, p) = match bind_one(proto, any4, port) {
            Ok(r) => r,
            Err(Errno::ADDRINUSE) => return Err(allocated(port)),
            Err(e) => return Err(other(e, any4, port)),
        };
        match bind_one(proto, any6, p) {
            Ok((fd6, _)) => {
                return Ok(Reservation {
                    port: p,
                    _fds: vec![fd4, fd6],
                })
            }
            // No IPv6 on this host: IPv4 only.
            Err(Errno::AFNOSUPPORT) | Err(Errno::ADDRNOTAVAIL) => {
                return Ok(Reservation {
                    port: p,
                    _fds: vec![fd4],
                })
            }
            Err(Errno::ADDRINUSE) if port == 0 => continue,
            Err(Errno::ADDRINUSE) => return Err(allocated(port)),
            Err(e) => return Err(other(e, any6, p)),
        }
    }
    Err(allocated(port))
}

/// One bound, non-listening socket without SO_REUSEADDR (so nothing else can bind the
/// port, even with SO_REUSEADDR), and the port it got.
fn bind_one(proto: Proto, ip: IpAddr, port: u16) -> Result<(OwnedFd, u16), Errno> {
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let ty = match proto {
        Proto::Tcp => SocketType::STREAM,
        Proto::Udp => SocketType::DGRAM,
    };
    let fd = socket_with(family, ty, SocketFlags::CLOEXEC, None)?;
    if ip.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    bind(&fd, &SocketAddr::new(ip, port))?;
    let got = if port == 0 {
        SocketAddr::try_from(getsockname(&fd)?)
            .map(|a| a.port())
            .map_err(|_| Errno::AFNOSUPPORT)?
    } else {
        port
    };
    Ok((fd, got))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a fresh network namespace, so the tests never hold the host's ports.
    fn isolated(f: impl FnOnce() + Send + 'static) {
        let path = std::env::temp_dir().join(format!(
            "berth-ports-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        crate::netns::create(&path).unwrap();
        let r = crate::netns::run_in(&path, f);
        crate::netns::remove(&path).unwrap();
        r.unwrap();
    }

    #[test]
    fn a_reserved_port_cannot_be_taken_twice() {
        isolated(|| {
            let lo: IpAddr = "127.0.0.1".parse().unwrap();
            let r = reserve(Proto::Tcp, Some(lo), 0).unwrap();
            assert_ne!(r.port(), 0);
            let e = reserve(Proto::Tcp, Some(lo), r.port()).unwrap_err();
            let want = format!(
                "Bind for 127.0.0.1:{} failed: port is already allocated",
                r.port()
            );
            assert_eq!(e.to_string(), want);
            // A host service with SO_REUSEADDR cannot take it either.
            assert!(std::net::TcpListener::bind(("127.0.0.1", r.port())).is_err());
            let p = r.port();
            drop(r);
            reserve(Proto::Tcp, Some(lo), p).unwrap();
        });
    }

    #[test]
    fn wildcard_reserves_both_families_and_udp_is_separate() {
        isolated(|| {
            let r = reserve(Proto::Udp, None, 0).unwrap();
            let p = r.port();
            assert!(matches!(
                reserve(Proto::Udp, None, p),
                Err(NetError::PortAllocated { .. })
            ));
            assert!(std::net::UdpSocket::bind(("127.0.0.1", p)).is_err());
            assert!(std::net::UdpSocket::bind(("::1", p)).is_err());
            // TCP on the same number is a different port.
            reserve(Proto::Tcp, None, p).unwrap();
        });
    }

    #[test]
    fn a_foreign_address_is_an_error_not_a_panic() {
        isolated(|| {
            let e = reserve(Proto::Tcp, Some("192.0.2.77".parse().unwrap()), 0).unwrap_err();
            assert!(e.to_string().contains("192.0.2.77"), "{e}");
        });
    }
}
