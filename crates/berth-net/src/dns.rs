//! The embedded DNS server of user-defined networks: one UDP and one TCP socket per network
//! on its gateway address, port 53, answering A/AAAA (and PTR) for the names of that
//! network's containers (name, aliases, short id) and forwarding everything else to the
//! upstream resolvers. Queries from outside the network's subnets are refused, so networks
//! stay isolated. Runs on the caller's tokio runtime.
//!
//! It must never panic on a packet (malformed queries are dropped, or close their TCP
//! connection), never answer or forward for clients outside the network's subnets, never
//! forward a name it knows locally (a container's name does not leak to the upstreams), and
//! never let one network's work grow without bound (forwarded queries and TCP connections
//! are capped per network; beyond the cap, queries are dropped and the client retries).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::NetError;

/// The TTL of local answers, Docker's.
pub const TTL: u32 = 600;
/// The port the servers listen on.
pub const PORT: u16 = 53;
/// How long one upstream may take to answer one query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight per network; beyond, queries are dropped.
pub const MAX_FORWARDS: usize = 256;
/// Open TCP connections per network; beyond, new connections are closed.
pub const MAX_TCP_CONNECTIONS: usize = 128;
/// An idle TCP connection (or one that stalls mid-message) is closed after this.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest UDP query read (EDNS clients advertise at most a few KiB of payload; a
/// query is tiny).
const UDP_QUERY_BUF: usize = 4096;
/// The EDNS payload size this server advertises and honours for its own UDP answers
/// (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Shared by all networks; cheap to clone.
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: Vec<SocketAddr>,
    networks: Mutex<HashMap<String, Network>>,
}

/// One network: its records, and its server while it is served.
struct Network {
    table: Arc<RwLock<Table>>,
    server: Option<Server>,
}

/// The tasks of one network's server. Dropping it aborts them; the sockets close when the
/// runtime drops the aborted tasks (which own them, and every forwarding or connection task
/// they spawned, through their `JoinSet`s).
struct Server {
    listen: IpAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The names of one network, by owner (container id). A `BTreeMap` so that answers list
/// addresses in a stable order.
#[derive(Default)]
struct Table {
    owners: BTreeMap<String, Endpoint>,
}

struct Endpoint {
    /// As given, without a trailing dot; matched case-insensitively.
    names: Vec<String>,
    addrs: Vec<IpAddr>,
}

impl Table {
    /// The addresses of every owner of `name` (already without its trailing dot), without
    /// duplicates; `None` if no owner has that name.
    fn addrs(&self, name: &str) -> Option<Vec<IpAddr>> {
        let mut found = false;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for endpoint in self.owners.values() {
            if endpoint.names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                found = true;
                for addr in &endpoint.addrs {
                    if !addrs.contains(addr) {
                        addrs.push(*addr);
                    }
                }
            }
        }
        found.then_some(addrs)
    }

