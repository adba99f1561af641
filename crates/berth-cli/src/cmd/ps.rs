//! `berth ps [-a] [-q] [--filter K=V] [--format F] [--no-trunc] [-n N] [-l] [-s]`: docker's
//! columns and field names (`{{.ID}}`, `{{.Names}}`, `{{.Status}}`, ...).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_types::api::ContainerSummary;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::format::{self, ago, ellipsis, go_quote, human_size_prec, Output};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

/// `--filter k=v` flags → the API's JSON (`{"k":{"v":true}}`, what docker's CLI sends).
pub fn filters_json(filters: &[String]) -> Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(serde_json::to_string(&m)?))
}

/// Go's `net.JoinHostPort`: an IPv6 host in brackets.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// docker's DisplayablePorts (cli/command/formatter/container.go), for ps's PORTS column.
///
/// Ports sorted by (private port, IP, public port, type). A port published on the same number
/// it has inside is grouped with its neighbours per (IP, type) into ranges
/// ("0.0.0.0:8000-8001->8000-8001/tcp"); an unpublished one per type ("100-102/tcp"); a port
/// published on another number stands alone ("[::]:8080->80/tcp") and comes after the groups.
pub fn display_ports(c: &ContainerSummary) -> String {
    struct Group {
        first: u16,
        last: u16,
    }
    let mut ports: Vec<(u16, String, u16, String)> = c
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p.private_port,
                p.ip.clone().unwrap_or_default(),
                p.public_port.unwrap_or(0),
                p.typ.map(|t| t.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    ports.sort();
    // (ip, type) → group; keys in the order they were first seen.
    let mut groups: Vec<((String, String), Group)> = Vec::new();
    let mut result: Vec<String> = Vec::new();
    let mut host_mappings: Vec<String> = Vec::new();
    let form = |key: &(String, String), g: &Group| -> String {
        let mut range = g.first.to_string();
        if g.first != g.last {
            range = format!("{range}-{}", g.last);
        }
        if key.0.is_empty() {
            format!("{range}/{}", key.1)
        } else {
            format!("{}->{range}/{}", join_host_port(&key.0, &range), key.1)
        }
    };
    for (private, ip, public, typ) in ports {
        if !ip.is_empty() && public != private {
            host_mappings.push(format!(
                "{}->{private}/{typ}",
                join_host_port(&ip, &public.to_string())
            ));
            continue;
        }
        let key = (ip, typ);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            None => groups.push((
                key,
                Group {
                    first: private,
                    last: private,
                },
            )),
            Some((k, g)) => {
                if u32::from(private) == u32::from(g.last) + 1 {
                    g.last = private;
                } else {
                    result.push(form(k, g));
                    *g = Group {
                        first: private,
                        last: private,
                    };
                }
            }
        }
    }
    for (k, g) in &groups {
        result.push(form(k, g));
    }
    result.extend(host_mappings);
    result.join(", ")
}

/// One container as docker's formatter sees it (every field a string).
pub fn row(c: &ContainerSummary, trunc: bool) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let names: Vec<String> = c
        .names
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let command = c.command.clone().unwrap_or_default();
    let command = if trunc {
        go_quote(&ellipsis(&command, 20))
    } else {
        go_quote(&command)
    };
    let mut image = c.image.clone().unwrap_or_default();
    if trunc {
        if let Some(hex) = image.strip_prefix("sha256:") {
            image = hex.chars().take(12).collect();
        }
    }
    let labels = c
        .labels
        .as_ref()
        .map(|l| {
            let mut v: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
            v.sort();
            v.join(",")
        })
        .unwrap_or_default();
    let mounts: Vec<String> = c
        .mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let n = m
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| m.source.clone().unwrap_or_default());
            if trunc {
                ellipsis(&n, 15)
            } else {
                n
            }
        })
        .collect();
    let networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| {
            let mut v: Vec<String> = n.keys().cloned().collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let created = c.created.unwrap_or(0);
    let size = match (c.size_rw, c.size_root_fs) {
        (None, None) => "0B".to_string(),
        (rw, root) => {
            let rw = rw.unwrap_or(0);
            let mut s = human_size_prec(rw as f64, 3);
            if let Some(root) = root.filter(|r| *r > 0) {
                s = format!("{s} (virtual {})", human_size_prec(root as f64, 3));
            }
            s
        }
    };
    let state = c.state.map(|s| s.to_string()).unwrap_or_default();
    json!({
        "ID": if trunc { id.chars().take(12).collect::<String>() } else { id },
        "Image": image,
        "Command": command,
        "CreatedAt": format::go_time_string(created),
        "RunningFor": ago(created),
        "Ports": display_ports(c),
        "State": state,
        "Status": c.status.clone().unwrap_or_default(),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels,
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": c.mounts.as_ref().map_or(0, |m| m.iter().filter(|m| m.name.as_ref().is_some_and(|n| !n.is_empty())).count()).to_string(),
    })
}

