//! The archive of `docker save` / `docker load`: `manifest.json` (`Config`, `RepoTags`, `Layers`
//! paths), `repositories`, and either the legacy `<id>/layer.tar` + `<id>.json` members or, since
//! Docker 25, an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/`) in the same tar.
//!
//! Reading uses `manifest.json` only (it is what every Docker version writes) and synthesises a
//! Docker schema2 manifest for each image; the config bytes are kept, so the image id survives.
//! Writing produces the Docker 25 layout with uncompressed layers, which Docker, skopeo and OCI
//! tools all read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use berth_types::{Digest, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::stage::Staged;
use super::write::Sink;
use super::{json, to_json, ArchiveError, Pending, ToSave};
use crate::image::config::{
    media, Descriptor, Index, Manifest, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME,
};
use crate::image::{blob_compression, layer_media_type, parse_config, ImageStore, ManifestFormat};
use crate::layer::{decompress, Compression};

/// One entry of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        urls: None,
        annotations: None,
        platform: None,
    }
}

/// Reads and verifies the images of a staged docker archive.
pub(crate) fn read(st: &Staged) -> Result<Vec<Pending>, ArchiveError> {
    let mf = st.regular("manifest.json")?;
    let entries: Vec<Entry> = json(&st.read(mf, "manifest.json")?, "manifest.json")?;
    if entries.is_empty() {
        return Err(ArchiveError::Invalid {
            what: "manifest.json".into(),
            problem: "it lists no images".into(),
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let cfg_blob = st.resolve(&e.config)?;
        let config = st.read(cfg_blob, &e.config)?;
        let id = cfg_blob.digest.clone();
        let cfg = parse_config(&id, &config)?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::Invalid {
                what: "manifest.json".into(),
                problem: format!(
                    "image {id} lists {} layers but its config has {} diff ids",
                    e.layers.len(),
                    cfg.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::with_capacity(e.layers.len());
        let mut blobs = vec![id.clone()];
        for (path, diff_id) in e.layers.iter().zip(&cfg.rootfs.diff_ids) {
            let b = st.resolve(path)?;
            let comp = blob_compression(&st.blobs, &b.digest)?;
            if comp == Compression::None && b.digest != *diff_id {
                return Err(ArchiveError::DiffId {
                    member: path.clone(),
                    image: id.clone(),
                    expected: diff_id.clone(),
                    actual: b.digest.clone(),
                });
            }
            layers.push(descriptor(
                layer_media_type(ManifestFormat::Docker, comp),
                b.digest.clone(),
                b.size,
            ));
            blobs.push(b.digest.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::DOCKER_MANIFEST.to_string()),
            config: descriptor(media::DOCKER_CONFIG, id.clone(), config.len() as u64),
            layers,
            annotations: None,
        };
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            let r = Reference::parse_normalized(&t)
                .map_err(|source| ArchiveError::BadName {
                    name: t.clone(),
                    source,
                })?
                .with_default_tag();
            tags.push(r);
        }
        out.push(Pending {
            config,
            manifest: to_json(&manifest)?,
            blobs,
            tags,
        });
    }
    Ok(out)
}

/// A layer as an uncompressed tar, verified against its diff id: the stored blob when it is
/// uncompressed, else a decompressed copy in an unnamed temp file. Returns the file and its size.
pub(crate) fn uncompressed_layer(
    store: &ImageStore,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<(File, u64), ArchiveError> {
    let content = store.content();
    match blob_compression(content, blob)? {
        Compression::None => {
            if blob != diff_id {
                return Err(ArchiveError::Invalid {
                    what: format!("stored layer {blob}"),
                    problem: format!(
                        "it is uncompressed but its digest is not its diff id {diff_id}: run a store check"
                    ),
                });
            }
            let f = content.open_blob(blob)?;
            let size = content.size(blob)?;
            Ok((f, size))
        }
        _ => {
            let tmp = store.tmp_dir();
            let io = |op: &'static str| {
                let path = tmp.to_path_buf();
                move |source| ArchiveError::Io { op, path, source }
            };
            let mut out = tempfile::tempfile_in(tmp).map_err(io("create temp file in"))?;
            let (_, mut plain) = decompress(io::BufReader::new(content.open_blob(blob)?))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            {
                let mut w = io::BufWriter::new(&mut out);
                loop {
                    let n = match plain.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ArchiveError::Layer(crate::LayerError::Read(e))),
                    };
                    let chunk = buf.get(..n).unwrap_or(&[]);
                    hasher.update(chunk);
                    w.write_all(chunk).map_err(io("write temp file in"))?;
                    size += n as u64;
                }
                w.flush().map_err(io("write temp file in"))?;
            }
            let actual = Digest::sha256_from_bytes(&hasher.finalize().into());
            if actual != *diff_id {
                return Err(ArchiveError::Invalid {
                    what: format!("stored layer {blob}"),
                    problem: format!(
                        "it decompresses to {actual}, not its diff id {diff_id}: run a store check"
                    ),
                });
            }
            out.seek(SeekFrom::Start(0))
                .map_err(io("rewind temp file in"))?;
            Ok((out, size))
        }
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// Writes images as a Docker 25 style archive.
pub(crate) fn write(
    store: &ImageStore,
    items: &[ToSave],
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    sink.dir("blobs")?;
    sink.dir("blobs/sha256")?;
    let mut entries = Vec::new();
    let mut index = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut layer_sizes: BTreeMap<Digest, u64> = BTreeMap::new();
    for item in items {
        let img = &item.image;
        let id = img.id();
        let cfg_name = blob_name(id);
        let cfg_size = store.content().size(id)?;
        sink.file(&cfg_name, cfg_size, &mut store.content().open_blob(id)?)?;
        let mut layer_names = Vec::new();
        let mut layer_descs = Vec::new();
        for (desc, diff_id) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids) {
            let name = blob_name(diff_id);
            let size = match layer_sizes.get(diff_id) {
                // Already written for another image: the same diff id is the same bytes.
                Some(s) => *s,
                None => {
                    let (mut f, size) = uncompressed_layer(store, &desc.digest, diff_id)?;
                    sink.file(&name, size, &mut f)?;
                    layer_sizes.insert(diff_id.clone(), size);
                    size
                }
            };
            layer_descs.push(descriptor(media::OCI_LAYER, diff_id.clone(), size));
            layer_names.push(name);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            config: descriptor(media::OCI_CONFIG, id.clone(), cfg_size),
            layers: layer_descs,
            annotations: None,
        };
        let mbytes = to_json(&manifest)?;
        let md = crate::content::sha256_digest(&mbytes);
        sink.file(&blob_name(&md), mbytes.len() as u64, &mut &mbytes[..])?;
        let mdesc = descriptor(media::OCI_MANIFEST, md, mbytes.len() as u64);
        if item.tags.is_empty() {
            index.push(mdesc.clone());
        }
        for t in &item.tags {
            let mut d = mdesc.clone();
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_CONTAINERD_NAME.to_string(), t.to_string());
            if let Some(tag) = t.tag() {
                ann.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
                if let Some(top) = img.config.rootfs.diff_ids.last() {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.hex().to_string());
                }
            }
            d.annotations = Some(ann);
            index.push(d);
        }
        entries.push(Entry {
            config: cfg_name,
            repo_tags: if item.tags.is_empty() {
                None
            } else {
                Some(item.tags.iter().map(Reference::familiar_string).collect())
            },
            layers: layer_names,
        });
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests: index,
        annotations: None,
    };
    let bytes = to_json(&index)?;
    sink.file("index.json", bytes.len() as u64, &mut &bytes[..])?;
    let bytes = to_json(&entries)?;
    sink.file("manifest.json", bytes.len() as u64, &mut &bytes[..])?;
    let bytes = br#"{"imageLayoutVersion":"1.0.0"}"#;
    sink.file("oci-layout", bytes.len() as u64, &mut &bytes[..])?;
    let bytes = to_json(&repositories)?;
    sink.file("repositories", bytes.len() as u64, &mut &bytes[..])?;
    Ok(())
}
