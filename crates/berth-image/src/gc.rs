//! Removing images and reclaiming disk: tag/untag, `rmi`, `image prune`, garbage collection by
//! reference, `system df` and `history` over the content store, the layer store and the index.
//!
//! Why a module of its own: the index knows names and which layers an image is made of, the
//! stores know files; deciding that a blob or an unpacked layer is garbage needs all three, and
//! the order in which they change is what makes a crash harmless. The order is always **index
//! first, then files**: a crash after the index changed and before the files went leaves files
//! nothing names, which the next [`ImageOps::gc`] (or `check`) removes; never an index row naming
//! a file that is gone.
//!
//! What is alive (the roots of the mark phase): every image in the index (tagged, in use, or
//! dangling — a dangling image is visible as `<none>` and goes by `prune`, as in Docker), its
//! config blob, its manifest blob and whatever that manifest (or manifest list) names, and its
//! layers with all their parents by chain id. Everything else under `blobs/sha256/`, `layers/`
//! and `tmp/` is garbage.
//!
//! Concurrent ingest: the content and layer stores write into `tmp/` and rename into place, and a
//! puller records its image in the index only after its blobs and layers are visible. So that a
//! sweep never deletes work in progress, it only removes garbage whose last change (the newest
//! mtime or ctime, over the whole tree for `tmp/` entries; a rename updates ctime) is older than
//! [`GcOptions::grace`] (an age threshold rather than a lock: the stores take no lock, and an age
//! needs no cooperation from other processes). `berth system check` at daemon start, when nothing
//! ingests, passes a zero grace.
//!
//! Known gap: an ingest that finds its blob or layer already stored reuses it without touching
//! it, so if that file was old garbage, a sweep (or an `rmi` freeing it) at that very moment can
//! remove it before the new image is recorded; `check` then reports that image broken (and
//! unpacks a missing layer again when its blob is there). Leases in the index, taken by pullers
//! before they look, would close this.
//!
//! This module must never delete a file that an index row names, and never delete a file before
//! the index row that named it is gone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_types::{Algorithm, ContainerId, Digest, Reference, ReferenceError};

use crate::content::{ContentError, ContentStore};
use crate::index::{ImageIndex, ImageRecord, IndexError};
use crate::layer::{LayerError, LayerStore};

/// What went wrong removing, tagging or measuring images.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("refusing to create a tag with a digest reference: {0:?}; give a name with a tag")]
    TagWithDigest(String),
    #[error("refusing to create an ambiguous tag using digest algorithm as name: {0:?}")]
    AmbiguousTag(String),
    #[error("conflict: unable to delete {image} (must be forced) - image is referenced in multiple repositories: {names}")]
    MultipleRepositories { image: String, names: String },
    #[error("conflict: unable to remove repository reference {reference:?} (must force) - {users} using its referenced image {image}")]
    ReferenceInUse {
        reference: String,
        users: String,
        image: String,
    },
    #[error(
        "conflict: unable to delete {image} (must be forced) - image is being used by {users}"
    )]
    ImageInUse { image: String, users: String },
    #[error("image {image}: its config blob is not a valid image config ({problem}): pull the image again")]
    BadConfig { image: Digest, problem: String },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> GcError + 'a {
    move |source| GcError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One line of what `rmi` and `prune` did, as Docker reports it (`ImageDeleteResponseItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    /// A name removed, as Docker prints it (`busybox:latest`).
    Untagged(String),
    /// An image id or a layer chain id whose data was deleted.
    Deleted(Digest),
}

impl fmt::Display for DeleteItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteItem::Untagged(r) => write!(f, "Untagged: {r}"),
            DeleteItem::Deleted(d) => write!(f, "Deleted: {d}"),
        }
    }
}

/// What `image prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<DeleteItem>,
    /// Bytes on disk freed (blocks of the files removed).
    pub space_reclaimed: u64,
}

/// How a garbage collection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Garbage changed more recently than this is left for a later run: it may be an ingest in
    /// progress (see the module docs). Zero when nothing else uses the data root.
    pub grace: Duration,
}

impl GcOptions {
    /// The grace used while a daemon may be ingesting.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

