//! Manifests, manifest lists and image configs as registries send them: Docker schema2 and OCI,
//! parsed strictly from bytes whose digest the caller checks.
//!
//! Registry answers are hostile: unknown media types, schema1, too many layers, configs whose
//! diff ids do not match the manifest's layers are errors here, never panics or guesses.

use std::collections::BTreeMap;

use berth_types::Digest;

use super::RegistryError;

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MEDIA_DOCKER_LAYER_FOREIGN: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MEDIA_OCI_LAYER_NONDIST: &[&str] = &[
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// Every manifest media type a pull asks for, in the `Accept` header.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Manifests and lists larger than this are refused.
pub(crate) const MANIFEST_LIMIT: u64 = 4 << 20;
/// Image configs larger than this are refused.
pub(crate) const CONFIG_LIMIT: u64 = 8 << 20;
/// Images with more layers than this are refused (Docker's overlay limit is 128).
const MAX_LAYERS: usize = 1000;

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform of a manifest list entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A single-platform image manifest (Docker schema2 or OCI).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list (Docker) or image index (OCI).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest and its effective media type.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Image(Box<ImageManifest>, String),
    Index(ManifestIndex),
}

fn is_image_type(t: &str) -> bool {
    t == MEDIA_DOCKER_MANIFEST || t == MEDIA_OCI_MANIFEST
}

fn is_index_type(t: &str) -> bool {
    t == MEDIA_DOCKER_MANIFEST_LIST || t == MEDIA_OCI_INDEX
}

pub(crate) fn is_layer_type(t: &str) -> bool {
    [
        // What the image store itself writes for loaded, imported and committed layers.
        crate::image::media::DOCKER_LAYER,
        crate::image::media::DOCKER_LAYER_ZSTD,
        MEDIA_DOCKER_LAYER_GZIP,
        MEDIA_DOCKER_LAYER_FOREIGN,
        MEDIA_OCI_LAYER,
        MEDIA_OCI_LAYER_GZIP,
        MEDIA_OCI_LAYER_ZSTD,
    ]
    .contains(&t)
        || MEDIA_OCI_LAYER_NONDIST.contains(&t)
}

fn bad(what: &str, problem: impl Into<String>) -> RegistryError {
    RegistryError::BadManifest {
        what: what.to_string(),
        problem: problem.into(),
    }
}

/// Parses manifest bytes. The media type is the document's own `mediaType`, else the
/// `Content-Type` the registry sent, else what the document's shape says.
pub(crate) fn parse_manifest(
    data: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<Parsed, RegistryError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<serde_json::Value>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
        fs_layers: Option<serde_json::Value>,
    }
    let json_err = |source| RegistryError::BadJson {
        what: what.to_string(),
        source,
    };
    let probe: Probe = serde_json::from_slice(data).map_err(json_err)?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    let media = probe
        .media_type
        .clone()
        .or(header)
        .or_else(|| {
            if probe.manifests.is_some() {
                Some(MEDIA_OCI_INDEX.to_string())
            } else if probe.layers.is_some() {
                Some(MEDIA_OCI_MANIFEST.to_string())
            } else {
                None
            }
        })
        .unwrap_or_default();
    if probe.fs_layers.is_some()
        || media.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err(RegistryError::UnsupportedMediaType {
            what: what.to_string(),
            media_type: if media.is_empty() {
                "Docker schema1".into()
            } else {
                media
            },
        });
    }
    if probe.schema_version != Some(serde_json::Value::from(2)) {
        return Err(bad(what, "schemaVersion is not 2"));
    }
    if is_index_type(&media) {
        let idx: ManifestIndex = serde_json::from_slice(data).map_err(json_err)?;
        return Ok(Parsed::Index(idx));
    }
    if !is_image_type(&media) {
        return Err(RegistryError::UnsupportedMediaType {
            what: what.to_string(),
            media_type: media,
        });
    }
    let m: ImageManifest = serde_json::from_slice(data).map_err(json_err)?;
    if m.config.media_type != MEDIA_DOCKER_CONFIG && m.config.media_type != MEDIA_OCI_CONFIG {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("config of {what}"),
            media_type: m.config.media_type,
        });
    }
    if m.config.size > CONFIG_LIMIT {
        return Err(RegistryError::TooLarge {
            what: format!("config of {what}"),
            size: m.config.size,
            limit: CONFIG_LIMIT,
        });
    }
    if m.layers.len() > MAX_LAYERS {
        return Err(bad(
            what,
            format!("{} layers, more than {MAX_LAYERS}", m.layers.len()),
        ));
    }
    if let Some(l) = m.layers.iter().find(|l| !is_layer_type(&l.media_type)) {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("layer {} of {what}", l.digest),
            media_type: l.media_type.clone(),
        });
    }
    Ok(Parsed::Image(Box::new(m), media))
}

