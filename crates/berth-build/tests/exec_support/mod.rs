//! A test backend for the executor: images are directory trees with a config; layers are
//! extracted over a copy of the parent's tree; RUN records its request and applies a scripted
//! effect (real RUN steps are tested end to end in the engine).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_build::backend::{
    Backend, BackendError, Commit, ImageId, ImageInfo, RunConfig, RunRequest,
};
use berth_build::{BuildError, BuildOptions, BuildResult};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq)]
pub struct LayerEntry {
    pub path: String,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub data: Vec<u8>,
    pub link: String,
}

#[derive(Debug, Clone)]
pub struct TestImage {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub author: Option<String>,
    pub platform: String,
    pub parent: Option<String>,
    pub created_by: Option<String>,
    pub layer: Option<Vec<LayerEntry>>,
}

type Effect = Box<dyn FnMut(&RunRequest, &Path) -> Result<(), BackendError>>;

pub struct TestBackend {
    pub tmp: tempfile::TempDir,
    pub images: HashMap<String, TestImage>,
    pub names: HashMap<String, String>,
    pub cache: HashMap<String, String>,
    pub runs: Vec<RunRequest>,
    pub commits: usize,
    pub effect: Effect,
    pub secrets: HashMap<String, PathBuf>,
    pub urls: HashMap<String, Vec<u8>>,
    pub image_lookups: Vec<String>,
    pub rootfs_calls: usize,
    seq: usize,
}

pub fn tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path.trim_start_matches('/'));
        if path.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    let m = std::fs::symlink_metadata(src).unwrap();
    std::fs::set_permissions(dst, m.permissions()).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = std::fs::symlink_metadata(&from).unwrap();
        if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if m.is_dir() {
            copy_tree(&from, &to);
        } else if m.is_file() {
            std::fs::copy(&from, &to).unwrap();
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()));
    }
}

impl TestBackend {
    pub fn new() -> TestBackend {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("tmp")).unwrap();
        std::fs::create_dir_all(tmp.path().join("scratch")).unwrap();
        TestBackend {
            tmp,
            images: HashMap::new(),
            names: HashMap::new(),
            cache: HashMap::new(),
            runs: Vec::new(),
            commits: 0,
            effect: Box::new(|_, _| Ok(())),
            secrets: HashMap::new(),
            urls: HashMap::new(),
            image_lookups: Vec::new(),
            rootfs_calls: 0,
            seq: 0,
        }
    }

    fn new_id(&mut self) -> String {
        self.seq += 1;
        let mut h = Sha256::new();
        h.update(format!("image {} {:?}", self.seq, self.tmp.path()).as_bytes());
        let hexs: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hexs}")
    }

    /// Registers a named base image with these files and config.
    pub fn add_image(&mut self, name: &str, files: &[(&str, &str)], config: RunConfig) -> String {
        let id = self.new_id();
        let dir = self.tmp.path().join("images").join(&id[7..]);
        std::fs::create_dir_all(&dir).unwrap();
        tree(&dir, files);
        self.images.insert(
            id.clone(),
            TestImage {
                dir,
                config,
                author: None,
                platform: "linux/amd64".to_string(),
                parent: None,
                created_by: None,
                layer: None,
            },
        );
        self.names.insert(name.to_string(), id.clone());
        id
    }

    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.images[id].dir.clone()
    }

    pub fn read(&self, id: &str, path: &str) -> Option<String> {
        std::fs::read_to_string(self.image_dir(id).join(path.trim_start_matches('/'))).ok()
    }

    pub fn config(&self, id: &str) -> RunConfig {
        self.images[id].config.clone()
    }

    /// The `created_by` of the image and its ancestors created by the build, oldest first.
    pub fn history(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Some(id.to_string());
        while let Some(c) = cur {
            let img = &self.images[&c];
            if let Some(cb) = &img.created_by {
                out.push(cb.clone());
            }
            cur = img.parent.clone();
        }
        out.reverse();
        out
    }

    pub fn layer(&self, id: &str) -> Vec<LayerEntry> {
        self.images[id].layer.clone().unwrap_or_default()
    }

    fn child(&mut self, commit: &Commit, copy_fs: bool) -> (String, PathBuf) {
        let id = self.new_id();
        let parent_dir = match &commit.parent {
            Some(p) => self.images[p].dir.clone(),
            None => self.tmp.path().join("scratch"),
        };
        let dir = if copy_fs {
            let d = self.tmp.path().join("images").join(&id[7..]);
            copy_tree(&parent_dir, &d);
            d
        } else {
            parent_dir
        };
        let platform = commit
            .parent
            .as_ref()
            .map(|p| self.images[p].platform.clone())
            .unwrap_or_else(|| "linux/amd64".to_string());
        self.images.insert(
            id.clone(),
            TestImage {
                dir: dir.clone(),
                config: commit.config.clone(),
                author: commit.author.clone(),
                platform,
                parent: commit.parent.clone(),
                created_by: Some(commit.created_by.clone()),
                layer: None,
            },
        );
        self.commits += 1;
        (id, dir)
    }

    fn info(&self, id: &str) -> ImageInfo {
        let img = &self.images[id];
        ImageInfo {
            id: id.to_string(),
            config: img.config.clone(),
            platform: img.platform.clone(),
            author: img.author.clone(),
        }
    }
}

impl Backend for TestBackend {
    fn image(
        &mut self,
        reference: &str,
        _platform: Option<&str>,
        _pull: bool,
        _out: &mut dyn Write,
    ) -> Result<ImageInfo, BackendError> {
        self.image_lookups.push(reference.to_string());
        let id = self
            .names
            .get(reference)
            .cloned()
            .or_else(|| {
                self.images
                    .contains_key(reference)
                    .then(|| reference.to_string())
            })
            .ok_or_else(|| {
                BackendError::ImageNotFound(format!(
                    "pull access denied for {reference}, repository does not exist"
                ))
            })?;
        Ok(self.info(&id))
    }