    /// No grace: for a data root nothing else uses (daemon start, tests).
    pub fn exclusive() -> Self {
        Self {
            grace: Duration::ZERO,
        }
    }
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Self::DEFAULT_GRACE,
        }
    }
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Layer rows no image needed, removed from the index.
    pub layer_rows_removed: Vec<Digest>,
    /// Unpacked layer directories removed (by chain id).
    pub layers_removed: Vec<Digest>,
    /// Blobs removed.
    pub blobs_removed: Vec<Digest>,
    /// Files under `blobs/sha256/` or `layers/` whose names are not digests, removed.
    pub strays_removed: Vec<PathBuf>,
    /// Leftovers under `tmp/` removed (interrupted ingests, trash of interrupted removals).
    pub tmp_removed: Vec<PathBuf>,
    /// Garbage left alone because it changed within the grace period.
    pub kept_young: Vec<PathBuf>,
    /// Bytes on disk freed.
    pub bytes_freed: u64,
}

impl GcReport {
    /// Whether this run removed nothing.
    pub fn removed_nothing(&self) -> bool {
        self.layer_rows_removed.is_empty()
            && self.layers_removed.is_empty()
            && self.blobs_removed.is_empty()
            && self.strays_removed.is_empty()
            && self.tmp_removed.is_empty()
    }
}

/// What is alive: the result of the mark phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    pub blobs: HashSet<Digest>,
    pub layers: HashSet<Digest>,
}

/// Manifests larger than this are not parsed for references (no real manifest comes close).
const MAX_MANIFEST: u64 = 4 << 20;
/// How deep manifest lists may nest when following references.
const MAX_MANIFEST_DEPTH: usize = 4;

/// Image removal, pruning, garbage collection, disk usage and history over one data root.
#[derive(Debug, Clone)]
pub struct ImageOps {
    root: PathBuf,
    content: ContentStore,
    layers: LayerStore,
}

