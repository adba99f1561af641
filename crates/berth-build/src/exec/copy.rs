//! COPY and ADD: from source words to the list of entries a step adds (with Docker's destination
//! rules), the content hash that keys the cache (paths, types, modes, owners, sizes, bytes, link
//! targets — never mtimes), and the layer tar written from that list.
//!
//! Sources are read only through [`Root`]: inside the context (less `.dockerignore`) or a stage's
//! or image's rootfs, never outside.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::archive;
use super::fsroot::{clean_abs, clean_rel, components, join_rel, open_nofollow, Found, Root};
use super::glob;
use super::StepError;
use crate::ignore::Matcher;

/// What one entry of the layer is.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Dir,
    /// A regular file read from this host path (inside a source root).
    File(PathBuf),
    Symlink(String),
    /// Bytes held in memory (a heredoc).
    Data(Vec<u8>),
    Fifo,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Relative to the image root, no leading `/`.
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Entry(Entry),
    /// A local tar archive (ADD) extracted below `dest`.
    Archive {
        host: PathBuf,
        dest: String,
        owner: Option<(u32, u32)>,
        chmod: Option<u32>,
    },
}

/// One source as the step names it.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A path or glob, relative to the source root.
    Path(String),
    /// Bytes with a file name (a heredoc, or a downloaded URL stored at `PathBuf`).
    Data { name: String, data: Vec<u8> },
    Fetched {
        name: String,
        host: PathBuf,
        mode: u32,
    },
}

/// Everything a COPY/ADD needs, expanded.
pub(crate) struct CopySpec<'a> {
    /// `COPY` or `ADD`.
    pub cmd: &'static str,
    pub sources: Vec<Source>,
    pub src_root: &'a Root,
    /// `.dockerignore` (for context sources only).
    pub ignore: Option<&'a Matcher>,
    /// The destination as written after expansion.
    pub dest: String,
    /// The working directory the destination is relative to.
    pub workdir: String,
    /// The parent image's rootfs (destination rules, chown names, parent directories).
    pub dst_root: &'a Root,
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
    pub parents: bool,
    pub exclude: Option<Matcher>,
    /// ADD: extract local archives.
    pub extract: bool,
}

/// The planned layer.
pub(crate) struct Plan {
    pub items: Vec<Item>,
    /// `file`, `dir` or `multi` (moby's history prefix).
    pub label: &'static str,
}

fn not_found(cmd: &str, src: &str, from_context: bool) -> StepError {
    if from_context {
        StepError::Invalid(format!(
            "{cmd} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
        ))
    } else {
        StepError::Invalid(format!("{cmd} failed: stat {src}: file does not exist"))
    }
}

/// A matched source path: as written (cleaned) and resolved.
struct Matched {
    written: String,
    found: Found,
}

