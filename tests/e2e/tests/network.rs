//! Networking as Docker's users meet it, on real network namespaces, veths, bridges and nft
//! rules: the default bridge, user networks with DNS by name and alias, isolation between
//! networks, published TCP and UDP ports reached from the host through 127.0.0.1, IPv6
//! networks, DNS forwarding to a resolver the test starts on loopback, bad input, a daemon
//! killed and restarted, and a churn of containers that must leave the host as it found it.
//! Traffic goes only to loopback and to addresses inside namespaces berth made.
//!
//! Each test has its own berthd (its own default bridge `bt<hash>` and nft table), so the
//! tests run in parallel; the guard removes what the daemon made even when a test fails.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use berthd::Berthd;
use common::wait_until;

const BB: &str = "busybox";

/// A busybox httpd serving `text` at / on port 80. (Clients use `timeout N wget`: busybox
/// 1.35's `wget -T` crashes with SIGSEGV.)
fn httpd_args(text: &str) -> Vec<String> {
    vec![
        BB.to_string(),
        "sh".into(),
        "-c".into(),
        format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"),
    ]
}

/// `timeout N wget -qO- URL` under a shell, so that wget is not the container's PID 1 (which
/// ignores the SIGTERM of `timeout`).
fn sh_wget(secs: u32, url: String) -> String {
    format!("timeout {secs} wget -qO- {url}; exit $?")
}

fn run_d(d: &Berthd, opts: &[&str], cmd: &[String]) -> Result<String> {
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(opts);
    args.extend(cmd.iter().map(String::as_str));
    d.docker_ok(&args)
}

/// HTTP GET / from the host, bounded.
fn host_get(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Retries `f` for a few seconds (a server in a container takes a moment to listen).
fn eventually<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for _ in 0..50 {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

fn links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or(n).to_string())
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The interfaces enslaved to a bridge.
fn bridge_ports(bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or(n).to_string())
            })
            .collect()
    })
    .unwrap_or_default()
}

fn nft_table(d: &Berthd) -> String {
    let t = format!("berth_{}", common::berthd_bridge(&d.data_root()));
    Command::new("nft")
        .args(["list", "table", "inet", &t])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn default_bridge_gives_an_address_hosts_entry_and_reaches_the_host_gateway() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let subnet = d.docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}}",
    ])?;
    let gw = d.docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])?;
    ensure!(subnet.contains('/'), "bridge subnet: {subnet}");
    // eth0 with an address of the subnet, lo up, a default route via the gateway.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        "ip -o -4 addr show; ip route; cat /etc/hosts; hostname",
    ])?;
    let prefix = subnet.split('.').take(2).collect::<Vec<_>>().join(".");
    ensure!(
        out.contains("eth0") && out.contains(&format!("inet {prefix}.")),
        "{out}"
    );
    ensure!(
        out.contains("lo") && out.contains("inet 127.0.0.1"),
        "{out}"
    );
    ensure!(out.contains(&format!("default via {gw}")), "{out}");
    // inspect shows the address while running, and the container reaches the gateway (a
    // listener the test opens on the bridge address inside the host).
    let l = std::net::TcpListener::bind(format!("{gw}:0"))?;
    let port = l.local_addr()?.port();
    let id = run_d(
        &d,
        &[],
        &[
            BB.into(),
            "sh".into(),
            "-c".into(),
            format!("echo hi | nc {gw} {port}; sleep 30"),
        ],
    )?;
    l.set_nonblocking(false)?;
    let (mut conn, _) = {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(l.accept());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .context("the container did not connect to the gateway")??
    };
    let mut got = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(3)))?;
    let _ = conn.read_to_string(&mut got);
    ensure!(got == "hi\n", "{got:?}");
    let ip = d.inspect(&id, "{{.NetworkSettings.IPAddress}}")?;
    ensure!(
        ip.starts_with(&format!("{prefix}.")),
        "inspect IPAddress {ip}"
    );
    let mac = d.inspect(&id, "{{.NetworkSettings.Networks.bridge.MacAddress}}")?;
    ensure!(mac.len() == 17, "mac {mac}");
    // Jumbo links inside the host, 1500 on the default route (what leaves the host).
    let link = d.docker_ok(&["exec", &id, "ip", "link", "show", "eth0"])?;
    ensure!(link.contains("mtu 65520"), "{link}");
    let ns = d.inspect(&id, "{{.NetworkSettings.SandboxKey}}")?;
    let routes = common::run_cmd(
        Command::new("nsenter")
            .arg(format!("--net={ns}"))
            .args(["ip", "route"]),
        None,
        Duration::from_secs(10),
    )?
    .ok()?
    .stdout;
    ensure!(
        routes.contains(&format!("default via {gw}")) && routes.contains("mtu 1500"),
        "{routes}"
    );
    d.docker_ok(&["rm", "-f", &id])?;
    // --network none: only lo.
    let out = d.docker_ok(&["run", "--rm", "--network", "none", BB, "ip", "-o", "link"])?;
    ensure!(!out.contains("eth0"), "{out}");
    // --network host: the host's interfaces, the default bridge among them.
    let bridge = common::berthd_bridge(&d.data_root());
    let out = d.docker_ok(&["run", "--rm", "--network", "host", BB, "ip", "-o", "link"])?;
    ensure!(out.contains(&bridge), "{out}");
    // --add-host, --dns, --ip refused on the default bridge, --mac-address.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:10.1.2.3",
        "--dns",
        "10.9.9.9",
        "--mac-address",
        "02:42:ac:11:00:99",
        BB,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf; ip link show eth0",
    ])?;
    ensure!(out.contains("10.1.2.3\tdb.local"), "{out}");
    ensure!(out.contains("nameserver 10.9.9.9"), "{out}");
    ensure!(out.contains("02:42:ac:11:00:99"), "{out}");
    let out = d.docker(&["run", "--rm", "--ip", "10.1.1.1", BB, "true"])?;
    ensure!(
        out.code != 0,
        "--ip on the default bridge must fail: {out:?}"
    );
    Ok(())
}

