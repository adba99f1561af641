//! `berth network create|ls|inspect|rm|connect|disconnect|prune`: docker's network verbs, one
//! file each, over the Engine API's /networks endpoints. Checks that docker's CLI makes itself
//! (IPAM consolidation, label and filter syntax) are made here with its words; the rest is the
//! daemon's to say.

pub mod connect;
pub mod create;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;

use anyhow::Result;
use clap::Subcommand;

use crate::client::Client;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(connect::ConnectArgs),
    /// Create a network
    Create(create::CreateArgs),
    /// Disconnect a container from a network
    Disconnect(connect::DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(inspect::InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(ls::LsArgs),
    /// Remove all unused networks
    Prune(prune::PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
}

pub async fn dispatch(c: &mut Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Connect(a) => connect::connect(c, a).await,
        NetworkCmd::Create(a) => create::run(c, a).await,
        NetworkCmd::Disconnect(a) => connect::disconnect(c, a).await,
        NetworkCmd::Inspect(a) => inspect::run(c, a).await,
        NetworkCmd::Ls(a) => ls::run(c, a).await,
        NetworkCmd::Prune(a) => prune::run(c, a).await,
        NetworkCmd::Rm(a) => rm::run(c, a).await,
    }
}

/// `k=v` flags (`-o`, `--label`, `--ipam-opt`) → a map; a bare `k` maps to "" (docker's MapOpts).
pub fn kv_map(items: &[String]) -> serde_json::Map<String, serde_json::Value> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            (k.to_string(), serde_json::Value::String(v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Cli;
    use clap::Parser;

    #[test]
    fn spellings_parse() {
        for argv in [
            vec!["berth", "network", "ls"],
            vec!["berth", "network", "list", "-q", "--no-trunc"],
            vec![
                "berth",
                "network",
                "ls",
                "-f",
                "driver=bridge",
                "--format",
                "{{.Name}}",
            ],
            vec![
                "berth",
                "network",
                "create",
                "-d",
                "bridge",
                "--subnet",
                "10.1.0.0/24",
                "n",
            ],
            vec![
                "berth",
                "network",
                "create",
                "--ipv6",
                "--internal",
                "--attachable",
                "n",
            ],
            vec![
                "berth",
                "network",
                "create",
                "--ipv6=false",
                "-o",
                "a=b",
                "--label",
                "l",
                "n",
            ],
            vec![
                "berth",
                "network",
                "inspect",
                "-v",
                "-f",
                "{{.Name}}",
                "a",
                "b",
            ],
            vec!["berth", "network", "rm", "-f", "a", "b"],
            vec!["berth", "network", "remove", "a"],
            vec![
                "berth", "network", "connect", "--alias", "x", "--ip", "10.1.0.5", "n", "c",
            ],
            vec![
                "berth", "network", "connect", "--ip6", "fd00::5", "--alias", "y", "n", "c",
            ],
            vec!["berth", "network", "disconnect", "-f", "n", "c"],
            vec!["berth", "network", "prune", "-f", "--filter", "until=1h"],
        ] {
            assert!(Cli::try_parse_from(&argv).is_ok(), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["berth", "network", "create"]).is_err());
        assert!(Cli::try_parse_from(["berth", "network", "rm"]).is_err());
        assert!(Cli::try_parse_from(["berth", "network", "connect", "n"]).is_err());
    }

    #[test]
    fn maps_like_docker() {
        let m = kv_map(&["a=b".into(), "c".into(), "d=e=f".into()]);
        assert_eq!(
            serde_json::Value::Object(m),
            serde_json::json!({"a": "b", "c": "", "d": "e=f"})
        );
    }
}
