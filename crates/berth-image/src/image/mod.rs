//! The image store: one facade over the content store, the unpacked layers and the image index of
//! a data root, so that callers create, find and commit images without knowing how the three fit.
//!
//! An image here is a config blob (its digest is the image id), a manifest blob listing the layer
//! blobs, the unpacked layers by chain id, and index rows (image, layers, tags). The store writes
//! them in that order and registers the image in the index last, so a failure at any step leaves no
//! image visible (only verified, unreferenced blobs or layers, which garbage collection removes).
//! It never rewrites a stored config or manifest: their bytes are what their digests name.

pub mod change;
pub mod config;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use berth_types::{Digest, Reference};

use crate::content::{sha256_digest, ContentError, ContentStore};
use crate::diff::{write_diff, DiffError};
use crate::index::{ImageIndex, ImageRecord, IndexError, LayerRecord};
use crate::layer::{
    chain_id, decompress, ApplyOptions, Compression, Layer, LayerError, LayerStore,
};

pub use change::{apply_change, apply_changes, ChangeError};
pub use config::{
    media, ContainerConfig, Descriptor, History, ImageConfig, Index, Manifest, Platform, RootFs,
};

/// What went wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("image config {digest}: not a valid image config: {source}")]
    BadConfig {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("image manifest {digest}: not a valid image manifest: {source}")]
    BadManifest {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("image manifest {digest} has media type {media_type:?}: only Docker schema2 and OCI image manifests are supported")]
    ManifestMediaType { digest: Digest, media_type: String },
    #[error("image {image}: layer {layer} has media type {media_type:?}, which is not a layer type berth can unpack")]
    LayerMediaType {
        image: Digest,
        layer: Digest,
        media_type: String,
    },
    #[error("image {image}: the manifest lists {layers} layers but the config has {diff_ids} diff ids: the image is corrupt")]
    LayerCount {
        image: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error(
        "image {image}: the manifest names config {named}, but the config given hashes to {actual}"
    )]
    ConfigMismatch {
        image: Digest,
        named: Digest,
        actual: Digest,
    },
    #[error("image {0} has no manifest in the store: it cannot be saved or committed on; pull or load it again")]
    NoManifest(Digest),
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the image store lock is poisoned by an earlier panic: restart berth")]
    Poisoned,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest format of images berth creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// `application/vnd.docker.distribution.manifest.v2+json`, what Docker makes.
    #[default]
    Docker,
    /// `application/vnd.oci.image.manifest.v1+json`.
    Oci,
}

/// An image: its index record, its parsed config and manifest, and its names.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub manifest: Manifest,
    pub tags: Vec<Reference>,
    /// Where this image was pulled from or pushed to: (repository, manifest digest there).
    pub repo_digests: Vec<(String, Digest)>,
}

impl Image {
    /// The image id: the digest of its config.
    pub fn id(&self) -> &Digest {
        &self.record.id
    }

    /// The manifest digest.
    pub fn manifest_digest(&self) -> Option<&Digest> {
        self.record.manifest_digest.as_ref()
    }
}

/// One layer of an image being created.
// A handful per image, moved once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum NewLayer<'a> {
    /// A layer blob already in the content store, with its diff id.
    Stored {
        descriptor: Descriptor,
        diff_id: Digest,
    },
    /// A layer tar (plain, gzip or zstd): stored uncompressed, so its blob digest is its diff id.
    Tar(Box<dyn Read + 'a>),
}

/// How to create an image.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub format: ManifestFormat,
    /// Names to point at the new image (a bare name gets `:latest`).
    pub tags: Vec<Reference>,
}

/// What `commit` records besides the container's changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub author: Option<String>,
    pub message: Option<String>,
    /// The history's `created_by` (Docker puts the container's command there).
    pub created_by: Option<String>,
    /// The container's own config, when it differs from the parent image's (else the parent's).
    pub container_config: Option<ContainerConfig>,
    /// `--change` instructions applied on top.
    pub changes: Vec<String>,
    /// Accepted for Docker compatibility and ignored: the caller pauses the container if asked.
    pub pause: bool,
    pub format: ManifestFormat,
    pub tags: Vec<Reference>,
}

