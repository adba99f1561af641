//! The executor's view of the engine: the small trait through which a build reads images, runs
//! `RUN` steps, stores layers and consults the cache. berthd implements it over its image store
//! and container machinery; the executor never touches either directly (it may not import them).
//!
//! Everything that crosses this seam is data: image ids as strings (`sha256:<hex>`), the runtime
//! config in Docker's JSON shape, paths of read-only root filesystems, layer tars on disk.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An image id, `sha256:<64 hex>`.
pub type ImageId = String;

/// The `config` section of an image (how its containers run), with Docker's field names so the
/// engine converts it to and from its own type through serde. Unknown fields survive in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's `{"Test": [...], "Interval": ns, "Timeout": ns, "StartPeriod": ns,
    /// "StartInterval": ns, "Retries": n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An image as the executor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub id: ImageId,
    pub config: RunConfig,
    /// `os/arch[/variant]` of the image (`linux/amd64`).
    pub platform: String,
    /// The image's author (MAINTAINER), carried into children.
    pub author: Option<String>,
}

/// What a new image step records, besides its layer (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The parent image (`None` = scratch).
    pub parent: Option<ImageId>,
    /// The runtime config of the new image (the whole section, not a delta).
    pub config: RunConfig,
    /// The history's `created_by` (`/bin/sh -c #(nop)  ENV A=b`, `|1 X=y /bin/sh -c make`, …).
    pub created_by: String,
    /// Author for the config (MAINTAINER), if set.
    pub author: Option<String>,
}

/// A mount of a `RUN` step, resolved to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMountSpec {
    /// A host path (context subdir, a stage's or image's read-only root, a cache dir) bound at
    /// `target`; read-only unless `readonly` is false (cache dirs: the writes are kept).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    /// `RUN --mount=type=bind,rw`: `source` seen writable at `target`, the writes thrown away
    /// when the step ends (never reaching the context, the stage or the image).
    Scratch {
        source: PathBuf,
        target: String,
    },
}

/// How a `RUN` step runs: a container on top of `commit.parent` with this process.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub argv: Vec<String>,
    /// The process environment: the image's Env plus the build args in scope (as `K=V`).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub network: crate::ast::RunNetwork,
    pub mounts: Vec<RunMountSpec>,
}

/// Errors a backend reports; the executor adds the Dockerfile line.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `FROM`/`--from` named an image that is not here and could not be pulled.
    #[error("{0}")]
    ImageNotFound(String),
    /// A `RUN` command exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i64 },
    /// A URL for `ADD` could not be fetched.
    #[error("{0}")]
    Fetch(String),
    /// The client went away or asked to stop.
    #[error("build cancelled")]
    Cancelled,
    #[error("{0}")]
    Other(String),
}

/// The engine, as a build uses it. Calls are blocking; the executor runs on a blocking thread.
pub trait Backend {
    /// Resolves an image reference or id for `FROM` / `COPY --from` / `RUN --mount from=`;
    /// pulls it when it is missing or `pull` is set. Progress goes to `out`.
    fn image(
        &mut self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
        out: &mut dyn Write,
    ) -> Result<ImageInfo, BackendError>;

    /// A read-only view of an image's root filesystem (`None` = scratch: an empty dir), valid
    /// until the build ends (the backend unmounts it then).
    fn rootfs(&mut self, image: Option<&ImageId>) -> Result<PathBuf, BackendError>;

    /// A new image with the parent's layers and `commit.config` (no new layer: ENV, CMD, …).
    fn commit_config(&mut self, commit: &Commit) -> Result<ImageId, BackendError>;

    /// A new image with the parent's layers plus the layer tar at `layer` (uncompressed, written
    /// by the executor for COPY/ADD). The backend may move or delete the file.
    fn commit_layer(&mut self, commit: &Commit, layer: &Path) -> Result<ImageId, BackendError>;

    /// Runs `req` in a container on `commit.parent`, streaming its output to `out`; on exit 0
    /// commits its changes as a new layer. The container is removed in every case.
    fn run(
        &mut self,
        commit: &Commit,
        req: &RunRequest,
        out: &mut dyn Write,
    ) -> Result<ImageId, BackendError>;

    /// A persistent directory for `RUN --mount=type=cache,id=...` (kept across builds).
    fn cache_mount_dir(&mut self, id: &str) -> Result<PathBuf, BackendError>;

    /// The file holding the secret `id` given to this build, if the client gave one.
    fn secret(&mut self, id: &str) -> Result<Option<PathBuf>, BackendError>;

    /// Downloads `url` into `dest` (for `ADD <url>`); returns the file name the URL names.
    fn fetch(&mut self, url: &str, dest: &Path) -> Result<String, BackendError>;

    /// A directory for the executor's temporary files (layer tars), inside the data root.
    fn tmp_dir(&self) -> PathBuf;

    /// The image stored for a cache key, if there is one and the image still exists.
    fn cache_get(&mut self, key: &str) -> Result<Option<ImageInfo>, BackendError>;

    /// Records that `key` produced `image`.
    fn cache_put(&mut self, key: &str, image: &ImageId) -> Result<(), BackendError>;
}
