//! berth-image: content store, layer unpack/diff, overlay snapshots, image index, save/load formats
//! and the registry client (see ../shared/DESIGN.md). Work on it starts with the image-store issue;
//! it must never import the runtime, network or build crates.
