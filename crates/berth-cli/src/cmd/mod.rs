//! The verbs, one file each, and the command tree that spells them as docker does
//! (`berth ps` and `berth container ls`, `berth rmi` and `berth image rm`, ...).

pub mod attach;
pub mod build;
pub mod builder;
pub mod commit;
pub mod cp;
pub mod create;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod lifecycle;
pub mod load;
pub mod login;
pub mod logs;
pub mod network;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stats;
pub mod stop;
pub mod system;
pub mod tag;
pub mod top;
pub mod update;
pub mod version;
pub mod volume;
pub mod wait;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::client::Client;

/// An error that carries docker's exit code; `message` (if any) is printed as is.
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (exit status {})", self.message, self.code)
    }
}

impl std::error::Error for StatusError {}

/// Exit with `code` having printed `message`.
pub fn status(code: i32, message: impl Into<String>) -> anyhow::Error {
    StatusError {
        code,
        message: message.into(),
    }
    .into()
}

/// Docker's exit code for an error creating or starting a container: 127 when the command was
/// not found, 126 when it could not be invoked, else 125.
pub fn exit_code_for(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// A daemon error of `berth VERB`, as docker prints those of run/create: prefixed, with a hint.
pub fn run_error(verb: &str, e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<StatusError>().is_some() {
        return e;
    }
    let msg = format!("{e:#}");
    status(
        exit_code_for(&msg),
        format!("berth: {msg}\n\nRun 'berth {verb} --help' for more information"),
    )
}

/// Runs `f` on each target: prints what it returns, prints errors as they come, and fails
/// (exit 1) at the end if any failed, as docker's multi-container verbs do.
pub async fn each<F>(client: &mut Client, targets: &[String], mut f: F) -> Result<i32>
where
    F: for<'a> FnMut(
        &'a mut Client,
        &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>>> + 'a>,
    >,
{
    let mut failed = false;
    for t in targets {
        match f(client, t).await {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "berth: a container engine that speaks Docker",
    disable_help_subcommand = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix://PATH); default $BERTH_HOST, $DOCKER_HOST, or
    /// unix:///run/berth/berth.sock.
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Accepted for docker compatibility.
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

// A group of verbs (`berth container ...`) taken as the arguments of its parent's variant, so
// that clap builds the group's commands only when argv names the group (`defer`), as it does for
// any verb's flags. A plain comment: a doc comment would become every group's `about`.
#[derive(Args, Debug)]
pub struct Group<T: Subcommand> {
    #[command(subcommand)]
    pub cmd: T,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Cmd {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(create::CreateArgs),
    /// Start one or more stopped containers
    Start(start::StartArgs),
    /// Stop one or more running containers
    Stop(stop::StopArgs),
    /// Kill one or more running containers
    Kill(kill::KillArgs),
    /// Restart one or more containers
    Restart(stop::StopArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::Targets),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::Targets),
    /// Remove one or more containers
    Rm(rm::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Return low-level information on Docker objects
    Inspect(inspect::InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle::Targets),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port(port::PortArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Log in to a registry
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
    /// Show the berth version information
    Version(version::VersionArgs),
    /// Manage berth
    System(Group<SystemCmd>),
    /// Manage containers
    Container(Group<ContainerCmd>),
    /// Manage images
    Image(Group<ImageCmd>),
    /// Manage networks
    Network(Group<network::NetworkCmd>),
    /// Manage volumes
    Volume(Group<volume::VolumeCmd>),
    /// Manage builds
    Builder(Group<builder::BuilderCmd>),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(system::DfArgs),
    /// Remove unused data
    Prune(system::PruneArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ContainerCmd {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(ps::PsArgs),
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(create::CreateArgs),
    Start(start::StartArgs),
    Stop(stop::StopArgs),
    Kill(kill::KillArgs),
    Restart(stop::StopArgs),
    Pause(lifecycle::Targets),
    Unpause(lifecycle::Targets),
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
    Logs(logs::LogsArgs),
    Exec(exec::ExecArgs),
    Inspect(inspect::InspectArgs),
    Wait(lifecycle::Targets),
    Top(top::TopArgs),
    Stats(stats::StatsArgs),
    Rename(rename::RenameArgs),
    Update(update::UpdateArgs),
    Port(port::PortArgs),
    Attach(attach::AttachArgs),
    Commit(commit::CommitArgs),
    Diff(diff::DiffArgs),
    Export(export::ExportArgs),
    Cp(cp::CpArgs),
    /// Remove all stopped containers
    Prune(system::ContainerPruneArgs),
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCmd {
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    Inspect(inspect::InspectArgs),
    Tag(tag::TagArgs),
    #[command(visible_alias = "remove")]
    Rm(rmi::RmiArgs),
    History(history::HistoryArgs),
    Import(import::ImportArgs),
    Save(save::SaveArgs),
    Load(load::LoadArgs),
    Pull(pull::PullArgs),
    Push(push::PushArgs),
    Build(build::BuildArgs),
    /// Remove unused images
    Prune(system::ImagePruneArgs),
}

pub async fn dispatch(cmd: Cmd, mut c: Client) -> Result<i32> {
    let c = &mut c;
    match cmd {
        Cmd::Run(a) => run::run(c, a).await,
        Cmd::Create(a) => create::run(c, a).await,
        Cmd::Start(a) => start::run(c, a).await,
        Cmd::Stop(a) => stop::run(c, a, "stop").await,
        Cmd::Restart(a) => stop::run(c, a, "restart").await,
        Cmd::Kill(a) => kill::run(c, a).await,
        Cmd::Pause(a) => lifecycle::run(c, a, "pause").await,
        Cmd::Unpause(a) => lifecycle::run(c, a, "unpause").await,
        Cmd::Rm(a) => rm::run(c, a).await,
        Cmd::Ps(a) => ps::run(c, a).await,
        Cmd::Logs(a) => logs::run(c, a).await,
        Cmd::Exec(a) => exec::run(c, a).await,
        Cmd::Inspect(a) => inspect::run(c, a, inspect::Kind::Any).await,
        Cmd::Wait(a) => wait::run(c, a).await,
        Cmd::Top(a) => top::run(c, a).await,
        Cmd::Stats(a) => stats::run(c, a).await,
        Cmd::Rename(a) => rename::run(c, a).await,
        Cmd::Update(a) => update::run(c, a).await,
        Cmd::Port(a) => port::run(c, a).await,
        Cmd::Attach(a) => attach::run(c, a).await,
        Cmd::Images(a) => images::run(c, a).await,
        Cmd::Tag(a) => tag::run(c, a).await,
        Cmd::Rmi(a) => rmi::run(c, a).await,
        Cmd::History(a) => history::run(c, a).await,
        Cmd::Import(a) => import::run(c, a).await,
        Cmd::Save(a) => save::run(c, a).await,
        Cmd::Load(a) => load::run(c, a).await,
        Cmd::Commit(a) => commit::run(c, a).await,
        Cmd::Diff(a) => diff::run(c, a).await,
        Cmd::Cp(a) => cp::run(c, a).await,
        Cmd::Export(a) => export::run(c, a).await,
        Cmd::Build(a) => build::run(c, a).await,
        Cmd::Pull(a) => pull::run(c, a).await,
        Cmd::Push(a) => push::run(c, a).await,
        Cmd::Login(a) => login::login(c, a).await,
        Cmd::Logout(a) => login::logout(a),
        Cmd::Events(a) => events::run(c, a).await,
        Cmd::Info(a) => info::run(c, a).await,
        Cmd::Version(a) => version::run(c, a).await,
        Cmd::System(s) => match s.cmd {
            SystemCmd::Df(a) => system::df(c, a).await,
            SystemCmd::Prune(a) => system::prune(c, a).await,
            SystemCmd::Info(a) => info::run(c, a).await,
            SystemCmd::Events(a) => events::run(c, a).await,
        },
        Cmd::Container(k) => match k.cmd {
            ContainerCmd::Ls(a) => ps::run(c, a).await,
            ContainerCmd::Run(a) => run::run(c, a).await,
            ContainerCmd::Create(a) => create::run(c, a).await,
            ContainerCmd::Start(a) => start::run(c, a).await,
            ContainerCmd::Stop(a) => stop::run(c, a, "stop").await,
            ContainerCmd::Restart(a) => stop::run(c, a, "restart").await,
            ContainerCmd::Kill(a) => kill::run(c, a).await,
            ContainerCmd::Pause(a) => lifecycle::run(c, a, "pause").await,
            ContainerCmd::Unpause(a) => lifecycle::run(c, a, "unpause").await,
            ContainerCmd::Rm(a) => rm::run(c, a).await,
            ContainerCmd::Logs(a) => logs::run(c, a).await,
            ContainerCmd::Exec(a) => exec::run(c, a).await,
            ContainerCmd::Inspect(a) => inspect::run(c, a, inspect::Kind::Container).await,
            ContainerCmd::Wait(a) => wait::run(c, a).await,
            ContainerCmd::Top(a) => top::run(c, a).await,
            ContainerCmd::Stats(a) => stats::run(c, a).await,
            ContainerCmd::Rename(a) => rename::run(c, a).await,
            ContainerCmd::Update(a) => update::run(c, a).await,
            ContainerCmd::Port(a) => port::run(c, a).await,
            ContainerCmd::Attach(a) => attach::run(c, a).await,
            ContainerCmd::Commit(a) => commit::run(c, a).await,
            ContainerCmd::Diff(a) => diff::run(c, a).await,
            ContainerCmd::Export(a) => export::run(c, a).await,
            ContainerCmd::Cp(a) => cp::run(c, a).await,
            ContainerCmd::Prune(a) => system::container_prune(c, a).await,
        },
        Cmd::Network(k) => network::dispatch(c, k.cmd).await,
        Cmd::Volume(k) => volume::dispatch(c, k.cmd).await,
        Cmd::Builder(k) => builder::dispatch(c, k.cmd).await,
        Cmd::Image(k) => match k.cmd {
            ImageCmd::Ls(a) => images::run(c, a).await,
            ImageCmd::Inspect(a) => inspect::run(c, a, inspect::Kind::Image).await,
            ImageCmd::Tag(a) => tag::run(c, a).await,
            ImageCmd::Rm(a) => rmi::run(c, a).await,
            ImageCmd::History(a) => history::run(c, a).await,
            ImageCmd::Import(a) => import::run(c, a).await,
            ImageCmd::Save(a) => save::run(c, a).await,
            ImageCmd::Load(a) => load::run(c, a).await,
            ImageCmd::Pull(a) => pull::run(c, a).await,
            ImageCmd::Push(a) => push::run(c, a).await,
            ImageCmd::Build(a) => build::run(c, a).await,
            ImageCmd::Prune(a) => system::image_prune(c, a).await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_like_docker() {
        assert_eq!(
            exit_code_for(
                "failed to create task: exec: \"nope\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(exit_code_for("open /x: no such file or directory"), 127);
        assert_eq!(exit_code_for("exec /etc: permission denied"), 126);
        assert_eq!(exit_code_for("No such image: x"), 125);
    }

    #[test]
    fn spellings_parse() {
        for argv in [
            vec!["berth", "ps", "-a", "-q"],
            vec!["berth", "container", "ls", "-a"],
            vec!["berth", "container", "list"],
            vec!["berth", "image", "ls", "-q"],
            vec!["berth", "image", "rm", "-f", "x"],
            vec!["berth", "rmi", "x", "y"],
            vec!["berth", "-H", "unix:///x.sock", "version"],
            vec!["berth", "system", "prune", "-f", "-a"],
            vec!["berth", "stop", "-t", "3", "x"],
            vec!["berth", "logs", "-f", "--tail", "10", "-t", "x"],
            vec![
                "berth", "exec", "-it", "-e", "A=1", "-u", "0", "-w", "/", "x", "sh", "-c", "x",
            ],
            vec![
                "berth",
                "build",
                "-t",
                "a",
                "-t",
                "b:1",
                "--build-arg",
                "K",
                "--rm",
                "-f",
                "-",
                ".",
            ],
            vec![
                "berth",
                "build",
                "--rm=false",
                "--progress=plain",
                "-q",
                "-",
            ],
            vec!["berth", "image", "build", "."],
            vec!["berth", "builder", "build", "--no-cache", "."],
            vec!["berth", "builder", "prune", "-af", "--filter", "until=24h"],
        ] {
            assert!(Cli::try_parse_from(&argv).is_ok(), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["berth", "ps", "--bogus"]).is_err());
    }
}