impl CopySpec<'_> {
    fn is_ignored(&self, rel: &str) -> bool {
        self.ignore
            .is_some_and(|m| !rel.is_empty() && m.excluded(rel))
    }

    /// Expands a source word (globs per component) to the paths it names.
    fn expand_source(&self, word: &str) -> Result<Vec<Matched>, StepError> {
        let from_context = self.ignore.is_some();
        let cleaned = clean_rel(word).ok_or_else(|| {
            StepError::Invalid(format!(
                "forbidden path outside the build context: {word} ()"
            ))
        })?;
        if !glob::has_meta(word) {
            let found = self
                .src_root
                .resolve(&cleaned, true)?
                .filter(|f| !self.is_ignored(&cleaned) && !self.is_ignored(&f.rel))
                .ok_or_else(|| not_found(self.cmd, &cleaned, from_context))?;
            return Ok(vec![Matched {
                written: cleaned,
                found,
            }]);
        }
        let mut candidates: Vec<String> = vec![String::new()];
        let comps: Vec<&str> = components(word).collect();
        for c in comps {
            let mut next = Vec::new();
            if c == ".." {
                for cand in candidates {
                    match clean_rel(&format!("{cand}/..")) {
                        Some(p) => next.push(p),
                        None => {
                            return Err(StepError::Invalid(format!(
                                "forbidden path outside the build context: {word} ()"
                            )))
                        }
                    }
                }
            } else if !glob::has_meta(c) {
                next = candidates
                    .into_iter()
                    .map(|cand| join_rel(&cand, c))
                    .collect();
            } else {
                for cand in candidates {
                    let Some(dir) = self.src_root.resolve(&cand, true)? else {
                        continue;
                    };
                    if !dir.meta.is_dir() {
                        continue;
                    }
                    for name in sorted_names(&dir.host)? {
                        let ok = glob::matches(c, &name).map_err(|_| {
                            StepError::Invalid(format!("syntax error in pattern: {word}"))
                        })?;
                        if ok {
                            next.push(join_rel(&cand, &name));
                        }
                    }
                }
            }
            candidates = next;
        }
        let mut out = Vec::new();
        for cand in candidates {
            if self.is_ignored(&cand) {
                continue;
            }
            if let Some(found) = self.src_root.resolve(&cand, true)? {
                if !self.is_ignored(&found.rel) {
                    out.push(Matched {
                        written: cand,
                        found,
                    });
                }
            }
        }
        if out.is_empty() {
            return Err(not_found(self.cmd, word, from_context));
        }
        Ok(out)
    }

    /// Plans the layer.
    pub(crate) fn plan(&self) -> Result<Plan, StepError> {
        let dest_dir_syntax = self.dest.ends_with('/')
            || self.dest == "."
            || self.dest.ends_with("/.")
            || self.dest.is_empty();
        let abs = if self.dest.starts_with('/') {
            clean_abs(&self.dest)
        } else {
            clean_abs(&format!("{}/{}", self.workdir, self.dest))
        };
        let dest_rel = abs.trim_start_matches('/').to_string();
        // The destination as it really is in the parent: symlinks followed inside its root.
        let prefix = self.dst_root.walk(&dest_rel, true)?;
        let dest_is_dir =
            prefix.missing.is_empty() && prefix.meta.as_ref().is_some_and(|m| m.is_dir());
        let dest_real = prefix
            .missing
            .iter()
            .fold(prefix.rel.clone(), |acc, c| join_rel(&acc, c));

        let mut matched: Vec<(Option<Matched>, &Source)> = Vec::new();
        for s in &self.sources {
            match s {
                Source::Path(w) => {
                    for m in self.expand_source(w)? {
                        matched.push((Some(m), s));
                    }
                }
                _ => matched.push((None, s)),
            }
        }
        if matched.len() > 1 && !dest_dir_syntax {
            return Err(StepError::Invalid(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                self.cmd
            )));
        }
        let into_dir = dest_dir_syntax || dest_is_dir;
        let (uid, gid) = self.owner;
        let mut items: Vec<Item> = Vec::new();
        let mut label = "file";
        for (m, source) in &matched {
            match (m, source) {
                (Some(m), _) => {
                    let meta = &m.found.meta;
                    if meta.is_dir() {
                        label = "dir";
                        let target = if self.parents {
                            join_rel(&dest_real, &m.written)
                        } else {
                            dest_real.clone()
                        };
                        let exists = self
                            .dst_root
                            .resolve(&target, false)?
                            .is_some_and(|f| f.meta.is_dir());
                        if !exists && !target.is_empty() {
                            items.push(Item::Entry(Entry {
                                path: target.clone(),
                                kind: Kind::Dir,
                                mode: self.chmod.unwrap_or(meta.permissions().mode() & 0o7777),
                                uid,
                                gid,
                                size: 0,
                                mtime: mtime(meta),
                            }));
                        }
                        self.walk_dir(&m.found.host, &m.found.rel, "", &target, &mut items)?;
                    } else {
                        let base = m.written.rsplit('/').next().unwrap_or(&m.written);
                        let target = if self.parents {
                            join_rel(&dest_real, &m.written)
                        } else if into_dir {
                            join_rel(&dest_real, base)
                        } else {
                            dest_real.clone()
                        };
                        if self.extract && meta.is_file() && archive::is_archive(&m.found.host) {
                            items.push(Item::Archive {
                                host: m.found.host.clone(),
                                dest: dest_real.clone(),
                                owner: (self.owner != (0, 0)).then_some(self.owner),
                                chmod: self.chmod,
                            });
                            continue;
                        }
                        if self.excluded_by_flag(base) {
                            continue;
                        }
                        if let Some(e) = self.entry_for(&m.found.host, meta, target)? {
                            items.push(Item::Entry(e));
                        }
                    }
                }
                (None, Source::Data { name, data }) => {
                    let target = if into_dir {
                        join_rel(&dest_real, name)
                    } else {
                        dest_real.clone()
                    };
                    items.push(Item::Entry(Entry {
                        path: target,
                        kind: Kind::Data(data.clone()),
                        mode: self.chmod.unwrap_or(0o644),
                        uid,
                        gid,
                        size: data.len() as u64,
                        mtime: now(),
                    }));
                }
                (None, Source::Fetched { name, host, mode }) => {
                    let target = if dest_dir_syntax {
                        join_rel(&dest_real, name)
                    } else {
                        dest_real.clone()
                    };
                    let meta = std::fs::metadata(host)
                        .map_err(|e| StepError::Io(format!("{}: {e}", host.display())))?;
                    items.push(Item::Entry(Entry {
                        path: target,
                        kind: Kind::File(host.clone()),
                        mode: self.chmod.unwrap_or(*mode),
                        uid,
                        gid,
                        size: meta.len(),
                        mtime: mtime(&meta),
                    }));
                }
                (None, Source::Path(_)) => {}
            }
        }
        if matched.len() > 1 {
            label = "multi";
        }
        let extra = (dest_is_dir && !dest_real.is_empty()).then_some(dest_real.as_str());
        let items = with_parents(self.dst_root, items, extra, self.owner);
        Ok(Plan { items, label })
    }

    fn excluded_by_flag(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|m| m.excluded(rel))
    }

    fn entry_for(
        &self,
        host: &Path,
        meta: &std::fs::Metadata,
        path: String,
    ) -> Result<Option<Entry>, StepError> {
        let ft = meta.file_type();
        let perm = meta.permissions().mode() & 0o7777;
        let (uid, gid) = self.owner;
        let kind = if ft.is_file() {
            Kind::File(host.to_path_buf())
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            let t = std::fs::read_link(host)
                .map_err(|e| StepError::Io(format!("{}: {e}", host.display())))?;
            Kind::Symlink(t.to_string_lossy().into_owned())
        } else if is_fifo(meta) {
            Kind::Fifo
        } else {
            // Sockets and device nodes are not copied.
            return Ok(None);
        };
        let mode = match (&kind, self.chmod) {
            (Kind::Symlink(_), _) => 0o777,
            (_, Some(m)) => m,
            (_, None) => perm,
        };
        let size = if matches!(kind, Kind::File(_)) {
            meta.len()
        } else {
            0
        };
        Ok(Some(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            size,
            mtime: mtime(meta),
        }))
    }

    /// The real path of `target` when the destination root has a symlink there that resolves
    /// (inside the root) to a directory.
    fn linked_dir(&self, target: &str) -> Result<Option<String>, StepError> {
        let host = self.dst_root.path.join(target);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {}
            _ => return Ok(None),
        }
        Ok(self
            .dst_root
            .resolve(target, true)?
            .filter(|f| f.meta.is_dir())
            .map(|f| f.rel))
    }

    /// Adds a directory's contents (sorted, pre-order) below `target`. `src_rel` is the
    /// directory's path in the source root (for `.dockerignore`), `sub` its path below the source
    /// directory (for `--exclude`).
    fn walk_dir(
        &self,
        host: &Path,
        src_rel: &str,
        sub: &str,
        target: &str,
        items: &mut Vec<Item>,
    ) -> Result<(), StepError> {
        for name in sorted_names(host)? {
            let child_host = host.join(&name);
            let child_rel = join_rel(src_rel, &name);
            let child_sub = join_rel(sub, &name);
            let child_target = join_rel(target, &name);
            let meta = std::fs::symlink_metadata(&child_host)
                .map_err(|e| StepError::Io(format!("{child_rel}: {e}")))?;
            let ignored = self.is_ignored(&child_rel) || self.excluded_by_flag(&child_sub);
            if meta.is_dir() {
                let may_below = self.ignore.is_some_and(|m| m.may_include_below(&child_rel))
                    || self
                        .exclude
                        .as_ref()
                        .is_some_and(|m| m.may_include_below(&child_sub));
                if ignored && !may_below {
                    continue;
                }
                let mark = items.len();
                // A directory the parent has as a symlink to a directory (`/lib -> usr/lib`)
                // is entered, not replaced, as BuildKit does.
                let linked = self.linked_dir(&child_target)?;
                let has_entry = linked.is_none();
                let child_target = match linked {
                    Some(real) => real,
                    None => {
                        if let Some(e) = self.entry_for(&child_host, &meta, child_target.clone())? {
                            items.push(Item::Entry(e));
                        }
                        child_target
                    }
                };
                self.walk_dir(&child_host, &child_rel, &child_sub, &child_target, items)?;
                if ignored && items.len() == mark + usize::from(has_entry) {
                    // Excluded and nothing re-included below: drop the directory itself.
                    items.truncate(mark);
                }
                continue;
            }
            if ignored {
                continue;
            }
            if let Some(e) = self.entry_for(&child_host, &meta, child_target)? {
                items.push(Item::Entry(e));
            }
        }
        Ok(())
    }
}