impl ImageOps {
    /// Opens the stores of the data root `root` (creating their directories).
    pub fn open(root: &Path) -> Result<Self, GcError> {
        Ok(Self {
            root: root.to_path_buf(),
            content: ContentStore::open(root)?,
            layers: LayerStore::open(root)?,
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn layer_store(&self) -> &LayerStore {
        &self.layers
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `layers/<chain-id hex>`: the whole stored layer (diff/ and layer.json).
    pub(crate) fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }

    // ---------------------------------------------------------------- tag, untag, rmi

    /// `docker tag SOURCE TARGET`: points `target` at the image `source` names (an id, a prefix
    /// or a name), moving it from the image it named before, which is returned.
    pub fn tag(
        &self,
        ix: &mut ImageIndex,
        source: &str,
        target: &str,
    ) -> Result<Option<Digest>, GcError> {
        let img = ix.resolve(source)?;
        let r = parse_tag(target)?;
        Ok(ix.tag(&r, &img.id)?)
    }

    /// Removes a name and nothing else (the image stays, dangling if that was its last name);
    /// `Ok(false)` when the name did not exist.
    pub fn untag(&self, ix: &mut ImageIndex, reference: &str) -> Result<bool, GcError> {
        let r = parse_tag(reference)?;
        Ok(ix.untag(&r)?)
    }

    /// `docker rmi`: removes an image by id, id prefix or name.
    ///
    /// By name, when the image has other names, only that name goes. Otherwise the image goes,
    /// refused without `force` while something uses it, or when asked by id while its names span
    /// several repositories. Then every layer and blob nothing else uses is deleted.
    pub fn rmi(
        &self,
        ix: &mut ImageIndex,
        what: &str,
        force: bool,
    ) -> Result<Vec<DeleteItem>, GcError> {
        let img = ix.resolve(what)?;
        let tags = ix.tags_of(&img.id)?;
        let users = ix.users_of(&img.id)?;
        if let Some(r) = named_tag(ix, what, &img.id)? {
            if tags.len() > 1 {
                ix.untag(&r)?;
                return Ok(vec![DeleteItem::Untagged(r.familiar_string())]);
            }
            if !users.is_empty() && !force {
                return Err(GcError::ReferenceInUse {
                    reference: r.familiar_string(),
                    users: users.join(", "),
                    image: img.id.short().to_string(),
                });
            }
        } else {
            let repos: BTreeSet<String> = tags.iter().map(|t| t.familiar_name()).collect();
            if repos.len() > 1 && !force {
                return Err(GcError::MultipleRepositories {
                    image: img.id.short().to_string(),
                    names: repos.into_iter().collect::<Vec<_>>().join(", "),
                });
            }
            if !users.is_empty() && !force {
                return Err(GcError::ImageInUse {
                    image: img.id.short().to_string(),
                    users: users.join(", "),
                });
            }
        }
        let (items, _freed) = self.delete_images(ix, std::slice::from_ref(&img))?;
        Ok(items)
    }

    /// `docker image prune`: removes dangling images (no name, not used), or with `all` every
    /// image nothing uses, and then their unused layers and blobs.
    pub fn prune(&self, ix: &mut ImageIndex, all: bool) -> Result<PruneReport, GcError> {
        let mut victims = Vec::new();
        for img in ix.images()? {
            if !ix.users_of(&img.id)?.is_empty() {
                continue;
            }
            if all || ix.tags_of(&img.id)?.is_empty() {
                victims.push(img);
            }
        }
        let (deleted, space_reclaimed) = self.delete_images(ix, &victims)?;
        Ok(PruneReport {
            deleted,
            space_reclaimed,
        })
    }

    /// Removes images from the index (with their names and uses), then the layers and blobs
    /// nothing needs any more: rows first, files after.
    fn delete_images(
        &self,
        ix: &mut ImageIndex,
        images: &[ImageRecord],
    ) -> Result<(Vec<DeleteItem>, u64), GcError> {
        let mut items = Vec::new();
        let mut layer_candidates = Vec::new();
        let mut blob_candidates = BTreeSet::new();
        for img in images {
            // Read the manifest before the image goes: it names the layer blobs.
            blob_candidates.extend(self.image_blobs(img));
            let removed = ix.remove_image(&img.id, true)?;
            for r in &removed.untagged {
                let shown = Reference::parse_normalized(r)
                    .map(|r| r.familiar_string())
                    .unwrap_or_else(|_| r.clone());
                items.push(DeleteItem::Untagged(shown));
            }
            items.push(DeleteItem::Deleted(img.id.clone()));
            layer_candidates.extend(removed.unused_layers);
        }
        let rows = self.forget_layers(ix, &layer_candidates, None)?;
        let mut freed = 0;
        let mut seen = HashSet::new();
        for l in &rows {
            freed += disk_usage(&self.layer_dir(l), &mut seen);
            if self.layers.remove(l)? {
                items.push(DeleteItem::Deleted(l.clone()));
            }
        }
        let live = self.live(ix)?;
        for b in blob_candidates.difference(&live.blobs.iter().cloned().collect()) {
            let Ok(p) = self.content.path(b) else {
                continue;
            };
            let size = fs::symlink_metadata(&p).map(|m| blocks(&m)).unwrap_or(0);
            if self.content.delete(b)? {
                freed += size;
            }
        }
        Ok((items, freed))
    }

    /// Removes the index rows of `candidates` that no image needs and that have no child row
    /// left, children before parents; `young` (when given) keeps the rows whose directory changed
    /// within the grace. Returns the rows removed.
    fn forget_layers(
        &self,
        ix: &mut ImageIndex,
        candidates: &[Digest],
        young: Option<&dyn Fn(&Digest) -> bool>,
    ) -> Result<Vec<Digest>, GcError> {
        let mut pending: Vec<Digest> = candidates
            .iter()
            .filter(|c| young.is_none_or(|y| !y(c)))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        loop {
            let mut progress = false;
            let mut next = Vec::new();
            for c in pending {
                if ix.layer_refcount(&c)? > 0 || ix.layer(&c)?.is_none() {
                    continue;
                }
                if !ix.layer_children(&c)?.is_empty() {
                    next.push(c);
                    continue;
                }
                ix.remove_layer(&c)?;
                removed.push(c);
                progress = true;
            }
            pending = next;
            if !progress || pending.is_empty() {
                break;
            }
        }
        Ok(removed)
    }

    // ---------------------------------------------------------------- mark and sweep

    /// The blobs an image needs: its config, its manifest, and what the manifest names (for a
    /// manifest list, the manifests it lists that are stored, and theirs).
    pub fn image_blobs(&self, img: &ImageRecord) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        out.insert(img.id.clone());
        if let Some(m) = &img.manifest_digest {
            self.follow_manifest(m, 0, &mut out);
        }
        out
    }

    fn follow_manifest(&self, d: &Digest, depth: usize, out: &mut BTreeSet<Digest>) {
        out.insert(d.clone());
        if depth >= MAX_MANIFEST_DEPTH || d.algorithm() != Algorithm::Sha256 {
            return;
        }
        match self.content.size(d) {
            Ok(n) if n <= MAX_MANIFEST => {}
            _ => return,
        }
        let Ok(data) = self.content.read(d) else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
            return;
        };
        let digest_of = |x: &serde_json::Value| {
            x.get("digest")
                .and_then(|d| d.as_str())
                .and_then(|s| Digest::parse(s).ok())
        };
        if let Some(c) = v.get("config").and_then(digest_of) {
            out.insert(c);
        }
        for key in ["layers", "blobs"] {
            if let Some(ls) = v.get(key).and_then(|l| l.as_array()) {
                out.extend(ls.iter().filter_map(digest_of));
            }
        }
        if let Some(ms) = v.get("manifests").and_then(|m| m.as_array()) {
            for m in ms.iter().filter_map(digest_of) {
                if !out.contains(&m) {
                    self.follow_manifest(&m, depth + 1, out);
                }
            }
        }
    }

    /// The mark phase: what every image in the index needs.
    pub(crate) fn live(&self, ix: &ImageIndex) -> Result<Live, GcError> {
        let parents: HashMap<Digest, Option<Digest>> = ix
            .all_layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.parent))
            .collect();
        let mut live = Live::default();
        for img in ix.images()? {
            live.blobs.extend(self.image_blobs(&img));
            for l in &img.layers {
                let mut cur = Some(l.clone());
                // Each chain id is visited once, so a corrupt cycle of parents ends too.
                while let Some(c) = cur {
                    if !live.layers.insert(c.clone()) {
                        break;
                    }
                    cur = parents.get(&c).cloned().flatten();
                }
            }
        }
        Ok(live)
    }

    /// Garbage collection by reference: forgets layer rows no image needs, then removes every
    /// unpacked layer, blob and `tmp/` leftover nothing alive names (older than the grace).
    /// Safe to interrupt at any point; the next run finishes the work.
    pub fn gc(&self, ix: &mut ImageIndex, opts: &GcOptions) -> Result<GcReport, GcError> {
        let now = SystemTime::now();
        let mut report = GcReport::default();

        // 1. The index: layer rows no image needs (young rows may belong to a pull in progress
        //    that has not recorded its image yet).
        let live = self.live(ix)?;
        let unneeded: Vec<Digest> = ix
            .all_layers()?
            .into_iter()
            .map(|l| l.chain_id)
            .filter(|c| !live.layers.contains(c))
            .collect();
        let young = |c: &Digest| {
            let p = self.layer_dir(c);
            is_young(&p, false, opts.grace, now)
        };
        report.layer_rows_removed = self.forget_layers(ix, &unneeded, Some(&young))?;

        // 2. The files: what the index still names is alive, everything else is garbage.
        let live = self.live(ix)?;
        let recorded: HashSet<Digest> = ix.all_layers()?.into_iter().map(|l| l.chain_id).collect();
        let mut seen = HashSet::new();

        let layers_dir = self.layers_dir();
        for (name, path) in list_dir(&layers_dir)? {
            let digest = Digest::from_hex(Algorithm::Sha256, &name).ok();
            if let Some(d) = &digest {
                if live.layers.contains(d) || recorded.contains(d) {
                    continue;
                }
            }
            if is_young(&path, false, opts.grace, now) {
                report.kept_young.push(path);
                continue;
            }
            let size = disk_usage(&path, &mut seen);
            match digest {
                Some(d) => {
                    // Renamed to tmp/ first, so a crash never leaves half a layer in layers/.
                    if self.layers.remove(&d)? {
                        report.bytes_freed += size;
                        report.layers_removed.push(d);
                    }
                }
                None => {
                    if remove_any(&path)? {
                        report.bytes_freed += size;
                        report.strays_removed.push(path);
                    }
                }
            }
        }

        let blobs_dir = self.blobs_dir();
        for (name, path) in list_dir(&blobs_dir)? {
            let digest = Digest::from_hex(Algorithm::Sha256, &name).ok();
            if let Some(d) = &digest {
                if live.blobs.contains(d) {
                    continue;
                }
            }
            if is_young(&path, false, opts.grace, now) {
                report.kept_young.push(path);
                continue;
            }
            let size = fs::symlink_metadata(&path).map(|m| blocks(&m)).unwrap_or(0);
            if remove_any(&path)? {
                report.bytes_freed += size;
                match digest {
                    Some(d) => report.blobs_removed.push(d),
                    None => report.strays_removed.push(path),
                }
            }
        }

        // 3. tmp/: interrupted ingests and unpacks, trash of interrupted layer removals. Their
        //    age is the newest change anywhere in the tree: an unpack writes deep inside.
        let tmp = self.tmp_dir();
        for (_name, path) in list_dir(&tmp)? {
            if is_young(&path, true, opts.grace, now) {
                report.kept_young.push(path);
                continue;
            }
            let size = disk_usage(&path, &mut seen);
            if remove_any(&path)? {
                report.bytes_freed += size;
                report.tmp_removed.push(path);
            }
        }
        Ok(report)
    }

    // ---------------------------------------------------------------- history

    /// `docker history`: the image config's history, newest first, each entry that added a
    /// layer with that layer's size.
    pub fn history(&self, ix: &ImageIndex, what: &str) -> Result<Vec<HistoryEntry>, GcError> {
        let img = ix.resolve(what)?;
        let data = self.content.read(&img.id)?;
        let config: ConfigForHistory =
            serde_json::from_slice(&data).map_err(|e| GcError::BadConfig {
                image: img.id.clone(),
                problem: e.to_string(),
            })?;
        let mut sizes = Vec::with_capacity(img.layers.len());
        for l in &img.layers {
            sizes.push(ix.layer(l)?.map(|r| r.size).unwrap_or(0));
        }
        let mut entries = Vec::new();
        let mut next_layer = 0usize;
        let history = config.history.unwrap_or_default();
        if history.is_empty() {
            for size in &sizes {
                entries.push(HistoryEntry {
                    id: None,
                    created: config.created.clone(),
                    created_unix: config.created.as_deref().and_then(parse_rfc3339),
                    created_by: String::new(),
                    comment: String::new(),
                    empty_layer: false,
                    size: *size,
                    tags: Vec::new(),
                });
            }
        }
        for h in history {
            let empty = h.empty_layer.unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = sizes.get(next_layer).copied().unwrap_or(0);
                next_layer += 1;
                s
            };
            entries.push(HistoryEntry {
                id: None,
                created_unix: h.created.as_deref().and_then(parse_rfc3339),
                created: h.created,
                created_by: h.created_by.unwrap_or_default(),
                comment: h.comment.unwrap_or_default(),
                empty_layer: empty,
                size,
                tags: Vec::new(),
            });
        }
        entries.reverse();
        // As Docker: the newest entry is the image itself, the next its parent (the previous
        // build step's image) and so on while there are parents; the rest are `<missing>`.
        let mut cur = Some(img.id.clone());
        for e in entries.iter_mut() {
            let Some(id) = cur.take() else { break };
            e.tags = ix
                .tags_of(&id)?
                .iter()
                .map(|t| t.familiar_string())
                .collect();
            cur = ix.parent_of(&id)?;
            e.id = Some(id);
        }
        Ok(entries)
    }

    // ---------------------------------------------------------------- system df

    /// `docker system df`: true sizes on disk. `running` lists the ids of running containers
    /// (the engine knows them; the image store does not).
    pub fn df(&self, ix: &ImageIndex, running: &[String]) -> Result<DiskUsage, GcError> {
        let mut seen = HashSet::new();
        // Every object on disk once: layers (du, hardlinks once) and blobs.
        let mut layer_size: HashMap<Digest, u64> = HashMap::new();
        let mut layers_size = 0u64;
        for (name, path) in list_dir(&self.layers_dir())? {
            let n = disk_usage(&path, &mut seen);
            layers_size += n;
            if let Ok(d) = Digest::from_hex(Algorithm::Sha256, &name) {
                layer_size.insert(d, n);
            }
        }
        let mut blob_size: HashMap<Digest, u64> = HashMap::new();
        let mut blobs_size = 0u64;
        for (name, path) in list_dir(&self.blobs_dir())? {
            let n = fs::symlink_metadata(&path).map(|m| blocks(&m)).unwrap_or(0);
            blobs_size += n;
            if let Ok(d) = Digest::from_hex(Algorithm::Sha256, &name) {
                blob_size.insert(d, n);
            }
        }
        let tmp_size = list_dir(&self.tmp_dir())?
            .iter()
            .map(|(_, p)| disk_usage(p, &mut seen))
            .sum::<u64>();

        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        enum Obj {
            Layer(Digest),
            Blob(Digest),
        }
        let size_of = |o: &Obj| match o {
            Obj::Layer(d) => layer_size.get(d).copied().unwrap_or(0),
            Obj::Blob(d) => blob_size.get(d).copied().unwrap_or(0),
        };
        let parents: HashMap<Digest, Option<Digest>> = ix
            .all_layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.parent))
            .collect();
        let mut per_image: Vec<(ImageRecord, BTreeSet<Obj>, usize)> = Vec::new();
        let mut users_of: HashMap<Obj, usize> = HashMap::new();
        for img in ix.images()? {
            let mut objs = BTreeSet::new();
            for b in self.image_blobs(&img) {
                objs.insert(Obj::Blob(b));
            }
            for l in &img.layers {
                let mut cur = Some(l.clone());
                while let Some(c) = cur {
                    if !objs.insert(Obj::Layer(c.clone())) {
                        break;
                    }
                    cur = parents.get(&c).cloned().flatten();
                }
            }
            for o in &objs {
                *users_of.entry(o.clone()).or_default() += 1;
            }
            let containers = ix.users_of(&img.id)?.len();
            per_image.push((img, objs, containers));
        }
        let mut all_objs = BTreeSet::new();
        let mut active_objs = BTreeSet::new();
        let mut images = Vec::new();
        for (img, objs, containers) in &per_image {
            let size: u64 = objs.iter().map(&size_of).sum();
            let unique: u64 = objs
                .iter()
                .filter(|o| users_of.get(*o).copied().unwrap_or(0) <= 1)
                .map(&size_of)
                .sum();
            all_objs.extend(objs.iter().cloned());
            if *containers > 0 {
                active_objs.extend(objs.iter().cloned());
            }
            images.push(ImageUsage {
                id: img.id.clone(),
                tags: ix
                    .tags_of(&img.id)?
                    .iter()
                    .map(|t| t.familiar_string())
                    .collect(),
                created: img.created.clone(),
                containers: *containers,
                size,
                shared_size: size - unique,
                unique_size: unique,
            });
        }
        let images_size: u64 = all_objs.iter().map(&size_of).sum();
        let active_size: u64 = active_objs.iter().map(&size_of).sum();
        let referenced: u64 = images_size;

        // Containers: the writable layer of each, `containers/<id>/upper`.
        let mut containers = Vec::new();
        let users = ix.all_users()?;
        for (name, path) in list_dir(&self.containers_dir()).unwrap_or_default() {
            if ContainerId::new(&name).is_err() || !path.is_dir() {
                continue;
            }
            let user = format!("container:{name}");
            containers.push(ContainerUsage {
                image: users
                    .iter()
                    .find(|(u, _)| *u == user)
                    .map(|(_, i)| i.clone()),
                running: running.contains(&name),
                size: disk_usage(&path.join("upper"), &mut seen),
                id: name,
            });
        }
        let containers_size: u64 = containers.iter().map(|c| c.size).sum();
        let containers_idle: u64 = containers
            .iter()
            .filter(|c| !c.running)
            .map(|c| c.size)
            .sum();
        let rows = [
            DfRow {
                kind: "Images",
                total: images.len(),
                active: images.iter().filter(|i| i.containers > 0).count(),
                size: images_size,
                reclaimable: images_size - active_size,
            },
            DfRow {
                kind: "Containers",
                total: containers.len(),
                active: containers.iter().filter(|c| c.running).count(),
                size: containers_size,
                reclaimable: containers_idle,
            },
            DfRow {
                kind: "Local Volumes",
                total: 0,
                active: 0,
                size: 0,
                reclaimable: 0,
            },
            DfRow {
                kind: "Build Cache",
                total: 0,
                active: 0,
                size: 0,
                reclaimable: 0,
            },
        ];
        Ok(DiskUsage {
            rows,
            images,
            containers,
            layers_size,
            blobs_size,
            tmp_size,
            unreferenced_size: (layers_size + blobs_size).saturating_sub(referenced) + tmp_size,
        })
    }
}

