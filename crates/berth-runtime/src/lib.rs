//! berth-runtime: an OCI runtime. A bundle (config.json + rootfs) becomes a process isolated in its
//! own namespaces and cgroups, on its own root filesystem, driven through the lifecycle of the OCI
//! runtime specification (create, start, state, kill, delete) plus exec, ps, pause and resume.
//!
//! The crate never talks to the engine, the image store or the network crate: what it needs from
//! them arrives as data in the spec (mounts, namespace paths). Code that runs between clone and exec
//! (`init`) must not spawn threads or use tracing; it runs in a single-threaded child.

pub mod cgroups;
pub mod console;
pub mod container;
pub mod error;
pub mod hooks;
pub mod init;
pub mod plan;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod sys;
pub mod timing;

pub use container::{Container, ContainerState, Status};
pub use error::RuntimeError;