/// Prepends the missing and existing parent directories of every entry (and `extra`): existing
/// ones keep the parent image's metadata (so the layer does not change them), new ones are 0755
/// and owned like the copied files.
pub(crate) fn with_parents(
    dst_root: &Root,
    items: Vec<Item>,
    extra: Option<&str>,
    owner: (u32, u32),
) -> Vec<Item> {
    let mut own: BTreeSet<String> = BTreeSet::new();
    let mut parents: BTreeSet<String> = BTreeSet::new();
    for it in &items {
        let p = match it {
            Item::Entry(e) => {
                if matches!(e.kind, Kind::Dir) {
                    own.insert(e.path.clone());
                }
                e.path.as_str()
            }
            Item::Archive { dest, .. } => {
                if !dest.is_empty() {
                    parents.insert(dest.clone());
                }
                dest.as_str()
            }
        };
        let mut cur = p;
        while let Some((parent, _)) = cur.rsplit_once('/') {
            parents.insert(parent.to_string());
            cur = parent;
        }
    }
    if let Some(d) = extra {
        parents.insert(d.to_string());
    }
    let (uid, gid) = owner;
    let mut out = Vec::with_capacity(items.len() + parents.len());
    for p in parents {
        if own.contains(&p) {
            continue;
        }
        let host = dst_root.path.join(&p);
        let entry = match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => Entry {
                path: p,
                kind: Kind::Dir,
                mode: m.permissions().mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: 0,
                mtime: mtime(&m),
            },
            _ => Entry {
                path: p,
                kind: Kind::Dir,
                mode: 0o755,
                uid,
                gid,
                size: 0,
                mtime: now(),
            },
        };
        out.push(Item::Entry(entry));
    }
    out.extend(items);
    out
}

