//! berth-build: the Dockerfile parser (pure) and the build executor over its own small traits (see
//! ../shared/DESIGN.md). Work on it starts with the build issue; it must never import the runtime,
//! image or network crates.