/// Parses a name to tag with: a valid reference with no digest, whose name is not `sha256`.
fn parse_tag(s: &str) -> Result<Reference, GcError> {
    let r = Reference::parse_normalized(s)?;
    if r.digest().is_some() {
        return Err(GcError::TagWithDigest(s.to_string()));
    }
    if r.familiar_name() == Algorithm::Sha256.as_str() {
        return Err(GcError::AmbiguousTag(s.to_string()));
    }
    Ok(r.with_default_tag())
}

/// The tag `what` names, when `what` found `image` by that tag (as [`ImageIndex::resolve`]
/// tries names before id prefixes).
fn named_tag(ix: &ImageIndex, what: &str, image: &Digest) -> Result<Option<Reference>, GcError> {
    if what.starts_with("sha256:") {
        return Ok(None);
    }
    let Ok(r) = Reference::parse_normalized(what) else {
        return Ok(None);
    };
    if r.digest().is_some() {
        return Ok(None);
    }
    let r = r.with_default_tag();
    let key = r.to_string();
    let named = ix.tags_of(image)?.iter().any(|t| t.to_string() == key);
    Ok(named.then_some(r))
}

// ---------------------------------------------------------------- history types

#[derive(serde::Deserialize)]
struct ConfigForHistory {
    created: Option<String>,
    history: Option<Vec<HistoryItem>>,
}

