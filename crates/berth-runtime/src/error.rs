//! The runtime's error type: one enum for the lifecycle operations, whose messages name the
//! container, path or value that failed and what to do about it.

use std::path::PathBuf;

use berth_types::ErrorKind;

use crate::cgroups::CgroupError;
use crate::seccomp::SeccompError;

/// Everything a runtime operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    BadId(#[from] berth_types::IdError),
    #[error("container {0:?} already exists: delete it first or pick another id")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?} is {status}: {what}")]
    BadState {
        id: String,
        status: String,
        what: String,
    },
    #[error("{path}: {msg}")]
    Spec { path: PathBuf, msg: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("hook {path} failed: {msg}")]
    Hook { path: String, msg: String },
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
    #[error("this needs root, or user namespaces (add a \"user\" namespace with uid/gid mappings to config.json): {0}")]
    NeedPrivilege(String),
}

impl RuntimeError {
    /// The kind of failure, for callers that map errors to statuses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::BadId(_) | RuntimeError::Spec { .. } | RuntimeError::Invalid(_) => {
                ErrorKind::InvalidArgument
            }
            RuntimeError::Exists(_) | RuntimeError::BadState { .. } => ErrorKind::Conflict,
            RuntimeError::NotFound(_) => ErrorKind::NotFound,
            RuntimeError::NeedPrivilege(_) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
