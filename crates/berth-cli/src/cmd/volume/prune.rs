//! `berth volume prune [-f] [-a] [--filter label=]`: asks first (unless -f), then prints
//! docker's "Deleted Volumes:" list and the space reclaimed. Without `-a` only anonymous
//! volumes go (docker ≥ 23).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{with_query, Client};
use crate::cmd::ps::filters_json;
use crate::cmd::system::{confirm, print_list};
use crate::format::human_size;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub async fn run(client: &mut Client, args: PruneArgs) -> Result<i32> {
    let mut filter = args.filter.clone();
    if args.all {
        filter.push("all=true".into());
    }
    let filters = filters_json(&filter)?;
    let warning = if args.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !confirm(warning) {
        return Ok(0);
    }
    let q: Vec<(&str, String)> = filters.map(|f| ("filters", f)).into_iter().collect();
    let v: Value = client
        .post_json::<Value, Value>(&with_query("/volumes/prune", &q), None)
        .await?;
    print_list("Deleted Volumes", &v, "VolumesDeleted");
    println!(
        "Total reclaimed space: {}",
        human_size(v["SpaceReclaimed"].as_i64().unwrap_or(0))
    );
    Ok(0)
}
