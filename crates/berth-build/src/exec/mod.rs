//! The build executor: walks the stages a target needs, expands each instruction with the ARG and
//! ENV values in scope, computes its cache key, and either reuses the cached image or performs the
//! step through the [`Backend`](crate::backend::Backend). Writes Docker's classic progress text
//! (`Step N/M : ...`, ` ---> Using cache`, ` ---> <id>`) to the output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::ast::Dockerfile;
use crate::backend::{Backend, BackendError, ImageId};

/// What a build was asked for (the `/build` query and the CLI flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory (already extracted from the client's tar).
    pub context: PathBuf,
    /// `--build-arg K=V` (`None`: `--build-arg K`, take the value from the client's environment,
    /// which the CLI has already done, so `None` means unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target`: the stage to stop at (name, case-insensitive); the last stage when `None`.
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `--label` added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network` for RUN steps (`default`, `none`, `host`).
    pub network: Option<String>,
    /// `.dockerignore` patterns, one per line as written (already read by the caller from the
    /// context or `<Dockerfile>.dockerignore`).
    pub ignore: Vec<String>,
}

/// What a finished build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// The final image (of the target stage).
    pub image: ImageId,
    /// Steps executed and steps taken from the cache.
    pub steps: usize,
    pub cached: usize,
}

/// A build failure. `line` is the Dockerfile line of the failing instruction when there is one.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("dockerfile parse error on line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("{message}")]
    Invalid {
        line: Option<usize>,
        message: String,
    },
    #[error("{source}")]
    Backend {
        line: Option<usize>,
        #[source]
        source: BackendError,
    },
    #[error("write progress: {0}")]
    Output(#[from] std::io::Error),
}

impl BuildError {
    /// The Dockerfile line this error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            BuildError::Parse { line, .. } => Some(*line),
            BuildError::Invalid { line, .. } | BuildError::Backend { line, .. } => *line,
            BuildError::Output(_) => None,
        }
    }
}

/// Runs a build of `dockerfile` with `opts` through `backend`, writing progress to `out`.
pub fn build(
    dockerfile: &Dockerfile,
    opts: &BuildOptions,
    backend: &mut dyn Backend,
    out: &mut dyn Write,
) -> Result<BuildResult, BuildError> {
    let _ = (dockerfile, opts, backend, out);
    Err(BuildError::Invalid {
        line: None,
        message: "the build executor is not written yet".to_string(),
    })
}
