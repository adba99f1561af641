//! Loading and checking a bundle's config.json: everything that is wrong with it is reported as
//! one line naming the file and the problem, before anything is created on the system.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};

/// A bundle: its directory (absolute), its spec and its root filesystem (absolute, existing).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

/// Loads and checks `<bundle>/config.json`.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(bundle)
        .map_err(|e| RuntimeError::io("cannot resolve bundle", bundle, e))?;
    let config = dir.join("config.json");
    let spec = load_spec(&config)?;
    let root = spec.root().as_ref().ok_or_else(|| RuntimeError::Spec {
        path: config.clone(),
        msg: "root is missing: set root.path to the root filesystem".into(),
    })?;
    let rootfs = dir.join(root.path());
    let rootfs = rootfs.canonicalize().map_err(|e| RuntimeError::Spec {
        path: config.clone(),
        msg: format!("root.path {}: {e}", rootfs.display()),
    })?;
    if !rootfs.is_dir() {
        return Err(RuntimeError::Spec {
            path: config,
            msg: format!("root.path {} is not a directory", rootfs.display()),
        });
    }
    if rootfs == Path::new("/") {
        return Err(RuntimeError::Spec {
            path: config,
            msg: "root.path is the host's /: refusing to use it as a container root".into(),
        });
    }
    Ok(Bundle { dir, spec, rootfs })
}

/// Parses and checks a config.json.
pub fn load_spec(config: &Path) -> Result<Spec> {
    let text = std::fs::read(config).map_err(|e| RuntimeError::Spec {
        path: config.to_path_buf(),
        msg: format!("cannot read: {e}"),
    })?;
    parse_spec(&text).map_err(|msg| RuntimeError::Spec {
        path: config.to_path_buf(),
        msg,
    })
}

/// Parses and checks config.json text; the error is a message for the user.
pub fn parse_spec(text: &[u8]) -> std::result::Result<Spec, String> {
    let spec: Spec = serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let v = spec.version();
    if !v.starts_with("1.") {
        return Err(format!(
            "ociVersion {v:?} is not supported: this runtime implements the 1.x runtime specification"
        ));
    }
    if let Some(p) = spec.process() {
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err("process.args must name the program to run".into());
        }
        if !p.cwd().is_absolute() {
            return Err(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd().display()
            ));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_malformed_json_and_versions() {
        assert!(parse_spec(b"{not json")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(parse_spec(br#"{"ociVersion":"0.9.0"}"#)
            .unwrap_err()
            .contains("not supported"));
        let no_args = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0}}}"#;
        assert!(parse_spec(no_args).unwrap_err().contains("process.args"));
        let rel = br#"{"ociVersion":"1.1.0","process":{"cwd":"tmp","args":["sh"],"user":{"uid":0,"gid":0}}}"#;
        assert!(parse_spec(rel).unwrap_err().contains("absolute"));
        assert!(parse_spec(br#"{"ociVersion":"1.2.1"}"#).is_ok());
    }

    #[test]
    fn missing_rootfs_names_the_path() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"nope"}}"#,
        )
        .unwrap();
        let e = load_bundle(d.path()).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = load_bundle(&d.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json"), "{e}");
    }
}