/// The linux/amd64 entry of a manifest list (variant ignored).
pub(crate) fn select_platform<'a>(
    idx: &'a ManifestIndex,
    reference: &str,
) -> Result<&'a Descriptor, RegistryError> {
    idx.manifests
        .iter()
        .find(|d| {
            is_image_type(&d.media_type)
                && d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| {
            let available: Vec<String> = idx
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            RegistryError::NoPlatform {
                reference: reference.to_string(),
                available: if available.is_empty() {
                    "no platforms".into()
                } else {
                    available.join(", ")
                },
            }
        })
}

/// What a pull needs from an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigInfo {
    pub diff_ids: Vec<Digest>,
    pub created: Option<String>,
}

/// Parses an image config and checks its diff ids match the manifest's layers one for one.
pub(crate) fn parse_config(
    data: &[u8],
    layers: usize,
    what: &str,
) -> Result<ConfigInfo, RegistryError> {
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(rename = "type")]
        kind: String,
        diff_ids: Vec<Digest>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
        created: Option<String>,
    }
    let c: Config = serde_json::from_slice(data).map_err(|source| RegistryError::BadJson {
        what: what.to_string(),
        source,
    })?;
    if c.rootfs.kind != "layers" {
        return Err(bad(
            what,
            format!("rootfs type {:?} is not \"layers\"", c.rootfs.kind),
        ));
    }
    if c.rootfs.diff_ids.len() != layers {
        return Err(bad(
            what,
            format!(
                "it lists {} diff ids but the manifest has {layers} layers",
                c.rootfs.diff_ids.len()
            ),
        ));
    }
    Ok(ConfigInfo {
        diff_ids: c.rootfs.diff_ids,
        created: c.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn manifest(media: &str, layer_media: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media}","config":{{"mediaType":"{MEDIA_OCI_CONFIG}","digest":"{D1}","size":10}},"layers":[{{"mediaType":"{layer_media}","digest":"{D2}","size":20}}]}}"#
        )
    }

    #[test]
    fn parses_image_manifests() {
        let m = manifest(MEDIA_OCI_MANIFEST, MEDIA_OCI_LAYER_GZIP);
        match parse_manifest(m.as_bytes(), None, "m").unwrap() {
            Parsed::Image(m, t) => {
                assert_eq!(t, MEDIA_OCI_MANIFEST);
                assert_eq!(m.layers.len(), 1);
                assert_eq!(m.config.digest.to_string(), D1);
            }
            Parsed::Index(_) => panic!("index"),
        }
        // No mediaType field: the Content-Type decides.
        let m = manifest(MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LAYER_GZIP)
            .replace(&format!(r#""mediaType":"{MEDIA_OCI_MANIFEST}","#), "");
        assert!(matches!(
            parse_manifest(m.as_bytes(), Some(MEDIA_DOCKER_MANIFEST), "m").unwrap(),
            Parsed::Image(_, t) if t == MEDIA_DOCKER_MANIFEST
        ));
    }

    #[test]
    fn refuses_what_it_cannot_pull() {
        let cases = [
            manifest("application/vnd.docker.distribution.manifest.v1+prettyjws", MEDIA_OCI_LAYER),
            manifest(MEDIA_OCI_MANIFEST, "application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
            manifest("text/html", MEDIA_OCI_LAYER),
            r#"{"schemaVersion":1,"fsLayers":[]}"#.to_string(),
            r#"{"schemaVersion":3,"layers":[]}"#.to_string(),
            "not json".to_string(),
            "[]".to_string(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#.to_string(),
        ];
        for c in &cases {
            assert!(parse_manifest(c.as_bytes(), None, "m").is_err(), "{c}");
        }
        let e = parse_manifest(cases[0].as_bytes(), None, "m").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn selects_linux_amd64() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D2}","size":1,"platform":{{"architecture":"amd64","os":"linux","variant":"v3"}}}}]}}"#
        );
        let Parsed::Index(idx) = parse_manifest(idx.as_bytes(), None, "i").unwrap() else {
            panic!("not an index")
        };
        assert_eq!(select_platform(&idx, "x").unwrap().digest.to_string(), D2);
        let only_arm = ManifestIndex {
            manifests: idx.manifests[..1].to_vec(),
            ..idx
        };
        let e = select_platform(&only_arm, "x:1").unwrap_err().to_string();
        assert!(e.contains("linux/arm64/v8") && e.contains("x:1"), "{e}");
    }

    #[test]
    fn configs_must_match_the_manifest() {
        let c = format!(
            r#"{{"created":"2024-01-01T00:00:00Z","rootfs":{{"type":"layers","diff_ids":["{D1}"]}}}}"#
        );
        let info = parse_config(c.as_bytes(), 1, "c").unwrap();
        assert_eq!(info.diff_ids.len(), 1);
        assert!(parse_config(c.as_bytes(), 2, "c").is_err());
        assert!(parse_config(b"{}", 0, "c").is_err());
    }
}
