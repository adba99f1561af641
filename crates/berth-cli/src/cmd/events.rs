//! `berth events [--since T] [--until T] [--filter K=V] [--format F]`: the daemon's event stream,
//! one line per event as docker prints it.

use anyhow::{anyhow, Result};
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{json_lines, with_query, Client};
use crate::cmd::ps::filters_json;
use crate::format::{api_timestamp, rfc3339_nano};
use crate::template::Template;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

/// docker's default event line.
pub fn line(e: &Value) -> String {
    let nanos = e["timeNano"].as_i64().unwrap_or_else(|| {
        e["time"]
            .as_i64()
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
    });
    let ts = rfc3339_nano(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    );
    let typ = e["Type"].as_str().unwrap_or_default();
    let action = e["Action"]
        .as_str()
        .or(e["status"].as_str())
        .unwrap_or_default();
    let id = e["Actor"]["ID"]
        .as_str()
        .or(e["id"].as_str())
        .unwrap_or_default();
    let mut s = format!("{ts} {typ} {action} {id}");
    if let Some(attrs) = e["Actor"]["Attributes"]
        .as_object()
        .filter(|a| !a.is_empty())
    {
        let mut kv: Vec<(String, String)> = attrs
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        kv.sort();
        let parts: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s
}

pub async fn run(client: &mut Client, args: EventsArgs) -> Result<i32> {
    let mut q = Vec::new();
    if let Some(s) = &args.since {
        q.push((
            "since",
            api_timestamp(s).ok_or_else(|| anyhow!("invalid value for \"since\": {s}"))?,
        ));
    }
    if let Some(u) = &args.until {
        q.push((
            "until",
            api_timestamp(u).ok_or_else(|| anyhow!("invalid value for \"until\": {u}"))?,
        ));
    }
    if let Some(f) = filters_json(&args.filter)? {
        q.push(("filters", f));
    }
    let tmpl = match args.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?),
    };
    let resp = client
        .send_own(Method::GET, &with_query("/events", &q), None)
        .await?;
    let mut body = resp.into_body();
    json_lines(&mut body, |e| {
        use std::io::Write;
        let s = match &tmpl {
            Some(t) => t.render(&e)?,
            None => line(&e),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{s}")?;
        out.flush()?;
        Ok(())
    })
    .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines() {
        let e = json!({
            "Type": "container", "Action": "start",
            "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "busybox"}},
            "time": 1_700_000_000, "timeNano": 1_700_000_000_000_000_005i64
        });
        assert_eq!(
            line(&e),
            "2023-11-14T22:13:20.000000005Z container start abc (image=busybox, name=x)"
        );
    }
}