#[derive(serde::Deserialize)]
struct HistoryItem {
    created: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
    empty_layer: Option<bool>,
}

/// One line of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image for the newest entry; `None` (printed `<missing>`) for the others.
    pub id: Option<Digest>,
    /// As written in the config (RFC 3339).
    pub created: Option<String>,
    /// `created` in unix seconds, when it parses.
    pub created_unix: Option<i64>,
    pub created_by: String,
    pub comment: String,
    pub empty_layer: bool,
    /// Bytes of the layer this entry added (0 for empty layers).
    pub size: u64,
    /// Names of the image, on the newest entry only.
    pub tags: Vec<String>,
}

impl HistoryEntry {
    /// The IMAGE column: a short id or `<missing>`.
    pub fn image_column(&self) -> String {
        self.id
            .as_ref()
            .map(|d| d.short().to_string())
            .unwrap_or_else(|| "<missing>".into())
    }
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `…+02:00`) to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(t).ok()?.parse().ok()
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *c == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

// ---------------------------------------------------------------- df types

/// One image in `docker system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: Digest,
    pub tags: Vec<String>,
    pub created: Option<String>,
    /// How many users (containers) the index records for it.
    pub containers: usize,
    /// Bytes on disk of everything it needs: unpacked layers (with parents) and blobs.
    pub size: u64,
    /// The part of `size` other images need too.
    pub shared_size: u64,
    /// The part only this image needs: what removing it frees.
    pub unique_size: u64,
}

