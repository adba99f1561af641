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

/// docker's DisplayablePorts, simplified: "0.0.0.0:8080->80/tcp, 443/tcp".
pub fn display_ports(c: &ContainerSummary) -> String {
    let mut items: Vec<(String, u16, String)> = Vec::new();
    for p in c.ports.as_deref().unwrap_or_default() {
        let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
        let s = match (&p.ip, p.public_port) {
            (Some(ip), Some(pub_port)) if !ip.is_empty() => {
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.clone()
                };
                format!("{ip}:{pub_port}->{}/{proto}", p.private_port)
            }
            _ => format!("{}/{proto}", p.private_port),
        };
        items.push((s, p.private_port, proto));
    }
    items.sort_by(|a, b| (a.1, &a.2, &a.0).cmp(&(b.1, &b.2, &b.0)));
    items.dedup_by(|a, b| a.0 == b.0);
    items
        .into_iter()
        .map(|i| i.0)
        .collect::<Vec<_>>()
        .join(", ")
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
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp, 443/tcp");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Networks"], "bridge");
        assert_eq!(r["State"], "running");
        assert_eq!(r["Status"], "Up 3 seconds");
        let full = row(&summary(), false);
        assert_eq!(full["ID"], "0123456789abcdef0123");
        assert_eq!(full["Names"], "web,other/link");
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
