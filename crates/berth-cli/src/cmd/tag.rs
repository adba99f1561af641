//! `berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`.

use anyhow::{anyhow, Result};
use berth_types::Reference;
use clap::Args;
use hyper::Method;

use crate::client::{enc, Client};

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

/// "repo:tag" → the repo and tag query values docker's CLI sends (tag "latest" by default).
pub fn repo_and_tag(target: &str) -> Result<(String, String)> {
    let r = Reference::parse_normalized(target).map_err(|e| anyhow!("{e}"))?;
    if r.digest().is_some() {
        return Err(anyhow!("refusing to create a tag with a digest reference"));
    }
    let tag = r.tag().unwrap_or("latest").to_string();
    Ok((r.familiar_name(), tag))
}

pub async fn run(client: &mut Client, args: TagArgs) -> Result<i32> {
    let (repo, tag) = repo_and_tag(&args.target)?;
    client
        .call(
            Method::POST,
            &format!(
                "/images/{}/tag?repo={}&tag={}",
                enc(&args.source),
                enc(&repo),
                enc(&tag)
            ),
        )
        .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            repo_and_tag("busybox").unwrap(),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            repo_and_tag("localhost:5000/x/y:v2").unwrap(),
            ("localhost:5000/x/y".into(), "v2".into())
        );
        assert!(repo_and_tag("UPPER").is_err());
    }
}