/// The image store of one data root.
pub struct ImageStore {
    root: PathBuf,
    tmp: PathBuf,
    content: ContentStore,
    layers: LayerStore,
    index: Mutex<ImageIndex>,
    /// Held while an image is registered, so two registrations never interleave their layer and
    /// index writes.
    register: Mutex<()>,
    /// Parsed configs and manifests by their digests: blobs never change, and every create of a
    /// container read and parsed both.
    parsed: Mutex<std::collections::HashMap<(Digest, Digest), (ImageConfig, Manifest)>>,
}

/// At most this many parsed (config, manifest) pairs are kept.
const PARSED_MAX: usize = 64;

impl ImageStore {
    /// Opens (creating if needed) the store under the data root: `blobs/`, `layers/`, `tmp/` and
    /// `berth.db`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        std::fs::create_dir_all(root).map_err(io_err("create directory", root))?;
        let content = ContentStore::open(root)?;
        let layers = LayerStore::open(root)?;
        let index = ImageIndex::open(&root.join("berth.db"))?;
        Ok(Self {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            content,
            layers,
            index: Mutex::new(index),
            register: Mutex::new(()),
            parsed: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ingest area: temporary files of this store go here (same filesystem as the blobs).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The image index, locked.
    pub fn index(&self) -> Result<MutexGuard<'_, ImageIndex>, ImageError> {
        self.index.lock().map_err(|_| ImageError::Poisoned)
    }

    /// Finds an image by name (`busybox`, `localhost:5000/x:1`), full or short id.
    pub fn get(&self, reference_or_id: &str) -> Result<Image, ImageError> {
        let record = self.index()?.resolve(reference_or_id)?;
        self.load(record)
    }

    /// The image with exactly this id.
    pub fn get_by_id(&self, id: &Digest) -> Result<Image, ImageError> {
        let record = self
            .index()?
            .image(id)?
            .ok_or_else(|| IndexError::NotFound(id.to_string()))?;
        self.load(record)
    }

    fn load(&self, record: ImageRecord) -> Result<Image, ImageError> {
        let md = record
            .manifest_digest
            .clone()
            .ok_or_else(|| ImageError::NoManifest(record.id.clone()))?;
        let key = (record.id.clone(), md);
        let cached = self.parsed.lock().ok().and_then(|p| p.get(&key).cloned());
        let (config, manifest) = match cached {
            Some(pair) => pair,
            None => {
                let config = parse_config(&record.id, &self.content.read(&record.id)?)?;
                let manifest = parse_manifest(&key.1, &self.content.read(&key.1)?)?;
                if let Ok(mut p) = self.parsed.lock() {
                    if p.len() >= PARSED_MAX {
                        p.clear();
                    }
                    p.insert(key, (config.clone(), manifest.clone()));
                }
                (config, manifest)
            }
        };
        let (tags, repo_digests) = {
            let index = self.index()?;
            (
                index.tags_of(&record.id)?,
                index.repo_digests_of(&record.id)?,
            )
        };
        Ok(Image {
            record,
            config,
            manifest,
            tags,
            repo_digests,
        })
    }

    /// The unpacked layer directories of an image, bottom layer first.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .record
            .layers
            .iter()
            .map(|c| self.layers.diff_dir(c))
            .collect()
    }

    /// The overlay lowerdirs of an image, top layer first (what [`crate::Snapshotter::prepare`]
    /// takes).
    pub fn lower_dirs(&self, image: &Image) -> Vec<PathBuf> {
        let mut v = self.layer_dirs(image);
        v.reverse();
        v
    }

