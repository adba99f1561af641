//! berth-net: bridge/veth, IPAM, port publishing, embedded DNS and netns handling (see
//! ../shared/DESIGN.md). It must never import the runtime, image or build crates: the engine
//! hands it plain data (a bridge, an endpoint, a ruleset) and gets plain data back.
//!
//! Everything here except `dns` is blocking: the engine calls it from `spawn_blocking`.
//! Nothing here keeps state on disk: the engine's database is the truth and the kernel's
//! objects (bridges, netns files, the nft table) are rebuilt from it after a crash.

pub mod dns;
pub mod error;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod nft;
pub mod ports;

pub use error::NetError;
