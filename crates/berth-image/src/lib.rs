//! berth-image: the content store, the SQLite image index, layer unpack and diff, and overlay
//! snapshots (see shared/DESIGN.md). Save/load formats and the registry client build on these.
//!
//! It imports only `berth-types`, never the runtime, network or build crates: what crosses to the
//! engine is data (paths of layer directories, a rootfs path), not calls.

pub mod archive;
pub mod changes;
pub mod check;
pub mod content;
pub mod diff;
pub mod gc;
pub mod image;
pub mod index;
pub mod layer;
pub mod registry;
pub mod snapshot;

pub use content::{BlobInfo, ContentError, ContentStore};
pub use diff::{write_diff, DiffError, DiffStats};
pub use index::{ImageIndex, ImageRecord, IndexError, LayerRecord};
pub use layer::{
    apply_layer, chain_id, ApplyOptions, ApplyStats, DevicePolicy, Layer, LayerError, LayerStore,
};
pub use snapshot::{MountMethod, SnapshotError, SnapshotPaths, Snapshotter};
