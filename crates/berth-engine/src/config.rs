//! What berthd was started with: where its data and run state live, which helper binaries it
//! runs, and how it reaches registries. Filled once by the binary's argument parser.

use std::path::{Path, PathBuf};

/// The daemon's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Durable state: the database, blobs, layers, containers (`/var/lib/berth`).
    pub data_root: PathBuf,
    /// Run state that dies with the machine: shim sockets, runtime state (`/run/berth`; with a
    /// custom data root, `<data root>/run` unless `--exec-root` says otherwise).
    pub exec_root: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The berth-shim binary started once per container.
    pub shim: PathBuf,
    /// Base URLs that serve `docker.io` images (`--registry-mirror`).
    pub registry_mirrors: Vec<String>,
    /// Registries spoken to over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// The default bridge's interface (`--bridge`, Docker's `-b`; default "berth0"). A second
    /// daemon on the same host (tests) names its own; its nft table follows the name.
    pub bridge: String,
    /// The default bridge's gateway address and prefix (`--bip`, e.g. 172.30.0.1/16); None =
    /// the first free one of Docker's pools, kept once chosen.
    pub bip: Option<String>,
    /// Upstream resolvers for the embedded DNS (`--dns`); empty = the host's resolv.conf.
    pub dns: Vec<std::net::IpAddr>,
    /// Keep a pre-started container ready for a `run --rm` seen again (`--prestart`, on by
    /// default; see `containers::prestart`).
    pub prestart: bool,
}

impl Config {
    /// Settings for a data root, with everything else defaulted from it.
    pub fn for_data_root(data_root: &Path) -> Self {
        let exec_root = if data_root == Path::new("/var/lib/berth") {
            PathBuf::from("/run/berth")
        } else {
            data_root.join("run")
        };
        Self {
            data_root: data_root.to_path_buf(),
            socket: exec_root.join("berth.sock"),
            exec_root,
            shim: find_helper("berth-shim", "BERTH_SHIM"),
            registry_mirrors: Vec::new(),
            insecure_registries: Vec::new(),
            bridge: default_bridge(data_root),
            bip: None,
            dns: Vec::new(),
            prestart: true,
        }
    }
}

/// The default bridge of a data root: "berth0" for /var/lib/berth; for any other data root
/// (tests, several daemons on one host) "bt" + the FNV-1a 32-bit hash of its path in hex, so
/// that daemons never share a bridge or an nft table and a test can find what to clean up.
pub fn default_bridge(data_root: &Path) -> String {
    if data_root == Path::new("/var/lib/berth") {
        return "berth0".into();
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in data_root.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("bt{h:08x}")
}

/// Finds a helper binary: `$ENV` if set, else next to the running berthd, else by name on PATH.
pub fn find_helper(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bridges() {
        assert_eq!(default_bridge(Path::new("/var/lib/berth")), "berth0");
        let a = default_bridge(Path::new("/tmp/a/data"));
        assert!(a.starts_with("bt") && a.len() == 10, "{a}");
        assert_ne!(a, default_bridge(Path::new("/tmp/b/data")));
        // FNV-1a of "a": 0xe40c292c
        assert_eq!(default_bridge(Path::new("a")), "bte40c292c");
    }
}
