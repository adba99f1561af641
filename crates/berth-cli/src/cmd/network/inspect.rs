//! `berth network inspect [-f FORMAT] [-v] NETWORK...`: the daemon's objects as docker prints
//! them (one indented JSON array, or the template per network); a missing one is reported on
//! stderr and makes the exit status 1.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, read_all, Client};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

pub async fn run(client: &mut Client, args: InspectArgs) -> Result<i32> {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &args.networks {
        let path = format!(
            "/networks/{}{}",
            enc(n),
            if args.verbose { "?verbose=true" } else { "" }
        );
        match client.send(Method::GET, &path, None, &[]).await {
            Ok(r) => raws.push(read_all(r).await?.to_vec()),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    crate::cmd::inspect::print(&raws, args.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}