fn is_fifo(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

fn mtime(meta: &std::fs::Metadata) -> u64 {
    u64::try_from(meta.mtime()).unwrap_or(0)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A directory's entry names, sorted bytewise (deterministic walks, like Go's `filepath.Walk`).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<String>, StepError> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| StepError::Io(format!("{}: {e}", dir.display())))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| StepError::Io(format!("{}: {e}", dir.display())))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Streams a file into a hasher with a large buffer.
pub(crate) fn hash_file(h: &mut Sha256, path: &Path, buf: &mut [u8]) -> Result<u64, StepError> {
    let mut f = open_nofollow(path)?;
    let mut total = 0u64;
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StepError::Io(format!("{}: {e}", path.display()))),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// The content hash of a plan (hex sha256): what the cache key of COPY/ADD is made of.
pub(crate) fn hash_items(items: &[Item]) -> Result<String, StepError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for it in items {
        match it {
            Item::Entry(e) => {
                let tag: &[u8] = match &e.kind {
                    Kind::Dir => b"d",
                    Kind::File(_) => b"f",
                    Kind::Symlink(_) => b"l",
                    Kind::Data(_) => b"f",
                    Kind::Fifo => b"p",
                };
                h.update(tag);
                put_str(&mut h, &e.path);
                h.update(e.mode.to_le_bytes());
                h.update(e.uid.to_le_bytes());
                h.update(e.gid.to_le_bytes());
                h.update(e.size.to_le_bytes());
                match &e.kind {
                    Kind::File(p) => {
                        hash_file(&mut h, p, &mut buf)?;
                    }
                    Kind::Symlink(t) => put_str(&mut h, t),
                    Kind::Data(d) => h.update(d),
                    Kind::Dir | Kind::Fifo => {}
                }
            }
            Item::Archive {
                host,
                dest,
                owner,
                chmod,
            } => {
                h.update(b"a");
                put_str(&mut h, dest);
                put_str(&mut h, &format!("{owner:?} {chmod:?}"));
                hash_file(&mut h, host, &mut buf)?;
            }
        }
    }
    Ok(super::hex(&h.finalize()))
}

