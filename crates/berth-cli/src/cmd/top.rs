//! `berth top CONTAINER [ps OPTIONS]`.

use anyhow::Result;
use berth_types::api::ContainerTopResponse;
use clap::Args;

use crate::client::{enc, Client};
use crate::format::write_table;

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// Options passed to ps
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub async fn run(client: &mut Client, args: TopArgs) -> Result<i32> {
    let mut path = format!("/containers/{}/top", enc(&args.container));
    if !args.ps_args.is_empty() {
        path = format!("{path}?ps_args={}", enc(&args.ps_args.join(" ")));
    }
    let top: ContainerTopResponse = client.get_json(&path).await?;
    let mut rows = vec![top.titles.unwrap_or_default()];
    rows.extend(top.processes.unwrap_or_default());
    write_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(0)
}
