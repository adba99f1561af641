//! `berth system check`: finds what a crash, a full disk or a hand in the data root left
//! inconsistent between the image index and the files, repairs what can be repaired, and says
//! what it found.
//!
//! It exists because DESIGN.md promises that a crash at any point leaves a state the next start
//! repairs. What it does, in order: blobs whose content does not hash to their name are removed;
//! a stored layer without its `diff/` (which the layer store never makes) is removed; an indexed
//! layer whose directory is missing is unpacked again from its blob when the blob is there;
//! images that still miss a blob or a layer are marked broken (and unmarked once whole again);
//! then a garbage collection removes what nothing names (layer dirs and blobs not in the index,
//! `tmp/` leftovers, the trash of interrupted layer removals). Running it twice finds nothing new
//! the second time.
//!
//! It must never remove an image or a name: a broken image stays visible, marked, so the user can
//! pull it again or remove it; and never delete a file an index row names unless that file is
//! corrupt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};

use berth_types::{Algorithm, Digest};
use sha2::{Digest as _, Sha256};

use crate::gc::{io_err, list_dir, GcError, GcOptions, GcReport, ImageOps};
use crate::index::ImageIndex;
use crate::layer::ApplyOptions;

/// How a check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Hash every blob (reads the whole content store).
    pub verify_blobs: bool,
    /// The garbage collection at the end (its grace: zero when nothing else uses the data root).
    pub gc: GcOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            verify_blobs: true,
            gc: GcOptions::default(),
        }
    }
}

/// What a check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs whose content did not match their digest: removed.
    pub corrupt_blobs: Vec<Digest>,
    /// Stored layers without `diff/`: removed.
    pub incomplete_layers: Vec<Digest>,
    /// Indexed layers whose directory was missing.
    pub missing_layers: Vec<Digest>,
    /// Of those, the ones unpacked again from their blob.
    pub reunpacked_layers: Vec<Digest>,
    /// Images found broken by this run, with why.
    pub newly_broken: Vec<(Digest, String)>,
    /// Images marked broken before and still broken.
    pub still_broken: Vec<(Digest, String)>,
    /// Images marked broken before that are whole again.
    pub recovered: Vec<Digest>,
    /// The garbage collection.
    pub gc: GcReport,
}

impl CheckReport {
    /// Whether this run found nothing to repair (images already known broken do not count).
    pub fn found_nothing(&self) -> bool {
        self.corrupt_blobs.is_empty()
            && self.incomplete_layers.is_empty()
            && self.reunpacked_layers.is_empty()
            && self.newly_broken.is_empty()
            && self.recovered.is_empty()
            && self.gc.removed_nothing()
    }
}

impl fmt::Display for CheckReport {
    /// One line per finding, as `berth system check` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.corrupt_blobs {
            writeln!(f, "removed corrupt blob {d}")?;
        }
        for d in &self.incomplete_layers {
            writeln!(f, "removed incomplete layer {d}")?;
        }
        for d in &self.missing_layers {
            if self.reunpacked_layers.contains(d) {
                writeln!(f, "layer {d} was missing: unpacked again from its blob")?;
            } else {
                writeln!(f, "layer {d} is missing")?;
            }
        }
        for (d, why) in &self.newly_broken {
            writeln!(f, "image {d} is broken: {why}; pull it again or remove it")?;
        }
        for (d, why) in &self.still_broken {
            writeln!(
                f,
                "image {d} is still broken: {why}; pull it again or remove it"
            )?;
        }
        for d in &self.recovered {
            writeln!(f, "image {d} is whole again")?;
        }
        let g = &self.gc;
        for d in &g.layer_rows_removed {
            writeln!(f, "forgot unused layer {d}")?;
        }
        for d in &g.layers_removed {
            writeln!(f, "removed unreferenced layer {d}")?;
        }
        for d in &g.blobs_removed {
            writeln!(f, "removed unreferenced blob {d}")?;
        }
        for p in &g.strays_removed {
            writeln!(f, "removed stray {}", p.display())?;
        }
        for p in &g.tmp_removed {
            writeln!(f, "removed leftover {}", p.display())?;
        }
        for p in &g.kept_young {
            writeln!(f, "kept {} (changed recently)", p.display())?;
        }
        if self.found_nothing() && self.still_broken.is_empty() && self.missing_layers.is_empty() {
            writeln!(f, "the image store is consistent")?;
        }
        Ok(())
    }
}

/// Hashes a file; `Ok(None)` when it vanished meanwhile.
fn hash_file(path: &std::path::Path) -> Result<Option<Digest>, GcError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", path)(e)),
        };
        h.update(buf.get(..n).unwrap_or(&[]));
    }
    let out: [u8; 32] = h.finalize().into();
    Ok(Some(Digest::sha256_from_bytes(&out)))
}

