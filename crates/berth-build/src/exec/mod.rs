//! The build executor: walks the stages a target needs, expands each instruction with the ARG and
//! ENV values in scope, computes its cache key, and either reuses the cached image or performs the
//! step through the [`Backend`](crate::backend::Backend). Writes Docker's classic progress text
//! (`Step N/M : ...`, ` ---> Using cache`, ` ---> <id>`) to the output.
//!
//! Semantics are Docker's: the classic builder's output and history, BuildKit's stage skipping
//! (only the stages the target depends on are built). The executor never reads outside the
//! context or a source rootfs (see `fsroot`), and never tags anything: it returns the final id.

mod archive;
mod config;
mod copy;
mod fsroot;
mod glob;
mod run;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::ast::{Dockerfile, Inst, Instruction, Stage};
use crate::backend::{Backend, BackendError, Commit, ImageId, RunConfig, RunRequest};
use crate::ignore::Matcher;
use crate::shell;

use config::{env_get, env_set, shell_of};
use fsroot::Root;

/// What a build was asked for (the `/build` query and the CLI flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory (already extracted from the client's tar).
    pub context: PathBuf,
    /// `--build-arg K=V` (`None`: `--build-arg K`, take the value from the client's environment,
    /// which the CLI has already done, so `None` means unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target`: the stage to stop at (name, case-insensitive); the last stage when `None`.
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `--label` added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network` for RUN steps (`default`, `none`, `host`).
    pub network: Option<String>,
    /// `.dockerignore` patterns, one per line as written (already read by the caller from the
    /// context or `<Dockerfile>.dockerignore`).
    pub ignore: Vec<String>,
}

/// What a finished build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// The final image (of the target stage).
    pub image: ImageId,
    /// Steps executed and steps taken from the cache.
    pub steps: usize,
    pub cached: usize,
}

/// A build failure. `line` is the Dockerfile line of the failing instruction when there is one.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("dockerfile parse error on line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("{message}")]
    Invalid {
        line: Option<usize>,
        message: String,
    },
    #[error("{source}")]
    Backend {
        line: Option<usize>,
        #[source]
        source: BackendError,
    },
    #[error("write progress: {0}")]
    Output(#[from] std::io::Error),
}

impl BuildError {
    /// The Dockerfile line this error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            BuildError::Parse { line, .. } => Some(*line),
            BuildError::Invalid { line, .. } | BuildError::Backend { line, .. } => *line,
            BuildError::Output(_) => None,
        }
    }
}

/// The failure of one step, before the executor attaches the instruction's line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("write progress: {0}")]
    Output(#[from] std::io::Error),
}

impl StepError {
    fn at(self, line: Option<usize>) -> BuildError {
        match self {
            StepError::Invalid(message) | StepError::Io(message) => {
                BuildError::Invalid { line, message }
            }
            StepError::Backend(source) => BuildError::Backend { line, source },
            StepError::Output(e) => BuildError::Output(e),
        }
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Build args usable in RUN without a declaration, never recorded in history or cache keys.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// `os/arch[/variant]` of this host, in Go's names.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm/v7",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("linux/{arch}")
}

/// The value of a predefined platform arg for a target platform.
fn platform_value(name: &str, target: &str) -> Option<String> {
    let build = host_platform();
    let (prefix, p) = match name.strip_prefix("TARGET") {
        Some(rest) => (rest, target.to_string()),
        None => (name.strip_prefix("BUILD")?, build),
    };
    let mut parts = p.splitn(3, '/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts.next().unwrap_or("").to_string();
    let variant = parts.next().unwrap_or("").to_string();
    match prefix {
        "PLATFORM" => Some(p),
        "OS" => Some(os),
        "ARCH" => Some(arch),
        "VARIANT" => Some(variant),
        _ => None,
    }
}

fn short_id(id: &str) -> &str {
    let hexpart = id.strip_prefix("sha256:").unwrap_or(id);
    hexpart.get(..12).unwrap_or(hexpart)
}

/// A finished stage, as later stages see it.
#[derive(Debug, Clone)]
struct StageOut {
    image: Option<ImageId>,
    config: RunConfig,
    author: Option<String>,
    platform: String,
}

/// The builder's state inside one stage.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub image: Option<ImageId>,
    pub config: RunConfig,
    pub author: Option<String>,
    pub platform: String,
    /// Declared args in order, with their values (`None`: declared without a value).
    pub args: Vec<(String, Option<String>)>,
    /// A CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// A step missed the cache: later steps of the stage do not probe it.
    pub busted: bool,
    /// The stage's index in the file.
    pub index: usize,
}

impl State {
    fn new(out: StageOut, index: usize) -> State {
        State {
            image: out.image,
            config: out.config,
            author: out.author,
            platform: out.platform,
            args: Vec::new(),
            cmd_set: false,
            busted: false,
            index,
        }
    }

    fn env(&self) -> &[String] {
        self.config.env.as_deref().unwrap_or(&[])
    }

    /// The value of a variable for expansion: ENV wins over ARG.
    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = env_get(self.env(), name) {
            return Some(v.to_string());
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    /// The declared args with a value that no ENV hides, sorted as `K=V` (RUN's history prefix
    /// and environment).
    pub(crate) fn args_in_scope(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &self.args {
            match v {
                Some(v) => {
                    seen.insert(k, v);
                }
                None => {
                    seen.remove(k.as_str());
                }
            }
        }
        let mut out: Vec<String> = seen
            .into_iter()
            .filter(|(k, _)| env_get(self.env(), k).is_none())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.sort();
        out
    }

    fn declared(&self, name: &str) -> bool {
        self.args.iter().any(|(k, _)| k == name)
    }

    fn out(&self) -> StageOut {
        StageOut {
            image: self.image.clone(),
            config: self.config.clone(),
            author: self.author.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// How a prepared step produces its image.
pub(crate) enum Action {
    Config,
    Run(RunRequest),
    /// WORKDIR: create the directory in a layer if the parent image lacks it.
    Workdir(String),
    /// COPY/ADD: planned against the parent's rootfs only when the cache misses.
    Copy(Box<CopyJob>),
}

/// A COPY/ADD whose cache key is known; the layer is planned and written on a miss.
pub(crate) struct CopyJob {
    cmd: &'static str,
    sources: Vec<copy::Source>,
    src_root: Root,
    from_context: bool,
    dest: String,
    workdir: String,
    chown: Option<String>,
    chmod: Option<u32>,
    parents: bool,
    exclude: Vec<String>,
    extract: bool,
}

/// A step ready to be looked up in the cache or performed.
pub(crate) struct Prepared {
    pub created_by: String,
    /// What else the cache key depends on (content hashes, flags, mounts).
    pub extra: String,
    pub config: RunConfig,
    pub author: Option<String>,
    pub action: Action,
    /// Temporary files to remove once the step is done.
    pub cleanup: Vec<PathBuf>,
}

/// moby's history text for a step that only changes the config.
fn nop(config: &RunConfig, text: &str) -> String {
    format!("{} #(nop)  {text}", shell_of(config).join(" "))
}

fn cache_key(parent: Option<&ImageId>, created_by: &str, extra: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"berth-build cache v1\n");
    h.update(parent.map_or("scratch", String::as_str).as_bytes());
    h.update(b"\n");
    h.update((created_by.len() as u64).to_le_bytes());
    h.update(created_by.as_bytes());
    h.update(extra.as_bytes());
    format!("sha256:{}", hex(&h.finalize()))
}

pub(crate) struct Builder<'a> {
    df: &'a Dockerfile,
    opts: &'a BuildOptions,
    backend: &'a mut dyn Backend,
    out: &'a mut dyn Write,
    ignore: Matcher,
    /// Meta ARGs (before the first FROM) with their values.
    meta: Vec<(String, Option<String>)>,
    /// Every arg name declared in the meta scope or a built stage.
    consumed: BTreeSet<String>,
    built: HashMap<usize, StageOut>,
    /// Stages this build runs.
    selected: BTreeSet<usize>,
    step: usize,
    total: usize,
    executed: usize,
    cached: usize,
    tmp_seq: usize,
    /// An empty directory made on first use (see `empty_root`), removed at the end.
    empty: Option<PathBuf>,
}

/// Runs a build of `dockerfile` with `opts` through `backend`, writing progress to `out`.
pub fn build(
    dockerfile: &Dockerfile,
    opts: &BuildOptions,
    backend: &mut dyn Backend,
    out: &mut dyn Write,
) -> Result<BuildResult, BuildError> {
    let ignore = Matcher::new(&opts.ignore).map_err(|e| BuildError::Invalid {
        line: None,
        message: e.to_string(),
    })?;
    let mut b = Builder {
        df: dockerfile,
        opts,
        backend,
        out,
        ignore,
        meta: Vec::new(),
        consumed: BTreeSet::new(),
        built: HashMap::new(),
        selected: BTreeSet::new(),
        step: 0,
        total: 0,
        executed: 0,
        cached: 0,
        tmp_seq: 0,
        empty: None,
    };
    let result = b.run();
    if let Some(p) = b.empty.take() {
        let _ = std::fs::remove_dir(p);
    }
    result
}

impl Builder<'_> {
    fn say(&mut self, text: &str) -> Result<(), std::io::Error> {
        self.out.write_all(text.as_bytes())
    }

    fn escape(&self) -> char {
        self.df.escape
    }

    fn meta_lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.meta.iter().rev().find(|(k, _)| k == name) {
            return v.clone();
        }
        if PLATFORM_ARGS.contains(&name) {
            return platform_value(name, &host_platform());
        }
        None
    }

    fn expand_meta(&self, word: &str) -> Result<String, StepError> {
        shell::expand(word, &|n| self.meta_lookup(n), self.escape())
            .map_err(|e| StepError::Invalid(format!("failed to process {word:?}: {}", e.message)))
    }

    pub(crate) fn expand(&self, st: &State, word: &str) -> Result<String, StepError> {
        shell::expand(word, &|n| st.lookup(n), self.escape())
            .map_err(|e| StepError::Invalid(format!("failed to process {word:?}: {}", e.message)))
    }

    fn expand_words(&self, st: &State, text: &str) -> Result<Vec<String>, StepError> {
        shell::expand_words(text, &|n| st.lookup(n), self.escape())
            .map_err(|e| StepError::Invalid(format!("failed to process {text:?}: {}", e.message)))
    }

    fn given_arg(&self, name: &str) -> Option<String> {
        self.opts.build_args.get(name).cloned().flatten()
    }

    fn run(&mut self) -> Result<BuildResult, BuildError> {
        let df = self.df;
        if df.stages.is_empty() {
            return Err(BuildError::Invalid {
                line: None,
                message: "the Dockerfile has no FROM instruction".to_string(),
            });
        }
        // Meta ARGs: visible only in FROM lines.
        for inst in &df.meta_args {
            if let Inst::Arg(decls) = &inst.kind {
                for d in decls {
                    let value = match (self.given_arg(&d.name), &d.default) {
                        (Some(v), _) => Some(v),
                        (None, Some(def)) => {
                            Some(self.expand_meta(def).map_err(|e| e.at(Some(inst.line)))?)
                        }
                        (None, None) => None,
                    };
                    self.consumed.insert(d.name.clone());
                    self.meta.push((d.name.clone(), value));
                }
            }
        }
        let target = self.target_stage()?;
        let order = self.stage_order(target)?;
        self.selected = order.iter().copied().collect();
        self.total = order
            .iter()
            .map(|&i| 1 + df.stages[i].instructions.len())
            .sum::<usize>()
            + usize::from(!self.opts.labels.is_empty());
        for &i in &order {
            self.build_stage(&df.stages[i])?;
        }
        let mut last = self
            .built
            .get(&target)
            .cloned()
            .ok_or_else(|| BuildError::Invalid {
                line: None,
                message: "the target stage was not built".to_string(),
            })?;
        if !self.opts.labels.is_empty() {
            let mut st = State::new(last, target);
            self.label_step(&mut st).map_err(|e| e.at(None))?;
            last = st.out();
        }
        let unused: Vec<&str> = self
            .opts
            .build_args
            .keys()
            .filter(|k| {
                !self.consumed.contains(*k)
                    && !PROXY_ARGS.contains(&k.as_str())
                    && !PLATFORM_ARGS.contains(&k.as_str())
            })
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            let text = format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            );
            self.say(&text)?;
        }
        let image = last.image.ok_or_else(|| BuildError::Invalid {
            line: None,
            message: "No image was generated. Is your Dockerfile empty?".to_string(),
        })?;
        Ok(BuildResult {
            image,
            steps: self.executed,
            cached: self.cached,
        })
    }

    fn target_stage(&self) -> Result<usize, BuildError> {
        let stages = &self.df.stages;
        match &self.opts.target {
            None => Ok(stages.len() - 1),
            Some(t) => {
                let want = t.to_lowercase();
                stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(want.as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| BuildError::Invalid {
                        line: None,
                        message: format!("target stage {t:?} could not be found"),
                    })
            }
        }
    }

    /// The stage a `--from` value names (an index or a name), if it names one.
    fn stage_ref(&self, value: &str, current: usize) -> Option<usize> {
        if let Ok(n) = value.parse::<usize>() {
            return (n < self.df.stages.len() && n != current).then_some(n);
        }
        let want = value.to_lowercase();
        self.df
            .stages
            .iter()
            .find(|s| s.index != current && s.name.as_deref() == Some(want.as_str()))
            .map(|s| s.index)
    }

    /// The stage a FROM names (only earlier stages), if any.
    fn base_stage_ref(&self, stage: &Stage, word: &str) -> Option<usize> {
        let want = word.to_lowercase();
        self.df.stages[..stage.index]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(want.as_str()))
            .map(|s| s.index)
    }

    /// The stages a stage depends on.
    fn deps(&self, stage: &Stage) -> Vec<usize> {
        let mut deps = Vec::new();
        if let Ok(word) = self.expand_meta(&stage.image) {
            if let Some(i) = self.base_stage_ref(stage, &word) {
                deps.push(i);
            }
        }
        let mut from_ref = |raw: &str| {
            let v = self.expand_meta(raw).unwrap_or_else(|_| raw.to_string());
            if let Some(i) = self.stage_ref(&v, stage.index) {
                deps.push(i);
            }
        };
        for inst in &stage.instructions {
            match &inst.kind {
                Inst::Copy(c) | Inst::Add(c) => {
                    if let Some(f) = &c.from {
                        from_ref(f);
                    }
                }
                Inst::Run(r) => {
                    for m in &r.mounts {
                        if let Some(f) = &m.from {
                            from_ref(f);
                        }
                    }
                }
                _ => {}
            }
        }
        deps
    }

    /// The stages to build for `target`, dependencies first (depth-first post-order).
    fn stage_order(&self, target: usize) -> Result<Vec<usize>, BuildError> {
        fn visit(
            b: &Builder<'_>,
            i: usize,
            state: &mut Vec<u8>,
            order: &mut Vec<usize>,
        ) -> Result<(), BuildError> {
            match state[i] {
                2 => return Ok(()),
                1 => {
                    let stage = &b.df.stages[i];
                    return Err(BuildError::Invalid {
                        line: Some(stage.line),
                        message: format!(
                            "circular dependency detected on stage: {}",
                            stage.name.clone().unwrap_or_else(|| i.to_string())
                        ),
                    });
                }
                _ => {}
            }
            state[i] = 1;
            for d in b.deps(&b.df.stages[i]) {
                visit(b, d, state, order)?;
            }
            state[i] = 2;
            order.push(i);
            Ok(())
        }
        let mut state = vec![0u8; self.df.stages.len()];
        let mut order = Vec::new();
        visit(self, target, &mut state, &mut order)?;
        // File order (what Docker's classic builder prints) when it respects every dependency;
        // a forward `--from` reference keeps the dependency order.
        let mut sorted = order.clone();
        sorted.sort_unstable();
        let pos: HashMap<usize, usize> = sorted.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let respects = sorted.iter().enumerate().all(|(p, &i)| {
            self.deps(&self.df.stages[i])
                .iter()
                .all(|d| pos.get(d).is_some_and(|&dp| dp < p))
        });
        Ok(if respects { sorted } else { order })
    }

    fn step_header(&mut self, original: &str) -> Result<(), std::io::Error> {
        self.step += 1;
        let text = format!("Step {}/{} : {}\n", self.step, self.total, original);
        self.say(&text)
    }

    fn build_stage(&mut self, stage: &Stage) -> Result<(), BuildError> {
        self.step_header(&stage.original)?;
        let mut st = self.from(stage).map_err(|e| e.at(Some(stage.line)))?;
        let shown = st.image.as_deref().map(short_id).unwrap_or("").to_string();
        self.say(&format!(" ---> {shown}\n"))?;
        // ONBUILD triggers of the base image run right after FROM; the child does not keep them.
        let triggers = st.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            let s = if triggers.len() == 1 { "" } else { "s" };
            self.say(&format!(
                "# Executing {} build trigger{s}\n",
                triggers.len()
            ))?;
            for t in &triggers {
                let inst = parse_trigger(t).map_err(|message| BuildError::Invalid {
                    line: Some(stage.line),
                    message,
                })?;
                self.dispatch(&mut st, &inst)
                    .map_err(|e| e.at(Some(stage.line)))?;
            }
        }
        for inst in &stage.instructions {
            self.step_header(&inst.original)?;
            self.dispatch(&mut st, inst)
                .map_err(|e| e.at(Some(inst.line)))?;
            let shown = st.image.as_deref().map(short_id).unwrap_or("").to_string();
            self.say(&format!(" ---> {shown}\n"))?;
        }
        self.built.insert(stage.index, st.out());
        Ok(())
    }

    /// FROM: the base image, an earlier stage, or scratch.
    fn from(&mut self, stage: &Stage) -> Result<State, StepError> {
        let word = self.expand_meta(&stage.image)?;
        if word.is_empty() {
            return Err(StepError::Invalid(format!(
                "base name ({}) should not be blank",
                stage.image
            )));
        }
        if let Some(i) = self.base_stage_ref(stage, &word) {
            let out = self.built.get(&i).cloned().ok_or_else(|| {
                StepError::Invalid(format!("stage {word:?} was not built before this one"))
            })?;
            return Ok(State::new(out, stage.index));
        }
        if word.eq_ignore_ascii_case("scratch") {
            return Ok(State::new(
                StageOut {
                    image: None,
                    config: RunConfig::default(),
                    author: None,
                    platform: host_platform(),
                },
                stage.index,
            ));
        }
        let platform = match &stage.platform {
            Some(p) => Some(self.expand_meta(p)?),
            None => None,
        };
        let info =
            self.backend
                .image(&word, platform.as_deref(), self.opts.pull, &mut *self.out)?;
        Ok(State::new(
            StageOut {
                image: Some(info.id),
                config: info.config,
                author: info.author,
                platform: info.platform,
            },
            stage.index,
        ))
    }

    /// A `--from` value: a stage's or an image's rootfs.
    pub(crate) fn source_root(
        &mut self,
        st: &State,
        raw: &str,
    ) -> Result<(Root, String), StepError> {
        let value = self.expand(st, raw)?;
        if let Ok(n) = value.parse::<usize>() {
            if n >= st.index {
                return Err(StepError::Invalid(format!(
                    "invalid from flag value {value}: refers to current or future build stage"
                )));
            }
        }
        let stage = self.stage_ref(&value, st.index);
        let image = match stage {
            Some(i) => {
                let out = self.built.get(&i).ok_or_else(|| {
                    StepError::Invalid(format!(
                        "stage {value:?} is used by --from but was not built (name it without variables)"
                    ))
                })?;
                out.image.clone()
            }
            None => {
                let info = self.backend.image(&value, None, false, &mut *self.out)?;
                Some(info.id)
            }
        };
        let path = self.backend.rootfs(image.as_ref())?;
        let ident = image.unwrap_or_else(|| "scratch".to_string());
        Ok((Root::image(path), ident))
    }

    pub(crate) fn tmp_path(&mut self, what: &str) -> PathBuf {
        self.tmp_seq += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.backend.tmp_dir().join(format!(
            "build-{}-{}-{nanos}-{what}",
            std::process::id(),
            self.tmp_seq
        ))
    }

    /// Looks the step up in the cache, or performs it; updates the state either way.
    fn commit(&mut self, st: &mut State, p: Prepared) -> Result<(), StepError> {
        let result = self.commit_inner(st, &p);
        for path in &p.cleanup {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
        result
    }

    fn commit_inner(&mut self, st: &mut State, p: &Prepared) -> Result<(), StepError> {
        let key = cache_key(st.image.as_ref(), &p.created_by, &p.extra);
        if !self.opts.no_cache && !st.busted {
            if let Some(info) = self.backend.cache_get(&key)? {
                self.say(" ---> Using cache\n")?;
                st.image = Some(info.id);
                st.config = info.config;
                st.author = info.author;
                self.cached += 1;
                return Ok(());
            }
        }
        st.busted = true;
        let commit = Commit {
            parent: st.image.clone(),
            config: p.config.clone(),
            created_by: p.created_by.clone(),
            author: p.author.clone(),
        };
        let id = match &p.action {
            Action::Config => self.backend.commit_config(&commit)?,
            Action::Workdir(dir) => match self.workdir_layer(st, dir)? {
                Some(items) => self.commit_items(&commit, &items)?,
                None => self.backend.commit_config(&commit)?,
            },
            Action::Copy(job) => {
                let items = self.copy_layer(st, job)?;
                self.commit_items(&commit, &items)?
            }
            Action::Run(req) => self.backend.run(&commit, req, &mut *self.out)?,
        };
        self.backend.cache_put(&key, &id)?;
        st.image = Some(id);
        st.config = p.config.clone();
        st.author = p.author.clone();
        self.executed += 1;
        Ok(())
    }

    fn commit_items(
        &mut self,
        commit: &Commit,
        items: &[copy::Item],
    ) -> Result<ImageId, StepError> {
        let path = self.tmp_path("layer.tar");
        let result = copy::write_layer(items, &path)
            .and_then(|()| Ok(self.backend.commit_layer(commit, &path)?));
        let _ = std::fs::remove_file(&path);
        result
    }

    /// The layer of a WORKDIR whose directory is missing from the parent image (`None`: it
    /// exists, the step changes only the config).
    fn workdir_layer(
        &mut self,
        st: &State,
        dir: &str,
    ) -> Result<Option<Vec<copy::Item>>, StepError> {
        let root = Root::image(self.backend.rootfs(st.image.as_ref())?);
        let prefix = root.walk(dir.trim_start_matches('/'), true)?;
        if prefix.missing.is_empty() {
            if prefix.meta.as_ref().is_some_and(|m| !m.is_dir()) {
                return Err(StepError::Invalid(format!(
                    "cannot create the working directory {dir}: a file of that name exists"
                )));
            }
            return Ok(None);
        }
        let mut dirs = Vec::new();
        let mut cur = prefix.rel.clone();
        for c in &prefix.missing {
            cur = fsroot::join_rel(&cur, c);
            dirs.push(cur.clone());
        }
        let items = copy::dir_entries(&dirs);
        Ok(Some(copy::with_parents(&root, items, None, (0, 0))))
    }

    /// The layer of a COPY/ADD, planned against the parent's rootfs (destination rules, owner
    /// names, parent directories).
    fn copy_layer(&mut self, st: &State, job: &CopyJob) -> Result<Vec<copy::Item>, StepError> {
        let dst_root = Root::image(self.backend.rootfs(st.image.as_ref())?);
        let owner = match &job.chown {
            Some(spec) => fsroot::resolve_chown(&dst_root, spec)?,
            None => (0, 0),
        };
        let exclude = exclude_matcher(&job.exclude)?;
        let spec = copy::CopySpec {
            cmd: job.cmd,
            sources: job.sources.clone(),
            src_root: &job.src_root,
            ignore: job.from_context.then_some(&self.ignore),
            dest: job.dest.clone(),
            workdir: job.workdir.clone(),
            dst_root: &dst_root,
            owner,
            chmod: job.chmod,
            parents: job.parents,
            exclude,
            extract: job.extract,
        };
        Ok(spec.plan()?.items)
    }

    /// An empty directory: the stand-in destination root for COPY's cache key (the real
    /// parent rootfs is a function of the parent id, which the key holds already).
    fn empty_root(&mut self) -> Result<Root, StepError> {
        if self.empty.is_none() {
            let p = self.tmp_path("empty");
            std::fs::create_dir_all(&p)
                .map_err(|e| StepError::Io(format!("{}: {e}", p.display())))?;
            self.empty = Some(p);
        }
        Ok(Root::image(self.empty.clone().unwrap_or_default()))
    }

    fn config_step(
        &mut self,
        st: &mut State,
        config: RunConfig,
        text: &str,
        extra: String,
    ) -> Result<(), StepError> {
        let p = Prepared {
            created_by: nop(&st.config, text),
            extra,
            config,
            author: st.author.clone(),
            action: Action::Config,
            cleanup: Vec::new(),
        };
        self.commit(st, p)
    }

    fn label_step(&mut self, st: &mut State) -> Result<(), StepError> {
        let shown: Vec<String> = self
            .opts
            .labels
            .iter()
            .map(|(k, v)| format!("{k:?}='{v}'"))
            .collect();
        self.step_header(&format!("LABEL {}", shown.join(" ")))?;
        let mut cfg = st.config.clone();
        let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
        let mut parts = Vec::new();
        for (k, v) in &self.opts.labels {
            labels.insert(k.clone(), v.clone());
            parts.push(format!("{k}={v}"));
        }
        self.config_step(
            st,
            cfg,
            &format!("LABEL {}", parts.join(" ")),
            String::new(),
        )?;
        let shown = st.image.as_deref().map(short_id).unwrap_or("").to_string();
        self.say(&format!(" ---> {shown}\n"))?;
        Ok(())
    }

    /// One instruction of a stage.
    fn dispatch(&mut self, st: &mut State, inst: &Instruction) -> Result<(), StepError> {
        match &inst.kind {
            Inst::Arg(decls) => {
                let mut shown = Vec::new();
                for d in decls {
                    let value = if let Some(v) = self.given_arg(&d.name) {
                        Some(v)
                    } else if let Some(def) = &d.default {
                        Some(self.expand(st, def)?)
                    } else if let Some((_, v)) = self.meta.iter().rev().find(|(k, _)| *k == d.name)
                    {
                        v.clone()
                    } else if PLATFORM_ARGS.contains(&d.name.as_str()) {
                        platform_value(&d.name, &st.platform)
                    } else {
                        None
                    };
                    self.consumed.insert(d.name.clone());
                    st.args.push((d.name.clone(), value));
                    shown.push(match &d.default {
                        Some(def) => format!("{}={def}", d.name),
                        None => d.name.clone(),
                    });
                }
                let cfg = st.config.clone();
                self.config_step(st, cfg, &format!("ARG {}", shown.join(" ")), String::new())
            }
            Inst::Env(pairs) => {
                let mut cfg = st.config.clone();
                let mut parts = Vec::new();
                let mut env = cfg.env.take().unwrap_or_default();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(StepError::Invalid("ENV names can not be blank".to_string()));
                    }
                    env_set(&mut env, &k, &v);
                    parts.push(format!("{k}={v}"));
                }
                cfg.env = Some(env);
                self.config_step(st, cfg, &format!("ENV {}", parts.join(" ")), String::new())
            }
            Inst::Label(pairs) => {
                let mut cfg = st.config.clone();
                let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(StepError::Invalid(
                            "LABEL names can not be blank".to_string(),
                        ));
                    }
                    labels.insert(k.clone(), v.clone());
                    parts.push(format!("{k}={v}"));
                }
                self.config_step(
                    st,
                    cfg,
                    &format!("LABEL {}", parts.join(" ")),
                    String::new(),
                )
            }
            Inst::Expose(words) => {
                let mut expanded = Vec::new();
                for w in words {
                    expanded.extend(self.expand_words(st, w)?);
                }
                let ports = config::parse_ports(&expanded)?;
                let mut cfg = st.config.clone();
                config::add_ports(&mut cfg, &ports);
                self.config_step(
                    st,
                    cfg,
                    &format!("EXPOSE {}", ports.join(" ")),
                    String::new(),
                )
            }
            Inst::Volume(paths) => {
                let mut vols = Vec::new();
                for w in paths {
                    // One path per word (JSON elements may hold spaces).
                    let v = self.expand(st, w)?.trim().to_string();
                    if v.is_empty() {
                        return Err(StepError::Invalid(
                            "VOLUME specified can not be an empty string".to_string(),
                        ));
                    }
                    vols.push(v);
                }
                if vols.is_empty() {
                    return Err(StepError::Invalid(
                        "VOLUME specified can not be an empty string".to_string(),
                    ));
                }
                let mut cfg = st.config.clone();
                let map = cfg.volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                self.config_step(
                    st,
                    cfg,
                    &format!("VOLUME [{}]", vols.join(" ")),
                    String::new(),
                )
            }
            Inst::User(u) => {
                let user = self.expand(st, u)?;
                let mut cfg = st.config.clone();
                cfg.user = Some(user.clone());
                self.config_step(st, cfg, &format!("USER {user}"), String::new())
            }
            Inst::Workdir(w) => self.workdir(st, w),
            Inst::StopSignal(s) => {
                let sig = self.expand(st, s)?;
                if !config::valid_signal(&sig) {
                    return Err(StepError::Invalid(format!("Invalid signal: {sig}")));
                }
                let mut cfg = st.config.clone();
                cfg.stop_signal = Some(sig.clone());
                self.config_step(st, cfg, &format!("STOPSIGNAL {sig}"), String::new())
            }
            Inst::Healthcheck(hc) => {
                let json = config::healthcheck_json(hc)?;
                let mut cfg = st.config.clone();
                let text = format!("HEALTHCHECK {json}");
                cfg.healthcheck = Some(json);
                self.config_step(st, cfg, &text, String::new())
            }
            Inst::Shell(v) => {
                if v.is_empty() {
                    return Err(StepError::Invalid(
                        "SHELL requires at least one argument".to_string(),
                    ));
                }
                let mut cfg = st.config.clone();
                cfg.shell = Some(v.clone());
                self.config_step(st, cfg, &format!("SHELL [{}]", v.join(" ")), String::new())
            }
            Inst::Cmd(c) => {
                let argv = config::cmdline_argv(c, &st.config);
                let mut cfg = st.config.clone();
                cfg.cmd = Some(argv.clone());
                st.cmd_set = true;
                let text = format!("CMD {}", config::go_quoted_list(&argv));
                self.config_step(st, cfg, &text, String::new())
            }
            Inst::Entrypoint(c) => {
                let argv = config::cmdline_argv(c, &st.config);
                let mut cfg = st.config.clone();
                cfg.entrypoint = Some(argv.clone());
                if !st.cmd_set {
                    cfg.cmd = None;
                }
                let text = format!("ENTRYPOINT {}", config::go_quoted_list(&argv));
                let extra = format!("cmd_set={}", st.cmd_set);
                self.config_step(st, cfg, &text, extra)
            }
            Inst::Onbuild(t) => {
                let trigger = normalize_trigger(t);
                let mut cfg = st.config.clone();
                cfg.on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.clone());
                self.config_step(st, cfg, &format!("ONBUILD {trigger}"), String::new())
            }
            Inst::Maintainer(m) => {
                let cfg = st.config.clone();
                let p = Prepared {
                    created_by: nop(&st.config, &format!("MAINTAINER {m}")),
                    extra: String::new(),
                    config: cfg,
                    author: Some(m.clone()),
                    action: Action::Config,
                    cleanup: Vec::new(),
                };
                self.commit(st, p)
            }
            Inst::Run(r) => {
                let p = self.prepare_run(st, r)?;
                self.commit(st, p)
            }
            Inst::Copy(c) => {
                let p = self.prepare_copy(st, c, false)?;
                self.commit(st, p)
            }
            Inst::Add(c) => {
                let p = self.prepare_copy(st, c, true)?;
                self.commit(st, p)
            }
        }
    }

    /// WORKDIR: relative to the previous one; creates the directory in a layer when the parent
    /// image does not have it, else changes only the config.
    fn workdir(&mut self, st: &mut State, raw: &str) -> Result<(), StepError> {
        let w = self.expand(st, raw)?;
        if w.is_empty() {
            return Err(StepError::Invalid(
                "WORKDIR requires exactly one argument".to_string(),
            ));
        }
        let prev = st
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".to_string());
        let dir = if w.starts_with('/') {
            fsroot::clean_abs(&w)
        } else {
            fsroot::clean_abs(&format!("{prev}/{w}"))
        };
        let mut cfg = st.config.clone();
        cfg.working_dir = Some(dir.clone());
        let created_by = nop(&st.config, &format!("WORKDIR {dir}"));
        let action = Action::Workdir(dir);
        let p = Prepared {
            created_by,
            extra: String::new(),
            config: cfg,
            author: st.author.clone(),
            action,
            cleanup: Vec::new(),
        };
        self.commit(st, p)
    }

    /// COPY / ADD.
    fn prepare_copy(
        &mut self,
        st: &State,
        c: &crate::ast::Copy,
        is_add: bool,
    ) -> Result<Prepared, StepError> {
        let cmd = if is_add { "ADD" } else { "COPY" };
        if is_add && c.from.is_some() {
            return Err(StepError::Invalid(
                "ADD does not support the --from flag".to_string(),
            ));
        }
        let (src_root, src_ident, from_context) = match &c.from {
            Some(f) => {
                let (root, ident) = self.source_root(st, f)?;
                (root, ident, false)
            }
            None => (
                Root::context(self.opts.context.clone()),
                "context".to_string(),
                true,
            ),
        };
        let chown = match &c.chown {
            Some(spec) => Some(self.expand(st, spec)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(m) => {
                let m = self.expand(st, m)?;
                let v = u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| StepError::Invalid(format!("invalid chmod parameter: {m:?}")))?;
                Some(v)
            }
            None => None,
        };
        let mut cleanup = Vec::new();
        let mut sources = Vec::new();
        for raw in &c.sources {
            if let Some(h) = heredoc_for(raw, &c.heredocs) {
                let data = if h.expand {
                    run::expand_heredoc(&h.content, &|n| st.lookup(n))?
                } else {
                    h.content.clone()
                };
                sources.push(copy::Source::Data {
                    name: h.name.clone(),
                    data: data.into_bytes(),
                });
                continue;
            }
            let s = self.expand(st, raw)?;
            if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                if s.ends_with(".git") || s.contains(".git#") {
                    return Err(StepError::Invalid(format!(
                        "ADD of a git repository is not supported: {s}"
                    )));
                }
                let path = self.tmp_path("fetch");
                cleanup.push(path.clone());
                let name = self.backend.fetch(&s, &path)?;
                if let Some(sum) = &c.checksum {
                    let sum = self.expand(st, sum)?;
                    let got = file_sha256(&path)?;
                    if sum != got {
                        return Err(StepError::Invalid(format!("digest mismatch {sum}: {got}")));
                    }
                }
                let name = if name.is_empty() { url_name(&s) } else { name };
                sources.push(copy::Source::Fetched {
                    name,
                    host: path,
                    mode: 0o600,
                });
                continue;
            }
            if is_add && s.starts_with("git@") {
                return Err(StepError::Invalid(format!(
                    "ADD of a git repository is not supported: {s}"
                )));
            }
            sources.push(copy::Source::Path(s));
        }
        let dest = self.expand(st, &c.dest)?;
        let mut exclude = Vec::new();
        for e in &c.exclude {
            exclude.push(self.expand(st, e)?);
        }
        let workdir = st
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".to_string());
        // The key: the sources' content as they would land below the destination, the flags as
        // written (owner names are resolved in the parent, which the key names).
        let empty = self.empty_root()?;
        let spec = copy::CopySpec {
            cmd,
            sources: sources.clone(),
            src_root: &src_root,
            ignore: from_context.then_some(&self.ignore),
            dest: dest.clone(),
            workdir: workdir.clone(),
            dst_root: &empty,
            owner: (0, 0),
            chmod,
            parents: c.parents,
            exclude: exclude_matcher(&exclude)?,
            extract: is_add,
        };
        let plan = spec.plan()?;
        let hash = copy::hash_items(&plan.items)?;
        let created_by = format!(
            "{} #(nop) {cmd} {}:{hash} in {dest} ",
            shell_of(&st.config).join(" "),
            plan.label
        );
        let extra = format!(
            "from={src_ident} chown={chown:?} chmod={chmod:?} parents={} link={} exclude={exclude:?}",
            c.parents, c.link
        );
        let job = CopyJob {
            cmd,
            sources,
            src_root,
            from_context,
            dest,
            workdir,
            chown,
            chmod,
            parents: c.parents,
            exclude,
            extract: is_add,
        };
        Ok(Prepared {
            created_by,
            extra,
            config: st.config.clone(),
            author: st.author.clone(),
            action: Action::Copy(Box::new(job)),
            cleanup,
        })
    }
}

fn exclude_matcher(patterns: &[String]) -> Result<Option<Matcher>, StepError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    Matcher::new(patterns)
        .map(Some)
        .map_err(|e| StepError::Invalid(e.to_string()))
}

/// The heredoc a COPY source word (`<<EOF`, `<<-EOF`, `<<"EOF"`) names.
fn heredoc_for<'h>(
    raw: &str,
    heredocs: &'h [crate::ast::Heredoc],
) -> Option<&'h crate::ast::Heredoc> {
    let name = heredoc_marker(raw)?;
    heredocs.iter().find(|h| h.name == name)
}

/// `<<EOF` / `<<-EOF` / `<<"EOF"` / `<<'EOF'` → `EOF`.
pub(crate) fn heredoc_marker(word: &str) -> Option<String> {
    let rest = word.trim().strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let name = rest.trim_matches(|c| c == '"' || c == '\'');
    (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string())
}

/// The last path component of a URL (its query and fragment dropped), or `download`.
fn url_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download")
        .to_string()
}

fn file_sha256(path: &std::path::Path) -> Result<String, StepError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    copy::hash_file(&mut h, path, &mut buf)?;
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

/// ONBUILD stores the trigger with its keyword upper-cased, as Docker does.
fn normalize_trigger(t: &str) -> String {
    let t = t.trim();
    match t.split_once(char::is_whitespace) {
        Some((kw, rest)) => format!("{} {}", kw.to_ascii_uppercase(), rest.trim_start()),
        None => t.to_ascii_uppercase(),
    }
}

/// Parses one ONBUILD trigger into an instruction.
fn parse_trigger(t: &str) -> Result<Instruction, String> {
    let df = crate::parse::parse(&format!("FROM scratch\n{t}\n"))
        .map_err(|e| format!("invalid ONBUILD trigger {t:?}: {}", e.message))?;
    df.stages
        .into_iter()
        .next()
        .and_then(|s| s.instructions.into_iter().next())
        .ok_or_else(|| format!("invalid ONBUILD trigger {t:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_and_hex() {
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }

    #[test]
    fn platform_args_from_a_platform() {
        assert_eq!(
            platform_value("TARGETARCH", "linux/arm64/v8").as_deref(),
            Some("arm64")
        );
        assert_eq!(
            platform_value("TARGETVARIANT", "linux/arm64/v8").as_deref(),
            Some("v8")
        );
        assert_eq!(
            platform_value("TARGETOS", "linux/amd64").as_deref(),
            Some("linux")
        );
        assert_eq!(
            platform_value("TARGETVARIANT", "linux/amd64").as_deref(),
            Some("")
        );
        assert!(platform_value("BUILDPLATFORM", "x").is_some());
        assert_eq!(platform_value("OTHER", "linux/amd64"), None);
    }

    #[test]
    fn heredoc_markers() {
        assert_eq!(heredoc_marker("<<EOF").as_deref(), Some("EOF"));
        assert_eq!(heredoc_marker("<<-EOF").as_deref(), Some("EOF"));
        assert_eq!(heredoc_marker("<<\"EOF\"").as_deref(), Some("EOF"));
        assert_eq!(heredoc_marker("file"), None);
    }

    #[test]
    fn url_names() {
        assert_eq!(url_name("https://example.com/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_name("https://example.com/"), "download");
        assert_eq!(url_name("https://example.com/dir/"), "dir");
    }

    #[test]
    fn triggers_are_upper_cased() {
        assert_eq!(normalize_trigger("run echo hi"), "RUN echo hi");
        assert_eq!(normalize_trigger("COPY . /app"), "COPY . /app");
    }
}