    /// The first name of the (first) owner of `addr`.
    fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.owners
            .values()
            .filter(|e| e.addrs.contains(&addr))
            .find_map(|e| e.names.first())
            .map(String::as_str)
    }

    fn has_addr(&self, addr: IpAddr) -> bool {
        self.owners.values().any(|e| e.addrs.contains(&addr))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

fn trim_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

impl Dns {
    /// `upstreams`: where other names go (berthd: its --dns flags, else the host's
    /// /etc/resolv.conf nameservers, port 53). Tried in order, 2 s each.
    pub fn new(upstreams: Vec<SocketAddr>) -> Dns {
        Dns {
            inner: Arc::new(Inner {
                upstreams,
                networks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts answering for `network` (its id) on `listen`:53 for clients in `subnets`.
    /// Must be called from within a tokio runtime. Serving a network twice replaces the
    /// first server.
    pub fn serve(
        &self,
        network: &str,
        listen: IpAddr,
        subnets: Vec<ipnet::IpNet>,
    ) -> Result<(), NetError> {
        let addr = SocketAddr::new(listen, PORT);
        let err = |source: io::Error| NetError::Dns {
            addr: addr.to_string(),
            source,
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| err(io::Error::other(format!("not within a tokio runtime: {e}"))))?;
        let _entered = runtime.enter();

        let mut networks = lock(&self.inner.networks);
        let udp = bind(addr, Type::DGRAM, Protocol::UDP)
            .and_then(|s| UdpSocket::from_std(s.into()))
            .map_err(err)?;
        let tcp = bind(addr, Type::STREAM, Protocol::TCP)
            .and_then(|s| {
                s.listen(128)?;
                TcpListener::from_std(s.into())
            })
            .map_err(err)?;

        let net = networks
            .entry(network.to_owned())
            .or_insert_with(|| Network {
                table: Arc::default(),
                server: None,
            });
        let ctx = Arc::new(Ctx {
            table: Arc::clone(&net.table),
            all: Arc::downgrade(&self.inner),
            subnets,
            // Never forward to ourselves: a loop would only end in timeouts.
            upstreams: self
                .inner
                .upstreams
                .iter()
                .copied()
                .filter(|u| *u != addr)
                .collect(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        });
        let tasks = vec![
            runtime.spawn(serve_udp(Arc::new(udp), Arc::clone(&ctx))),
            runtime.spawn(serve_tcp(tcp, ctx)),
        ];
        // The old server (if any) is dropped here, which aborts it.
        net.server = Some(Server { listen, tasks });
        Ok(())
    }

    /// Stops the network's server and forgets its records.
    pub fn stop(&self, network: &str) {
        let removed = lock(&self.inner.networks).remove(network);
        drop(removed);
    }

    /// Sets the names of one endpoint (`owner`: the container id) on `network` (the engine
    /// passes name, aliases, short id, and "name.<network name>"). Names are matched
    /// case-insensitively, with or without a trailing dot. Replaces what `owner` had.
    pub fn set(&self, network: &str, owner: &str, names: Vec<String>, addrs: Vec<IpAddr>) {
        let names: Vec<String> = names
            .iter()
            .map(|n| trim_dot(n.trim()))
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let table = {
            let mut networks = lock(&self.inner.networks);
            let net = networks
                .entry(network.to_owned())
                .or_insert_with(|| Network {
                    table: Arc::default(),
                    server: None,
                });
            Arc::clone(&net.table)
        };
        write(&table)
            .owners
            .insert(owner.to_owned(), Endpoint { names, addrs });
    }

    /// Forgets `owner`'s names on `network`.
    pub fn remove(&self, network: &str, owner: &str) {
        let table = lock(&self.inner.networks)
            .get(network)
            .map(|n| Arc::clone(&n.table));
        if let Some(table) = table {
            write(&table).owners.remove(owner);
        }
    }

    /// What a query for `name` on `network` answers locally (tests and `berth network
    /// inspect` diagnostics).
    pub fn lookup(&self, network: &str, name: &str) -> Vec<IpAddr> {
        let table = lock(&self.inner.networks)
            .get(network)
            .map(|n| Arc::clone(&n.table));
        table
            .and_then(|t| read(&t).addrs(trim_dot(name.trim())))
            .unwrap_or_default()
    }

    /// The address `network` is served on, if it is.
    pub fn listen_addr(&self, network: &str) -> Option<IpAddr> {
        lock(&self.inner.networks)
            .get(network)
            .and_then(|n| n.server.as_ref())
            .map(|s| s.listen)
    }
}

/// A non-blocking socket bound to `addr` even before the address exists (the bridge's
/// gateway address may appear a moment later), and re-bindable while a replaced server's
/// aborted tasks are still being dropped.
fn bind(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// What one server needs to answer.
struct Ctx {
    table: Arc<RwLock<Table>>,
    /// Every network's records (weak: the servers must not keep the `Dns` alive): a
    /// container on several networks resolves the names of all of them, as with Docker.
    all: std::sync::Weak<Inner>,
    subnets: Vec<ipnet::IpNet>,
    upstreams: Vec<SocketAddr>,
    forwards: Arc<Semaphore>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// What to do with one received packet.
#[derive(Debug)]
enum Reply {
    /// Send these bytes back.
    Send(Vec<u8>),
    /// Forward the raw query upstream; the parsed query is kept to build a SERVFAIL.
    Forward(Box<Message>),
    /// Say nothing (UDP) or close the connection (TCP).
    Drop,
}

impl Ctx {
    fn allowed(&self, src: IpAddr) -> bool {
        let src = src.to_canonical();
        self.subnets.iter().any(|n| n.contains(&src))
    }

    fn handle(&self, src: IpAddr, packet: &[u8], transport: Transport) -> Reply {
        let Ok(req) = Message::from_vec(packet) else {
            return Reply::Drop;
        };
        if req.metadata.message_type != MessageType::Query {
            return Reply::Drop;
        }
        if !self.allowed(src) {
            return respond(&req, ResponseCode::Refused, Vec::new(), transport);
        }
        if req.metadata.op_code != OpCode::Query {
            return respond(&req, ResponseCode::NotImp, Vec::new(), transport);
        }
        let [query] = req.queries.as_slice() else {
            return respond(&req, ResponseCode::FormErr, Vec::new(), transport);
        };
        if query.query_class() != DNSClass::IN {
            return Reply::Forward(Box::new(req));
        }
        if let Some(answers) = local_answer(&read(&self.table), query.name(), query.query_type()) {
            return respond(&req, ResponseCode::NoError, answers, transport);
        }
        match self.answer_from_other_networks(src, query.name(), query.query_type()) {
            Some(answers) => respond(&req, ResponseCode::NoError, answers, transport),
            None => Reply::Forward(Box::new(req)),
        }
    }

    /// The answer from the other networks the asking container (found by its address on
    /// this network) is attached to.
    fn answer_from_other_networks(
        &self,
        src: IpAddr,
        qname: &Name,
        qtype: RecordType,
    ) -> Option<Vec<Record>> {
        let src = src.to_canonical();
        let owners: Vec<String> = read(&self.table)
            .owners
            .iter()
            .filter(|(_, e)| e.addrs.contains(&src))
            .map(|(o, _)| o.clone())
            .collect();
        if owners.is_empty() {
            return None;
        }
        let inner = self.all.upgrade()?;
        let tables: Vec<Arc<RwLock<Table>>> = lock(&inner.networks)
            .values()
            .map(|n| Arc::clone(&n.table))
            .filter(|t| !Arc::ptr_eq(t, &self.table))
            .collect();
        tables.iter().find_map(|t| {
            let t = read(t);
            if !owners.iter().any(|o| t.owners.contains_key(o)) {
                return None;
            }
            local_answer(&t, qname, qtype)
        })
    }

    /// The first upstream's answer to `packet` (sent as is, so the answer carries the
    /// client's id), or `None` if none answered in time.
    async fn forward(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let id = packet.get(..2)?;
        for upstream in &self.upstreams {
            let exchange = async {
                match transport {
                    Transport::Udp => exchange_udp(*upstream, packet, id).await,
                    Transport::Tcp => exchange_tcp(*upstream, packet, id).await,
                }
            };
            if let Ok(Ok(answer)) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
                return Some(answer);
            }
        }
        None
    }
}

/// The local answer records for one question, `None` if the name is not ours (forward it).
/// A name of ours without an address of the asked type answers NOERROR with no records.
fn local_answer(table: &Table, qname: &Name, qtype: RecordType) -> Option<Vec<Record>> {
    let labels = labels(qname)?;
    if qtype == RecordType::PTR {
        let addr = reverse_addr(&labels)?;
        if !table.has_addr(addr) {
            return None;
        }
        let target = table
            .name_of(addr)
            .and_then(|n| Name::from_ascii(format!("{n}.")).ok());
        return Some(
            target
                .map(|t| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(t))))
                .into_iter()
                .collect(),
        );
    }
    let addrs = table.addrs(&labels.join("."))?;
    let records = addrs
        .into_iter()
        .filter_map(|addr| match (qtype, addr) {
            (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(qname.clone(), TTL, rdata))
        .collect();
    Some(records)
}

/// The labels of a name as lowercase text; `None` for a name no container can have (a
/// label that is not printable ASCII or contains a dot).
fn labels(name: &Name) -> Option<Vec<String>> {
    name.iter()
        .map(|label| {
            let ok = label.iter().all(|b| b.is_ascii_graphic() && *b != b'.');
            ok.then(|| String::from_utf8_lossy(label).to_ascii_lowercase())
        })
        .collect()
}

/// The address of a reverse name: `4.3.2.1.in-addr.arpa` or 32 nibbles + `ip6.arpa`.
fn reverse_addr(labels: &[String]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, in_addr, arpa] if in_addr == "in-addr" && arpa == "arpa" => {
            let octet = |s: &str| -> Option<u8> {
                if s.is_empty() || s.len() > 3 || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            };
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(a)?,
                octet(b)?,
                octet(c)?,
                octet(d)?,
            )))
        }
        [nibbles @ .., ip6, arpa] if ip6 == "ip6" && arpa == "arpa" && nibbles.len() == 32 => {
            let mut value: u128 = 0;
            for nibble in nibbles.iter().rev() {
                let [c] = nibble.as_bytes() else {
                    return None;
                };
                let digit = char::from(*c).to_digit(16)?;
                value = (value << 4) | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// The encoded response to `req`; over UDP, cut to the client's payload size (TC set) if
/// it does not fit.
fn respond(
    req: &Message,
    rcode: ResponseCode,
    answers: Vec<Record>,
    transport: Transport,
) -> Reply {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata = Metadata::response_from_request(&req.metadata);
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = rcode;
    resp.queries = req.queries.clone();
    resp.answers = answers;
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        resp.edns = Some(edns);
    }
    let Ok(bytes) = resp.to_vec() else {
        return Reply::Drop;
    };
    let limit = match transport {
        Transport::Udp => usize::from(req.max_payload().min(EDNS_PAYLOAD)),
        Transport::Tcp => usize::from(u16::MAX),
    };
    if bytes.len() <= limit {
        return Reply::Send(bytes);
    }
    match resp.truncate().to_vec() {
        Ok(bytes) if bytes.len() <= limit => Reply::Send(bytes),
        _ => Reply::Drop,
    }
}

/// SERVFAIL for a query no upstream answered.
fn servfail(req: &Message, transport: Transport) -> Option<Vec<u8>> {
    match respond(req, ResponseCode::ServFail, Vec::new(), transport) {
        Reply::Send(bytes) => Some(bytes),
        Reply::Forward(_) | Reply::Drop => None,
    }
}

/// Whether `answer` is a response (QR set) carrying `id`.
fn is_answer_to(answer: &[u8], id: &[u8]) -> bool {
    match answer {
        [a, b, flags, _, ..] => answer.len() >= 12 && [*a, *b] == id && flags & 0x80 != 0,
        _ => false,
    }
}

async fn exchange_udp(upstream: SocketAddr, packet: &[u8], id: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(packet).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await?;
        let answer = buf.get(..n).unwrap_or_default();
        if is_answer_to(answer, id) {
            return Ok(answer.to_vec());
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, packet: &[u8], id: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(packet.len()).map_err(io::Error::other)?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut frame = Vec::with_capacity(packet.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(packet);
    stream.write_all(&frame).await?;
    let answer = read_frame(&mut stream).await?;
    if is_answer_to(&answer, id) {
        Ok(answer)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "upstream answered another query",
        ))
    }
}

/// One length-prefixed DNS message from a TCP stream.
async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn serve_udp(socket: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; UDP_QUERY_BUF];
    let mut forwards = JoinSet::new();
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = received else {
                    // Nothing to answer; do not spin if the error persists.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let packet = buf.get(..n).unwrap_or_default();
                match ctx.handle(client.ip(), packet, Transport::Udp) {
                    Reply::Send(bytes) => {
                        let _ = socket.send_to(&bytes, client).await;
                    }
                    Reply::Forward(req) => {
                        let Ok(permit) = Arc::clone(&ctx.forwards).try_acquire_owned() else {
                            continue;
                        };
                        let socket = Arc::clone(&socket);
                        let ctx = Arc::clone(&ctx);
                        let packet = packet.to_vec();
                        forwards.spawn(async move {
                            let _permit = permit;
                            let answer = match ctx.forward(&packet, Transport::Udp).await {
                                Some(answer) => Some(answer),
                                None => servfail(&req, Transport::Udp),
                            };
                            if let Some(answer) = answer {
                                let _ = socket.send_to(&answer, client).await;
                            }
                        });
                    }
                    Reply::Drop => {}
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, peer)) => {
                        if connections.len() < MAX_TCP_CONNECTIONS {
                            connections.spawn(serve_connection(stream, peer.ip(), Arc::clone(&ctx)));
                        }
                    }
                    // EMFILE and the like: wait for connections to close.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers the queries of one TCP connection in order until the client closes it, sends
/// garbage, idles or stalls.
async fn serve_connection(mut stream: TcpStream, peer: IpAddr, ctx: Arc<Ctx>) {
    loop {
        let Ok(Ok(packet)) = tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await else {
            return;
        };
        let answer = match ctx.handle(peer, &packet, Transport::Tcp) {
            Reply::Send(bytes) => bytes,
            Reply::Forward(req) => {
                let Ok(_permit) = Arc::clone(&ctx.forwards).try_acquire_owned() else {
                    return;
                };
                match ctx.forward(&packet, Transport::Tcp).await {
                    Some(answer) => answer,
                    None => match servfail(&req, Transport::Tcp) {
                        Some(bytes) => bytes,
                        None => return,
                    },
                }
            }
            Reply::Drop => return,
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let mut frame = Vec::with_capacity(answer.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&answer);
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.write_all(&frame)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table() -> Table {
        let mut t = Table::default();
        t.owners.insert(
            "c1".into(),
            Endpoint {
                names: vec!["Web".into(), "alias".into()],
                addrs: vec![v4("10.0.0.2"), v4("fd00::2")],
            },
        );
        t.owners.insert(
            "c2".into(),
            Endpoint {
                names: vec!["db".into(), "alias".into()],
                addrs: vec![v4("10.0.0.3")],
            },
        );
        t
    }

    fn ctx(subnets: &[&str]) -> Ctx {
        Ctx {
            table: Arc::new(RwLock::new(table())),
            all: std::sync::Weak::new(),
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            upstreams: Vec::new(),
            forwards: Arc::new(Semaphore::new(1)),
        }
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn sent(reply: Reply) -> Message {
        match reply {
            Reply::Send(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<IpAddr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn answers_local_names_case_insensitively() {
        let c = ctx(&["10.0.0.0/24"]);
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("WEB.", RecordType::A),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert_eq!(addrs(&m), vec![v4("10.0.0.2")]);
        assert_eq!(m.answers[0].ttl, TTL);
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("alias", RecordType::A),
            Transport::Tcp,
        ));
        assert_eq!(addrs(&m), vec![v4("10.0.0.2"), v4("10.0.0.3")]);
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("web", RecordType::AAAA),
            Transport::Udp,
        ));
        assert_eq!(addrs(&m), vec![v4("fd00::2")]);
    }

    #[test]
    fn known_name_without_that_type_is_empty_noerror() {
        let c = ctx(&["10.0.0.0/24"]);
        for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let m = sent(c.handle(v4("10.0.0.9"), &query("db", qtype), Transport::Udp));
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.answers.is_empty());
        }
    }

    #[test]
    fn unknown_names_are_forwarded() {
        let c = ctx(&["10.0.0.0/24"]);
        let r = c.handle(
            v4("10.0.0.9"),
            &query("example.com.", RecordType::A),
            Transport::Udp,
        );
        assert!(matches!(r, Reply::Forward(_)));
        let r = c.handle(
            v4("10.0.0.9"),
            &query("9.0.0.10.in-addr.arpa.", RecordType::PTR),
            Transport::Udp,
        );
        assert!(matches!(r, Reply::Forward(_)));
    }

    #[test]
    fn refuses_clients_outside_the_subnets() {
        let c = ctx(&["10.0.0.0/24"]);
        let m = sent(c.handle(v4("10.0.1.9"), &query("web", RecordType::A), Transport::Udp));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        // v4-mapped sources count as their v4 address.
        let m = sent(c.handle(
            v4("::ffff:10.0.0.9"),
            &query("web", RecordType::A),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn ptr_answers_the_first_name() {
        let c = ctx(&["10.0.0.0/24"]);
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("2.0.0.10.in-addr.arpa.", RecordType::PTR),
            Transport::Udp,
        ));
        match m.answers.first().map(|r| &r.data) {
            Some(RData::PTR(p)) => assert_eq!(p.0.to_ascii(), "Web."),
            other => panic!("{other:?}"),
        }
        let v6: Name = IpAddr::V6("fd00::2".parse().unwrap()).into();
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query(&v6.to_ascii(), RecordType::PTR),
            Transport::Udp,
        ));
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn reverse_names() {
        let l = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            reverse_addr(&l("4.3.2.1.in-addr.arpa")),
            Some(v4("1.2.3.4"))
        );
        assert_eq!(reverse_addr(&l("4.3.2.256.in-addr.arpa")), None);
        assert_eq!(reverse_addr(&l("+4.3.2.1.in-addr.arpa")), None);
        assert_eq!(reverse_addr(&l("3.2.1.in-addr.arpa")), None);
        assert_eq!(reverse_addr(&l("in-addr.arpa")), None);
        let name: Name = v4("2001:db8::1").into();
        let labels = labels(&name).unwrap();
        assert_eq!(reverse_addr(&labels), Some(v4("2001:db8::1")));
        let mut short = labels.clone();
        short.remove(0);
        assert_eq!(reverse_addr(&short), None);
    }

    #[test]
    fn garbage_is_dropped_never_panics() {
        let c = ctx(&["0.0.0.0/0"]);
        let good = query("web", RecordType::A);
        for n in 0..good.len() {
            let _ = c.handle(v4("10.0.0.9"), &good[..n], Transport::Udp);
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut p = good.clone();
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize) % p.len();
            p[i] ^= (x >> 16) as u8;
            let _ = c.handle(v4("10.0.0.9"), &p, Transport::Udp);
        }
        assert!(matches!(
            c.handle(v4("10.0.0.9"), &[], Transport::Udp),
            Reply::Drop
        ));
        assert!(matches!(
            c.handle(v4("10.0.0.9"), &[0xff; 3], Transport::Udp),
            Reply::Drop
        ));
    }

    #[test]
    fn responses_are_dropped_not_answered() {
        let c = ctx(&["0.0.0.0/0"]);
        let mut m = Message::from_vec(&query("web", RecordType::A)).unwrap();
        m.metadata.message_type = MessageType::Response;
        assert!(matches!(
            c.handle(v4("10.0.0.9"), &m.to_vec().unwrap(), Transport::Udp),
            Reply::Drop
        ));
    }

    #[test]
    fn big_udp_answers_are_truncated() {
        let mut t = Table::default();
        for i in 0..100u8 {
            t.owners.insert(
                format!("c{i}"),
                Endpoint {
                    names: vec!["many".into()],
                    addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 1, i))],
                },
            );
        }
        let c = Ctx {
            table: Arc::new(RwLock::new(t)),
            ..ctx(&["0.0.0.0/0"])
        };
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("many", RecordType::A),
            Transport::Udp,
        ));
        assert!(m.metadata.truncation);
        let m = sent(c.handle(
            v4("10.0.0.9"),
            &query("many", RecordType::A),
            Transport::Tcp,
        ));
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 100);
    }

    #[test]
    fn answer_matching() {
        assert!(is_answer_to(
            &[1, 2, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 2]
        ));
        assert!(!is_answer_to(
            &[1, 2, 0x01, 0x80, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 2]
        ));
        assert!(!is_answer_to(
            &[1, 3, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 2]
        ));
        assert!(!is_answer_to(&[1, 2, 0x81], &[1, 2]));
    }

    #[test]
    fn set_remove_lookup() {
        let dns = Dns::new(Vec::new());
        dns.set(
            "n",
            "c1",
            vec!["Web.".into(), "".into()],
            vec![v4("10.0.0.2")],
        );
        assert_eq!(dns.lookup("n", "web"), vec![v4("10.0.0.2")]);
        assert_eq!(dns.lookup("n", "WEB."), vec![v4("10.0.0.2")]);
        assert!(dns.lookup("other", "web").is_empty());
        dns.set("n", "c1", vec!["db".into()], vec![v4("10.0.0.3")]);
        assert!(dns.lookup("n", "web").is_empty());
        dns.remove("n", "c1");
        assert!(dns.lookup("n", "db").is_empty());
        dns.set("n", "c1", vec!["db".into()], vec![v4("10.0.0.3")]);
        dns.stop("n");
        assert!(dns.lookup("n", "db").is_empty());
    }

    #[test]
    fn serve_outside_a_runtime_is_an_error() {
        let dns = Dns::new(Vec::new());
        let err = dns
            .serve("n", v4("127.0.0.1"), vec!["127.0.0.0/8".parse().unwrap()])
            .unwrap_err();
        assert!(matches!(err, NetError::Dns { .. }), "{err}");
    }

    #[test]
    fn a_container_on_two_networks_resolves_names_of_both() {
        let dns = Dns::new(Vec::new());
        dns.set("front", "web", vec!["web".into()], vec![v4("10.1.0.2")]);
        dns.set("front", "probe", vec!["probe".into()], vec![v4("10.1.0.3")]);
        dns.set("back", "probe", vec!["probe".into()], vec![v4("10.2.0.3")]);
        dns.set("back", "other", vec!["other".into()], vec![v4("10.2.0.4")]);
        let back = Arc::clone(&lock(&dns.inner.networks)["back"].table);
        let c = Ctx {
            table: back,
            all: Arc::downgrade(&dns.inner),
            ..ctx(&["0.0.0.0/0"])
        };
        // probe asks on back for web (on front, where probe is too): answered.
        let m = sent(c.handle(v4("10.2.0.3"), &query("web", RecordType::A), Transport::Udp));
        assert_eq!(addrs(&m), vec![v4("10.1.0.2")]);
        // other (only on back) asks the same: not ours, forwarded.
        let r = c.handle(v4("10.2.0.4"), &query("web", RecordType::A), Transport::Udp);
        assert!(matches!(r, Reply::Forward(_)), "{r:?}");
    }
}
