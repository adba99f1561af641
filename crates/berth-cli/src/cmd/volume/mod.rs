//! `berth volume create|ls|inspect|rm|prune`: docker's volume verbs, one file each, over the
//! Engine API's /volumes endpoints. What the daemon refuses it says in its own (Docker's) words.

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
pub enum VolumeCmd {
    /// Create a volume
    Create(create::CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(inspect::InspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(ls::LsArgs),
    /// Remove unused local volumes
    Prune(prune::PruneArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
}

pub async fn dispatch(c: &mut Client, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create(a) => create::run(c, a).await,
        VolumeCmd::Inspect(a) => inspect::run(c, a).await,
        VolumeCmd::Ls(a) => ls::run(c, a).await,
        VolumeCmd::Prune(a) => prune::run(c, a).await,
        VolumeCmd::Rm(a) => rm::run(c, a).await,
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::Cli;
    use clap::Parser;

    #[test]
    fn spellings_parse() {
        for argv in [
            vec!["berth", "volume", "create"],
            vec![
                "berth",
                "volume",
                "create",
                "-d",
                "local",
                "-o",
                "type=none",
                "--opt",
                "o=bind",
                "--label",
                "a=b",
                "v1",
            ],
            vec!["berth", "volume", "create", "--name", "v1"],
            vec![
                "berth",
                "volume",
                "ls",
                "-q",
                "--filter",
                "dangling=true",
                "--format",
                "{{.Name}}",
            ],
            vec!["berth", "volume", "list"],
            vec![
                "berth",
                "volume",
                "inspect",
                "-f",
                "{{.Mountpoint}}",
                "v1",
                "v2",
            ],
            vec!["berth", "volume", "rm", "-f", "v1", "v2"],
            vec!["berth", "volume", "remove", "v1"],
            vec![
                "berth", "volume", "prune", "-f", "-a", "--filter", "label=a",
            ],
        ] {
            Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        assert!(Cli::try_parse_from(["berth", "volume", "rm"]).is_err());
    }
}
