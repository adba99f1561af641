//! Image archive formats: `docker save`/`docker load` archives (the legacy `<id>/layer.tar`
//! layout and the OCI-layout-inside layout of Docker 25+), the OCI image layout (a directory or a
//! tar of one), `docker import` of a rootfs tar and `docker export` of a root filesystem.
//!
//! Archives are hostile input. Loading stages every member into a private area first (see
//! `stage`), verifies every digest, size and diff id it can before registering anything, and
//! registers images through [`ImageStore::register`], which indexes an image only after all its
//! layers are unpacked and verified. A corrupt or lying archive therefore leaves no image visible.
//! This module must never create a file at a path named by an archive member, and never follow a
//! link out of an archive.

mod docker;
pub mod export;
mod import;
mod oci;
mod stage;
mod write;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::{Digest, Reference, ReferenceError};

use crate::content::ContentError;
use crate::image::{Image, ImageError, ImageStore};
use crate::layer::LayerError;

pub use export::{export_rootfs, ExportError, ExportStats};
pub use import::ImportOptions;

/// What went wrong saving or loading an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive member {0:?} has an unsafe name (absolute, '..', or not UTF-8): the archive is hostile or corrupt")]
    UnsafeName(String),
    #[error("archive member {member:?} links to {target:?}, outside the archive")]
    LinkOutside { member: String, target: String },
    #[error("archive member {0:?} is a chain of links that does not end")]
    LinkLoop(String),
    #[error("archive member {member:?} is a link to {target:?}: it must be a regular file")]
    LinkedMetadata { member: String, target: String },
    #[error("archive member {0:?} appears twice")]
    Duplicate(String),
    #[error("archive member {member:?} has type {kind}, which an image archive never holds")]
    MemberType { member: String, kind: String },
    #[error("archive member {0:?} is not a regular file")]
    NotAFile(String),
    #[error("the archive has no member {0:?}, which its manifest names")]
    Missing(String),
    #[error("the archive has no blob {0}, which its index or a manifest names")]
    MissingBlob(Digest),
    #[error("archive blob {digest} has {actual} bytes, but its descriptor says {expected}")]
    BlobSize {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("archive blob name {0:?} is not blobs/sha256/<64 hex digits>")]
    BadBlobName(String),
    #[error(
        "archive blob {0:?} uses a digest algorithm other than sha256, which berth does not store"
    )]
    UnsupportedBlob(String),
    #[error("archive member {member:?}: {source}")]
    Member {
        member: String,
        #[source]
        source: ContentError,
    },
    #[error("{what} is {size} bytes, too large for a metadata file: the archive is corrupt")]
    TooLarge { what: String, size: u64 },
    #[error("the archive is neither a docker archive (manifest.json) nor an OCI image layout (oci-layout and index.json)")]
    UnknownFormat,
    #[error("{what} in the archive is not valid: {source}")]
    BadJson {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the archive's {what}: {problem}")]
    Invalid { what: String, problem: String },
    #[error("layer {member:?} of image {image} hashes to {actual}, but the image config says its diff id is {expected}: the archive lies")]
    DiffId {
        member: String,
        image: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("image name {name:?} in the archive: {source}")]
    BadName {
        name: String,
        #[source]
        source: ReferenceError,
    },
    #[error("nothing to save: name at least one image")]
    NothingToSave,
    #[error("output directory {0:?} is not empty: choose a new or empty directory")]
    OutputNotEmpty(PathBuf),
    #[error("reading the archive (truncated or not a tar?): {0}")]
    Read(#[source] io::Error),
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl From<crate::index::IndexError> for ArchiveError {
    fn from(e: crate::index::IndexError) -> Self {
        ArchiveError::Image(e.into())
    }
}

/// The formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// What `docker save` writes since Docker 25: `manifest.json` and `repositories` for every
    /// docker loader, plus `oci-layout`, `index.json` and `blobs/sha256/` (uncompressed layers).
    DockerArchive,
    /// An OCI image layout in a tar (`oci-archive:`), blobs as stored.
    OciArchive,
}

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// For OCI layouts whose index names images by a bare tag (`latest`, as `skopeo copy
    /// oci:DIR:latest` writes): the repository those tags belong to. Without it such images load
    /// untagged.
    pub repository: Option<Reference>,
}

