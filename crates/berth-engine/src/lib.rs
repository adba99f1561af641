//! berth-engine: berthd, the daemon behind the Docker Engine API (see ../shared/DESIGN.md). Work on
//! it starts with the engine issue; it is the only crate that may import all the others.