/// One container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub id: String,
    pub image: Option<Digest>,
    pub running: bool,
    /// Bytes on disk of `containers/<id>/upper`.
    pub size: u64,
}

/// One row of `docker system df`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfRow {
    pub kind: &'static str,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

impl DfRow {
    /// The RECLAIMABLE column as Docker prints it: `11.63MB (70%)`.
    pub fn reclaimable_column(&self) -> String {
        match self.reclaimable.saturating_mul(100).checked_div(self.size) {
            Some(pct) => format!("{} ({pct}%)", human_size(self.reclaimable)),
            None => human_size(self.reclaimable),
        }
    }
}

/// What `system df` measured. Sizes are bytes on disk (allocated blocks, each inode once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    /// Images, Containers, Local Volumes, Build Cache: Docker's four rows. An image's content
    /// shared with another is counted once; RECLAIMABLE is exactly what removing every image no
    /// container uses would free (Docker approximates it from unique sizes).
    pub rows: [DfRow; 4],
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    /// Every directory under `layers/`.
    pub layers_size: u64,
    /// Every file under `blobs/sha256/`.
    pub blobs_size: u64,
    /// Everything under `tmp/`.
    pub tmp_size: u64,
    /// What a garbage collection would free now: files no image needs, and `tmp/`.
    pub unreferenced_size: u64,
}

