//! `berth network connect [--alias A] [--ip IP] [--ip6 IP] NETWORK CONTAINER` and
//! `berth network disconnect [-f] NETWORK CONTAINER`: the bodies docker's CLI sends.

use anyhow::{anyhow, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::client::{enc, read_all, Client};

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    pub driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(
        long = "gw-priority",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub gw_priority: i64,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// The POST /networks/{id}/connect body of docker CLI 28 (every EndpointSettings field).
pub fn connect_body(a: &ConnectArgs) -> Result<Value> {
    let mut ipam = Map::new();
    if let Some(ip) = a.ip.as_ref().filter(|i| !i.is_empty()) {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = a.ip6.as_ref().filter(|i| !i.is_empty()) {
        ipam.insert("IPv6Address".into(), json!(ip));
    }
    if !a.link_local_ip.is_empty() {
        ipam.insert("LinkLocalIPs".into(), json!(a.link_local_ip));
    }
    let mut driver_opts = Map::new();
    for o in &a.driver_opt {
        let lower = o.to_lowercase();
        let (k, v) = lower
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow!("invalid key value pair format in driver options"))?;
        driver_opts.insert(k.to_string(), json!(v));
    }
    Ok(json!({
        "Container": a.container,
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": if a.link.is_empty() { Value::Null } else { json!(a.link) },
            "Aliases": a.alias,
            "MacAddress": "",
            "DriverOpts": driver_opts,
            "GwPriority": a.gw_priority,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null,
        }
    }))
}

async fn post(client: &mut Client, path: &str, body: &Value) -> Result<()> {
    let bytes = Bytes::from(serde_json::to_vec(body)?);
    let resp = client.send(Method::POST, path, Some(bytes), &[]).await?;
    read_all(resp).await?;
    Ok(())
}

pub async fn connect(client: &mut Client, args: ConnectArgs) -> Result<i32> {
    let body = connect_body(&args)?;
    post(
        client,
        &format!("/networks/{}/connect", enc(&args.network)),
        &body,
    )
    .await?;
    Ok(0)
}

pub async fn disconnect(client: &mut Client, args: DisconnectArgs) -> Result<i32> {
    let body = json!({"Container": args.container, "Force": args.force});
    post(
        client,
        &format!("/networks/{}/disconnect", enc(&args.network)),
        &body,
    )
    .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ConnectArgs,
    }

    fn body(argv: &[&str]) -> Value {
        let mut full = vec!["t"];
        full.extend_from_slice(argv);
        connect_body(&T::try_parse_from(full).unwrap().a).unwrap()
    }

    /// What docker CLI 28 sent (captured on a socket) for the same flags.
    #[test]
    fn bodies_like_docker() {
        let docker: Value = serde_json::from_str(
            r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.9.0.5","IPv6Address":"fd00::5"},"Links":null,"Aliases":["x","y"],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#,
        )
        .unwrap();
        assert_eq!(
            body(&[
                "--alias", "x", "--alias", "y", "--ip", "10.9.0.5", "--ip6", "fd00::5", "mynet",
                "c1"
            ]),
            docker
        );
        let docker: Value = serde_json::from_str(
            r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":[],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#,
        )
        .unwrap();
        assert_eq!(body(&["mynet", "c1"]), docker);
        let b = body(&["--driver-opt", "K=V", "n", "c"]);
        assert_eq!(b["EndpointConfig"]["DriverOpts"], json!({"k": "v"}));
        let mut full = vec!["t", "--driver-opt", "novalue", "n", "c"];
        let a = T::try_parse_from(full.drain(..)).unwrap().a;
        assert!(connect_body(&a).is_err());
    }
}