    fn rootfs(&mut self, image: Option<&ImageId>) -> Result<PathBuf, BackendError> {
        self.rootfs_calls += 1;
        Ok(match image {
            Some(id) => self.images[id].dir.clone(),
            None => self.tmp.path().join("scratch"),
        })
    }

    fn commit_config(&mut self, commit: &Commit) -> Result<ImageId, BackendError> {
        Ok(self.child(commit, false).0)
    }

    fn commit_layer(&mut self, commit: &Commit, layer: &Path) -> Result<ImageId, BackendError> {
        let (id, dir) = self.child(commit, true);
        let mut entries = Vec::new();
        let f = std::fs::File::open(layer).unwrap();
        let mut ar = tar::Archive::new(f);
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header().clone();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Regular => 'f',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                tar::EntryType::Fifo => 'p',
                tar::EntryType::Char => 'c',
                _ => '?',
            };
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            if kind == 'f' {
                e.read_to_end(&mut data).unwrap();
            }
            entries.push(LayerEntry {
                path: path.trim_end_matches('/').to_string(),
                kind,
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                data,
                link,
            });
        }
        // Extract (the layer was read above; read it again to unpack).
        let f = std::fs::File::open(layer).unwrap();
        let mut ar = tar::Archive::new(f);
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        ar.set_overwrite(true);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type() == tar::EntryType::Char {
                continue;
            }
            e.unpack_in(&dir).unwrap();
        }
        self.images.get_mut(&id).unwrap().layer = Some(entries);
        Ok(id)
    }

    fn run(
        &mut self,
        commit: &Commit,
        req: &RunRequest,
        out: &mut dyn Write,
    ) -> Result<ImageId, BackendError> {
        out.write_all(b" ---> Running in 0123456789ab\n").unwrap();
        self.runs.push(req.clone());
        let (id, dir) = self.child(commit, true);
        (self.effect)(req, &dir)?;
        Ok(id)
    }

    fn cache_mount_dir(&mut self, id: &str) -> Result<PathBuf, BackendError> {
        let d = self.tmp.path().join("cache").join(id.replace('/', "_"));
        std::fs::create_dir_all(&d).unwrap();
        Ok(d)
    }

    fn secret(&mut self, id: &str) -> Result<Option<PathBuf>, BackendError> {
        Ok(self.secrets.get(id).cloned())
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> Result<String, BackendError> {
        let data = self
            .urls
            .get(url)
            .ok_or_else(|| BackendError::Fetch(format!("{url}: 404 Not Found")))?;
        std::fs::write(dest, data).unwrap();
        Ok(url.rsplit('/').next().unwrap_or("").to_string())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.tmp.path().join("tmp")
    }

    fn cache_get(&mut self, key: &str) -> Result<Option<ImageInfo>, BackendError> {
        Ok(self.cache.get(key).cloned().map(|id| self.info(&id)))
    }

    fn cache_put(&mut self, key: &str, image: &ImageId) -> Result<(), BackendError> {
        self.cache.insert(key.to_string(), image.clone());
        Ok(())
    }
}

/// A build context in a temp dir.
pub struct Ctx {
    pub dir: tempfile::TempDir,
}

impl Ctx {
    pub fn new(files: &[(&str, &str)]) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), files);
        Ctx { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, content: &str) {
        tree(self.dir.path(), &[(path, content)]);
    }

    pub fn chmod(&self, path: &str, mode: u32) {
        std::fs::set_permissions(
            self.dir.path().join(path),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
}

pub struct Outcome {
    pub result: Result<BuildResult, BuildError>,
    pub out: String,
}

impl Outcome {
    pub fn id(&self) -> String {
        match &self.result {
            Ok(r) => r.image.clone(),
            Err(e) => panic!("build failed: {e} (line {:?})\n{}", e.line(), self.out),
        }
    }

    pub fn ok(&self) -> &BuildResult {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!("build failed: {e} (line {:?})\n{}", e.line(), self.out),
        }
    }

    pub fn err(&self) -> &BuildError {
        match &self.result {
            Ok(_) => panic!("build succeeded but should not have\n{}", self.out),
            Err(e) => e,
        }
    }
}

pub fn build_with(
    be: &mut TestBackend,
    ctx: &Ctx,
    dockerfile: &str,
    set: impl FnOnce(&mut BuildOptions),
) -> Outcome {
    let df = berth_build::parse(dockerfile).expect("dockerfile parses");
    let mut opts = BuildOptions {
        context: ctx.path().to_path_buf(),
        ..Default::default()
    };
    set(&mut opts);
    let mut out = Vec::new();
    let result = berth_build::build(&df, &opts, be, &mut out);
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
    }
}

pub fn build(be: &mut TestBackend, ctx: &Ctx, dockerfile: &str) -> Outcome {
    build_with(be, ctx, dockerfile, |_| {})
}

/// A backend with a `base` image that has a shell-ish tree and users.
pub fn backend_with_base() -> TestBackend {
    let mut be = TestBackend::new();
    be.add_image(
        "base",
        &[
            ("bin/sh", "#!fake"),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n"),
            ("etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:\nwww-data:x:33:\n"),
            ("usr/local/bin/", ""),
            ("tmp/", ""),
        ],
        RunConfig {
            env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()]),
            cmd: Some(vec!["/bin/sh".to_string()]),
            ..Default::default()
        },
    );
    be
}

pub fn args(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect()
}
