//! Data shared by every berth crate: identifiers, error kinds and the small value types that cross
//! the seams between the runtime, image store, network and engine.
//!
//! This crate imports nothing of ours and does no I/O: it must stay cheap to compile and safe to
//! depend on from everywhere.

pub mod digest;
pub mod id;
pub mod keys;
pub mod kind;
pub mod reference;

/// Docker Engine API models (request and response bodies), generated from moby's swagger.
#[cfg(feature = "api")]
pub use bollard_stubs::models as api;

pub use digest::{Algorithm, Digest, DigestError};
pub use id::{ContainerId, IdError};
pub use keys::{parse_detach_keys, DetachKeysError, DetachMatcher};
pub use kind::ErrorKind;
pub use reference::{Reference, ReferenceError};
