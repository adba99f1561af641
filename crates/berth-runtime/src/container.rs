//! (being written)
pub struct Container;
pub struct ContainerState;
pub enum Status {}
