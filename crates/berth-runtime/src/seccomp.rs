//! Seccomp: the spec's profile compiled to a BPF program in the runtime (before clone), installed by
//! the container's init with seccomp(2) right before exec. OWNED BY THE SECCOMP WORK ITEM: the
//! interface below is what the rest of the runtime calls; the bodies are being written.

use oci_spec::runtime::LinuxSeccomp;

/// Errors from compiling or installing a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp is not implemented yet")]
    NotYet,
}

/// A compiled BPF filter, ready to install.
#[derive(Debug, Clone)]
pub struct Program {
    pub filters: Vec<libc::sock_filter>,
    pub flags: u32,
}

/// Compiles the spec's seccomp section for the native architecture.
pub fn compile(_s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    Err(SeccompError::NotYet)
}

/// Installs `p` on the calling thread. Allocation-free; called after fork, right before exec.
pub fn install(_p: &Program) -> Result<(), SeccompError> {
    Err(SeccompError::NotYet)
}
