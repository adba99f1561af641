//! The embedded DNS server over real sockets: servers, clients and a fake upstream resolver
//! on random 127/8 addresses, port 53 (needs root, as berthd does). Nothing here sends a
//! packet anywhere but the loopback device, and no test knows the host's resolvers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_net::dns::Dns;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What the fake upstream answers for every A query.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

/// A loopback address no other test (of this run or a parallel one) picks: 127.a.b.c with
/// a ≥ 1, so never 127.0.0.1 nor 127.0.0.53.
fn random_loopback() -> IpAddr {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = nanos
        ^ std::process::id().rotate_left(16)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9);
    x ^= x >> 15;
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^= x >> 12;
    let [a, b, c, _] = x.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1 + a % 250, b, 1 + c % 250))
}

fn loopback_net() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap()]
}

/// Serves `network` on a fresh loopback address; `None` (test skipped) without the right
/// to bind port 53.
fn serve(dns: &Dns, network: &str, subnets: Vec<ipnet::IpNet>) -> Option<IpAddr> {
    let addr = random_loopback();
    match dns.serve(network, addr, subnets) {
        Ok(()) => Some(addr),
        Err(berth_net::NetError::Dns { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            eprintln!("skipped: binding port 53 needs root");
            None
        }
        Err(e) => panic!("serve on {addr}: {e}"),
    }
}

fn query_bytes(name: &str, qtype: RecordType) -> (u16, Vec<u8>) {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    (m.metadata.id, m.to_vec().unwrap())
}

/// One UDP query from 127.0.0.1; `None` if no answer came within `wait`.
async fn udp_query_wait(
    server: IpAddr,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let (id, bytes) = query_bytes(name, qtype);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&bytes, (server, 53)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(wait, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, id, "the answer keeps the query's id");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    Some(m)
}

async fn udp_query(server: IpAddr, name: &str, qtype: RecordType) -> Message {
    udp_query_wait(server, name, qtype, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no answer from {server} for {name}"))
}

async fn tcp_query(server: IpAddr, name: &str, qtype: RecordType) -> Message {
    let (id, bytes) = query_bytes(name, qtype);
    let mut stream = TcpStream::connect((server, 53)).await.unwrap();
    let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&bytes);
    stream.write_all(&frame).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream))
        .await
        .expect("tcp answer in time")
        .expect("tcp answer");
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fake upstream's answer to a raw query: the same id and question, one A record.
fn upstream_answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut m = Message::response(q.metadata.id, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    for query in &q.queries {
        if query.query_type() == RecordType::A {
            m.add_answer(Record::from_rdata(
                query.name().clone(),
                42,
                RData::A(A(UPSTREAM_ANSWER)),
            ));
        }
    }
    m.queries = q.queries;
    m.to_vec().ok()
}