/// Hashes a tree (for `RUN --mount=type=bind` from the context): the same fields as a copy.
pub(crate) fn hash_tree(
    root: &Root,
    rel: &str,
    ignore: Option<&Matcher>,
) -> Result<String, StepError> {
    let Some(found) = root.resolve(rel, true)? else {
        return Ok(String::from("missing"));
    };
    let spec = CopySpec {
        cmd: "RUN",
        sources: Vec::new(),
        src_root: root,
        ignore,
        dest: "/".to_string(),
        workdir: "/".to_string(),
        dst_root: root,
        owner: (0, 0),
        chmod: None,
        parents: false,
        exclude: None,
        extract: false,
    };
    let mut items = Vec::new();
    if found.meta.is_dir() {
        spec.walk_dir(&found.host, &found.rel, "", "", &mut items)?;
    } else if let Some(e) = spec.entry_for(&found.host, &found.meta, String::new())? {
        items.push(Item::Entry(e));
    }
    hash_items(&items)
}

/// Writes the plan as an uncompressed layer tar at `path`.
pub(crate) fn write_layer(items: &[Item], path: &Path) -> Result<(), StepError> {
    let werr = |e: io::Error| StepError::Io(format!("write layer {}: {e}", path.display()));
    let f = std::fs::File::create(path).map_err(werr)?;
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
    for it in items {
        match it {
            Item::Entry(e) => append_entry(&mut b, e).map_err(werr)?,
            Item::Archive {
                host,
                dest,
                owner,
                chmod,
            } => archive::append_archive(&mut b, host, dest, *owner, *chmod)?,
        }
    }
    let mut w = b.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(())
}

/// Appends dir entries for `dirs` (WORKDIR) to a new layer.
pub(crate) fn dir_entries(dirs: &[String]) -> Vec<Item> {
    dirs.iter()
        .map(|d| {
            Item::Entry(Entry {
                path: d.clone(),
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: now(),
            })
        })
        .collect()
}

fn append_entry<W: Write>(b: &mut tar::Builder<W>, e: &Entry) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(e.mode);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime);
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{}/", e.path), io::empty())
        }
        Kind::File(p) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(e.size);
            let f = open_nofollow(p).map_err(|e| io::Error::other(e.to_string()))?;
            let mut counted = CountingReader {
                inner: f.take(e.size),
                n: 0,
            };
            b.append_data(&mut h, &e.path, &mut counted)?;
            if counted.n != e.size {
                return Err(io::Error::other(format!(
                    "{} changed size during the build",
                    p.display()
                )));
            }
            Ok(())
        }
        Kind::Data(d) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(d.len() as u64);
            b.append_data(&mut h, &e.path, &d[..])
        }
        Kind::Symlink(t) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &e.path, t)
        }
        Kind::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            b.append_data(&mut h, &e.path, io::empty())
        }
    }
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