    /// Creates an image from layers and a config. The config's `rootfs` is set from the layers;
    /// everything else (history, `config`, `created`) is the caller's. Returns the stored image.
    pub fn create_image(
        &self,
        layers: Vec<NewLayer<'_>>,
        mut config: ImageConfig,
        opts: &CreateOptions,
    ) -> Result<Image, ImageError> {
        let mut descriptors = Vec::with_capacity(layers.len());
        let mut diff_ids = Vec::with_capacity(layers.len());
        for l in layers {
            match l {
                NewLayer::Stored {
                    mut descriptor,
                    diff_id,
                } => {
                    descriptor.media_type =
                        layer_media_type_for(opts.format, &descriptor.media_type);
                    descriptors.push(descriptor);
                    diff_ids.push(diff_id);
                }
                NewLayer::Tar(r) => {
                    let (_, plain) = decompress(r)?;
                    let info = self.content.ingest(plain, None, None)?;
                    let media_type = match opts.format {
                        ManifestFormat::Docker => media::DOCKER_LAYER,
                        ManifestFormat::Oci => media::OCI_LAYER,
                    };
                    descriptors.push(Descriptor {
                        media_type: media_type.to_string(),
                        digest: info.digest.clone(),
                        size: info.size,
                        urls: None,
                        annotations: None,
                        platform: None,
                    });
                    diff_ids.push(info.digest);
                }
            }
        }
        config.rootfs = RootFs {
            kind: "layers".to_string(),
            diff_ids,
        };
        let config_bytes = serde_json::to_vec(&config).map_err(|source| ImageError::Encode {
            what: "the image config",
            source,
        })?;
        let (config_media, manifest_media) = match opts.format {
            ManifestFormat::Docker => (media::DOCKER_CONFIG, media::DOCKER_MANIFEST),
            ManifestFormat::Oci => (media::OCI_CONFIG, media::OCI_MANIFEST),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_media.to_string()),
            config: Descriptor {
                media_type: config_media.to_string(),
                digest: sha256_digest(&config_bytes),
                size: config_bytes.len() as u64,
                urls: None,
                annotations: None,
                platform: None,
            },
            layers: descriptors,
            annotations: None,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|source| ImageError::Encode {
                what: "the image manifest",
                source,
            })?;
        self.register(&config_bytes, &manifest_bytes, &opts.tags)
    }

    /// Registers an image whose layer blobs are all in the content store: verifies the config
    /// against the manifest, unpacks missing layers (verifying diff ids), stores config and
    /// manifest, and records image, layers and tags in the index, in that order. Nothing is
    /// registered unless every step succeeded.
    pub fn register(
        &self,
        config_bytes: &[u8],
        manifest_bytes: &[u8],
        tags: &[Reference],
    ) -> Result<Image, ImageError> {
        let manifest_digest = sha256_digest(manifest_bytes);
        let manifest = parse_manifest(&manifest_digest, manifest_bytes)?;
        let id = sha256_digest(config_bytes);
        if manifest.config.digest != id {
            return Err(ImageError::ConfigMismatch {
                image: manifest_digest,
                named: manifest.config.digest.clone(),
                actual: id,
            });
        }
        let config = parse_config(&id, config_bytes)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::LayerCount {
                image: id,
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for l in &manifest.layers {
            if !media::is_layer(&l.media_type) {
                return Err(ImageError::LayerMediaType {
                    image: id,
                    layer: l.digest.clone(),
                    media_type: l.media_type.clone(),
                });
            }
        }
        let _guard = self.register.lock().map_err(|_| ImageError::Poisoned)?;
        let mut parent: Option<Digest> = None;
        let mut stored: Vec<Layer> = Vec::with_capacity(manifest.layers.len());
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let cid = chain_id(parent.as_ref(), diff_id);
            let layer = if self.layers.exists(&cid) {
                self.layers.get(&cid)?
            } else {
                let blob = self.content.open_blob(&desc.digest)?;
                let opts = ApplyOptions {
                    expected_diff_id: Some(diff_id.clone()),
                    ..ApplyOptions::default()
                };
                self.layers
                    .apply(parent.as_ref(), io::BufReader::new(blob), &opts)?
            };
            parent = Some(layer.chain_id.clone());
            stored.push(layer);
        }
        self.content.ingest_bytes(config_bytes, Some(&id))?;
        self.content
            .ingest_bytes(manifest_bytes, Some(&manifest_digest))?;
        let record = ImageRecord {
            id: id.clone(),
            manifest_digest: Some(manifest_digest),
            created: config.created.clone(),
            size: stored.iter().map(|l| l.size).sum(),
            layers: stored.iter().map(|l| l.chain_id.clone()).collect(),
            added_at: 0,
        };
        {
            let mut index = self.index()?;
            for l in &stored {
                index.add_layer(&LayerRecord {
                    chain_id: l.chain_id.clone(),
                    diff_id: l.diff_id.clone(),
                    parent: l.parent.clone(),
                    size: l.size,
                })?;
            }
            index.add_image(&record)?;
            for t in tags {
                index.tag(t, &id)?;
            }
        }
        drop(_guard);
        self.get_by_id(&id)
    }

    /// Commits a container: its overlay upper dir becomes a new layer on top of `parent`'s, with a
    /// history entry, the author, and config changes. Like Docker, an unchanged upper still adds a
    /// (empty) layer.
    pub fn commit(
        &self,
        upper: &Path,
        parent: &str,
        opts: &CommitOptions,
    ) -> Result<Image, ImageError> {
        let parent = self.get(parent)?;
        // Changes are checked before anything is written.
        let mut config = parent.config.clone();
        let mut cc = opts
            .container_config
            .clone()
            .or_else(|| config.config.clone())
            .unwrap_or_default();
        apply_changes(&mut cc, &opts.changes)?;
        config.config = Some(cc);
        let now = config::now_rfc3339();
        config.created = Some(now.clone());
        config.author = opts.author.clone().filter(|a| !a.is_empty());
        config.history.push(History {
            created: Some(now),
            created_by: opts.created_by.clone(),
            author: config.author.clone(),
            comment: opts.message.clone().filter(|m| !m.is_empty()),
            empty_layer: false,
        });
        if let Some(m) = opts.message.as_ref().filter(|m| !m.is_empty()) {
            config
                .extra
                .insert("comment".to_string(), serde_json::Value::String(m.clone()));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix("commit-")
            .tempfile_in(&self.tmp)
            .map_err(io_err("create temp file in", &self.tmp))?;
        let tmp_path = tmp.path().to_path_buf();
        write_diff(upper, io::BufWriter::new(tmp.as_file_mut()))?
            .0
            .into_inner()
            .map_err(|e| io_err("write", &tmp_path)(e.into_error()))?;
        let f = tmp.as_file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("rewind", &tmp_path))?;
        let info = self.content.ingest(io::BufReader::new(&*f), None, None)?;

        let mut layers: Vec<NewLayer<'_>> = parent
            .manifest
            .layers
            .iter()
            .zip(&parent.config.rootfs.diff_ids)
            .map(|(d, id)| NewLayer::Stored {
                descriptor: d.clone(),
                diff_id: id.clone(),
            })
            .collect();
        layers.push(NewLayer::Stored {
            descriptor: Descriptor {
                media_type: media::DOCKER_LAYER.to_string(),
                digest: info.digest.clone(),
                size: info.size,
                urls: None,
                annotations: None,
                platform: None,
            },
            diff_id: info.digest,
        });

        self.create_image(
            layers,
            config,
            &CreateOptions {
                format: opts.format,
                tags: opts.tags.clone(),
            },
        )
    }
}