#[test]
fn user_network_resolves_names_and_aliases_and_is_isolated_from_others() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&["network", "create", "front"])?;
    d.docker_ok(&["network", "create", "back"])?;
    let a = run_d(
        &d,
        &[
            "--name",
            "web",
            "--network",
            "front",
            "--network-alias",
            "site",
        ],
        &httpd_args("hello-web"),
    )?;
    let a_ip = d.inspect(&a, "{{.NetworkSettings.Networks.front.IPAddress}}")?;
    ensure!(!a_ip.is_empty(), "web has an address on front");
    // By name and by alias, from another container on the same network.
    for host in ["web", "site", "web.front"] {
        let out = eventually(|| {
            let o = d.docker(&[
                "run",
                "--rm",
                "--network",
                "front",
                BB,
                "sh",
                "-c",
                &sh_wget(3, format!("http://{host}/")),
            ])?;
            if o.code != 0 {
                bail!("wget {host}: {o:?}");
            }
            Ok(o.stdout)
        })?;
        ensure!(out.trim() == "hello-web", "{host}: {out}");
    }
    // From the other network: the name does not resolve and the address is unreachable.
    let out = d.docker(&["run", "--rm", "--network", "back", BB, "nslookup", "web"])?;
    ensure!(
        out.code != 0 || !out.stdout.contains(&a_ip),
        "web must not resolve on back: {out:?}"
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "back",
        BB,
        "sh",
        "-c",
        &sh_wget(2, format!("http://{a_ip}/")),
    ])?;
    ensure!(
        out.code != 0 && !out.stdout.contains("hello-web"),
        "back reached front: {out:?}"
    );
    // ... nor from the default bridge.
    let out = d.docker(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        &sh_wget(2, format!("http://{a_ip}/")),
    ])?;
    ensure!(out.code != 0, "the default bridge reached front: {out:?}");
    // connect: a container on back joins front and reaches web; disconnect takes it away.
    let b = run_d(
        &d,
        &["--name", "probe", "--network", "back"],
        &[BB.into(), "sleep".into(), "60".into()],
    )?;
    d.docker_ok(&["network", "connect", "--alias", "p2", "front", "probe"])?;
    let out = d.docker_ok(&["exec", &b, "timeout", "3", "wget", "-qO-", "http://web/"])?;
    ensure!(out.trim() == "hello-web", "{out}");
    let ifs = d.docker_ok(&["exec", &b, "ip", "-o", "link"])?;
    ensure!(ifs.contains("eth1"), "connect adds eth1: {ifs}");
    let inspect = d.docker_ok(&["network", "inspect", "front"])?;
    ensure!(
        inspect.contains("\"probe\"") && inspect.contains("\"web\""),
        "{inspect}"
    );
    d.docker_ok(&["network", "disconnect", "front", "probe"])?;
    let out = d.docker(&[
        "exec",
        &b,
        "timeout",
        "2",
        "wget",
        "-qO-",
        &format!("http://{a_ip}/"),
    ])?;
    ensure!(out.code != 0, "after disconnect: {out:?}");
    // A network in use cannot go; after its containers, it can.
    let out = d.docker(&["network", "rm", "front"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("active endpoints"),
        "{out:?}"
    );
    d.docker_ok(&["rm", "-f", &a, &b])?;
    d.docker_ok(&["network", "rm", "front", "back"])?;
    let ls = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        !ls.contains("front")
            && ls.contains("bridge")
            && ls.contains("host")
            && ls.contains("none"),
        "{ls}"
    );
    Ok(())
}

