//! `berth diff CONTAINER`: "C /path", "A /path", "D /path".

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::{enc, Client};

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub container: String,
}

pub fn line(change: &Value) -> String {
    let kind = match change["Kind"].as_i64() {
        Some(0) => "C",
        Some(1) => "A",
        Some(2) => "D",
        _ => "?",
    };
    format!("{kind} {}", change["Path"].as_str().unwrap_or_default())
}

pub async fn run(client: &mut Client, args: DiffArgs) -> Result<i32> {
    let changes: Option<Vec<Value>> = client
        .get_json(&format!("/containers/{}/changes", enc(&args.container)))
        .await?;
    for c in changes.unwrap_or_default() {
        println!("{}", line(&c));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(line(&serde_json::json!({"Path": "/a", "Kind": 1})), "A /a");
        assert_eq!(line(&serde_json::json!({"Path": "/b", "Kind": 2})), "D /b");
    }
}
