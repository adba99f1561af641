//! `berth network prune [-f] [--filter until=|label=]`: asks first (unless -f), then prints
//! docker's "Deleted Networks:" list (nothing when none was deleted).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{with_query, Client};
use crate::cmd::ps::filters_json;
use crate::cmd::system::{confirm, print_list};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub const WARNING: &str =
    "WARNING! This will remove all custom networks not used by at least one container.";

pub async fn run(client: &mut Client, args: PruneArgs) -> Result<i32> {
    let filters = filters_json(&args.filter)?;
    if !args.force && !confirm(WARNING) {
        return Ok(0);
    }
    let q: Vec<(&str, String)> = filters.map(|f| ("filters", f)).into_iter().collect();
    let v: Value = client
        .post_json::<Value, Value>(&with_query("/networks/prune", &q), None)
        .await?;
    print_list("Deleted Networks", &v, "NetworksDeleted");
    Ok(0)
}
