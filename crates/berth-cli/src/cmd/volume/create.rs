//! `berth volume create [-d DRIVER] [-o K=V]... [--label K=V]... [NAME]`: prints the name.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::client::Client;
use crate::cmd::network::kv_map;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    pub name_flag: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

pub async fn run(client: &mut Client, args: CreateArgs) -> Result<i32> {
    let name = match (&args.name, &args.name_flag) {
        (Some(a), Some(b)) if a != b => {
            bail!("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
        }
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => String::new(),
    };
    let body = json!({
        "Name": name,
        "Driver": args.driver,
        "DriverOpts": kv_map(&args.opt),
        "Labels": kv_map(&args.label),
    });
    let v: Value = client.post_json("/volumes/create", Some(&body)).await?;
    println!("{}", v["Name"].as_str().unwrap_or_default());
    Ok(0)
}
