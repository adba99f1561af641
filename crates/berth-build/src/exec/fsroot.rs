//! Paths inside a directory tree treated as a root (the build context, a stage's or an image's
//! read-only root filesystem). Every path is resolved component by component with `lstat`;
//! symlinks are followed inside the root only; nothing is ever read outside it.
//!
//! In the context a `..` or a symlink that would leave the root is refused with Docker's
//! "forbidden path outside the build context"; in an image rootfs symlinks are resolved as the
//! kernel would inside a chroot (an absolute target starts at the root, `..` stops at it).

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StepError;

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub path: PathBuf,
    /// Refuse (true) or clamp (false) a resolution that climbs above the root.
    pub strict: bool,
}

/// A path that exists inside a root, with its `lstat` metadata (the final component is not a
/// symlink unless it was asked for with `follow_last = false`).
#[derive(Debug)]
pub(crate) struct Found {
    /// Clean, `/`-separated, relative to the root (`""` is the root itself).
    pub rel: String,
    pub host: PathBuf,
    pub meta: Metadata,
}

/// The longest existing prefix of a path, and what is missing below it.
#[derive(Debug)]
pub(crate) struct Prefix {
    /// The real (symlink-free) relative path of the existing part.
    pub rel: String,
    pub meta: Option<Metadata>,
    /// Components that do not exist (empty when the whole path exists).
    pub missing: Vec<String>,
}

/// Splits a `/`-separated path into its non-empty components, dropping `.`.
pub(crate) fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Go's `path.Clean` of a relative (or root-anchored) path, returning `None` when it climbs above
/// its start. The result has no leading `/`; `""` is the start itself.
pub(crate) fn clean_rel(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in components(path) {
        if c == ".." {
            out.pop()?;
        } else {
            out.push(c);
        }
    }
    Some(out.join("/"))
}

/// Go's `path.Clean` of an absolute path (`..` above `/` stays at `/`).
pub(crate) fn clean_abs(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in components(path) {
        if c == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    format!("/{}", out.join("/"))
}

/// `a` + `/` + `b` for relative paths where either may be empty.
pub(crate) fn join_rel(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

impl Root {
    pub(crate) fn context(path: PathBuf) -> Root {
        Root { path, strict: true }
    }

    pub(crate) fn image(path: PathBuf) -> Root {
        Root {
            path,
            strict: false,
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    fn outside(&self, shown: &str) -> StepError {
        StepError::Invalid(format!("forbidden path outside the build context: {shown}"))
    }

    /// Walks `path` (relative to the root; a leading `/` means the root) and returns the longest
    /// prefix that exists, following symlinks inside the root (the last component too when
    /// `follow_last`). `shown` names the path in errors.
    pub(crate) fn walk(&self, path: &str, follow_last: bool) -> Result<Prefix, StepError> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut stack: Vec<String> = Vec::new();
        let mut meta: Option<Metadata> = Some(
            std::fs::symlink_metadata(&self.path)
                .map_err(|e| StepError::Io(format!("{}: {e}", self.path.display())))?,
        );
        let mut links = 0usize;
        while let Some(c) = pending.pop() {
            if c == ".." {
                if stack.pop().is_none() && self.strict {
                    return Err(self.outside(path));
                }
                meta = std::fs::symlink_metadata(self.host(&stack.join("/"))).ok();
                continue;
            }
            if let Some(m) = &meta {
                if !m.is_dir() {
                    // A file in the middle of a path: nothing exists below it.
                    let mut missing = vec![c];
                    missing.extend(pending.into_iter().rev());
                    return Ok(Prefix {
                        rel: stack.join("/"),
                        meta: None,
                        missing,
                    });
                }
            }
            stack.push(c);
            let rel = stack.join("/");
            let m = match std::fs::symlink_metadata(self.host(&rel)) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let last = stack.pop().unwrap_or_default();
                    let mut missing = vec![last];
                    missing.extend(pending.into_iter().rev());
                    let meta = std::fs::symlink_metadata(self.host(&stack.join("/"))).ok();
                    return Ok(Prefix {
                        rel: stack.join("/"),
                        meta,
                        missing,
                    });
                }
                Err(e) => return Err(StepError::Io(format!("{rel}: {e}"))),
            };
            if m.file_type().is_symlink() && (follow_last || !pending.is_empty()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(StepError::Invalid(format!(
                        "too many levels of symbolic links: {path}"
                    )));
                }
                let target = std::fs::read_link(self.host(&rel))
                    .map_err(|e| StepError::Io(format!("{rel}: {e}")))?;
                let target = target.to_string_lossy().into_owned();
                stack.pop();
                if target.starts_with('/') {
                    stack.clear();
                }
                pending.extend(components(&target).rev().map(str::to_string));
                meta = std::fs::symlink_metadata(self.host(&stack.join("/"))).ok();
                continue;
            }
            meta = Some(m);
        }
        Ok(Prefix {
            rel: stack.join("/"),
            meta,
            missing: Vec::new(),
        })
    }

    /// Resolves an existing path; `Ok(None)` when it does not exist.
    pub(crate) fn resolve(
        &self,
        path: &str,
        follow_last: bool,
    ) -> Result<Option<Found>, StepError> {
        let p = self.walk(path, follow_last)?;
        if !p.missing.is_empty() {
            return Ok(None);
        }
        match p.meta {
            Some(meta) => Ok(Some(Found {
                host: self.host(&p.rel),
                rel: p.rel,
                meta,
            })),
            None => Ok(None),
        }
    }

    /// Reads a small file inside the root (e.g. `/etc/passwd`); `None` when it does not exist.
    pub(crate) fn read_small(&self, path: &str) -> Result<Option<String>, StepError> {
        let Some(found) = self.resolve(path, true)? else {
            return Ok(None);
        };
        if !found.meta.is_file() {
            return Ok(None);
        }
        let mut f = open_nofollow(&found.host)?;
        let mut s = String::new();
        f.by_ref()
            .take(16 << 20)
            .read_to_string(&mut s)
            .map_err(|e| StepError::Io(format!("{}: {e}", found.rel)))?;
        Ok(Some(s))
    }
}

