//! `berth stats [-a] [--no-stream] [--format F] [CONTAINER...]`: docker's columns computed from
//! GET /containers/{id}/stats samples (CPU % from the cpu/precpu deltas).

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{enc, with_query, Client};
use crate::cmd::info::human_size_binary;
use crate::format::{human_size_prec, Output};
use crate::stream::stdout_is_tty;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// One stats sample → docker's row.
pub fn row(s: &Value, name_hint: &str, trunc: bool) -> Value {
    let cpu_delta = f(&s["cpu_stats"]["cpu_usage"]["total_usage"])
        - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let mut online = f(&s["cpu_stats"]["online_cpus"]);
    if online == 0.0 {
        online = s["cpu_stats"]["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(1.0, |a| a.len().max(1) as f64);
    }
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let m = &s["memory_stats"];
    let usage = f(&m["usage"]);
    let cache = if m["stats"]["total_inactive_file"].is_number() {
        f(&m["stats"]["total_inactive_file"])
    } else {
        f(&m["stats"]["inactive_file"])
    };
    let mem = if cache < usage { usage - cache } else { usage };
    let limit = f(&m["limit"]);
    let mem_pct = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = s["networks"].as_object() {
        for n in nets.values() {
            rx += f(&n["rx_bytes"]);
            tx += f(&n["tx_bytes"]);
        }
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "read" => rd += f(&e["value"]),
            "write" => wr += f(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or(name_hint);
    let name = s["name"]
        .as_str()
        .unwrap_or(name_hint)
        .trim_start_matches('/');
    json!({
        "ID": if trunc { id.chars().take(12).collect::<String>() } else { id.to_string() },
        "Container": name_hint,
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", human_size_binary(mem), human_size_binary(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx, 3), human_size_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(rd, 3), human_size_prec(wr, 3)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

const COLUMNS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

pub async fn run(client: &mut Client, args: StatsArgs) -> Result<i32> {
    let output = Output::parse(args.format.as_deref())?;
    let tty = stdout_is_tty();
    loop {
        let targets: Vec<String> = if args.containers.is_empty() {
            let q = if args.all {
                vec![("all", "1".to_string())]
            } else {
                Vec::new()
            };
            let list: Vec<Value> = client.get_json(&with_query("/containers/json", &q)).await?;
            list.iter()
                .filter_map(|c| c["Id"].as_str().map(str::to_string))
                .collect()
        } else {
            args.containers.clone()
        };
        let mut rows = Vec::new();
        let mut failed = false;
        for t in &targets {
            match client
                .get_json::<Value>(&format!("/containers/{}/stats?stream=0", enc(t)))
                .await
            {
                Ok(s) => rows.push(row(&s, t, !args.no_trunc)),
                Err(e) => {
                    eprintln!("{e:#}");
                    failed = true;
                }
            }
        }
        let mut buf = Vec::new();
        output.print(&mut buf, &rows, COLUMNS, COLUMNS)?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if tty && !args.no_stream {
                out.write_all(b"\x1b[2J\x1b[H")?;
            }
            out.write_all(&buf)?;
            out.flush()?;
        }
        if args.no_stream {
            return Ok(if failed { 1 } else { 0 });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_like_docker() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2_097_152, "limit": 1_073_741_824, "stats": {"total_inactive_file": 1_048_576}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}]},
            "pids_stats": {"current": 3}
        });
        let r = row(&s, "web", true);
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.10%");
        assert_eq!(r["NetIO"], "1kB / 0B");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
    }
}