impl ImageOps {
    /// Checks the data root against the index and repairs it (see the module docs).
    pub fn check(&self, ix: &mut ImageIndex, opts: &CheckOptions) -> Result<CheckReport, GcError> {
        let mut report = CheckReport::default();

        // 1. Blobs that lie about their content.
        if opts.verify_blobs {
            for (name, path) in list_dir(&self.blobs_dir())? {
                let Ok(d) = Digest::from_hex(Algorithm::Sha256, &name) else {
                    continue; // not a blob name: the gc removes strays
                };
                if !path.is_file() {
                    continue;
                }
                if let Some(actual) = hash_file(&path)? {
                    if actual != d && self.content().delete(&d)? {
                        report.corrupt_blobs.push(d);
                    }
                }
            }
        }

        // 2. Stored layers: incomplete directories, and indexed layers without a directory.
        let layers = self.layer_store();
        for (name, path) in list_dir(&self.layers_dir())? {
            if let Ok(d) = Digest::from_hex(Algorithm::Sha256, &name) {
                if path.is_dir() && !layers.diff_dir(&d).is_dir() && layers.remove(&d)? {
                    report.incomplete_layers.push(d);
                }
            }
        }
        let rows = ix.all_layers()?;
        let images = ix.images()?;
        for row in &rows {
            if layers.exists(&row.chain_id) {
                continue;
            }
            report.missing_layers.push(row.chain_id.clone());
        }
        // Unpack missing layers again from their blobs, parents first (rows are sorted by chain
        // id, not depth: repeat while progress is made).
        let mut pending: Vec<Digest> = report.missing_layers.clone();
        loop {
            let before = pending.len();
            let mut next = Vec::new();
            for c in pending {
                match self.reunpack(ix, &images, &c)? {
                    Reunpack::Done => report.reunpacked_layers.push(c),
                    Reunpack::NeedsParent => next.push(c),
                    Reunpack::NoBlob => {}
                }
            }
            pending = next;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }

        // 3. Images: every blob and layer they need, or broken.
        let known: BTreeMap<Digest, String> = ix.broken_images()?.into_iter().collect();
        for img in &images {
            let mut missing = Vec::new();
            for b in self.image_blobs(img) {
                if !self.content().exists(&b) {
                    let what = if b == img.id {
                        "config blob"
                    } else if Some(&b) == img.manifest_digest.as_ref() {
                        "manifest blob"
                    } else {
                        "blob"
                    };
                    missing.push(format!("{what} {b} is missing"));
                }
            }
            let mut seen = BTreeSet::new();
            for l in &img.layers {
                if seen.insert(l.clone()) && !layers.exists(l) {
                    missing.push(format!("layer {l} is missing"));
                }
            }
            match (missing.is_empty(), known.get(&img.id)) {
                (true, Some(_)) => {
                    ix.clear_broken(&img.id)?;
                    report.recovered.push(img.id.clone());
                }
                (true, None) => {}
                (false, prior) => {
                    let why = missing.join("; ");
                    ix.mark_broken(&img.id, &why)?;
                    if prior.is_some() {
                        report.still_broken.push((img.id.clone(), why));
                    } else {
                        report.newly_broken.push((img.id.clone(), why));
                    }
                }
            }
        }

        // 4. Everything nothing names.
        report.gc = self.gc(ix, &opts.gc)?;
        Ok(report)
    }

    /// Unpacks the missing layer `c` again from the blob an image's manifest names for it.
    fn reunpack(
        &self,
        ix: &ImageIndex,
        images: &[crate::index::ImageRecord],
        c: &Digest,
    ) -> Result<Reunpack, GcError> {
        let Some(row) = ix.layer(c)? else {
            return Ok(Reunpack::NoBlob);
        };
        if let Some(p) = &row.parent {
            if !self.layer_store().exists(p) {
                return Ok(Reunpack::NeedsParent);
            }
        }
        for img in images {
            let Some(pos) = img.layers.iter().position(|l| l == c) else {
                continue;
            };
            let Some(blob) = self.manifest_layer_blob(img, pos) else {
                continue;
            };
            let Ok(f) = self.content().open_blob(&blob) else {
                continue;
            };
            let opts = ApplyOptions {
                expected_diff_id: Some(row.diff_id.clone()),
                ..ApplyOptions::default()
            };
            // A blob that does not unpack to the recorded diff id leaves nothing behind.
            if let Ok(l) = self.layer_store().apply(row.parent.as_ref(), f, &opts) {
                if l.chain_id == *c {
                    return Ok(Reunpack::Done);
                }
            }
        }
        Ok(Reunpack::NoBlob)
    }

    /// The digest of the `pos`-th layer blob in an image's manifest.
    fn manifest_layer_blob(&self, img: &crate::index::ImageRecord, pos: usize) -> Option<Digest> {
        let m = img.manifest_digest.as_ref()?;
        let data = self.content().read(m).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
        let d = v
            .get("layers")?
            .as_array()?
            .get(pos)?
            .get("digest")?
            .as_str()?;
        Digest::parse(d).ok()
    }
}

enum Reunpack {
    Done,
    NeedsParent,
    NoBlob,
}
