//! `berth logs [-f] [--tail N] [-t] [--since T] [--until T] CONTAINER`.

use anyhow::{anyhow, Result};
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{enc, with_query, Client};
use crate::format::api_timestamp;
use crate::stream;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

/// The query of GET /containers/{id}/logs.
pub fn logs_query(a: &LogsArgs) -> Result<Vec<(&'static str, String)>> {
    let mut q = vec![("stdout", "1".to_string()), ("stderr", "1".to_string())];
    if let Some(s) = &a.since {
        q.push((
            "since",
            api_timestamp(s).ok_or_else(|| anyhow!("invalid value for \"since\": {s}"))?,
        ));
    }
    if let Some(s) = &a.until {
        q.push((
            "until",
            api_timestamp(s).ok_or_else(|| anyhow!("invalid value for \"until\": {s}"))?,
        ));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.follow {
        q.push(("follow", "1".into()));
    }
    q.push(("tail", a.tail.clone()));
    if a.details {
        q.push(("details", "1".into()));
    }
    Ok(q)
}

pub async fn run(client: &mut Client, args: LogsArgs) -> Result<i32> {
    let info: Value = client
        .get_json(&format!("/containers/{}/json", enc(&args.container)))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(&args.container).to_string();
    let path = with_query(&format!("/containers/{id}/logs"), &logs_query(&args)?);
    let resp = client.send_own(Method::GET, &path, None).await?;
    let mut body = resp.into_body();
    stream::copy_body(&mut body, tty).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        let a = LogsArgs {
            follow: true,
            tail: "5".into(),
            timestamps: true,
            since: Some("1700000000".into()),
            until: None,
            details: false,
            container: "c".into(),
        };
        let q = logs_query(&a).unwrap();
        assert!(q.contains(&("follow", "1".into())));
        assert!(q.contains(&("tail", "5".into())));
        assert!(q.contains(&("since", "1700000000".into())));
        let bad = LogsArgs {
            since: Some("yesterday-ish".into()),
            ..a
        };
        assert!(logs_query(&bad).is_err());
    }
}