#[test]
fn published_tcp_and_udp_ports_are_reached_from_the_host_on_loopback() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    // TCP: a fixed port on 127.0.0.1, and a kernel-chosen one on all addresses.
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    let fixed = probe.local_addr()?.port();
    drop(probe);
    let p1 = format!("127.0.0.1:{fixed}:80");
    let a = run_d(&d, &["-p", &p1, "-p", "80"], &httpd_args("hello-port"))?;
    let out = eventually(|| host_get(&format!("127.0.0.1:{fixed}")))?;
    ensure!(out.contains("hello-port"), "{out}");
    let port_out = d.docker_ok(&["port", &a, "80/tcp"])?;
    ensure!(
        port_out.contains(&format!("127.0.0.1:{fixed}")),
        "{port_out}"
    );
    let any = port_out
        .lines()
        .find(|l| l.starts_with("0.0.0.0:"))
        .and_then(|l| l.rsplit(':').next())
        .context(format!("no 0.0.0.0 binding: {port_out}"))?
        .to_string();
    let out = eventually(|| host_get(&format!("127.0.0.1:{any}")))?;
    ensure!(out.contains("hello-port"), "{out}");
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"])?;
    ensure!(ps.contains(&format!("127.0.0.1:{fixed}->80/tcp")), "{ps}");
    // The same host port again is refused with Docker's words, and leaves no namespace.
    let out = d.docker(&["run", "-d", "-p", &p1, BB, "sleep", "5"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("already allocated"),
        "{out:?}"
    );
    // Hairpin: a container on the bridge reaches the published port through the gateway.
    let gw = d.docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])?;
    let out = d.docker(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        &sh_wget(3, format!("http://{gw}:{any}/")),
    ])?;
    ensure!(
        out.code == 0 && out.stdout.contains("hello-port"),
        "hairpin: {out:?}"
    );
    // Stopping the container removes its rules: the port no longer answers.
    d.docker_ok(&["stop", "-t", "1", &a])?;
    ensure!(
        !nft_table(&d).contains(&format!("dport {fixed}")),
        "rule left: {}",
        nft_table(&d)
    );
    ensure!(
        host_get(&format!("127.0.0.1:{fixed}")).is_err(),
        "port still answers after stop"
    );
    // Started again: published again.
    d.docker_ok(&["start", &a])?;
    let out = eventually(|| host_get(&format!("127.0.0.1:{fixed}")))?;
    ensure!(out.contains("hello-port"), "{out}");
    d.docker_ok(&["rm", "-f", &a])?;

    // UDP: an echo server (python from the host's /usr, mounted read-only).
    if std::path::Path::new("/usr/bin/python3").exists() {
        let code = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',9999))\nwhile True:\n d,a=s.recvfrom(100)\n s.sendto(b'echo:'+d,a)";
        let u = d.docker_ok(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::9999/udp",
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/lib:/lib:ro",
            "-v",
            "/lib64:/lib64:ro",
            BB,
            "/usr/bin/python3",
            "-c",
            code,
        ])?;
        let port_out = d.docker_ok(&["port", &u, "9999/udp"])?;
        let port: u16 = port_out
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context(format!("udp port: {port_out}"))?;
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        let mut got = None;
        for _ in 0..30 {
            s.send_to(b"ping", ("127.0.0.1", port))?;
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                got = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
        }
        ensure!(
            got.as_deref() == Some("echo:ping"),
            "udp answer: {got:?}; logs {:?}",
            d.docker(&["logs", &u])
        );
        d.docker_ok(&["rm", "-f", &u])?;
    }
    Ok(())
}

