#![recursion_limit = "256"]
//! berth-engine: berthd, the daemon behind the Docker Engine API (see shared/DESIGN.md). It is
//! the only crate that may import all the others; HTTP types stop at the `api` module, and every
//! error kind becomes an HTTP status in exactly one place (`error`).

pub mod api;
pub mod build;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod error;
pub mod events;
pub mod images;
pub mod networks;
pub mod quota;
pub mod volumes;

/// The Engine API version berthd speaks, and the oldest it accepts (as Docker 25+).
pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

/// berth's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
