//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports from inspect, printed as
//! docker's CLI does ("80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"), in its natural order.

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{enc, Client};
use crate::cmd::create::go_parse_uint;
use crate::cmd::ps::join_host_port;
use crate::format::natural_cmp;

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    pub port: Option<String>,
}

/// The lines docker prints for NetworkSettings.Ports: every mapping as "80/tcp -> HOST:PORT",
/// or, for one `want`ed port ("80", "53/udp"), its "HOST:PORT"s. Errors are docker's messages.
pub fn port_lines(ports: &Value, want: Option<&str>, container: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let host = |b: &Value| {
        join_host_port(
            b["HostIp"].as_str().unwrap_or(""),
            b["HostPort"].as_str().unwrap_or(""),
        )
    };
    match want {
        Some(w) => {
            let (port, proto) = w.split_once('/').unwrap_or((w, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            go_parse_uint(port, 16)
                .map_err(|e| anyhow::anyhow!("Error: invalid port ({port}): {e}"))?;
            let frontends = ports[format!("{port}/{proto}")]
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("Error: No public port '{w}' published for {container}")
                })?;
            out.extend(frontends.iter().map(host));
        }
        None => {
            for (from, frontends) in ports.as_object().into_iter().flatten() {
                for f in frontends.as_array().into_iter().flatten() {
                    out.push(format!("{from} -> {}", host(f)));
                }
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

pub async fn run(client: &mut Client, args: PortArgs) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", enc(&args.container)))
        .await?;
    let lines = port_lines(
        &info["NetworkSettings"]["Ports"],
        args.port.as_deref().filter(|p| !p.is_empty()),
        &args.container,
    )?;
    for l in lines {
        println!("{l}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// NetworkSettings.Ports of dockerd 20.10 for `-p 8000-8001:80-81 -p 127.0.0.1:9000:90/udp
    /// -p 7000:70 --expose 100-102 --expose 5/udp`, and what docker CLI 28's `port` printed.
    fn web() -> Value {
        json!({
            "100/tcp": null, "101/tcp": null, "102/tcp": null, "5/udp": null,
            "70/tcp": [{"HostIp": "0.0.0.0", "HostPort": "7000"}, {"HostIp": "::", "HostPort": "7000"}],
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}, {"HostIp": "::", "HostPort": "8000"}],
            "81/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8001"}, {"HostIp": "::", "HostPort": "8001"}],
            "90/udp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]
        })
    }

    #[test]
    fn all_lines_like_docker() {
        assert_eq!(
            port_lines(&web(), None, "web").unwrap(),
            vec![
                "70/tcp -> 0.0.0.0:7000",
                "70/tcp -> [::]:7000",
                "80/tcp -> 0.0.0.0:8000",
                "80/tcp -> [::]:8000",
                "81/tcp -> 0.0.0.0:8001",
                "81/tcp -> [::]:8001",
                "90/udp -> 127.0.0.1:9000",
            ]
        );
        // Natural order: 443 after 80, 17000 ([::1]) between 16003 and 18000.
        let p = json!({
            "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}],
            "80/tcp": [{"HostIp": "::", "HostPort": "32769"}, {"HostIp": "0.0.0.0", "HostPort": "32769"}],
            "17000/tcp": [{"HostIp": "::1", "HostPort": "17000"}]
        });
        assert_eq!(
            port_lines(&p, None, "x").unwrap(),
            vec![
                "80/tcp -> 0.0.0.0:32769",
                "80/tcp -> [::]:32769",
                "443/tcp -> 0.0.0.0:32768",
                "17000/tcp -> [::1]:17000",
            ]
        );
        assert!(port_lines(&Value::Null, None, "x").unwrap().is_empty());
    }

    #[test]
    fn one_port_like_docker() {
        assert_eq!(
            port_lines(&web(), Some("80"), "web").unwrap(),
            vec!["0.0.0.0:8000", "[::]:8000"]
        );
        assert_eq!(
            port_lines(&web(), Some("90/udp"), "web").unwrap(),
            vec!["127.0.0.1:9000"]
        );
        let err = |w| format!("{}", port_lines(&web(), Some(w), "web").unwrap_err());
        assert_eq!(err("100"), "Error: No public port '100' published for web");
        assert_eq!(
            err("100/tcp"),
            "Error: No public port '100/tcp' published for web"
        );
        assert_eq!(
            err("80/udp"),
            "Error: No public port '80/udp' published for web"
        );
        assert_eq!(
            err("http"),
            "Error: invalid port (http): strconv.ParseUint: parsing \"http\": invalid syntax"
        );
        assert_eq!(
            err("70000"),
            "Error: invalid port (70000): strconv.ParseUint: parsing \"70000\": value out of range"
        );
    }
}
