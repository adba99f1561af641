//! The Dockerfile as data: what `parse` produces and the executor consumes.
//!
//! Words are kept as written (quotes, `$VAR`, escapes intact): expansion needs the environment of
//! the step (ARG and ENV values in scope at that point), so it happens in the executor with
//! [`crate::shell`], never here. Exec-form (JSON) arguments are kept decoded, marked as such.
//! Every instruction carries its first line number (1-based) so that errors can name it.

use serde::{Deserialize, Serialize};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dockerfile {
    /// The escape character (`# escape=` directive), `\` by default.
    pub escape: char,
    /// The `# syntax=` directive, if any (recorded, not acted on).
    pub syntax: Option<String>,
    /// `ARG` instructions before the first `FROM` (usable only in `FROM` lines, and re-declared
    /// inside a stage by a bare `ARG name`).
    pub meta_args: Vec<Instruction>,
    /// The stages, in file order. A Dockerfile without `FROM` is a parse error.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// 0-based position in the file.
    pub index: usize,
    /// `AS name`, lowercased (stage names are case-insensitive).
    pub name: Option<String>,
    /// The image word as written (unexpanded: `FROM ${BASE}:x` is legal). `scratch` is the empty image.
    pub image: String,
    /// `--platform=` as written (unexpanded).
    pub platform: Option<String>,
    /// Line of the `FROM`.
    pub line: usize,
    /// The `FROM` line as written (continuations joined).
    pub original: String,
    pub instructions: Vec<Instruction>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// First line of the instruction (1-based).
    pub line: usize,
    /// The instruction as written, continuation lines joined with the escapes and newlines
    /// removed, comments inside continuations dropped (what Docker prints in `Step N/M : ...`).
    pub original: String,
    pub kind: Inst,
}

/// Shell form (one string for the shell) or exec form (a JSON array, taken literally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmdLine {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc (`<<EOF`, `<<-EOF`, `<<"EOF"`) attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter word without quotes or `-` (e.g. `EOF`).
    pub name: String,
    /// The body, every line ending in `\n`; with `<<-` leading tabs are already stripped.
    pub content: String,
    /// Whether `$VAR`s in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
}

/// `RUN [--mount=...] [--network=...] [--security=...] cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub cmd: CmdLine,
    pub mounts: Vec<RunMount>,
    pub network: Option<RunNetwork>,
    /// Heredocs named in the command, in order.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunNetwork {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// `RUN --mount=type=...,...` with BuildKit's keys. Values are unexpanded words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMount {
    pub kind: MountKind,
    /// `target`/`dst`/`destination` (required except for secret and ssh).
    pub target: Option<String>,
    /// `source`/`src`: a path in the context or in `from`.
    pub source: Option<String>,
    /// `from`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `id` (cache id, secret id).
    pub id: Option<String>,
    /// `rw`/`readwrite` for bind (bind is read-only by default), `ro`/`readonly` for cache.
    pub readonly: bool,
    pub sharing: CacheSharing,
    /// `mode` (octal), `uid`, `gid` for cache, secret and ssh.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `required` for secret and ssh.
    pub required: bool,
    /// `size` of a tmpfs in bytes.
    pub size: Option<u64>,
    /// `env` of a secret: expose it as this environment variable instead of (or besides) a file.
    pub env: Option<String>,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Sources as written (globs, URLs for ADD, heredoc names for `<<EOF`).
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=` (COPY only; ADD refuses it).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `--parents` (BuildKit labs flag): keep the source's parent directories.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// ADD `--checksum=sha256:...` for URLs.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// Whether the sources were written as a JSON array.
    pub json: bool,
    /// Heredocs used as sources (`COPY <<EOF /file`).
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD ...`. Durations are as written (`30s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Healthcheck {
    None,
    Cmd {
        cmd: CmdLine,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<String>,
    },
}

/// One `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgDecl {
    pub name: String,
    /// The default as written (unexpanded), if any.
    pub default: Option<String>,
}

/// The instructions, with their arguments parsed into words but not expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inst {
    Run(Run),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    /// SHELL takes only the JSON form.
    Shell(Vec<String>),
    /// `key=value` pairs (the old `LABEL key value` form gives one pair). Keys and values raw.
    Label(Vec<(String, String)>),
    /// Words, each `port[/proto]` or a range, possibly with `$VAR`s.
    Expose(Vec<String>),
    /// `key=value` pairs (the old `ENV key value` form gives one pair). Keys and values raw.
    Env(Vec<(String, String)>),
    Add(Copy),
    Copy(Copy),
    /// Paths (JSON or words).
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    /// The trigger as written (`ONBUILD RUN x` stores `RUN x`); parsed again when it fires.
    /// ONBUILD of ONBUILD, FROM or MAINTAINER is a parse error.
    Onbuild(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// Deprecated; sets the image's author.
    Maintainer(String),
}

impl Inst {
    /// The instruction keyword in upper case (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Inst::Run(_) => "RUN",
            Inst::Cmd(_) => "CMD",
            Inst::Entrypoint(_) => "ENTRYPOINT",
            Inst::Shell(_) => "SHELL",
            Inst::Label(_) => "LABEL",
            Inst::Expose(_) => "EXPOSE",
            Inst::Env(_) => "ENV",
            Inst::Add(_) => "ADD",
            Inst::Copy(_) => "COPY",
            Inst::Volume(_) => "VOLUME",
            Inst::User(_) => "USER",
            Inst::Workdir(_) => "WORKDIR",
            Inst::Arg(_) => "ARG",
            Inst::Onbuild(_) => "ONBUILD",
            Inst::StopSignal(_) => "STOPSIGNAL",
            Inst::Healthcheck(_) => "HEALTHCHECK",
            Inst::Maintainer(_) => "MAINTAINER",
        }
    }
}
