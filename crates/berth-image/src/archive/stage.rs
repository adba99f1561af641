//! Staging an archive (a tar stream or an OCI layout directory) before anything of it is trusted:
//! every regular member is hashed into a private content store under `<root>/tmp/load-*`, and
//! names, links and directories are recorded, so the format readers can look members up by name
//! and the loader can move only verified blobs into the real store.
//!
//! Member names are hostile: absolute names, `..` components and links that leave the archive are
//! refused, and nothing is ever created at a path taken from the archive: staged blobs are named
//! by their digest only. Members under `blobs/sha256/` must hash to their names.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use berth_types::{Algorithm, Digest};

use super::ArchiveError;
use crate::content::{BlobInfo, ContentStore};
use crate::image::open_nofollow;

/// Metadata files (manifest.json, index.json, configs, manifests) are read whole; larger ones
/// are refused rather than read into memory.
pub(crate) const MAX_METADATA: u64 = 64 << 20;

/// How links are followed before giving up.
const MAX_LINK_HOPS: usize = 16;

/// One archive member.
#[derive(Debug, Clone)]
pub(crate) enum Member {
    File(BlobInfo),
    /// A symlink or hardlink, its target as an archive name.
    Link(String),
    Dir,
}

/// A staged archive: its members by name and their content in a private store.
pub(crate) struct Staged {
    _dir: tempfile::TempDir,
    pub(crate) blobs: ContentStore,
    members: BTreeMap<String, Member>,
}

/// Cleans an archive member name: strips `./` and `/` runs, refuses absolute names and `..`.
pub(crate) fn clean_name(raw: &str) -> Result<String, ArchiveError> {
    if raw.starts_with('/') {
        return Err(ArchiveError::UnsafeName(raw.to_string()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => match n.to_str() {
                Some(s) => parts.push(s),
                None => return Err(ArchiveError::UnsafeName(raw.to_string())),
            },
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::UnsafeName(raw.to_string()))
            }
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a link `target` written in member `name` to an archive name, refusing targets that
/// leave the archive.
fn link_target(name: &str, target: &str, symlink: bool) -> Result<String, ArchiveError> {
    let refuse = || ArchiveError::LinkOutside {
        member: name.to_string(),
        target: target.to_string(),
    };
    if target.starts_with('/') {
        return Err(refuse());
    }
    // A symlink is relative to its directory; a hardlink names an archive member.
    let mut parts: Vec<&str> = Vec::new();
    if symlink {
        parts.extend(name.split('/'));
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse());
                }
            }
            n => parts.push(n),
        }
    }
    Ok(parts.join("/"))
}

/// The expected digest of a member named `blobs/<alg>/<hex>`, if it is one.
fn blob_name_digest(name: &str) -> Result<Option<Digest>, ArchiveError> {
    let Some(rest) = name.strip_prefix("blobs/") else {
        return Ok(None);
    };
    let Some((alg, hex)) = rest.split_once('/') else {
        return Ok(None);
    };
    if alg != "sha256" {
        return Err(ArchiveError::UnsupportedBlob(name.to_string()));
    }
    Digest::from_hex(Algorithm::Sha256, hex)
        .map(Some)
        .map_err(|_| ArchiveError::BadBlobName(name.to_string()))
}

impl Staged {
    fn new(tmp: &Path) -> Result<Self, ArchiveError> {
        let dir = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(tmp)
            .map_err(|source| ArchiveError::Io {
                op: "create temp directory in",
                path: tmp.to_path_buf(),
                source,
            })?;
        let blobs = ContentStore::open(dir.path())?;
        Ok(Self {
            _dir: dir,
            blobs,
            members: BTreeMap::new(),
        })
    }

    fn insert(&mut self, name: String, m: Member) -> Result<(), ArchiveError> {
        if name.is_empty() {
            return Ok(());
        }
        match (self.members.get(&name), &m) {
            (Some(Member::Dir), Member::Dir) => Ok(()),
            (Some(_), _) => Err(ArchiveError::Duplicate(name)),
            (None, _) => {
                self.members.insert(name, m);
                Ok(())
            }
        }
    }

    fn ingest_file<R: Read>(&mut self, name: String, r: R, size: u64) -> Result<(), ArchiveError> {
        let expected = blob_name_digest(&name)?;
        let info = self
            .blobs
            .ingest(r, expected.as_ref(), Some(size))
            .map_err(|source| ArchiveError::Member {
                member: name.clone(),
                source,
            })?;
        self.insert(name, Member::File(info))
    }

