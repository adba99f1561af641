//! The registry v2 client: pull and push images over the distribution protocol (HTTP/1.1, HTTPS
//! or plain HTTP for loopback and registries marked insecure; HTTPS with an extra trusted CA for
//! registries that have one in Docker's `certs.d` layout), with anonymous, basic and bearer
//! token auth, a Docker Hub mirror setting, manifest lists, parallel layer downloads that are
//! unpacked while they stream, retries, resumed downloads and cross-repository blob mounts.
//!
//! Everything a registry sends is hostile input: manifests and configs are size-limited and
//! parsed strictly, every blob is verified against its digest before it becomes visible in the
//! content store, every unpacked layer against its diff id before it becomes visible in the layer
//! store. This module must never trust a digest it did not compute, never read a layer blob from
//! the network twice (one read feeds both the blob file and the unpacker), and never send
//! credentials to a host other than the registry (or its token realm) they were given for.

mod auth;
mod http;
pub use http::{https_connector, system_roots};
mod manifest;
mod pull;
mod push;
mod sources;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_types::{Digest, Reference};

use crate::content::ContentError;
use crate::image::{ImageError, ImageStore};
use crate::index::IndexError;
use crate::layer::LayerError;

pub use manifest::{
    Descriptor, ImageManifest, ManifestIndex, Platform, MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_MANIFEST_LIST, MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX, MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
};
pub use pull::PulledImage;
pub use push::PushReport;

/// What went wrong talking to a registry or storing what it sent.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("manifest unknown: {reference} does not exist in the registry; check the name and the tag or digest")]
    ManifestUnknown { reference: String },
    #[error("unauthorized: {registry} refused the credentials for {what}: log in with a valid user and password (or check the repository name)")]
    Unauthorized { registry: String, what: String },
    #[error("denied: {registry} refuses {what}: the account lacks the permission or the repository does not exist")]
    Denied { registry: String, what: String },
    #[error("{what}: the registry answered {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("request {method} {url}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: reading the response: {source}")]
    Body {
        what: String,
        #[source]
        source: hyper::Error,
    },
    #[error(
        "{what}: the registry sent {size} bytes or more, over the limit of {limit}: refusing it"
    )]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what} is not valid JSON of the expected shape: {source}")]
    BadJson {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{what}: media type {media_type:?} is not supported (only Docker schema2 and OCI images)"
    )]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("{what} is malformed: {problem}")]
    BadManifest { what: String, problem: String },
    #[error("{reference}: no linux/amd64 image in the manifest list (it has: {available})")]
    NoPlatform {
        reference: String,
        available: String,
    },
    #[error("{what}: expected digest {expected}, the registry sent content hashing to {actual}: the registry is corrupt or lies, nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("invalid registry address {0:?}: use host[:port] or http(s)://host[:port]")]
    BadUrl(String),
    #[error("token server {realm}: {problem}")]
    Token { realm: String, problem: String },
    #[error("image {0} cannot be pushed: {1}")]
    NotPushable(String, String),
    #[error("{host}: the registry's TLS certificate is not trusted ({problem}): if a private CA signed it, put that CA's certificate in {certs_dir}/{host}/ca.crt")]
    Certificate {
        host: String,
        problem: String,
        certs_dir: String,
    },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("a worker of the pull or push stopped unexpectedly: {0}")]
    Task(String),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// How to reach registries: mirrors, insecure registries, credentials, limits.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Base URLs (`http://127.0.0.1:5000`) that serve `docker.io` images, tried in order before
    /// Docker Hub itself (pull only, as Docker does).
    pub mirrors: Vec<String>,
    /// Registries (`host[:port]`) spoken to over plain HTTP. Loopback addresses always are.
    pub insecure: Vec<String>,
    /// Credentials by registry domain (`docker.io`, `127.0.0.1:5000`).
    pub credentials: HashMap<String, Credentials>,
    /// Blobs downloaded or uploaded at once.
    pub max_concurrent: usize,
    /// Attempts of a request that fails on the connection or with 5xx/429, first one included.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time, at most 2 s.
    pub retry_delay: Duration,
    /// Docker's `certs.d` (berthd: `/etc/berth/certs.d`): a `<certs_dir>/<host[:port]>/ca.crt`
    /// (PEM, one or more certificates) says that registry speaks HTTPS (even on loopback or
    /// when listed in `insecure`) and that its certificate may be signed by that CA, trusted
    /// besides the system roots. Read once, when the client is made; a missing directory is
    /// the same as none.
    pub certs_dir: Option<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            credentials: HashMap::new(),
            max_concurrent: 3,
            attempts: 5,
            retry_delay: Duration::from_millis(100),
            certs_dir: None,
        }
    }
}

/// What happens to one blob of a pull or push, for progress bars. Ids are blob digests; the CLI
/// shows their [`Digest::short`] form as Docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The reference resolved to this manifest digest.
    Resolved { reference: String, digest: Digest },
    /// Queued behind the concurrency limit.
    Waiting { id: Digest },
    /// `current` of `total` compressed bytes received (or sent, for a push).
    Downloading {
        id: Digest,
        current: u64,
        total: u64,
    },
    /// The connection broke or the registry failed; trying again from byte `offset`.
    Retrying {
        id: Digest,
        attempt: u32,
        offset: u64,
    },
    /// All bytes received; the unpacker is finishing.
    Extracting { id: Digest },
    /// Stored and unpacked ("Pull complete").
    Done { id: Digest },
    /// Nothing to download: the layer (or blob) is already here.
    AlreadyExists { id: Digest },
    /// Push: `current` of `total` bytes sent.
    Pushing {
        id: Digest,
        current: u64,
        total: u64,
    },
    /// Push: the blob was mounted from another repository of the registry.
    Mounted { id: Digest, from: String },
    /// Push: the blob was uploaded.
    Pushed { id: Digest },
}

/// Where progress goes: called from worker tasks, so cheap and thread-safe.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A progress sink that drops everything.
pub fn no_progress() -> ProgressFn {
    Arc::new(|_| {})
}

/// A registry client: connection pool, token cache and settings. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<http::Transport>,
}

impl Registry {
    /// A client with these settings. Needs a tokio runtime to be running when used.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Ok(Self {
            inner: Arc::new(http::Transport::new(config)?),
        })
    }

    /// Checks credentials against a registry (`docker login`): `GET /v2/` with them, answering a
    /// token challenge when asked. `registry` is a domain as in references (`docker.io`,
    /// `127.0.0.1:5000`).
    pub async fn login(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), RegistryError> {
        self.inner.login(registry, credentials).await
    }

    /// Pulls `reference` into `store`: see [`pull`](pull::pull).
    pub async fn pull(
        &self,
        store: &Arc<ImageStore>,
        reference: &Reference,
        progress: ProgressFn,
    ) -> Result<PulledImage, RegistryError> {
        pull::pull(&self.inner, store, reference, progress).await
    }

    /// Pushes the local image `source` (a name or id) as `target`: see [`push`](push::push).
    pub async fn push(
        &self,
        store: &Arc<ImageStore>,
        source: &str,
        target: &Reference,
        progress: ProgressFn,
    ) -> Result<PushReport, RegistryError> {
        push::push(&self.inner, store, source, target, progress).await
    }
}
