//! `berth builder prune [-a] [-f] [--filter K=V] [--keep-storage N]`: POST /build/prune, printed
//! as docker prints it (the deleted cache objects, then `Total reclaimed space: X`).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{with_query, Client};
use crate::cmd::build::BuildArgs;
use crate::cmd::system::{confirm, print_list};
use crate::format::human_size;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum BuilderCmd {
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Remove build cache
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Amount of disk space to keep for cache (bytes)
    #[arg(long = "keep-storage")]
    pub keep_storage: Option<u64>,
}

pub async fn dispatch(client: &mut Client, cmd: BuilderCmd) -> Result<i32> {
    match cmd {
        BuilderCmd::Build(a) => crate::cmd::build::run(client, *a).await,
        BuilderCmd::Prune(a) => prune(client, a).await,
    }
}

/// `--filter k=v` flags as Docker's filters JSON (`{"k": {"v": true}}`).
fn filters_json(raw: &[String]) -> Result<Option<String>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in raw {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        m.entry(k.trim().to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(serde_json::to_string(&m)?))
}

pub async fn prune(client: &mut Client, args: PruneArgs) -> Result<i32> {
    let filters = filters_json(&args.filters)?;
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all build cache."
        } else {
            "WARNING! This will remove all dangling build cache."
        };
        if !confirm(warning) {
            return Ok(0);
        }
    }
    let mut q = Vec::new();
    if args.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(k) = args.keep_storage {
        q.push(("keep-storage", k.to_string()));
    }
    if let Some(f) = filters {
        q.push(("filters", f));
    }
    let v: Value = client
        .post_json::<Value, Value>(&with_query("/build/prune", &q), None)
        .await?;
    print_list("Deleted build cache objects", &v, "CachesDeleted");
    println!(
        "Total reclaimed space: {}",
        human_size(v["SpaceReclaimed"].as_i64().unwrap_or(0))
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_as_docker_sends_them() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["until=24h".into(), "id=a".into(), "id=b".into()])
                .unwrap()
                .unwrap(),
            r#"{"id":{"a":true,"b":true},"until":{"24h":true}}"#
        );
        assert!(filters_json(&["nonsense".into()]).is_err());
    }
}
