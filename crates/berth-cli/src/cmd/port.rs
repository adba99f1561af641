//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports from inspect.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;

use crate::client::{enc, Client};

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    pub port: Option<String>,
}

/// "80/tcp -> 0.0.0.0:8080" lines from NetworkSettings.Ports, filtered by `want`.
pub fn port_lines(ports: &Value, want: Option<&str>) -> Vec<String> {
    let want = want.map(|w| {
        if w.contains('/') {
            w.to_string()
        } else {
            format!("{w}/tcp")
        }
    });
    let mut out = Vec::new();
    let Some(map) = ports.as_object() else {
        return out;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, ""));
        (p.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    for k in keys {
        if want.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in map[k].as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let hp = b["HostPort"].as_str().unwrap_or("");
            if want.is_some() {
                out.push(format!("{ip}:{hp}"));
            } else {
                out.push(format!("{k} -> {ip}:{hp}"));
            }
        }
    }
    out
}

pub async fn run(client: &mut Client, args: PortArgs) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", enc(&args.container)))
        .await?;
    let lines = port_lines(&info["NetworkSettings"]["Ports"], args.port.as_deref());
    if lines.is_empty() {
        if let Some(p) = &args.port {
            bail!(
                "Error: No public port '{p}' published for {}",
                args.container
            );
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines() {
        let p = json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}], "53/udp": null});
        assert_eq!(
            port_lines(&p, None),
            vec!["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]
        );
        assert_eq!(
            port_lines(&p, Some("80")),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        assert!(port_lines(&p, Some("53/udp")).is_empty());
        assert!(port_lines(&Value::Null, None).is_empty());
    }
}
