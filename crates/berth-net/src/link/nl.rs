//! A minimal synchronous rtnetlink client: builds the few fixed message layouts berth sends
//! (links, addresses, routes), sends them in batches and reads the acks or dump replies.
//! No netlink crate: the layouts are stable kernel ABI and this keeps the hot path free of
//! allocation-heavy generic message trees. It must never block on anything but the kernel.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

// netlink(7) / rtnetlink(7) constants (uapi linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h).
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLA_F_NESTED: u16 = 0x8000;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const IFF_UP: u32 = 0x1;

pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_MASTER: u16 = 10;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_NET_NS_FD: u16 = 28;
pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
pub const IFLA_INFO_SLAVE_KIND: u16 = 4;
pub const IFLA_INFO_SLAVE_DATA: u16 = 5;
pub const VETH_INFO_PEER: u16 = 1;
pub const IFLA_BRPORT_MODE: u16 = 4;

pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_BROADCAST: u16 = 4;
pub const IFA_FLAGS: u16 = 8;
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_PERMANENT: u32 = 0x80;

pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_METRICS: u16 = 8;
pub const RTAX_MTU: u16 = 2;
pub const RTA_TABLE: u16 = 15;
pub const RT_TABLE_MAIN: u8 = 254;
pub const RTPROT_BOOT: u8 = 3;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RTN_UNICAST: u8 = 1;

const HDR_LEN: usize = 16;

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One request under construction: the nlmsghdr, a fixed family header, attributes.
pub struct Msg {
    buf: Vec<u8>,
    /// What the request does, for error messages ("create veth vb123 in …").
    pub op: String,
}

