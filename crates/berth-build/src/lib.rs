//! berth-build: the Dockerfile parser (pure) and the build executor over its own small traits (see
//! ../shared/DESIGN.md). It must never import the runtime, image or network crates: the engine
//! implements [`backend::Backend`] and hands the executor data (paths, ids, configs).
//!
//! - [`ast`]: the Dockerfile as data; [`parse`]: text → [`ast::Dockerfile`] (pure, fuzzed);
//! - [`shell`]: Docker's word expansion (`$VAR`, `${VAR:-x}`, quotes, escapes);
//! - [`ignore`]: `.dockerignore` matching;
//! - [`exec`]: stages, cache keys, steps through the backend.

pub mod ast;
pub mod backend;
pub mod exec;
pub mod ignore;
pub mod parse;
pub mod shell;

pub use ast::Dockerfile;
pub use backend::{Backend, BackendError, Commit, ImageId, ImageInfo, RunConfig, RunRequest};
pub use exec::{build, BuildError, BuildOptions, BuildResult};
pub use parse::{parse, ParseError};