/// A tiny DNS resolver on a loopback address: answers every A query with 203.0.113.9.
fn fake_resolver(ip: &str) -> Result<std::thread::JoinHandle<()>> {
    let s = UdpSocket::bind((ip, 53))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..100 {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                return;
            };
            if n < 12 {
                continue;
            }
            let q = &buf[..n];
            // Header: same id, QR|RD|RA, one question, one answer.
            let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
            r.extend_from_slice(&q[12..]);
            let qtype_a = q.len() >= 4 && q[n - 4..n - 2] == [0, 1];
            if !qtype_a {
                r[7] = 0; // no answer for other types
            } else {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 9]);
            }
            let _ = s.send_to(&r, from);
        }
    }))
}

#[test]
fn embedded_dns_forwards_other_names_to_the_daemons_resolver() -> Result<()> {
    require_root!();
    // A loopback address of its own, so parallel tests do not collide on port 53.
    let ip = format!(
        "127.0.{}.{}",
        50 + std::process::id() % 100,
        2 + std::process::id() % 200
    );
    let _resolver = fake_resolver(&ip)?;
    let d = Berthd::start_with(&["--dns", &ip])?;
    d.load_busybox()?;
    d.docker_ok(&["network", "create", "dnsnet"])?;
    let out = eventually(|| {
        let o = d.docker(&[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            BB,
            "nslookup",
            "-type=a",
            "example.test",
        ])?;
        if !o.stdout.contains("203.0.113.9") {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.contains("203.0.113.9"), "{out}");
    let resolv = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "dnsnet",
        BB,
        "cat",
        "/etc/resolv.conf",
    ])?;
    let gw = d.docker_ok(&[
        "network",
        "inspect",
        "dnsnet",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])?;
    ensure!(resolv.contains(&format!("nameserver {gw}")), "{resolv}");
    d.docker_ok(&["network", "rm", "dnsnet"])?;
    Ok(())
}

