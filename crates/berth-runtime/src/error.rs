//! (being written)
pub struct RuntimeError;