impl DiskUsage {
    /// The table `docker system df` prints (tabwriter: min width 10, padding 3).
    pub fn table(&self) -> String {
        let mut cells = vec![vec![
            "TYPE".to_string(),
            "TOTAL".into(),
            "ACTIVE".into(),
            "SIZE".into(),
            "RECLAIMABLE".into(),
        ]];
        for r in &self.rows {
            cells.push(vec![
                r.kind.to_string(),
                r.total.to_string(),
                r.active.to_string(),
                human_size(r.size),
                r.reclaimable_column(),
            ]);
        }
        tabulate(&cells)
    }
}

/// Aligns cells as Go's tabwriter with minwidth 10, padding 3 (the last column unpadded).
pub(crate) fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let w = width.get(i).copied().unwrap_or(0);
                line.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(c.chars().count()),
                ));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's `units.HumanSize`: decimal units, 4 significant digits (`16.43MB`, `212B`, `0B`).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g4(v), UNITS.get(i).copied().unwrap_or("B"))
}

/// Go's `%.4g` for 0 ≤ v < 1000.
fn format_g4(v: f64) -> String {
    let digits_before = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as i32 + 1).max(1)
    };
    let decimals = (4 - digits_before).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    // 999.95 rounds to "1000", as Go's %.4g prints it too.
    s
}