#[test]
fn ipv6_network_gives_v6_addresses_that_carry_traffic() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let sub = format!("fd00:b{:03x}::/64", std::process::id() % 4096);
    d.docker_ok(&["network", "create", "--ipv6", "--subnet", &sub, "v6net"])?;
    let a = run_d(
        &d,
        &["--name", "six", "--network", "v6net"],
        &httpd_args("hello-six"),
    )?;
    let a6 = d.inspect(&a, "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}")?;
    ensure!(a6.starts_with(&sub[..9]), "v6 address {a6} in {sub}");
    let out = eventually(|| {
        let o = d.docker(&[
            "run",
            "--rm",
            "--network",
            "v6net",
            BB,
            "sh",
            "-c",
            &sh_wget(3, format!("http://[{a6}]/")),
        ])?;
        if o.code != 0 {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.trim() == "hello-six", "{out}");
    d.docker_ok(&["rm", "-f", &a])?;
    d.docker_ok(&["network", "rm", "v6net"])?;
    Ok(())
}

#[test]
fn bad_network_input_gets_docker_errors_and_creates_nothing() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let before = links();
    for (args, want) in [
        (
            vec!["network", "create", "--subnet", "10.300.0.0/16", "bad1"],
            "invalid",
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.77.0.0/16",
                "--gateway",
                "10.78.0.1",
                "bad2",
            ],
            "subnet",
        ),
        (
            vec!["network", "create", "-d", "overlay", "bad3"],
            "not found",
        ),
        (vec!["network", "create", "bad name"], "invalid"),
        (vec!["network", "rm", "bridge"], "pre-defined"),
        (vec!["network", "rm", "nosuchnet"], "not found"),
        (vec!["network", "connect", "nosuchnet", "x"], "not found"),
        (
            vec!["run", "--rm", "-p", "127.0.0.1:99999:80", BB, "true"],
            "invalid",
        ),
    ] {
        let out = d.docker(&args)?;
        ensure!(out.code != 0, "{args:?} succeeded: {out:?}");
        ensure!(
            out.stderr.to_lowercase().contains(want),
            "{args:?}: want {want:?} in {}",
            out.stderr
        );
    }
    d.docker_ok(&["network", "create", "dup"])?;
    let out = d.docker(&["network", "create", "dup"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("already exists"),
        "{out:?}"
    );
    // An IP outside the subnet, and one in use.
    d.docker_ok(&["network", "create", "--subnet", "10.123.45.0/24", "fixed"])?;
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.9.9.9",
        BB,
        "true",
    ])?;
    ensure!(out.code != 0, "{out:?}");
    let c = run_d(
        &d,
        &["--network", "fixed", "--ip", "10.123.45.77"],
        &[BB.into(), "sleep".into(), "30".into()],
    )?;
    ensure!(d.inspect(&c, "{{.NetworkSettings.Networks.fixed.IPAddress}}")? == "10.123.45.77");
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.123.45.77",
        BB,
        "true",
    ])?;
    ensure!(out.code != 0 && out.stderr.contains("in use"), "{out:?}");
    d.docker_ok(&["rm", "-f", &c])?;
    // An unknown network at create: Docker's 404 (the docker CLI would then try to pull the
    // image, as it does for any 404 on create).
    let (code, body) = d.http(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"nosuchnet"}}"#,
    )?;
    ensure!(
        code == 404 && body.contains("network nosuchnet not found"),
        "{code} {body}"
    );
    // Malformed JSON on the API.
    let (code, body) = d.http("POST", "/networks/create", b"{not json")?;
    ensure!(code == 400 && body.contains("message"), "{code} {body}");
    d.docker_ok(&["network", "rm", "dup", "fixed"])?;
    let pruned = d.docker_ok(&["network", "prune", "-f"])?;
    ensure!(!pruned.contains("bridge"), "{pruned}");
    let bridge = common::berthd_bridge(&d.data_root());
    ensure!(
        wait_until(Duration::from_secs(10), || bridge_ports(&bridge).is_empty()),
        "veths left: {:?}",
        bridge_ports(&bridge)
    );
    let _ = before;
    Ok(())
}

