//! `berth volume ls [-q] [--filter K=V] [--format F]`: docker's table (DRIVER, VOLUME NAME),
//! sorted by name in docker's natural order, and its template fields.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::cmd::ps::filters_json;
use crate::format::{natural_cmp, Output};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub const COLUMNS: &[(&str, &str)] = &[("Driver", "DRIVER"), ("Name", "VOLUME NAME")];

pub const HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
];

/// One volume as docker's formatter sees it.
pub fn row(v: &Value) -> Value {
    let mut labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    json!({
        "Name": v["Name"].as_str().unwrap_or_default(),
        "Driver": v["Driver"].as_str().unwrap_or_default(),
        "Scope": v["Scope"].as_str().unwrap_or_default(),
        "Mountpoint": v["Mountpoint"].as_str().unwrap_or_default(),
        "Labels": labels.join(","),
        "Links": "N/A",
        "Size": "N/A",
    })
}

pub async fn run(client: &mut Client, args: LsArgs) -> Result<i32> {
    let filters = filters_json(&args.filter)?;
    let q: Vec<(&str, String)> = filters.map(|f| ("filters", f)).into_iter().collect();
    let resp: Value = client.get_json(&with_query("/volumes", &q)).await?;
    let mut list: Vec<Value> = resp["Volumes"].as_array().cloned().unwrap_or_default();
    list.sort_by(|a, b| {
        natural_cmp(
            a["Name"].as_str().unwrap_or_default(),
            b["Name"].as_str().unwrap_or_default(),
        )
    });
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    let format = args.format.as_deref().filter(|f| !f.is_empty());
    if args.quiet && format.is_none_or(|f| f == "table") {
        for v in &list {
            writeln!(out, "{}", v["Name"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().map(row).collect();
    Output::parse(format)?.print(out, &rows, COLUMNS, HEADERS)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_like_docker() {
        let l = [
            json!({"Name": "data", "Driver": "local", "Scope": "local", "Labels": {"a": "b"}, "Mountpoint": "/v/data/_data"}),
            json!({"Name": "0123abcd", "Driver": "local", "Scope": "local", "Labels": null, "Mountpoint": "/v/x"}),
        ];
        let rows: Vec<Value> = l.iter().map(row).collect();
        let mut out = Vec::new();
        Output::parse(None)
            .unwrap()
            .print(&mut out, &rows, COLUMNS, HEADERS)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "DRIVER    VOLUME NAME\nlocal     data\nlocal     0123abcd\n"
        );
        let mut out = Vec::new();
        Output::parse(Some("{{.Name}} {{.Labels}} {{.Mountpoint}}"))
            .unwrap()
            .print(&mut out, &rows, COLUMNS, HEADERS)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data a=b /v/data/_data\n0123abcd  /v/x\n"
        );
    }
}