impl Msg {
    pub fn new(ty: u16, flags: u16, op: impl Into<String>) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0u8; HDR_LEN]);
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg { buf, op: op.into() }
    }

    /// `struct ifinfomsg`.
    pub fn ifinfo(mut self, family: u8, index: i32, flags: u32, change: u32) -> Msg {
        self.ifinfo_raw(family, index, flags, change);
        self
    }

    fn ifinfo_raw(&mut self, family: u8, index: i32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[family, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    /// `struct ifaddrmsg`.
    pub fn ifaddr(mut self, family: u8, prefix: u8, scope: u8, index: u32) -> Msg {
        self.buf.extend_from_slice(&[family, prefix, 0, scope]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// `struct rtmsg` (table main, unicast).
    pub fn rtmsg(mut self, family: u8, dst_len: u8, scope: u8) -> Msg {
        self.buf.extend_from_slice(&[
            family,
            dst_len,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            scope,
            RTN_UNICAST,
        ]);
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self
    }

    pub fn attr(mut self, ty: u16, data: &[u8]) -> Msg {
        self.put_attr(ty, data);
        self
    }

    pub fn put_attr(&mut self, ty: u16, data: &[u8]) {
        // Attribute payloads here are names, addresses and small integers (≤ 16 bytes).
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub fn attr_u32(self, ty: u16, v: u32) -> Msg {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(mut self, ty: u16, s: &str) -> Msg {
        self.put_str(ty, s);
        self
    }

    pub fn put_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put_attr(ty, &v);
    }

    /// Opens a nested attribute; `end` closes it.
    pub fn begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    pub fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// An `ifinfomsg` inside a nested attribute (the veth peer).
    pub fn put_ifinfo(&mut self, family: u8, index: i32, flags: u32, change: u32) {
        self.ifinfo_raw(family, index, flags, change);
    }

    fn finish(&mut self, seq: u32) {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

/// A netlink failure: the errno with the op that failed.
#[derive(Debug)]
pub struct NlError {
    pub op: String,
    pub err: io::Error,
}

impl NlError {
    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// A route socket. It belongs to the network namespace of the thread that opened it.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE is protocol 0
        )?;
        Ok(Socket {
            fd,
            seq: 0,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Sends all `msgs` in one datagram (the kernel handles them in order) with NLM_F_ACK and
    /// waits for every ack. The first failure is returned; later requests were still tried
    /// by the kernel, so callers batch only requests that depend on each other in order.
    pub fn batch(&mut self, msgs: Vec<Msg>) -> Result<(), NlError> {
        let mut out = Vec::with_capacity(msgs.iter().map(|m| m.buf.len()).sum());
        let first = self.seq.wrapping_add(1);
        let mut ops = Vec::with_capacity(msgs.len());
        for mut m in msgs {
            self.seq = self.seq.wrapping_add(1);
            let flags = u16::from_ne_bytes([m.buf[6], m.buf[7]]) | NLM_F_ACK;
            m.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
            m.finish(self.seq);
            out.extend_from_slice(&m.buf);
            ops.push(m.op);
        }
        let opname = |i: usize| ops.get(i).cloned().unwrap_or_default();
        if ops.is_empty() {
            return Ok(());
        }
        send_all(&self.fd, &out).map_err(|err| NlError { op: opname(0), err })?;
        let mut pending = ops.len();
        let mut first_err: Option<NlError> = None;
        while pending > 0 {
            let n =
                recv_some(&self.fd, &mut self.buf).map_err(|err| NlError { op: opname(0), err })?;
            for (ty, seq, payload) in Messages::new(&self.buf[..n]) {
                let idx = seq.wrapping_sub(first) as usize;
                if idx >= ops.len() || ty != NLMSG_ERROR {
                    continue;
                }
                pending = pending.saturating_sub(1);
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if code != 0 && first_err.is_none() {
                    first_err = Some(NlError {
                        op: opname(idx),
                        err: io::Error::from_raw_os_error(-code),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn request(&mut self, msg: Msg) -> Result<(), NlError> {
        self.batch(vec![msg])
    }

    /// A request answered by one message (RTM_GETLINK by name): its payload.
    pub fn get(&mut self, mut msg: Msg) -> Result<Vec<u8>, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        msg.finish(seq);
        let op = msg.op.clone();
        send_all(&self.fd, &msg.buf).map_err(|err| NlError {
            op: op.clone(),
            err,
        })?;
        loop {
            let n = recv_some(&self.fd, &mut self.buf).map_err(|err| NlError {
                op: op.clone(),
                err,
            })?;
            for (ty, s, payload) in Messages::new(&self.buf[..n]) {
                if s != seq {
                    continue;
                }
                if ty == NLMSG_ERROR {
                    let code = payload
                        .get(0..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    return Err(NlError {
                        op,
                        err: if code == 0 {
                            io::Error::other("no answer")
                        } else {
                            io::Error::from_raw_os_error(-code)
                        },
                    });
                }
                return Ok(payload.to_vec());
            }
        }
    }

    /// A dump request: `f` sees every reply's type and payload.
    pub fn dump(&mut self, mut msg: Msg, mut f: impl FnMut(u16, &[u8])) -> Result<(), NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let flags = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) | NLM_F_DUMP;
        msg.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        msg.finish(seq);
        let op = msg.op.clone();
        send_all(&self.fd, &msg.buf).map_err(|err| NlError {
            op: op.clone(),
            err,
        })?;
        loop {
            let n = recv_some(&self.fd, &mut self.buf).map_err(|err| NlError {
                op: op.clone(),
                err,
            })?;
            for (ty, s, payload) in Messages::new(&self.buf[..n]) {
                if s != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(NlError {
                            op,
                            err: io::Error::from_raw_os_error(-code),
                        });
                    }
                    _ => f(ty, payload),
                }
            }
        }
    }
}

fn send_all(fd: &OwnedFd, buf: &[u8]) -> io::Result<()> {
    loop {
        match send(fd.as_fd(), buf, SendFlags::empty()) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn recv_some(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match recv(fd.as_fd(), &mut *buf, RecvFlags::empty()) {
            Ok((n, _)) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Iterates the netlink messages of one datagram: (type, seq, payload after the header).
pub struct Messages<'a> {
    data: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Messages { data }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u16, u32, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.data.len() < HDR_LEN {
            return None;
        }
        let d = self.data;
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        if len < HDR_LEN || len > d.len() {
            self.data = &[];
            return None;
        }
        let ty = u16::from_ne_bytes([d[4], d[5]]);
        let seq = u32::from_ne_bytes([d[8], d[9], d[10], d[11]]);
        let payload = &d[HDR_LEN..len];
        self.data = d.get(align4(len)..).unwrap_or(&[]);
        Some((ty, seq, payload))
    }
}

/// Iterates attributes: (type without flags, payload).
pub struct Attrs<'a> {
    data: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Attrs { data }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let d = self.data;
        if d.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([d[0], d[1]]) as usize;
        if len < 4 || len > d.len() {
            self.data = &[];
            return None;
        }
        let ty = u16::from_ne_bytes([d[2], d[3]]) & 0x3fff;
        let payload = &d[4..len];
        self.data = d.get(align4(len)..).unwrap_or(&[]);
        Some((ty, payload))
    }
}

/// A string attribute's value without its NUL.
pub fn attr_string(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

pub fn attr_u32(p: &[u8]) -> Option<u32> {
    p.get(0..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// What berth reads of a link.
#[derive(Debug, Default, Clone)]
pub struct LinkInfo {
    pub index: i32,
    pub flags: u32,
    pub name: String,
    pub mtu: u32,
    pub alias: String,
    pub kind: String,
    pub master: u32,
}

/// Parses an RTM_NEWLINK payload (ifinfomsg + attributes).
pub fn parse_link(p: &[u8]) -> Option<LinkInfo> {
    let hdr = p.get(0..16)?;
    let mut li = LinkInfo {
        index: i32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
        flags: u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
        ..LinkInfo::default()
    };
    for (ty, v) in Attrs::new(&p[16..]) {
        match ty {
            IFLA_IFNAME => li.name = attr_string(v),
            IFLA_MTU => li.mtu = attr_u32(v).unwrap_or(0),
            IFLA_IFALIAS => li.alias = attr_string(v),
            IFLA_MASTER => li.master = attr_u32(v).unwrap_or(0),
            IFLA_LINKINFO => {
                for (t, k) in Attrs::new(v) {
                    if t == IFLA_INFO_KIND {
                        li.kind = attr_string(k);
                    }
                }
            }
            _ => {}
        }
    }
    Some(li)
}

/// Looks a link up by name; Ok(None) when there is none.
pub fn link_by_name(sock: &mut Socket, name: &str) -> Result<Option<LinkInfo>, NlError> {
    let m = Msg::new(RTM_GETLINK, 0, format!("look up link {name}"))
        .ifinfo(AF_UNSPEC, 0, 0, 0)
        .attr_str(IFLA_IFNAME, name);
    match sock.get(m) {
        Ok(p) => Ok(parse_link(&p)),
        Err(e) if e.errno() == Some(rustix::io::Errno::NODEV.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks a link up by name with a dump filtered to links of `kind` ("bridge", "veth"): unlike
/// RTM_GETLINK for one device, a dump never runs pending link-state work synchronously
/// (linkwatch_sync_dev → dev_deactivate → synchronize_rcu_expedited), which a bridge that
/// just gained or lost carrier always has.
pub fn link_of_kind(
    sock: &mut Socket,
    name: &str,
    kind: &str,
) -> Result<Option<LinkInfo>, NlError> {
    let mut m =
        Msg::new(RTM_GETLINK, 0, format!("look up {kind} {name}")).ifinfo(AF_UNSPEC, 0, 0, 0);
    let at = m.begin(IFLA_LINKINFO);
    m.put_str(IFLA_INFO_KIND, kind);
    m.end(at);
    let mut found = None;
    sock.dump(m, |ty, p| {
        if ty != RTM_NEWLINK || found.is_some() {
            return;
        }
        if let Some(l) = parse_link(p) {
            if l.name == name {
                found = Some(l);
            }
        }
    })?;
    Ok(found)
}

/// An address of a link as the kernel reports it (RTM_NEWADDR payload).
#[derive(Debug, Clone)]
pub struct AddrInfo {
    pub family: u8,
    pub prefix: u8,
    pub scope: u8,
    pub index: u32,
    /// IFA_LOCAL for IPv4 (falls back to IFA_ADDRESS), IFA_ADDRESS for IPv6.
    pub addr: Vec<u8>,
}

pub fn parse_addr(p: &[u8]) -> Option<AddrInfo> {
    let h = p.get(0..8)?;
    let mut a = AddrInfo {
        family: h[0],
        prefix: h[1],
        scope: h[3],
        index: u32::from_ne_bytes([h[4], h[5], h[6], h[7]]),
        addr: Vec::new(),
    };
    let mut local = None;
    for (ty, v) in Attrs::new(&p[8..]) {
        match ty {
            IFA_ADDRESS => a.addr = v.to_vec(),
            IFA_LOCAL => local = Some(v.to_vec()),
            _ => {}
        }
    }
    if let Some(l) = local {
        a.addr = l;
    }
    Some(a)
}

/// A route as the kernel reports it (RTM_NEWROUTE payload).
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub family: u8,
    pub dst_len: u8,
    pub table: u32,
    pub scope: u8,
    pub dst: Vec<u8>,
}

pub fn parse_route(p: &[u8]) -> Option<RouteInfo> {
    let h = p.get(0..12)?;
    let mut r = RouteInfo {
        family: h[0],
        dst_len: h[1],
        table: u32::from(h[4]),
        scope: h[6],
        dst: Vec::new(),
    };
    for (ty, v) in Attrs::new(&p[12..]) {
        match ty {
            RTA_DST => r.dst = v.to_vec(),
            RTA_TABLE => r.table = attr_u32(v).unwrap_or(r.table),
            _ => {}
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE, "t").ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP);
        m.put_str(IFLA_IFNAME, "abcde");
        let at = m.begin(IFLA_LINKINFO);
        m.put_str(IFLA_INFO_KIND, "veth");
        m.end(at);
        m.finish(7);
        let b = &m.buf;
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        let (ty, seq, payload) = Messages::new(b).next().unwrap();
        assert_eq!((ty, seq), (RTM_NEWLINK, 7));
        let attrs: Vec<_> = Attrs::new(&payload[16..]).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attr_string(attrs[0].1), "abcde");
        assert_eq!(attrs[1].0, IFLA_LINKINFO);
        let inner: Vec<_> = Attrs::new(attrs[1].1).collect();
        assert_eq!(inner[0].0, IFLA_INFO_KIND);
        assert_eq!(attr_string(inner[0].1), "veth");
    }

    #[test]
    fn truncated_input_stops_iteration() {
        assert!(Messages::new(&[1, 2, 3]).next().is_none());
        assert!(Attrs::new(&[200, 0, 1, 0]).next().is_none());
    }
}
