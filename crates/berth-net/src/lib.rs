//! berth-net: bridge/veth, IPAM, port publishing, embedded DNS and netns handling (see
//! ../shared/DESIGN.md). Work on it starts with the networking issue; it must never import the
//! runtime, image or build crates.