    /// Stages every member of a tar stream (plain, gzip or zstd).
    pub(crate) fn from_tar<R: Read>(tmp: &Path, r: R) -> Result<Self, ArchiveError> {
        let mut st = Self::new(tmp)?;
        let (_, plain) = crate::layer::decompress(r)?;
        let mut ar = tar::Archive::new(plain);
        for entry in ar.entries().map_err(ArchiveError::Read)? {
            let entry = entry.map_err(ArchiveError::Read)?;
            let raw = entry.path_bytes();
            let raw = std::str::from_utf8(&raw)
                .map_err(|_| {
                    ArchiveError::UnsafeName(String::from_utf8_lossy(&entry.path_bytes()).into())
                })?
                .to_string();
            let name = clean_name(&raw)?;
            let kind = entry.header().entry_type();
            let link = || -> Result<String, ArchiveError> {
                let l = entry
                    .link_name_bytes()
                    .ok_or_else(|| ArchiveError::UnsafeName(raw.clone()))?;
                std::str::from_utf8(&l)
                    .map(str::to_string)
                    .map_err(|_| ArchiveError::UnsafeName(raw.clone()))
            };
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    st.ingest_file(name, entry, size)?;
                }
                tar::EntryType::Directory => st.insert(name, Member::Dir)?,
                tar::EntryType::Symlink => {
                    let t = link_target(&name, &link()?, true)?;
                    st.insert(name, Member::Link(t))?;
                }
                tar::EntryType::Link => {
                    let l = link()?;
                    let t = link_target(&name, &clean_name(&l)?, false)?;
                    st.insert(name, Member::Link(t))?;
                }
                tar::EntryType::XGlobalHeader => {}
                other => {
                    return Err(ArchiveError::MemberType {
                        member: raw,
                        kind: format!("{other:?}"),
                    })
                }
            }
        }
        Ok(st)
    }

    /// Stages an OCI layout directory: its regular files are hashed (never following a symlink),
    /// its symlinks recorded as links inside the layout.
    pub(crate) fn from_dir(tmp: &Path, dir: &Path) -> Result<Self, ArchiveError> {
        let mut st = Self::new(tmp)?;
        let walker = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
        for ent in walker {
            let ent = ent.map_err(|e| ArchiveError::Io {
                op: "walk",
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
            let rel = ent.path().strip_prefix(dir).unwrap_or(ent.path());
            let name = clean_name(&rel.to_string_lossy())?;
            let ft = ent.file_type();
            let io_err = |op: &'static str| {
                let path = ent.path().to_path_buf();
                move |source| ArchiveError::Io { op, path, source }
            };
            if ft.is_dir() {
                st.insert(name, Member::Dir)?;
            } else if ft.is_symlink() {
                let t = fs::read_link(ent.path()).map_err(io_err("read link"))?;
                let t = link_target(&name, &t.to_string_lossy(), true)?;
                st.insert(name, Member::Link(t))?;
            } else if ft.is_file() {
                let f = open_nofollow(ent.path()).map_err(io_err("open"))?;
                let size = f.metadata().map_err(io_err("stat"))?.len();
                st.ingest_file(name, io::BufReader::new(f), size)?;
            } else {
                return Err(ArchiveError::MemberType {
                    member: name,
                    kind: "special file".into(),
                });
            }
        }
        Ok(st)
    }

    /// Whether a member of this name exists (of any kind).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// A member that must be a regular file itself (manifest.json, index.json, oci-layout).
    pub(crate) fn regular(&self, name: &str) -> Result<&BlobInfo, ArchiveError> {
        match self.members.get(name) {
            Some(Member::File(b)) => Ok(b),
            Some(Member::Link(t)) => Err(ArchiveError::LinkedMetadata {
                member: name.to_string(),
                target: t.clone(),
            }),
            Some(Member::Dir) => Err(ArchiveError::NotAFile(name.to_string())),
            None => Err(ArchiveError::Missing(name.to_string())),
        }
    }

    /// A member, following links inside the archive.
    pub(crate) fn resolve(&self, name: &str) -> Result<&BlobInfo, ArchiveError> {
        let mut cur = clean_name(name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&cur) {
                Some(Member::File(b)) => return Ok(b),
                Some(Member::Link(t)) => cur = t.clone(),
                Some(Member::Dir) => return Err(ArchiveError::NotAFile(name.to_string())),
                None => return Err(ArchiveError::Missing(name.to_string())),
            }
        }
        Err(ArchiveError::LinkLoop(name.to_string()))
    }

    /// The blob `blobs/sha256/<hex>` of an OCI layout, checked against a descriptor's size.
    pub(crate) fn blob(&self, digest: &Digest, size: u64) -> Result<&BlobInfo, ArchiveError> {
        let name = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
        let b = match self.members.get(&name) {
            Some(Member::File(b)) => b,
            Some(_) => return Err(ArchiveError::NotAFile(name)),
            None => return Err(ArchiveError::MissingBlob(digest.clone())),
        };
        if b.size != size {
            return Err(ArchiveError::BlobSize {
                digest: digest.clone(),
                expected: size,
                actual: b.size,
            });
        }
        Ok(b)
    }

    /// Reads a small staged blob whole.
    pub(crate) fn read(&self, b: &BlobInfo, what: &str) -> Result<Vec<u8>, ArchiveError> {
        if b.size > MAX_METADATA {
            return Err(ArchiveError::TooLarge {
                what: what.to_string(),
                size: b.size,
            });
        }
        Ok(self.blobs.read(&b.digest)?)
    }

    /// Moves a verified staged blob into the real store (it is already fsynced; an identical
    /// blob already there is kept).
    pub(crate) fn commit_blob(&self, d: &Digest, into: &ContentStore) -> Result<(), ArchiveError> {
        if into.exists(d) {
            return Ok(());
        }
        let from = self.blobs.path(d)?;
        let to = into.path(d)?;
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(ArchiveError::Io {
                op: "rename into",
                path: to,
                source: e.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean_name("./manifest.json").unwrap(), "manifest.json");
        assert_eq!(clean_name("a//b/./c").unwrap(), "a/b/c");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/.."] {
            assert!(clean_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            link_target("abc/layer.tar", "../def/layer.tar", true).unwrap(),
            "def/layer.tar"
        );
        assert_eq!(link_target("x/y", "z", false).unwrap(), "z");
        assert!(link_target("abc/layer.tar", "../../etc/passwd", true).is_err());
        assert!(link_target("layer.tar", "/etc/passwd", true).is_err());
    }

    #[test]
    fn blob_names_must_match_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        let name = format!("blobs/sha256/{}", "a".repeat(64));
        b.append_data(&mut h, &name, &b"abc"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let e = Staged::from_tar(dir.path(), &data[..]).err().unwrap();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }
}
