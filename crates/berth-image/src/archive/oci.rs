//! The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), as a directory or a
//! tar (`oci-archive:`). Images are named by the `org.opencontainers.image.ref.name` annotation
//! (a tag, or a full reference) and, as Docker 25+ and containerd write, `io.containerd.image.name`.
//!
//! Reading follows nested indexes to this host's platform and checks every descriptor's size and
//! digest against the staged blob; the manifest bytes are kept, so the manifest digest survives.
//! Writing copies blobs as stored and keeps an OCI manifest byte for byte; a Docker schema2
//! manifest is rewritten with OCI media types (the config, hence the image id, is unchanged).

use std::collections::BTreeMap;

use berth_types::{Digest, Reference};
use serde::Deserialize;

use super::stage::Staged;
use super::write::Sink;
use super::{json, to_json, ArchiveError, LoadOptions, Pending, ToSave};
use crate::image::config::{
    host_architecture, media, Descriptor, Index, Manifest, ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
};
use crate::image::{parse_config, parse_manifest, ImageStore};

#[derive(Deserialize)]
struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

/// How deep nested indexes may go.
const MAX_DEPTH: usize = 4;

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// The names an index entry gives its image.
fn names_of(d: &Descriptor, opts: &LoadOptions) -> Result<Vec<Reference>, ArchiveError> {
    let Some(ann) = &d.annotations else {
        return Ok(Vec::new());
    };
    let parse = |s: &str| {
        Reference::parse_normalized(s)
            .map(Reference::with_default_tag)
            .map_err(|source| ArchiveError::BadName {
                name: s.to_string(),
                source,
            })
    };
    if let Some(full) = ann.get(ANNOTATION_CONTAINERD_NAME) {
        return Ok(vec![parse(full)?]);
    }
    let Some(name) = ann.get(ANNOTATION_REF_NAME) else {
        return Ok(Vec::new());
    };
    if name.contains(['/', ':', '@']) {
        return Ok(vec![parse(name)?]);
    }
    match &opts.repository {
        Some(repo) => Ok(vec![repo.with_tag(name).map_err(|source| {
            ArchiveError::BadName {
                name: name.clone(),
                source,
            }
        })?]),
        None => Ok(Vec::new()),
    }
}

/// Finds the image manifests an index entry stands for (following nested indexes to this
/// host's platform).
fn manifests_of(
    st: &Staged,
    d: &Descriptor,
    depth: usize,
    out: &mut Vec<Descriptor>,
) -> Result<(), ArchiveError> {
    if depth > MAX_DEPTH {
        return Err(ArchiveError::Invalid {
            what: "index.json".into(),
            problem: format!("indexes nest deeper than {MAX_DEPTH} levels"),
        });
    }
    match d.media_type.as_str() {
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
            out.push(d.clone());
            Ok(())
        }
        media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => {
            let b = st.blob(&d.digest, d.size)?;
            let idx: Index = json(&st.read(b, "a nested index")?, "a nested index")?;
            let arch = host_architecture();
            let pick = idx
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .or(match idx.manifests.as_slice() {
                    [one] if one.platform.is_none() => Some(one),
                    _ => None,
                });
            match pick {
                Some(m) => manifests_of(st, m, depth + 1, out),
                None => Err(ArchiveError::Invalid {
                    what: format!("index {}", d.digest),
                    problem: format!("it has no image for linux/{arch}"),
                }),
            }
        }
        other => Err(ArchiveError::Invalid {
            what: "index.json".into(),
            problem: format!(
                "entry {} has media type {other:?}, not an image manifest or index",
                d.digest
            ),
        }),
    }
}