/// A resolver on `addr`:53 (UDP and TCP) answering every A query with UPSTREAM_ANSWER.
/// Runs until the test's runtime ends.
async fn fake_upstream() -> SocketAddr {
    let addr = SocketAddr::new(random_loopback(), 53);
    let udp = UdpSocket::bind(addr).await.unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            if let Some(answer) = upstream_answer(&buf[..n]) {
                let _ = udp.send_to(&answer, from).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                while let Ok(query) = read_frame(&mut stream).await {
                    let Some(answer) = upstream_answer(&query) else {
                        return;
                    };
                    let mut frame = (answer.len() as u16).to_be_bytes().to_vec();
                    frame.extend_from_slice(&answer);
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_names_of_its_network() {
    let dns = Dns::new(Vec::new());
    let Some(server) = serve(&dns, "n1", loopback_net()) else {
        return;
    };
    dns.set(
        "n1",
        "c1",
        vec!["web".into(), "Shared".into()],
        vec![ip("10.1.0.2")],
    );
    dns.set(
        "n1",
        "c2",
        vec!["db".into(), "shared".into()],
        vec![ip("10.1.0.3"), ip("fd00::3")],
    );

    let m = udp_query(server, "web", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![ip("10.1.0.2")]);
    assert_eq!(m.answers[0].ttl, 600);

    // Case-insensitive, with or without the trailing dot.
    for name in ["WEB", "Web.", "web."] {
        assert_eq!(
            addrs(&udp_query(server, name, RecordType::A).await),
            vec![ip("10.1.0.2")],
            "{name}"
        );
    }

    // An alias with two owners answers both addresses.
    let mut both = addrs(&udp_query(server, "SHARED.", RecordType::A).await);
    both.sort();
    assert_eq!(both, vec![ip("10.1.0.2"), ip("10.1.0.3")]);

    // AAAA for a v4-only container: NOERROR, nothing (and not forwarded: no upstreams
    // would have been a SERVFAIL).
    let m = udp_query(server, "web", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(
        addrs(&udp_query(server, "db", RecordType::AAAA).await),
        vec![ip("fd00::3")]
    );

    // PTR: the first name of the owner.
    let m = udp_query(server, "3.0.1.10.in-addr.arpa.", RecordType::PTR).await;
    match m.answers.first().map(|r| &r.data) {
        Some(RData::PTR(p)) => assert_eq!(p.0.to_ascii(), "db."),
        other => panic!("PTR answer: {other:?}"),
    }

    assert_eq!(dns.lookup("n1", "Shared").len(), 3);
    dns.stop("n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_other_names_and_removed_ones() {
    let upstream = fake_upstream().await;
    let dns = Dns::new(vec![upstream]);
    let Some(server) = serve(&dns, "n2", loopback_net()) else {
        return;
    };
    dns.set("n2", "c1", vec!["web".into()], vec![ip("10.2.0.2")]);

    let m = udp_query(server, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    assert_eq!(
        m.answers[0].ttl, 42,
        "the upstream's answer is relayed as is"
    );

    assert_eq!(
        addrs(&udp_query(server, "web", RecordType::A).await),
        vec![ip("10.2.0.2")]
    );
    dns.remove("n2", "c1");
    assert!(dns.lookup("n2", "web").is_empty());
    let m = udp_query(server, "web", RecordType::A).await;
    assert_eq!(
        addrs(&m),
        vec![IpAddr::V4(UPSTREAM_ANSWER)],
        "a removed name is forwarded"
    );

    // Over TCP, local and forwarded (the upstream is asked over TCP too).
    dns.set("n2", "c1", vec!["web".into()], vec![ip("10.2.0.2")]);
    assert_eq!(
        addrs(&tcp_query(server, "web", RecordType::A).await),
        vec![ip("10.2.0.2")]
    );
    let m = tcp_query(server, "example.org", RecordType::A).await;
    assert_eq!(addrs(&m), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    dns.stop("n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_when_no_upstream_answers() {
    // One upstream that never answers (a bound socket that reads nothing), one with nothing
    // listening at all (refused at once): SERVFAIL after about one timeout.
    let silent = UdpSocket::bind(SocketAddr::new(random_loopback(), 53))
        .await
        .unwrap();
    let closed = SocketAddr::new(random_loopback(), 53);
    let dns = Dns::new(vec![closed, silent.local_addr().unwrap()]);
    let Some(server) = serve(&dns, "n3", loopback_net()) else {
        return;
    };
    let started = Instant::now();
    let m = udp_query_wait(
        server,
        "nowhere.example.",
        RecordType::A,
        Duration::from_secs(6),
    )
    .await
    .expect("an answer");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );

    // Only a refusing upstream: SERVFAIL at once, over TCP as well.
    let dns = Dns::new(vec![closed]);
    let Some(server) = serve(&dns, "n3b", loopback_net()) else {
        return;
    };
    let started = Instant::now();
    let m = tcp_query(server, "nowhere.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_clients_outside_its_subnets() {
    let upstream = fake_upstream().await;
    let dns = Dns::new(vec![upstream]);
    let Some(server) = serve(&dns, "n4", vec!["10.4.0.0/16".parse().unwrap()]) else {
        return;
    };
    dns.set("n4", "c1", vec!["web".into()], vec![ip("10.4.0.2")]);
    for name in ["web", "example.com"] {
        let m = udp_query(server, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(m.answers.is_empty());
        let m = tcp_query(server, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
    }
}

/// Binds `addr` plainly (no SO_REUSEPORT), retrying while the stopped server's tasks are
/// being dropped.
async fn bindable(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let udp = std::net::UdpSocket::bind(addr);
        let tcp = std::net::TcpListener::bind(addr);
        if udp.is_ok() && tcp.is_ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        drop((udp, tcp));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_sockets_and_forgets() {
    let dns = Dns::new(Vec::new());
    let Some(server) = serve(&dns, "n5", loopback_net()) else {
        return;
    };
    dns.set("n5", "c1", vec!["web".into()], vec![ip("10.5.0.2")]);
    assert_eq!(
        addrs(&udp_query(server, "web", RecordType::A).await).len(),
        1
    );
    assert_eq!(dns.listen_addr("n5"), Some(server));
    dns.stop("n5");
    assert_eq!(dns.listen_addr("n5"), None);
    assert!(dns.lookup("n5", "web").is_empty());
    assert!(
        bindable(SocketAddr::new(server, 53)).await,
        "port 53 still bound after stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_every_server() {
    let dns = Dns::new(Vec::new());
    let Some(server) = serve(&dns, "n6", loopback_net()) else {
        return;
    };
    let clone = dns.clone();
    drop(dns);
    // A clone keeps it serving.
    clone.set("n6", "c1", vec!["web".into()], vec![ip("10.6.0.2")]);
    assert_eq!(
        addrs(&udp_query(server, "web", RecordType::A).await).len(),
        1
    );
    drop(clone);
    assert!(
        bindable(SocketAddr::new(server, 53)).await,
        "port 53 still bound after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_twice_replaces_the_server_and_keeps_the_names() {
    let dns = Dns::new(Vec::new());
    let Some(first) = serve(&dns, "n7", loopback_net()) else {
        return;
    };
    dns.set("n7", "c1", vec!["web".into()], vec![ip("10.7.0.2")]);
    // Same address again (works at once), then another one.
    dns.serve("n7", first, loopback_net()).unwrap();
    assert_eq!(
        addrs(&udp_query(first, "web", RecordType::A).await).len(),
        1
    );
    let second = random_loopback();
    dns.serve("n7", second, loopback_net()).unwrap();
    assert_eq!(
        addrs(&udp_query(second, "web", RecordType::A).await).len(),
        1
    );
    assert!(
        bindable(SocketAddr::new(first, 53)).await,
        "the replaced server still listens"
    );
    dns.stop("n7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_stop_the_server() {
    let dns = Dns::new(Vec::new());
    let Some(server) = serve(&dns, "n8", loopback_net()) else {
        return;
    };
    dns.set("n8", "c1", vec!["web".into()], vec![ip("10.8.0.2")]);
    let target = SocketAddr::new(server, 53);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_, good) = query_bytes("web", RecordType::A);
    let mut packets: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 12], vec![0xab; 3000]];
    for cut in [2, 5, 11, 13, good.len() - 1] {
        packets.push(good[..cut].to_vec());
    }
    // A name that is a compression-pointer loop.
    let mut looped = good[..12].to_vec();
    looped[5] = 1;
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    packets.push(looped);
    for p in &packets {
        socket.send_to(p, target).await.unwrap();
    }
    // Nothing comes back for garbage.
    let mut buf = [0u8; 512];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf))
            .await
            .is_err()
    );

    // TCP garbage closes that connection only.
    let mut stream = TcpStream::connect(target).await.unwrap();
    stream.write_all(&[0, 4, 1, 2, 3, 4]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");

    assert_eq!(
        addrs(&udp_query(server, "web", RecordType::A).await),
        vec![ip("10.8.0.2")]
    );
    assert_eq!(
        addrs(&tcp_query(server, "web", RecordType::A).await),
        vec![ip("10.8.0.2")]
    );
    dns.stop("n8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_an_address_that_does_not_exist_yet() {
    // IP_FREEBIND: berthd may start serving before the bridge has its gateway address.
    // 192.0.2.0/24 is TEST-NET-1: never on this host; no packet is sent to it.
    let dns = Dns::new(Vec::new());
    let addr = ip("192.0.2.53");
    match dns.serve("n9", addr, loopback_net()) {
        Ok(()) => assert_eq!(dns.listen_addr("n9"), Some(addr)),
        Err(berth_net::NetError::Dns { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => panic!("{e}"),
    }
    dns.stop("n9");
}
