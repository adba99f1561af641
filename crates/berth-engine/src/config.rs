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
        }
    }
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