/// The media type a stored layer gets in a manifest of `format`.
fn layer_media_type_for(format: ManifestFormat, m: &str) -> String {
    match format {
        ManifestFormat::Oci => media::layer_to_oci(m).to_string(),
        ManifestFormat::Docker => match m {
            media::OCI_LAYER => media::DOCKER_LAYER,
            media::OCI_LAYER_GZIP => media::DOCKER_LAYER_GZIP,
            media::OCI_LAYER_ZSTD => media::DOCKER_LAYER_ZSTD,
            media::OCI_LAYER_ND_GZIP => media::DOCKER_FOREIGN_LAYER_GZIP,
            other => other,
        }
        .to_string(),
    }
}

/// The layer media type for a blob of this compression in a manifest of `format`.
pub fn layer_media_type(format: ManifestFormat, c: Compression) -> &'static str {
    match (format, c) {
        (ManifestFormat::Docker, Compression::None) => media::DOCKER_LAYER,
        (ManifestFormat::Docker, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        (ManifestFormat::Docker, Compression::Zstd) => media::DOCKER_LAYER_ZSTD,
        (ManifestFormat::Oci, Compression::None) => media::OCI_LAYER,
        (ManifestFormat::Oci, Compression::Gzip) => media::OCI_LAYER_GZIP,
        (ManifestFormat::Oci, Compression::Zstd) => media::OCI_LAYER_ZSTD,
    }
}

