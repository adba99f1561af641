//! `berth commit [-a] [-m] [-c] [-p] CONTAINER [REPOSITORY[:TAG]]`: prints the new image id.

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::Value;

use crate::client::{with_query, Client};
use crate::cmd::tag::repo_and_tag;

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    pub reference: Option<String>,
}

pub async fn run(client: &mut Client, args: CommitArgs) -> Result<i32> {
    let mut q = vec![("container", args.container.clone())];
    if let Some(r) = &args.reference {
        let (repo, tag) = repo_and_tag(r)?;
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(a) = &args.author {
        q.push(("author", a.clone()));
    }
    if let Some(m) = &args.message {
        q.push(("comment", m.clone()));
    }
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    q.push(("pause", if args.pause { "1" } else { "0" }.to_string()));
    let v: Value = client
        .post_json(&with_query("/commit", &q), Some(&serde_json::json!({})))
        .await?;
    let id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("commit: no Id in the daemon's answer"))?;
    println!("{id}");
    Ok(0)
}
