//! `berth network ls [-q] [--filter K=V] [--format F] [--no-trunc]`: docker's table (NETWORK ID,
//! NAME, DRIVER, SCOPE), sorted by name in docker's natural order, and its template fields.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::cmd::ps::filters_json;
use crate::format::{go_quote, go_time_string_rfc3339, natural_cmp, Output};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub const COLUMNS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
];

pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// One network as docker's formatter sees it (every field a string).
pub fn row(n: &Value, trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or_default();
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    let flag = |k: &str| n[k].as_bool().unwrap_or(false).to_string();
    json!({
        "ID": if trunc { id.chars().take(12).collect::<String>() } else { id.to_string() },
        "Name": n["Name"].as_str().unwrap_or_default(),
        "Driver": n["Driver"].as_str().unwrap_or_default(),
        "Scope": n["Scope"].as_str().unwrap_or_default(),
        "IPv4": flag("EnableIPv4"),
        "IPv6": flag("EnableIPv6"),
        "Internal": flag("Internal"),
        "Labels": labels.join(","),
        "CreatedAt": go_time_string_rfc3339(n["Created"].as_str().unwrap_or_default()),
    })
}

/// Sorts networks by name as docker's CLI does.
pub fn sort_by_name(list: &mut [Value]) {
    list.sort_by(|a, b| {
        natural_cmp(
            a["Name"].as_str().unwrap_or_default(),
            b["Name"].as_str().unwrap_or_default(),
        )
    });
}

pub async fn run(client: &mut Client, args: LsArgs) -> Result<i32> {
    let filters = filters_json(&args.filter).map_err(|e| {
        let bad = args
            .filter
            .iter()
            .find(|f| !f.contains('='))
            .cloned()
            .unwrap_or_default();
        crate::cmd::status(
            125,
            format!(
                "invalid argument {} for \"-f, --filter\" flag: {e}\nSee 'berth network ls --help'.",
                go_quote(&bad)
            ),
        )
    })?;
    let q: Vec<(&str, String)> = filters.map(|f| ("filters", f)).into_iter().collect();
    let mut list: Vec<Value> = client.get_json(&with_query("/networks", &q)).await?;
    sort_by_name(&mut list);
    let trunc = !args.no_trunc;
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    let format = args.format.as_deref().filter(|f| !f.is_empty());
    if args.quiet && format.is_none_or(|f| f == "table") {
        for n in &list {
            writeln!(out, "{}", row(n, trunc)["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().map(|n| row(n, trunc)).collect();
    Output::parse(format)?.print(out, &rows, COLUMNS, HEADERS)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GET /networks of dockerd 20.10 (trimmed), and what docker CLI 28 printed for it.
    fn list() -> Vec<Value> {
        serde_json::from_value(json!([
            {"Name": "none", "Id": "26ac11b334888b5603a3eb8a7fbaa65b568e3032799ec44efd0797e636ccae42",
             "Created": "2026-11-22T05:31:25.97985781Z", "Scope": "local", "Driver": "null",
             "EnableIPv6": false, "Internal": false, "Labels": {}},
            {"Name": "n2", "Id": "211360e7341c4330d2ddcd89b13cf3c9d3ecf8bb03ce9d1bcfbb3363c57e3f33",
             "Created": "2026-11-22T05:31:32.716009188Z", "Scope": "local", "Driver": "bridge",
             "EnableIPv6": false, "Internal": false, "Labels": {"a": "b"}},
            {"Name": "bridge", "Id": "9f4b3ed7f07634340d1fe55081e4ce39be6ec815f74c41719b4c604184de9a42",
             "Created": "2026-11-22T05:31:25.98062168Z", "Scope": "local", "Driver": "bridge",
             "EnableIPv6": false, "Internal": false, "Labels": {}},
            {"Name": "host", "Id": "d2677dd43338673b47c9e81da772e3c2e7ab18d115780609da1517ca7eb1dfc0",
             "Created": "2026-11-22T05:31:25.98023746Z", "Scope": "local", "Driver": "host",
             "EnableIPv6": false, "Internal": false, "Labels": {}},
            {"Name": "mynet", "Id": "eb2825af52ea5722056371b1281939e60ef2614c0e95dea285aa310c8b8174c9",
             "Created": "2026-11-22T05:31:32.706069189Z", "Scope": "local", "Driver": "bridge",
             "EnableIPv6": false, "Internal": false, "Labels": {}}
        ]))
        .unwrap()
    }

    fn print(format: Option<&str>, trunc: bool) -> String {
        let mut l = list();
        sort_by_name(&mut l);
        let rows: Vec<Value> = l.iter().map(|n| row(n, trunc)).collect();
        let mut out = Vec::new();
        Output::parse(format)
            .unwrap()
            .print(&mut out, &rows, COLUMNS, HEADERS)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_like_docker() {
        assert_eq!(
            print(None, true),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             9f4b3ed7f076   bridge    bridge    local\n\
             d2677dd43338   host      host      local\n\
             eb2825af52ea   mynet     bridge    local\n\
             211360e7341c   n2        bridge    local\n\
             26ac11b33488   none      null      local\n"
        );
        assert!(print(None, false).starts_with(
            "NETWORK ID                                                         NAME      DRIVER    SCOPE\n\
             9f4b3ed7f07634340d1fe55081e4ce39be6ec815f74c41719b4c604184de9a42   bridge    bridge    local\n"
        ));
        assert_eq!(
            print(Some("table {{.Name}}\\t{{.Internal}}"), true),
            "NAME      INTERNAL\nbridge    false\nhost      false\nmynet     false\nn2        false\nnone      false\n"
        );
    }

    #[test]
    fn fields_like_docker() {
        assert_eq!(
            print(
                Some("{{.Name}}\\t{{.IPv6}}\\t{{.Labels}}\\t{{.CreatedAt}}"),
                true
            ),
            "bridge\tfalse\t\t2026-11-22 05:31:25.98062168 +0000 UTC\n\
             host\tfalse\t\t2026-11-22 05:31:25.98023746 +0000 UTC\n\
             mynet\tfalse\t\t2026-11-22 05:31:32.706069189 +0000 UTC\n\
             n2\tfalse\ta=b\t2026-11-22 05:31:32.716009188 +0000 UTC\n\
             none\tfalse\t\t2026-11-22 05:31:25.97985781 +0000 UTC\n"
        );
        let json_line = print(Some("json"), true);
        assert_eq!(
            json_line.lines().next().unwrap(),
            r#"{"CreatedAt":"2026-11-22 05:31:25.98062168 +0000 UTC","Driver":"bridge","ID":"9f4b3ed7f076","IPv4":"false","IPv6":"false","Internal":"false","Labels":"","Name":"bridge","Scope":"local"}"#
        );
    }
}