#[test]
fn published_ports_survive_a_daemon_kill_and_go_with_the_container() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    d.docker_ok(&["network", "create", "keep"])?;
    let a = run_d(
        &d,
        &["--name", "kept", "--network", "keep", "-p", "127.0.0.1::80"],
        &httpd_args("still-here"),
    )?;
    let port = d.docker_ok(&["port", &a, "80"])?;
    let addr = port.lines().next().unwrap_or("").to_string();
    eventually(|| host_get(&addr))?;
    d.restart()?;
    let out = eventually(|| host_get(&addr))?;
    ensure!(out.contains("still-here"), "{out}");
    // The restarted daemon still resolves the name on the network.
    let out = eventually(|| {
        let o = d.docker(&[
            "run",
            "--rm",
            "--network",
            "keep",
            BB,
            "sh",
            "-c",
            &sh_wget(3, "http://kept/".into()),
        ])?;
        if o.code != 0 {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.contains("still-here"), "{out}");
    // A new container cannot get the kept one's address (its allocation was restored).
    let ip = d.inspect(&a, "{{.NetworkSettings.Networks.keep.IPAddress}}")?;
    let other = run_d(
        &d,
        &["--network", "keep"],
        &[BB.into(), "sleep".into(), "30".into()],
    )?;
    ensure!(d.inspect(&other, "{{.NetworkSettings.Networks.keep.IPAddress}}")? != ip);
    d.docker_ok(&["rm", "-f", &a, &other])?;
    ensure!(host_get(&addr).is_err(), "port answers after removal");
    d.docker_ok(&["network", "rm", "keep"])?;
    Ok(())
}

#[test]
fn a_churn_of_containers_leaves_the_host_as_it_was() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    // Warm up: the default bridge exists before the snapshot.
    d.docker_ok(&["run", "--rm", BB, "true"])?;
    let before_links = links();
    let before_rules = nft_table(&d);
    let netns_dir = d.data_root().join("run/netns");
    let n: usize = std::env::var("BERTH_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let threads = 4;
    let mut hs = Vec::new();
    for t in 0..threads {
        let sock = d.sock();
        let cfg = d.dir.path().join("docker-config");
        hs.push(std::thread::spawn(move || -> Result<()> {
            for i in (t..n).step_by(threads) {
                let mut c = Command::new(common::daemon_util::docker_bin());
                c.env("DOCKER_HOST", format!("unix://{}", sock.display()))
                    .env("DOCKER_CONFIG", &cfg);
                // Every fourth publishes a port, so rules churn too.
                if i % 4 == 0 {
                    c.args(["run", "--rm", "-p", "80", BB, "true"]);
                } else {
                    c.args(["run", "--rm", BB, "true"]);
                }
                let out = common::run_cmd(&mut c, None, Duration::from_secs(60))?;
                if out.code != 0 {
                    bail!("run {i}: {out:?}");
                }
            }
            Ok(())
        }));
    }
    for h in hs {
        h.join()
            .map_err(|_| anyhow::anyhow!("a churn thread panicked"))??;
    }
    ensure!(
        wait_until(Duration::from_secs(20), || {
            d.docker(&["ps", "-aq"])
                .is_ok_and(|o| o.stdout.trim().is_empty())
        }),
        "containers left"
    );
    // The containers berthd made ahead for the next `run --rm` (pre-started, invisible to
    // ps) hold an endpoint each; they go with their image.
    d.docker_ok(&["rmi", BB])?;
    // Other tests run in parallel and make their own links: what this daemon made hangs off
    // its bridge.
    let bridge = common::berthd_bridge(&d.data_root());
    let ok = wait_until(Duration::from_secs(20), || bridge_ports(&bridge).is_empty());
    ensure!(
        ok,
        "veths left on {bridge} after {n} runs: {:?}",
        bridge_ports(&bridge)
    );
    ensure!(links().contains(&bridge), "the bridge itself stays");
    let _ = &before_links;
    ensure!(
        nft_table(&d) == before_rules,
        "rules changed:\n{}\nvs\n{}",
        before_rules,
        nft_table(&d)
    );
    let left: Vec<_> = std::fs::read_dir(&netns_dir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(left.is_empty(), "netns files left: {left:?}");
    let mounts = common::host_mounts_mentioning(&netns_dir.display().to_string());
    ensure!(mounts.is_empty(), "netns mounts left: {mounts:?}");
    Ok(())
}

#[test]
fn docker_compose_services_reach_each_other_by_name_and_down_removes_the_network() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1::80"
  client:
    image: busybox
    command: ["sleep", "60"]
    depends_on: [web]
"#,
    )?;
    let compose = |args: &[&str]| -> Result<common::Out> {
        let mut c = Command::new("docker-compose");
        c.current_dir(dir.path())
            .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
            .args(["-p", "berthct"])
            .args(args);
        common::run_cmd(&mut c, None, Duration::from_secs(120))
    };
    compose(&["up", "-d"])?.ok()?;
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(nets.contains("berthct_default"), "{nets}");
    // The client reaches web by its service name on the project network.
    let out = eventually(|| {
        let o = compose(&[
            "exec",
            "-T",
            "client",
            "sh",
            "-c",
            &sh_wget(3, "http://web/".into()),
        ])?;
        if o.code != 0 {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.trim() == "hello-compose", "{out}");
    // The published port, as compose reads it.
    let port = compose(&["port", "web", "80"])?
        .ok()?
        .stdout
        .trim()
        .to_string();
    ensure!(port.starts_with("127.0.0.1:"), "{port}");
    let body = eventually(|| host_get(&port))?;
    ensure!(body.contains("hello-compose"), "{body}");
    compose(&["down"])?.ok()?;
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(!nets.contains("berthct_default"), "{nets}");
    ensure!(d.docker_ok(&["ps", "-aq"])?.is_empty());
    Ok(())
}

#[test]
fn container_mode_expose_all_and_internal_networks() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    // --network container:NAME shares the other container's interfaces and address.
    let a = run_d(
        &d,
        &["--name", "owner", "--expose", "80", "-P"],
        &httpd_args("shared"),
    )?;
    let ip = d.inspect(&a, "{{.NetworkSettings.IPAddress}}")?;
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        BB,
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ])?;
    ensure!(out.contains(&format!("inet {ip}/")), "{out}");
    let out = eventually(|| {
        let o = d.docker(&[
            "run",
            "--rm",
            "--network",
            "container:owner",
            BB,
            "sh",
            "-c",
            &sh_wget(3, "http://127.0.0.1/".into()),
        ])?;
        if o.code != 0 {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.trim() == "shared", "{out}");
    // -P published the exposed port on a kernel-chosen host port.
    let port = d.docker_ok(&["port", &a, "80/tcp"])?;
    let hp = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("")
        .to_string();
    let body = eventually(|| host_get(&format!("127.0.0.1:{hp}")))?;
    ensure!(body.contains("shared"), "{body}");
    // A stopped owner: joining it is refused.
    d.docker_ok(&["stop", "-t", "1", "owner"])?;
    let out = d.docker(&["run", "--rm", "--network", "container:owner", BB, "true"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("non running"),
        "{out:?}"
    );
    // --internal: members reach each other, nothing routes out (no default route).
    d.docker_ok(&["network", "create", "--internal", "island"])?;
    let i1 = run_d(
        &d,
        &["--name", "i1", "--network", "island"],
        &httpd_args("inside"),
    )?;
    let out = d.docker_ok(&["run", "--rm", "--network", "island", BB, "ip", "route"])?;
    ensure!(
        !out.contains("default"),
        "internal network has a default route: {out}"
    );
    let out = eventually(|| {
        let o = d.docker(&[
            "run",
            "--rm",
            "--network",
            "island",
            BB,
            "sh",
            "-c",
            &sh_wget(3, "http://i1/".into()),
        ])?;
        if o.code != 0 {
            bail!("{o:?}");
        }
        Ok(o.stdout)
    })?;
    ensure!(out.trim() == "inside", "{out}");
    d.docker_ok(&["rm", "-f", &a, &i1])?;
    d.docker_ok(&["network", "rm", "island"])?;
    Ok(())
}

#[test]
fn a_container_that_dies_while_the_daemon_is_down_leaves_nothing_after_restart() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    let a = run_d(&d, &["-p", "127.0.0.1::80"], &httpd_args("short-lived"))?;
    let addr = d
        .docker_ok(&["port", &a, "80"])?
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    eventually(|| host_get(&addr))?;
    let pid: i32 = d.inspect(&a, "{{.State.Pid}}")?.parse()?;
    let netns = d.data_root().join("run/netns").join(&a);
    ensure!(netns.exists(), "{} missing while running", netns.display());
    d.kill9()?;
    // SAFETY: kill(2) of the container's init, a pid read from inspect just now.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    ensure!(
        wait_until(Duration::from_secs(10), || !common::pid_alive(pid)),
        "container init survived"
    );
    d.restart()?;
    ensure!(
        wait_until(Duration::from_secs(10), || d
            .inspect(&a, "{{.State.Status}}")
            .is_ok_and(|s| s == "exited")),
        "the container is not seen as exited"
    );
    ensure!(
        wait_until(Duration::from_secs(10), || !netns.exists()),
        "netns file left"
    );
    let port = addr.rsplit(':').next().unwrap_or("");
    ensure!(
        !nft_table(&d).contains(&format!("dport {port}")),
        "rule left: {}",
        nft_table(&d)
    );
    ensure!(host_get(&addr).is_err(), "the port still answers");
    // Its address and host port are free again: a new container can take that host port.
    let b = run_d(&d, &["-p", &format!("{addr}:80")], &httpd_args("next"))?;
    let body = eventually(|| host_get(&addr))?;
    ensure!(body.contains("next"), "{body}");
    d.docker_ok(&["rm", "-f", &a, &b])?;
    Ok(())
}
