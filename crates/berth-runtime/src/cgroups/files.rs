//! Small helpers over cgroupfs files: one `write(2)` per value (the kernel parses each write on its
//! own), keyed-file parsing, recursive process listing and bounded directory removal.
//!
//! Must never create a file: cgroupfs control files exist or the controller is absent, and an
//! `O_CREAT` would hide that on fake trees and fail confusingly on real ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// How long removal keeps retrying while tasks leave.
const REMOVE_BUDGET: Duration = Duration::from_secs(3);

/// Writes `value` with one `write(2)` to an existing file (`O_TRUNC` as runc does: harmless on
/// cgroupfs, and it keeps fake trees honest).
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// Writes `value` to `dir/file` for the spec field `resource`; a missing file becomes
/// [`CgroupError::Unsupported`].
pub fn set(dir: &Path, file: &str, value: &str, resource: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    write(&path, value).map_err(|e| match e {
        CgroupError::Write { source, path, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            CgroupError::Unsupported {
                resource: resource.to_string(),
                path,
            }
        }
        e => e,
    })
}

pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file if it exists.
pub fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A single number; "max" reads as `u64::MAX`.
pub fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: t.chars().take(64).collect(),
    })
}

pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// A number from a file that may be absent (then 0).
pub fn read_u64_opt(path: &Path) -> Result<u64, CgroupError> {
    match read_opt(path)? {
        Some(s) => parse_u64(path, &s),
        None => Ok(0),
    }
}

/// "key value" lines; unparsable lines are skipped.
pub fn parse_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        let k = it.next()?;
        let v = it.next()?.parse().ok()?;
        Some((k, v))
    })
}

/// The value of `key` in a keyed file, 0 when the key is absent (older kernels).
pub fn read_keyed(path: &Path, key: &str) -> Result<u64, CgroupError> {
    let text = read(path)?;
    let v = parse_keyed(&text)
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, v)| v);
    Ok(v)
}

pub fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Appends the pids of `dir/cgroup.procs` and of every sub-cgroup.
pub fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = read(&path)?;
    for l in text.lines() {
        match l.trim().parse::<i32>() {
            Ok(pid) if pid > 0 => out.push(pid),
            _ => {}
        }
    }
    for sub in subdirs(dir) {
        match collect_procs(&sub, out) {
            Ok(()) => {}
            // A sub-cgroup removed while we walk is fine.
            Err(CgroupError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes `dir` and its sub-cgroups, children first, retrying on EBUSY within a small budget.
pub fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + REMOVE_BUDGET;
    remove_tree_until(dir, deadline)
}

fn remove_tree_until(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    // Fast path: a leaf cgroup with no tasks goes with one rmdir.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for sub in subdirs(dir) {
        remove_tree_until(&sub, deadline)?;
    }
    let mut delay = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() + delay < deadline =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_never_creates() {
        let d = tempfile::tempdir().unwrap();
        let err = set(d.path(), "pids.max", "10", "linux.resources.pids.limit").unwrap_err();
        assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
        assert!(!d.path().join("pids.max").exists());
        std::fs::write(d.path().join("pids.max"), "max").unwrap();
        set(d.path(), "pids.max", "10", "x").unwrap();
        assert_eq!(read_u64(&d.path().join("pids.max")).unwrap(), 10);
    }

    #[test]
    fn keyed_and_numbers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("memory.events");
        std::fs::write(&p, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\ngarbage\n").unwrap();
        assert_eq!(read_keyed(&p, "oom_kill").unwrap(), 1);
        assert_eq!(read_keyed(&p, "missing").unwrap(), 0);
        assert_eq!(parse_u64(&p, "max\n").unwrap(), u64::MAX);
        assert!(parse_u64(&p, "-1").is_err());
        assert_eq!(read_u64_opt(&d.path().join("nope")).unwrap(), 0);
    }

    #[test]
    fn procs_are_collected_recursively() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.procs"), "1\n2\n").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/cgroup.procs"), "3\nx\n-4\n").unwrap();
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let mut out = Vec::new();
        collect_procs(d.path(), &mut out).unwrap();
        out.sort_unstable();
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn remove_tree_removes_children_first() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("c");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::create_dir_all(top.join("z")).unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        remove_tree(&top).unwrap();
    }
}
