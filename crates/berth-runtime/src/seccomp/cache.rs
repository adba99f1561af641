//! Precompiled filters. Compiling Docker's profile with libseccomp costs ~10 ms per container;
//! berthd compiles it once per profile and leaves the result as `<bundle>/seccomp.bpf`, which
//! `create` uses only if it was made from exactly this spec's seccomp section (a SHA-256 of the
//! section's canonical JSON is in the file's header). Anything else — no file, another section,
//! a damaged file — falls back to compiling: the file can make a start faster, never different.
//!
//! Layout: `BERTHBPF`, 32-byte fingerprint, flags (u32 LE), notify (u8), then the instructions
//! as `struct sock_filter` in native byte order (8 bytes each).

use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::{compile, Program, SeccompError, MAX_INSTRUCTIONS};

/// The file name in a bundle.
pub const FILE: &str = "seccomp.bpf";
const MAGIC: &[u8; 8] = b"BERTHBPF";
const HEADER: usize = 8 + 32 + 4 + 1;

/// The fingerprint of a seccomp section: SHA-256 of its JSON.
pub fn fingerprint(s: &LinuxSeccomp) -> [u8; 32] {
    let json = serde_json::to_vec(s).unwrap_or_default();
    Sha256::digest(&json).into()
}

/// The file's bytes for a compiled program of `s`.
pub fn encode(s: &LinuxSeccomp, p: &Program) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + p.filters.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&fingerprint(s));
    out.extend_from_slice(&p.flags.to_le_bytes());
    out.push(p.notify as u8);
    for f in &p.filters {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

/// The program in `bytes` if they were made for `s` and are well formed.
pub fn decode(bytes: &[u8], s: &LinuxSeccomp) -> Option<Program> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC || bytes[8..40] != fingerprint(s) {
        return None;
    }
    let flags = u32::from_le_bytes(bytes[40..44].try_into().ok()?);
    let notify = match bytes[44] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let body = &bytes[HEADER..];
    if body.is_empty() || !body.len().is_multiple_of(8) || body.len() / 8 > MAX_INSTRUCTIONS {
        return None;
    }
    let filters = body
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Program {
        filters,
        flags,
        notify,
    })
}

/// The precompiled program in `bundle` when it matches `s`, else `s` compiled.
pub fn load_or_compile(bundle: &Path, s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    if let Ok(bytes) = std::fs::read(bundle.join(FILE)) {
        if let Some(p) = decode(&bytes, s) {
            return Ok(p);
        }
    }
    compile(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder};

    fn section(name: &str) -> LinuxSeccomp {
        LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(vec![LinuxSyscallBuilder::default()
                .names(vec![name.to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .build()
                .unwrap()])
            .build()
            .unwrap()
    }

    #[test]
    fn a_file_is_used_only_for_its_own_section() {
        let s = section("getppid");
        let p = compile(&s).unwrap();
        let bytes = encode(&s, &p);
        let back = decode(&bytes, &s).expect("same section decodes");
        assert_eq!(back.filters.len(), p.filters.len());
        assert_eq!(back.flags, p.flags);
        for (a, b) in back.filters.iter().zip(&p.filters) {
            assert_eq!((a.code, a.jt, a.jf, a.k), (b.code, b.jt, b.jf, b.k));
        }
        // Another section, a damaged header or a truncated body: not used.
        assert!(decode(&bytes, &section("getpid")).is_none());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(decode(&bad, &s).is_none());
        assert!(decode(&bytes[..bytes.len() - 3], &s).is_none());
        assert!(decode(&bytes[..HEADER], &s).is_none());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), &bytes).unwrap();
        assert_eq!(
            load_or_compile(dir.path(), &s).unwrap().filters.len(),
            p.filters.len()
        );
        std::fs::write(dir.path().join(FILE), b"garbage").unwrap();
        assert!(load_or_compile(dir.path(), &s).is_ok());
    }
}
