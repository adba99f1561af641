//! `docker import`: a root filesystem tar (plain, gzip or zstd; from a file or any reader, such
//! as stdin) becomes a one-layer image, with an optional name, message and `--change`
//! instructions. The tar is stored uncompressed (its blob digest is its diff id) and unpacked by
//! the hostile-safe layer code like any pulled layer.

use std::io::Read;

use berth_types::Reference;

use crate::image::config::{now_rfc3339, ContainerConfig, History, ImageConfig};
use crate::image::{
    apply_changes, CreateOptions, Image, ImageError, ImageStore, ManifestFormat, NewLayer,
};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub tags: Vec<Reference>,
    /// The commit message (`docker import --message`).
    pub message: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// Where the tar came from, for the history (`-` for stdin, a file name or URL).
    pub source: Option<String>,
    pub format: ManifestFormat,
}

impl ImageStore {
    /// Imports a root filesystem tar as a one-layer image.
    pub fn import<R: Read>(&self, r: R, opts: &ImportOptions) -> Result<Image, ImageError> {
        let mut cc = ContainerConfig::default();
        apply_changes(&mut cc, &opts.changes)?;
        let now = now_rfc3339();
        let message = opts.message.clone().filter(|m| !m.is_empty());
        let comment = message
            .clone()
            .unwrap_or_else(|| format!("Imported from {}", opts.source.as_deref().unwrap_or("-")));
        let mut config = ImageConfig::for_host();
        config.created = Some(now.clone());
        config.config = Some(cc);
        config.history.push(History {
            created: Some(now),
            comment: Some(comment),
            ..Default::default()
        });
        if let Some(m) = message {
            config
                .extra
                .insert("comment".to_string(), serde_json::Value::String(m));
        }
        self.create_image(
            vec![NewLayer::Tar(Box::new(r))],
            config,
            &CreateOptions {
                format: opts.format,
                tags: opts.tags.clone(),
            },
        )
    }
}