// ---------------------------------------------------------------- file helpers

/// Bytes allocated to a file (what `du` counts).
pub(crate) fn blocks(m: &fs::Metadata) -> u64 {
    m.blocks().saturating_mul(512)
}

/// `du -s --block-size=1` of a tree: allocated bytes of every inode once (`seen` spans calls, so
/// hardlinks across trees count once too); symlinks are not followed; a missing path is 0.
pub fn disk_usage(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let mut total = 0u64;
    for ent in walkdir::WalkDir::new(path).follow_links(false) {
        let Ok(ent) = ent else { continue };
        let Ok(m) = ent.metadata() else { continue };
        if seen.insert((m.dev(), m.ino())) {
            total += blocks(&m);
        }
    }
    total
}

/// The entries of a directory as (name, path), sorted by name; a missing directory is empty.
/// Names that are not UTF-8 come back lossily converted (they are never digests).
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, GcError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io_err("read directory", dir))?;
        out.push((ent.file_name().to_string_lossy().into_owned(), ent.path()));
    }
    out.sort();
    Ok(out)
}

/// Removes a file or a tree; `Ok(false)` when it was already gone (someone else removed it).
pub(crate) fn remove_any(path: &Path) -> Result<bool, GcError> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    let r = if m.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether `path` changed (mtime or ctime; over the whole tree with `deep`) less than `grace`
/// ago. A missing path is not young.
pub(crate) fn is_young(path: &Path, deep: bool, grace: Duration, now: SystemTime) -> bool {
    if grace.is_zero() {
        return false;
    }
    let limit = unix(now).saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    let recent = |m: &fs::Metadata| m.mtime().max(m.ctime()) > limit;
    let Ok(m) = fs::symlink_metadata(path) else {
        return false;
    };
    if recent(&m) {
        return true;
    }
    if deep && m.is_dir() {
        for ent in walkdir::WalkDir::new(path).follow_links(false).min_depth(1) {
            match ent.and_then(|e| e.metadata()) {
                Ok(m) if recent(&m) => return true,
                Ok(_) => {}
                // Vanishing while we look: someone is working in there.
                Err(_) => return true,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(212), "212B");
        assert_eq!(human_size(36_890), "36.89kB");
        assert_eq!(human_size(16_430_000), "16.43MB");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(4_096), "4.096kB");
        assert_eq!(human_size(1_234_567_890), "1.235GB");
    }

    #[test]
    fn reclaimable_column() {
        let r = DfRow {
            kind: "Images",
            total: 5,
            active: 2,
            size: 16_430_000,
            reclaimable: 11_630_000,
        };
        assert_eq!(r.reclaimable_column(), "11.63MB (70%)");
        let z = DfRow {
            kind: "Build Cache",
            total: 0,
            active: 0,
            size: 0,
            reclaimable: 0,
        };
        assert_eq!(z.reclaimable_column(), "0B");
    }

    #[test]
    fn table_like_docker() {
        let t = tabulate(&[
            vec!["TYPE".into(), "TOTAL".into(), "RECLAIMABLE".into()],
            vec!["Local Volumes".into(), "2".into(), "0B".into()],
        ]);
        assert_eq!(
            t,
            "TYPE            TOTAL     RECLAIMABLE\nLocal Volumes   2         0B\n"
        );
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(1_704_067_200));
        assert_eq!(
            parse_rfc3339("2024-01-01T02:00:00.123456789+02:00"),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T12:00:00-01:30"),
            Some(951_831_000)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Zjunk"), None);
        assert_eq!(parse_rfc3339("２０２４-01-01T00:00:00Z"), None);
    }

    #[test]
    fn tags_refuse_digests_and_sha256() {
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        assert!(matches!(parse_tag(&d), Err(GcError::TagWithDigest(_))));
        assert!(matches!(
            parse_tag("sha256:abc"),
            Err(GcError::AmbiguousTag(_))
        ));
        assert!(matches!(parse_tag("Bad"), Err(GcError::Reference(_))));
        assert_eq!(
            parse_tag("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }
}