pub const COLUMNS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
];

pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

pub async fn run(client: &mut Client, args: PsArgs) -> Result<i32> {
    let mut q = Vec::new();
    let limit = if args.latest { 1 } else { args.last };
    if args.all || limit > 0 {
        q.push(("all", "1".to_string()));
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    let wants_size = args.size || args.format.as_deref().is_some_and(|f| f.contains(".Size"));
    if wants_size {
        q.push(("size", "1".to_string()));
    }
    if let Some(f) = filters_json(&args.filter)? {
        q.push(("filters", f));
    }
    let list: Vec<ContainerSummary> = client.get_json(&with_query("/containers/json", &q)).await?;
    let trunc = !args.no_trunc;
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    if args.quiet && args.format.is_none() {
        for c in &list {
            let id = c.id.clone().unwrap_or_default();
            writeln!(
                out,
                "{}",
                if trunc {
                    id.chars().take(12).collect()
                } else {
                    id
                }
            )?;
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().map(|c| row(c, trunc)).collect();
    let mut cols: Vec<(&str, &str)> = COLUMNS.to_vec();
    if args.size {
        cols.push(("Size", "SIZE"));
    }
    Output::parse(args.format.as_deref())?.print(out, &rows, &cols, HEADERS)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> ContainerSummary {
        serde_json::from_value(json!({
            "Id": "0123456789abcdef0123",
            "Names": ["/web", "/other/link"],
            "Image": "busybox",
            "Command": "sh -c 'while true; do sleep 1; done'",
            "Created": 1,
            "Ports": [
                {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
                {"PrivatePort": 443, "Type": "tcp"}
            ],
            "Labels": {"b": "2", "a": "1"},
            "State": "running",
            "Status": "Up 3 seconds",
            "NetworkSettings": {"Networks": {"bridge": {}}},
            "Mounts": []
        }))
        .unwrap()
    }

    #[test]
    fn rows_like_docker() {
        let r = row(&summary(), true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["Ports"], "443/tcp, 0.0.0.0:8080->80/tcp");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Networks"], "bridge");
        assert_eq!(r["State"], "running");
        assert_eq!(r["Status"], "Up 3 seconds");
        let full = row(&summary(), false);
        assert_eq!(full["ID"], "0123456789abcdef0123");
        assert_eq!(full["Names"], "web,other/link");
    }

    fn ports_of(ports: serde_json::Value) -> String {
        let c: ContainerSummary = serde_json::from_value(json!({ "Ports": ports })).unwrap();
        display_ports(&c)
    }

    /// Each case is a container's `Ports` from GET /containers/json of dockerd 20.10 and the
    /// PORTS column docker CLI 28 printed for it.
    #[test]
    fn ports_column_like_docker() {
        // -p 8000-8001:80-81 -p 127.0.0.1:9000:90/udp -p 7000:70 --expose 100-102 --expose 5/udp
        let web = json!([
            {"PrivatePort": 5, "Type": "udp"},
            {"PrivatePort": 100, "Type": "tcp"}, {"PrivatePort": 101, "Type": "tcp"},
            {"PrivatePort": 102, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 70, "PublicPort": 7000, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 70, "PublicPort": 7000, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 81, "PublicPort": 8001, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8001, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 90, "PublicPort": 9000, "Type": "udp"}
        ]);
        assert_eq!(
            ports_of(web),
            "5/udp, 100-102/tcp, 0.0.0.0:7000->70/tcp, [::]:7000->70/tcp, \
             0.0.0.0:8000->80/tcp, [::]:8000->80/tcp, 0.0.0.0:8001->81/tcp, [::]:8001->81/tcp, \
             127.0.0.1:9000->90/udp"
        );
        // -p 18000-18001:18000-18001 -p 127.0.0.1:15000:15000 -p 15001:15001
        // -p 16000:16000/udp -p 16001:16001/udp -p 16003:16003 -p [::1]:17000-17001:17000-17001
        let web4 = json!([
            {"IP":"127.0.0.1","PrivatePort":15000,"PublicPort":15000,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":16001,"PublicPort":16001,"Type":"udp"},
            {"IP":"::","PrivatePort":16001,"PublicPort":16001,"Type":"udp"},
            {"IP":"0.0.0.0","PrivatePort":16003,"PublicPort":16003,"Type":"tcp"},
            {"IP":"::","PrivatePort":16003,"PublicPort":16003,"Type":"tcp"},
            {"IP":"::1","PrivatePort":17000,"PublicPort":17000,"Type":"tcp"},
            {"IP":"::1","PrivatePort":17001,"PublicPort":17001,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":18001,"PublicPort":18001,"Type":"tcp"},
            {"IP":"::","PrivatePort":18001,"PublicPort":18001,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":15001,"PublicPort":15001,"Type":"tcp"},
            {"IP":"::","PrivatePort":15001,"PublicPort":15001,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":16000,"PublicPort":16000,"Type":"udp"},
            {"IP":"::","PrivatePort":16000,"PublicPort":16000,"Type":"udp"},
            {"IP":"0.0.0.0","PrivatePort":18000,"PublicPort":18000,"Type":"tcp"},
            {"IP":"::","PrivatePort":18000,"PublicPort":18000,"Type":"tcp"}
        ]);
        assert_eq!(
            ports_of(web4),
            "0.0.0.0:15001->15001/tcp, [::]:15001->15001/tcp, 0.0.0.0:16003->16003/tcp, \
             [::]:16003->16003/tcp, 127.0.0.1:15000->15000/tcp, \
             0.0.0.0:18000-18001->18000-18001/tcp, [::]:18000-18001->18000-18001/tcp, \
             0.0.0.0:16000-16001->16000-16001/udp, [::]:16000-16001->16000-16001/udp, \
             [::1]:17000-17001->17000-17001/tcp"
        );
        // -P --expose 80 --expose 443
        let web2 = json!([
            {"IP":"0.0.0.0","PrivatePort":443,"PublicPort":32768,"Type":"tcp"},
            {"IP":"::","PrivatePort":443,"PublicPort":32768,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":80,"PublicPort":32769,"Type":"tcp"},
            {"IP":"::","PrivatePort":80,"PublicPort":32769,"Type":"tcp"}
        ]);
        assert_eq!(
            ports_of(web2),
            "0.0.0.0:32769->80/tcp, [::]:32769->80/tcp, 0.0.0.0:32768->443/tcp, [::]:32768->443/tcp"
        );
        assert_eq!(ports_of(json!([])), "");
        assert_eq!(ports_of(json!(null)), "");
        // A port at the top of the range never overflows the grouping.
        assert_eq!(
            ports_of(
                json!([{"PrivatePort": 65535, "Type": "tcp"}, {"PrivatePort": 0, "Type": "tcp"}])
            ),
            "0/tcp, 65535/tcp"
        );
    }

    #[test]
    fn filters() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["status=exited".into(), "name=a".into(), "name=b".into()]).unwrap(),
            Some(r#"{"name":{"a":true,"b":true},"status":{"exited":true}}"#.into())
        );
        assert!(filters_json(&["nope".into()]).is_err());
    }

    #[test]
    fn table_output() {
        let rows = vec![row(&summary(), true)];
        let mut out = Vec::new();
        Output::parse(None)
            .unwrap()
            .print(&mut out, &rows, COLUMNS, HEADERS)
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        let first = s.lines().next().unwrap();
        assert!(
            first.starts_with("CONTAINER ID   IMAGE     COMMAND"),
            "{first}"
        );
        assert!(
            s.contains("0123456789ab   busybox   \"sh -c 'while true; …\""),
            "{s}"
        );
    }
}
