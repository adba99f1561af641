//! The build cache as `system df` and `builder prune` see it. A cache entry holds an image; what
//! it costs is the layer its step added (the image's top layer, counted once across entries),
//! and that is shared when a named image (or one outside the cache) has the layer too.
//!
//! Pruning forgets entries and removes the images only the cache held (untagged, unused by any
//! container); the image service's removal then deletes their layers and blobs nothing else
//! needs. Blocking: call from a blocking thread.

use std::collections::{HashMap, HashSet};

use berth_image::gc::DeleteItem;
use berth_types::Digest;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::EngineError;

fn cache_err(e: super::cache::CacheError) -> EngineError {
    EngineError::internal(e.to_string())
}

/// Unix seconds as RFC 3339.
fn time(secs: i64) -> String {
    berth_image::image::config::rfc3339(secs, 0)
}

/// What the cache's images are, from the index.
struct CacheView {
    entries: Vec<super::cache::CacheEntry>,
    /// Image id → (tagged, top layer chain id).
    images: HashMap<String, (bool, Option<Digest>)>,
    /// Layers of images that are named or not held by the cache.
    shared_layers: HashSet<Digest>,
    layer_size: HashMap<Digest, u64>,
}

fn view(d: &Daemon) -> Result<CacheView, EngineError> {
    let entries = d.builds.cache.entries().map_err(cache_err)?;
    let held: HashSet<String> = entries.iter().map(|e| e.image.clone()).collect();
    let ix = d.images.index()?;
    let mut images = HashMap::new();
    let mut shared_layers = HashSet::new();
    for r in ix.images()? {
        let id = r.id.to_string();
        let tagged = !ix.tags_of(&r.id)?.is_empty();
        if held.contains(&id) {
            images.insert(id.clone(), (tagged, r.layers.last().cloned()));
        }
        if tagged || !held.contains(&id) {
            shared_layers.extend(r.layers.iter().cloned());
        }
    }
    let layer_size = ix
        .all_layers()?
        .into_iter()
        .map(|l| (l.chain_id, l.size))
        .collect();
    Ok(CacheView {
        entries,
        images,
        shared_layers,
        layer_size,
    })
}

/// The image ids only the build cache holds: untagged images some cache entry points at.
/// `GET /images/json` hides them (as Docker hides intermediate images) unless `all=1`.
pub fn cache_only_images(d: &Daemon) -> Result<HashSet<String>, EngineError> {
    let held = d.builds.cache.images().map_err(cache_err)?;
    if held.is_empty() {
        return Ok(held);
    }
    let ix = d.images.index()?;
    let mut out = HashSet::new();
    for id in held {
        if let Ok(dg) = Digest::parse(&id) {
            if ix.tags_of(&dg)?.is_empty() {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

/// `BuildCache` of `GET /system/df`: Docker's `BuildCache` objects.
pub fn df(d: &Daemon) -> Result<Vec<Value>, EngineError> {
    let v = view(d)?;
    let mut counted = HashSet::new();
    let mut out = Vec::new();
    for e in &v.entries {
        let Some((_, top)) = v.images.get(&e.image) else {
            // The image is gone: the entry is a miss waiting to be forgotten.
            continue;
        };
        let (size, shared) = match top {
            Some(l) if counted.insert(l.clone()) => (
                v.layer_size.get(l).copied().unwrap_or(0),
                v.shared_layers.contains(l),
            ),
            Some(l) => (0, v.shared_layers.contains(l)),
            None => (0, false),
        };
        let in_use = Digest::parse(&e.image)
            .map(|dg| !d.image_service.users(&dg).is_empty())
            .unwrap_or(false);
        out.push(json!({
            "ID": e.key.get(..25).unwrap_or(&e.key),
            "Parents": null,
            "Type": "regular",
            "Description": e.image,
            "InUse": in_use,
            "Shared": shared,
            "Size": size,
            "CreatedAt": time(e.created),
            "LastUsedAt": time(e.last_used),
            "UsageCount": e.usage,
        }));
    }
    Ok(out)
}

/// What `builder prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// The cache entries forgotten.
    pub entries: Vec<String>,
    /// What the image removals reported (for events).
    pub deleted: Vec<(Digest, Vec<DeleteItem>)>,
    pub space: u64,
}

/// `POST /build/prune`: without `all` only the entries whose image no name holds; entries
/// last used at or after `until` (unix seconds) stay.
pub fn prune(d: &Daemon, all: bool, until: Option<i64>) -> Result<Pruned, EngineError> {
    let v = view(d)?;
    let mut out = Pruned::default();
    let mut victims_img: HashSet<String> = HashSet::new();
    let mut keep_img: HashSet<String> = HashSet::new();
    for e in &v.entries {
        let tagged = v.images.get(&e.image).map(|(t, _)| *t);
        let young = until.is_some_and(|u| e.last_used >= u);
        if young || (!all && tagged == Some(true)) {
            keep_img.insert(e.image.clone());
            continue;
        }
        out.entries.push(e.key.clone());
        if tagged == Some(false) {
            victims_img.insert(e.image.clone());
        }
    }
    d.builds.cache.forget(&out.entries).map_err(cache_err)?;
    for id in victims_img.difference(&keep_img) {
        let Ok(dg) = Digest::parse(id) else { continue };
        if !d.image_service.users(&dg).is_empty() {
            continue;
        }
        let items = {
            let mut ix = d.images.index()?;
            if !ix.users_of(&dg)?.is_empty() {
                continue;
            }
            match d.image_service.ops.rmi(&mut ix, id, false) {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!("builder prune: remove image {id}: {e}");
                    continue;
                }
            }
        };
        for it in &items {
            if let DeleteItem::Deleted(l) = it {
                out.space += v.layer_size.get(l).copied().unwrap_or(0);
            }
        }
        out.deleted.push((dg, items));
    }
    Ok(out)
}
