//! `berth network create`: the body docker's CLI sends (IPAM pools consolidated and checked
//! client-side, with its messages), and the new network's id printed.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::cmd::network::kv_map;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver (NAME=IP)
    #[arg(long = "aux-address")]
    pub aux_address: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    pub ipam_opt: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable or disable IPv6 networking
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub ipv6: Option<bool>,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    pub ingress: bool,
    /// Create a configuration only network
    #[arg(long = "config-only")]
    pub config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long = "config-from")]
    pub config_from: Option<String>,
    /// Control the network's scope
    #[arg(long)]
    pub scope: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// The network's name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// Parses an address or CIDR's address part.
fn addr_of(data: &str) -> Option<std::net::IpAddr> {
    data.split('/').next().and_then(|a| a.parse().ok())
}

/// An IPv4/IPv6 network from "a.b.c.d/n": (network address bits, prefix, is v6).
fn cidr(s: &str) -> Result<(u128, u8, bool)> {
    let bad = || anyhow!("invalid subnet: invalid CIDR address: {s}");
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let ip: std::net::IpAddr = a.parse().map_err(|_| bad())?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let p: u8 = p.parse().map_err(|_| bad())?;
    match ip {
        std::net::IpAddr::V4(v4) if p <= 32 => Ok((u128::from(u32::from(v4)), p, false)),
        std::net::IpAddr::V6(v6) if p <= 128 => Ok((u128::from(v6), p, true)),
        _ => Err(bad()),
    }
}

/// docker's subnetMatches: whether `data` (an address or CIDR) lies inside `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool> {
    let (net, prefix, v6) = cidr(subnet)?;
    if data.contains('/') {
        cidr(data).map_err(|_| anyhow!("invalid CIDR address: {data}"))?;
    }
    let Some(ip) = addr_of(data) else {
        return Ok(false);
    };
    let (bits, width) = match ip {
        std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u8),
        std::net::IpAddr::V6(v6) => (u128::from(v6), 128u8),
    };
    if (width == 128) != v6 {
        // Go's IPNet.Contains maps a v4 address into a v4 net only.
        return Ok(false);
    }
    let shift = u32::from(width - prefix);
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    Ok(bits & mask == net & mask)
}