/// Reads and verifies the images of a staged OCI layout.
pub(crate) fn read(st: &Staged, opts: &LoadOptions) -> Result<Vec<Pending>, ArchiveError> {
    let layout: Layout = json(
        &st.read(st.regular("oci-layout")?, "oci-layout")?,
        "oci-layout",
    )?;
    if layout.version != "1.0.0" {
        return Err(ArchiveError::Invalid {
            what: "oci-layout".into(),
            problem: format!("image layout version {:?} is not 1.0.0", layout.version),
        });
    }
    let index: Index = json(
        &st.read(st.regular("index.json")?, "index.json")?,
        "index.json",
    )?;
    // Manifest digest → (descriptor, names), in index order.
    let mut found: Vec<(Descriptor, Vec<Reference>)> = Vec::new();
    for entry in &index.manifests {
        let names = names_of(entry, opts)?;
        let mut ms = Vec::new();
        manifests_of(st, entry, 0, &mut ms)?;
        for m in ms {
            match found.iter_mut().find(|(d, _)| d.digest == m.digest) {
                Some((_, n)) => {
                    for r in &names {
                        if !n.contains(r) {
                            n.push(r.clone());
                        }
                    }
                }
                None => found.push((m, names.clone())),
            }
        }
    }
    if found.is_empty() {
        return Err(ArchiveError::Invalid {
            what: "index.json".into(),
            problem: "it lists no images".into(),
        });
    }
    let mut out = Vec::with_capacity(found.len());
    for (d, tags) in found {
        let mb = st.blob(&d.digest, d.size)?;
        let manifest_bytes = st.read(mb, "an image manifest")?;
        let manifest: Manifest = parse_manifest(&d.digest, &manifest_bytes)?;
        if !media::is_config(&manifest.config.media_type) {
            return Err(ArchiveError::Invalid {
                what: format!("manifest {}", d.digest),
                problem: format!(
                    "its config has media type {:?}, not an image config",
                    manifest.config.media_type
                ),
            });
        }
        let cb = st.blob(&manifest.config.digest, manifest.config.size)?;
        let config = st.read(cb, "an image config")?;
        let cfg = parse_config(&manifest.config.digest, &config)?;
        if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ArchiveError::Invalid {
                what: format!("manifest {}", d.digest),
                problem: format!(
                    "it lists {} layers but its config has {} diff ids",
                    manifest.layers.len(),
                    cfg.rootfs.diff_ids.len()
                ),
            });
        }
        let mut blobs = vec![manifest.config.digest.clone()];
        for (l, diff_id) in manifest.layers.iter().zip(&cfg.rootfs.diff_ids) {
            st.blob(&l.digest, l.size)?;
            if matches!(
                l.media_type.as_str(),
                media::OCI_LAYER | media::DOCKER_LAYER
            ) && l.digest != *diff_id
            {
                return Err(ArchiveError::DiffId {
                    member: blob_name(&l.digest),
                    image: manifest.config.digest.clone(),
                    expected: diff_id.clone(),
                    actual: l.digest.clone(),
                });
            }
            blobs.push(l.digest.clone());
        }
        out.push(Pending {
            config,
            manifest: manifest_bytes,
            blobs,
            tags,
        });
    }
    Ok(out)
}

/// Writes images as an OCI image layout.
pub(crate) fn write(
    store: &ImageStore,
    items: &[ToSave],
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    let content = store.content();
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    sink.file("oci-layout", layout.len() as u64, &mut &layout[..])?;
    sink.dir("blobs")?;
    sink.dir("blobs/sha256")?;
    let mut entries = Vec::new();
    for item in items {
        let img = &item.image;
        let id = img.id();
        let name = blob_name(id);
        if !sink.has(&name) {
            sink.file(&name, content.size(id)?, &mut content.open_blob(id)?)?;
        }
        for l in &img.manifest.layers {
            let name = blob_name(&l.digest);
            if !sink.has(&name) {
                sink.file(
                    &name,
                    content.size(&l.digest)?,
                    &mut content.open_blob(&l.digest)?,
                )?;
            }
        }
        let stored = img
            .manifest_digest()
            .ok_or_else(|| crate::image::ImageError::NoManifest(id.clone()))?;
        let mbytes = if img.manifest.media_type.as_deref() == Some(media::OCI_MANIFEST) {
            content.read(stored)?
        } else {
            let mut m = img.manifest.clone();
            m.media_type = Some(media::OCI_MANIFEST.to_string());
            m.config.media_type = media::OCI_CONFIG.to_string();
            for l in &mut m.layers {
                l.media_type = media::layer_to_oci(&l.media_type).to_string();
            }
            to_json(&m)?
        };
        let md = crate::content::sha256_digest(&mbytes);
        let name = blob_name(&md);
        if !sink.has(&name) {
            sink.file(&name, mbytes.len() as u64, &mut &mbytes[..])?;
        }
        let desc = Descriptor {
            media_type: media::OCI_MANIFEST.to_string(),
            digest: md,
            size: mbytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
        };
        if item.tags.is_empty() {
            entries.push(desc.clone());
        }
        for t in &item.tags {
            let mut d = desc.clone();
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_CONTAINERD_NAME.to_string(), t.to_string());
            if let Some(tag) = t.tag() {
                ann.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
            }
            d.annotations = Some(ann);
            entries.push(d);
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests: entries,
        annotations: None,
    };
    let bytes = to_json(&index)?;
    sink.file("index.json", bytes.len() as u64, &mut &bytes[..])?;
    Ok(())
}