/// The compression of a stored blob, from its magic bytes.
pub fn blob_compression(content: &ContentStore, d: &Digest) -> Result<Compression, ImageError> {
    let mut f = content.open_blob(d)?;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        let Some(buf) = head.get_mut(n..) else { break };
        match f.read(buf) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", &content.path(d)?)(e)),
        }
    }
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// Parses an image config.
pub fn parse_config(digest: &Digest, bytes: &[u8]) -> Result<ImageConfig, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::BadConfig {
        digest: digest.clone(),
        source,
    })
}

/// Parses an image manifest, checking it is a Docker schema2 or OCI image manifest.
pub fn parse_manifest(digest: &Digest, bytes: &[u8]) -> Result<Manifest, ImageError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|source| ImageError::BadManifest {
        digest: digest.clone(),
        source,
    })?;
    match m.media_type.as_deref() {
        None | Some(media::DOCKER_MANIFEST) | Some(media::OCI_MANIFEST) => Ok(m),
        Some(other) => Err(ImageError::ManifestMediaType {
            digest: digest.clone(),
            media_type: other.to_string(),
        }),
    }
}

/// Opens a file for reading without following a symlink in its last component.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn create_get_and_layer_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let a = layer_tar(&[("a", b"1")]);
        let b = layer_tar(&[("b", b"2")]);
        let mut cfg = ImageConfig::for_host();
        cfg.config = Some(ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        });
        let tag = Reference::parse_normalized("example/two:1").unwrap();
        let img = store
            .create_image(
                vec![
                    NewLayer::Tar(Box::new(&a[..])),
                    NewLayer::Tar(Box::new(&b[..])),
                ],
                cfg,
                &CreateOptions {
                    tags: vec![tag],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(img.config.rootfs.diff_ids.len(), 2);
        assert_eq!(
            img.manifest.media_type.as_deref(),
            Some(media::DOCKER_MANIFEST)
        );
        assert_eq!(img.config.rootfs.diff_ids[0], sha256_digest(&a));
        let again = store.get("example/two:1").unwrap();
        assert_eq!(again.id(), img.id());
        assert_eq!(store.get(img.id().short()).unwrap().id(), img.id());
        let dirs = store.lower_dirs(&img);
        assert!(dirs[0].join("b").is_file() && dirs[1].join("a").is_file());
        // Same layers and config again: the same image.
        let cfg = img.config.clone();
        let img2 = store
            .create_image(
                vec![
                    NewLayer::Tar(Box::new(&a[..])),
                    NewLayer::Tar(Box::new(&b[..])),
                ],
                cfg,
                &CreateOptions::default(),
            )
            .unwrap();
        assert_eq!(img2.id(), img.id());
    }

    #[test]
    fn lying_config_registers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let a = layer_tar(&[("a", b"1")]);
        let info = store.content().ingest_bytes(&a, None).unwrap();
        let mut cfg = ImageConfig::for_host();
        // A diff id that is not the layer's.
        cfg.rootfs.diff_ids = vec![sha256_digest(b"other")];
        let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media::OCI_CONFIG.into(),
                digest: sha256_digest(&cfg_bytes),
                size: cfg_bytes.len() as u64,
                urls: None,
                annotations: None,
                platform: None,
            },
            layers: vec![Descriptor {
                media_type: media::OCI_LAYER.into(),
                digest: info.digest,
                size: info.size,
                urls: None,
                annotations: None,
                platform: None,
            }],
            annotations: None,
        };
        let mb = serde_json::to_vec(&m).unwrap();
        let e = store.register(&cfg_bytes, &mb, &[]).unwrap_err();
        assert!(e.to_string().contains("diff id mismatch"), "{e}");
        assert!(store.index().unwrap().images().unwrap().is_empty());
        assert!(store.layers().list().unwrap().is_empty());
        // A manifest naming another config.
        let e = store.register(b"{}", &mb, &[]).unwrap_err();
        assert!(matches!(e, ImageError::ConfigMismatch { .. }), "{e}");
    }
}