/// What a load registered.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Each image loaded, with the names now pointing at it.
    pub images: Vec<(Digest, Vec<Reference>)>,
}

/// An image found in an archive and verified, ready to register.
pub(crate) struct Pending {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// Every blob the manifest names (config and layers).
    pub blobs: Vec<Digest>,
    pub tags: Vec<Reference>,
}

/// Loads a docker archive or an OCI layout tar (plain, gzip or zstd) from `r`.
pub fn load<R: Read>(
    store: &ImageStore,
    r: R,
    opts: &LoadOptions,
) -> Result<LoadReport, ArchiveError> {
    let staged = stage::Staged::from_tar(store.tmp_dir(), r)?;
    load_staged(store, &staged, opts)
}

/// Loads an OCI image layout directory (or an unpacked docker archive).
pub fn load_dir(
    store: &ImageStore,
    dir: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, ArchiveError> {
    let staged = stage::Staged::from_dir(store.tmp_dir(), dir)?;
    load_staged(store, &staged, opts)
}

fn load_staged(
    store: &ImageStore,
    staged: &stage::Staged,
    opts: &LoadOptions,
) -> Result<LoadReport, ArchiveError> {
    let pending = if staged.has("manifest.json") {
        docker::read(staged)?
    } else if staged.has("index.json") || staged.has("oci-layout") {
        oci::read(staged, opts)?
    } else {
        return Err(ArchiveError::UnknownFormat);
    };
    let mut report = LoadReport::default();
    for p in &pending {
        for b in &p.blobs {
            staged.commit_blob(b, store.content())?;
        }
    }
    for p in pending {
        let img = store.register(&p.config, &p.manifest, &p.tags)?;
        report.images.push((img.id().clone(), p.tags));
    }
    Ok(report)
}

/// An image to save and the names it is saved under.
pub(crate) struct ToSave {
    pub image: Image,
    pub tags: Vec<Reference>,
}

/// Resolves names (references or ids) to images, grouping names of the same image. A name that
/// is a tag is saved under that tag; an id saves the image untagged, as Docker does.
fn resolve_names(store: &ImageStore, names: &[&str]) -> Result<Vec<ToSave>, ArchiveError> {
    if names.is_empty() {
        return Err(ArchiveError::NothingToSave);
    }
    let mut out: Vec<ToSave> = Vec::new();
    for n in names {
        let by_ref = match Reference::parse_normalized(n) {
            Ok(r) => {
                let r = r.with_default_tag();
                store.index()?.by_reference(&r)?.map(|rec| (rec, r))
            }
            Err(_) => None,
        };
        let (image, tag) = match by_ref {
            Some((rec, r)) => (store.get_by_id(&rec.id)?, r.tag().map(|_| r.clone())),
            None => (store.get(n)?, None),
        };
        let slot = match out.iter().position(|t| t.image.id() == image.id()) {
            Some(i) => i,
            None => {
                out.push(ToSave {
                    image,
                    tags: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let (Some(t), Some(s)) = (tag, out.get_mut(slot)) {
            if !s.tags.contains(&t) {
                s.tags.push(t);
            }
        }
    }
    Ok(out)
}

/// Saves images (by name or id) as one archive on `w`, returning `w`.
pub fn save<W: Write>(
    store: &ImageStore,
    names: &[&str],
    format: SaveFormat,
    w: W,
) -> Result<W, ArchiveError> {
    let items = resolve_names(store, names)?;
    let mut sink = write::TarSink::new(w);
    match format {
        SaveFormat::DockerArchive => docker::write(store, &items, &mut sink)?,
        SaveFormat::OciArchive => oci::write(store, &items, &mut sink)?,
    }
    sink.finish()
}

/// Saves images as an OCI image layout in `dir` (created if missing; must be empty).
pub fn save_oci_dir(store: &ImageStore, names: &[&str], dir: &Path) -> Result<(), ArchiveError> {
    let items = resolve_names(store, names)?;
    let mut sink = write::DirSink::new(dir)?;
    oci::write(store, &items, &mut sink)
}

/// Parses JSON from the archive, naming what it was.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|source| ArchiveError::BadJson {
        what: what.to_string(),
        source,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(v).map_err(|e| ArchiveError::Write(io::Error::other(e)))
}
