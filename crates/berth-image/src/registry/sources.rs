//! Which repositories a blob is known to exist in (pulled from or pushed to), so that a push to
//! another repository of the same registry can mount it instead of uploading it again.
//!
//! One small file per blob, `<root>/registry/sources/<hex>`, one `domain/path` a line, appended
//! with O_APPEND. It is a hint only: a wrong or stale line costs one failed mount (the registry
//! then starts a normal upload), so nothing here needs to be durable or exact.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use berth_types::Digest;

fn file(root: &Path, d: &Digest) -> PathBuf {
    // A validated digest's hex is one safe path component.
    root.join("registry").join("sources").join(d.hex())
}

/// The repositories (`domain/path`) `d` is known to exist in.
pub(crate) fn repos(root: &Path, d: &Digest) -> Vec<String> {
    fs::read_to_string(file(root, d))
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Records that `d` exists in `repo` (`domain/path`).
pub(crate) fn record(root: &Path, d: &Digest, repo: &str) -> io::Result<()> {
    if repo.contains('\n') || repos(root, d).iter().any(|r| r == repo) {
        return Ok(());
    }
    let f = file(root, d);
    if let Some(dir) = f.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut out = OpenOptions::new().create(true).append(true).open(&f)?;
    out.write_all(format!("{repo}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert!(repos(dir.path(), &d).is_empty());
        record(dir.path(), &d, "r/a").unwrap();
        record(dir.path(), &d, "r/b").unwrap();
        record(dir.path(), &d, "r/a").unwrap();
        assert_eq!(repos(dir.path(), &d), vec!["r/a", "r/b"]);
    }
}
