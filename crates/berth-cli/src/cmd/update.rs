//! `berth update [-m] [--cpus] [--cpuset-cpus] [--pids-limit] [--restart] ... CONTAINER...`.

use anyhow::{anyhow, Result};
use berth_types::api::ContainerUpdateBody;
use clap::Args;
use serde_json::Value;

use crate::client::{enc, Client};
use crate::cmd::create::{parse_restart, ram_in_bytes};

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

impl UpdateArgs {
    pub fn to_body(&self) -> Result<ContainerUpdateBody> {
        let nano_cpus = match &self.cpus {
            None => None,
            Some(c) => {
                let f: f64 = c
                    .parse()
                    .map_err(|_| anyhow!("invalid argument {c:?} for \"--cpus\" flag"))?;
                if !f.is_finite() || f < 0.0 {
                    return Err(anyhow!("invalid argument {c:?} for \"--cpus\" flag"));
                }
                Some((f * 1e9) as i64)
            }
        };
        Ok(ContainerUpdateBody {
            memory: self.memory.as_deref().map(ram_in_bytes).transpose()?,
            memory_swap: match self.memory_swap.as_deref() {
                None => None,
                Some("-1") => Some(-1),
                Some(s) => Some(ram_in_bytes(s)?),
            },
            memory_reservation: self
                .memory_reservation
                .as_deref()
                .map(ram_in_bytes)
                .transpose()?,
            nano_cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            restart_policy: self.restart.as_deref().map(parse_restart).transpose()?,
            ..Default::default()
        })
    }
}

pub async fn run(client: &mut Client, args: UpdateArgs) -> Result<i32> {
    let body = args.to_body()?;
    let mut failed = false;
    for c in &args.containers {
        let res: Result<Value> = client
            .post_json(&format!("/containers/{}/update", enc(c)), Some(&body))
            .await;
        match res {
            Ok(v) => {
                for w in v["Warnings"].as_array().into_iter().flatten() {
                    eprintln!("WARNING: {}", w.as_str().unwrap_or_default());
                }
                println!("{c}");
            }
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        u: UpdateArgs,
    }

    #[test]
    fn body() {
        let t = T::try_parse_from([
            "t",
            "-m",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "-1",
            "--restart",
            "always",
            "c",
        ])
        .unwrap();
        let b = serde_json::to_value(t.u.to_body().unwrap()).unwrap();
        assert_eq!(b["Memory"], 32 * 1024 * 1024);
        assert_eq!(b["NanoCpus"], 500_000_000);
        assert_eq!(b["PidsLimit"], -1);
        assert_eq!(b["RestartPolicy"]["Name"], "always");
    }
}