/// Opens a file for reading without following a symlink in its last component.
pub(crate) fn open_nofollow(path: &Path) -> Result<File, StepError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| StepError::Io(format!("{}: {e}", path.display())))
}

/// `user[:group]` → numeric ids, names looked up in the root's `/etc/passwd` and `/etc/group`.
/// A missing group part takes the group of the same name, else the user's primary group, else
/// the uid (Docker: "a UID without GID uses the same numeric UID as the GID").
pub(crate) fn resolve_chown(root: &Root, spec: &str) -> Result<(u32, u32), StepError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let mut passwd: Option<Option<String>> = None;
    let mut read_passwd = |root: &Root| -> Result<Option<String>, StepError> {
        if passwd.is_none() {
            passwd = Some(root.read_small("/etc/passwd")?);
        }
        Ok(passwd.clone().flatten())
    };
    let (uid, primary_gid) = if user.is_empty() {
        (0, None)
    } else if let Ok(n) = user.parse::<u32>() {
        (n, None)
    } else {
        let text = read_passwd(root)?;
        let entry = text.as_deref().and_then(|t| lookup_db(t, user));
        match entry {
            Some(fields) => {
                let uid = fields.get(2).and_then(|s| s.parse().ok());
                let gid = fields.get(3).and_then(|s| s.parse().ok());
                match uid {
                    Some(uid) => (uid, gid),
                    None => return Err(bad_user(user)),
                }
            }
            None => return Err(bad_user(user)),
        }
    };
    let gid = match group {
        Some("") => primary_gid.unwrap_or(0),
        Some(g) => lookup_group(root, g)?.ok_or_else(|| bad_group(g))?,
        None if user.is_empty() => 0,
        None => match user.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match lookup_group(root, user)? {
                Some(g) => g,
                None => primary_gid.unwrap_or(uid),
            },
        },
    };
    Ok((uid, gid))
}

fn bad_user(user: &str) -> StepError {
    StepError::Invalid(format!(
        "unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}"
    ))
}

fn bad_group(group: &str) -> StepError {
    StepError::Invalid(format!(
        "unable to convert uid/gid chown string to host mapping: can't find gid for group {group}: no such group: {group}"
    ))
}

fn lookup_group(root: &Root, group: &str) -> Result<Option<u32>, StepError> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Some(n));
    }
    let text = root.read_small("/etc/group")?;
    Ok(text
        .as_deref()
        .and_then(|t| lookup_db(t, group))
        .and_then(|f| f.get(2).and_then(|s| s.parse().ok())))
}

/// The `:`-separated fields of the line whose first field is `name`.
fn lookup_db<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_rel("a/./b//c/../d").as_deref(), Some("a/b/d"));
        assert_eq!(clean_rel("/a/b").as_deref(), Some("a/b"));
        assert_eq!(clean_rel("a/../.."), None);
        assert_eq!(clean_abs("/a/../../b/"), "/b");
        assert_eq!(clean_abs(""), "/");
    }

    #[test]
    fn symlinks_resolve_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("real/sub")).unwrap();
        std::fs::write(dir.path().join("real/sub/f"), "x").unwrap();
        symlink("real", dir.path().join("link")).unwrap();
        symlink("/real/sub", dir.path().join("abs")).unwrap();
        symlink("../../etc", dir.path().join("out")).unwrap();
        let ctx = Root::context(dir.path().to_path_buf());
        assert_eq!(
            ctx.resolve("link/sub/f", true).unwrap().unwrap().rel,
            "real/sub/f"
        );
        assert_eq!(
            ctx.resolve("abs/f", true).unwrap().unwrap().rel,
            "real/sub/f"
        );
        assert!(ctx.resolve("out/passwd", true).is_err());
        assert!(ctx.resolve("../x", true).is_err());
        assert!(ctx.resolve("nope", true).unwrap().is_none());
        let img = Root::image(dir.path().to_path_buf());
        // Clamped at the root like a chroot: ../../etc is /etc, which does not exist here.
        assert!(img.resolve("out/passwd", true).unwrap().is_none());
        let p = img.walk("link/new/deeper", true).unwrap();
        assert_eq!(p.rel, "real");
        assert_eq!(p.missing, vec!["new", "deeper"]);
    }

    #[test]
    fn chown_names_from_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        )
        .unwrap();
        let r = Root::image(dir.path().to_path_buf());
        assert_eq!(resolve_chown(&r, "app").unwrap(), (1000, 1001));
        assert_eq!(resolve_chown(&r, "app:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_chown(&r, "10").unwrap(), (10, 10));
        assert_eq!(resolve_chown(&r, "10:20").unwrap(), (10, 20));
        assert!(resolve_chown(&r, "nobody").is_err());
        assert!(resolve_chown(&r, "app:nogroup").is_err());
    }
}