/// docker's createIPAMConfig: one pool per --subnet (in flag order; docker's own order is
/// its map's), each --ip-range, --gateway and --aux-address placed in the subnet holding it.
pub fn ipam_config(args: &CreateArgs) -> Result<Vec<Value>> {
    if args.subnet.len() < args.ip_range.len() || args.subnet.len() < args.gateway.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut pools: Vec<Map<String, Value>> = Vec::new();
    for (i, s) in args.subnet.iter().enumerate() {
        for k in &args.subnet[..i] {
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        let mut m = Map::new();
        m.insert("Subnet".into(), json!(s));
        pools.push(m);
    }
    for r in &args.ip_range {
        let mut matched = false;
        for (i, s) in args.subnet.iter().enumerate() {
            cidr(r).map_err(|_| anyhow!("invalid CIDR address: {r}"))?;
            if !subnet_matches(s, r)? {
                continue;
            }
            if let Some(old) = pools[i].get("IPRange").and_then(Value::as_str) {
                bail!("cannot configure multiple ranges ({r}, {old}) on the same subnet ({s})");
            }
            pools[i].insert("IPRange".into(), json!(r));
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for range {r}");
        }
    }
    for g in &args.gateway {
        let mut matched = false;
        for (i, s) in args.subnet.iter().enumerate() {
            if !subnet_matches(s, g)? {
                continue;
            }
            if let Some(old) = pools[i].get("Gateway").and_then(Value::as_str) {
                bail!("cannot configure multiple gateways ({g}, {old}) for the same subnet ({s})");
            }
            pools[i].insert("Gateway".into(), json!(g));
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for gateway {g}");
        }
    }
    for a in &args.aux_address {
        let (name, addr) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid aux-address {a}: NAME=IP expected"))?;
        let mut matched = false;
        for (i, s) in args.subnet.iter().enumerate() {
            if !subnet_matches(s, addr)? {
                continue;
            }
            let aux = pools[i]
                .entry("AuxiliaryAddresses")
                .or_insert_with(|| json!({}));
            if let Some(m) = aux.as_object_mut() {
                m.insert(name.to_string(), json!(addr));
            }
            matched = true;
        }
        if !matched {
            bail!("no matching subnet for aux-address {addr}");
        }
    }
    Ok(pools.into_iter().map(Value::Object).collect())
}

/// docker's ValidateLabel.
pub fn check_label(l: &str) -> Result<()> {
    let k = l.split_once('=').map_or(l, |(k, _)| k).trim();
    if k.is_empty() {
        bail!("invalid label '{l}': empty name");
    }
    if k.contains(char::is_whitespace) {
        bail!("label '{k}' contains whitespaces");
    }
    Ok(())
}

/// The POST /networks/create body docker CLI 28 sends for these flags.
pub fn body(args: &CreateArgs) -> Result<Value> {
    for l in &args.label {
        check_label(l).map_err(|e| {
            anyhow!(
                "invalid argument {} for \"--label\" flag: {e}",
                crate::format::go_quote(l)
            )
        })?;
    }
    let mut b = json!({
        "Name": args.name,
        "Driver": args.driver,
        "Scope": args.scope.clone().unwrap_or_default(),
        "IPAM": {
            "Driver": args.ipam_driver,
            "Options": kv_map(&args.ipam_opt),
            "Config": ipam_config(args)?,
        },
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Ingress": args.ingress,
        "ConfigOnly": args.config_only,
        "ConfigFrom": args.config_from.as_ref().map(|n| json!({"Network": n})),
        "Options": kv_map(&args.opt),
        "Labels": kv_map(&args.label),
    });
    if let (Some(v6), Some(m)) = (args.ipv6, b.as_object_mut()) {
        m.insert("EnableIPv6".into(), json!(v6));
    }
    Ok(b)
}

pub async fn run(client: &mut Client, args: CreateArgs) -> Result<i32> {
    let mut body = body(&args)?;
    // Daemons before API 1.44 allow duplicate names unless asked not to (docker's client asks).
    client.negotiate().await?;
    if crate::client::version_lt(client.api_version(), "1.44") {
        if let Some(m) = body.as_object_mut() {
            m.insert("CheckDuplicate".into(), json!(true));
        }
    }
    let resp: Value = client.post_json("/networks/create", Some(&body)).await?;
    println!("{}", resp["Id"].as_str().unwrap_or_default());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn args(argv: &[&str]) -> CreateArgs {
        let mut full = vec!["t"];
        full.extend_from_slice(argv);
        T::try_parse_from(full).unwrap().a
    }

    fn err(argv: &[&str]) -> String {
        format!("{:#}", body(&args(argv)).unwrap_err())
    }

    /// The bodies docker CLI 28 sent (captured on a socket) for the same flags.
    #[test]
    fn bodies_like_docker() {
        assert_eq!(
            body(&args(&["mynet"])).unwrap(),
            json!({"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},
                   "Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,
                   "ConfigFrom":null,"Options":{},"Labels":{},"Name":"mynet"})
        );
        assert_eq!(
            body(&args(&[
                "-d",
                "bridge",
                "--subnet",
                "10.9.0.0/16",
                "--gateway",
                "10.9.0.1",
                "--ip-range",
                "10.9.1.0/24",
                "--internal",
                "--ipv6",
                "--attachable",
                "-o",
                "com.docker.network.bridge.name=br9",
                "-o",
                "a=b",
                "--label",
                "x=y",
                "--label",
                "z",
                "mynet2",
            ]))
            .unwrap(),
            json!({"Driver":"bridge","Scope":"","EnableIPv6":true,
                   "IPAM":{"Driver":"default","Options":{},"Config":[
                       {"Subnet":"10.9.0.0/16","IPRange":"10.9.1.0/24","Gateway":"10.9.0.1"}]},
                   "Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,
                   "ConfigFrom":null,
                   "Options":{"a":"b","com.docker.network.bridge.name":"br9"},
                   "Labels":{"x":"y","z":""},"Name":"mynet2"})
        );
        let b = body(&args(&[
            "--subnet",
            "10.9.0.0/16",
            "--subnet",
            "fd00::/64",
            "--gateway",
            "10.9.0.1",
            "--gateway",
            "fd00::1",
            "--aux-address",
            "host1=10.9.0.5",
            "n3",
        ]))
        .unwrap();
        assert_eq!(
            b["IPAM"]["Config"],
            json!([{"Subnet":"10.9.0.0/16","Gateway":"10.9.0.1",
                    "AuxiliaryAddresses":{"host1":"10.9.0.5"}},
                   {"Subnet":"fd00::/64","Gateway":"fd00::1"}])
        );
        assert!(b.get("EnableIPv6").is_none());
        assert_eq!(
            body(&args(&["--ipv6=false", "n"])).unwrap()["EnableIPv6"],
            false
        );
    }

    /// docker CLI 28's own messages for bad pools (it sends nothing for these).
    #[test]
    fn ipam_errors_like_docker() {
        assert_eq!(
            err(&["--gateway", "10.1.0.1", "x1"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "x1"]),
            "no matching subnet for gateway 10.2.0.1"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/24", "--ip-range", "10.3.0.0/24", "x1"]),
            "no matching subnet for range 10.3.0.0/24"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/24", "--subnet", "10.1.0.0/16", "x1"]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            err(&[
                "--subnet",
                "10.1.0.0/24",
                "--gateway",
                "10.1.0.1",
                "--gateway",
                "10.1.0.2",
                "x1"
            ]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            err(&[
                "--subnet", "10.1.0.0/16", "--subnet", "10.2.0.0/16", "--gateway", "10.1.0.1",
                "--gateway", "10.1.0.2", "x1"
            ]),
            "cannot configure multiple gateways (10.1.0.2, 10.1.0.1) for the same subnet (10.1.0.0/16)"
        );
        assert_eq!(
            err(&["--subnet", "bogus", "--gateway", "10.1.0.1", "x1"]),
            "invalid subnet: invalid CIDR address: bogus"
        );
        assert_eq!(
            err(&["--label", "=v", "x1"]),
            "invalid argument \"=v\" for \"--label\" flag: invalid label '=v': empty name"
        );
        // A lone bad subnet is the daemon's to refuse, as with docker.
        assert!(body(&args(&["--subnet", "bogus", "x1"])).is_ok());
        // v4 inside v6 and the reverse never match.
        assert!(!subnet_matches("fd00::/64", "10.0.0.1").unwrap());
        assert!(!subnet_matches("10.0.0.0/8", "fd00::1").unwrap());
        assert!(subnet_matches("0.0.0.0/0", "1.2.3.4").unwrap());
        assert!(subnet_matches("::/0", "fd00::1").unwrap());
    }
}
