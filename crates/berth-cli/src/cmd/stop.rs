//! `berth stop` and `berth restart` [-t SECONDS] [-s SIGNAL].

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, with_query, Client};
use crate::cmd::each;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_negative_numbers = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Containers (names or ids)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// The query of a stop/restart request.
pub fn stop_query(args: &StopArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = &args.signal {
        q.push(("signal", s.clone()));
    }
    if let Some(t) = args.time {
        q.push(("t", t.to_string()));
    }
    q
}

pub async fn run(client: &mut Client, args: StopArgs, verb: &'static str) -> Result<i32> {
    let q = stop_query(&args);
    each(client, &args.containers, |c, t| {
        let q = q.clone();
        Box::pin(async move {
            let path = with_query(&format!("/containers/{}/{verb}", enc(t)), &q);
            c.call(Method::POST, &path).await?;
            Ok(Some(t.to_string()))
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        let a = StopArgs {
            time: Some(3),
            signal: None,
            containers: vec!["x".into()],
        };
        assert_eq!(stop_query(&a), vec![("t", "3".to_string())]);
    }
}
