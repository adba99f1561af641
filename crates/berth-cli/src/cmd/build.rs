//! `berth build [OPTIONS] PATH|-`: Docker's classic `POST /build`. The context directory is
//! tarred here, streamed as it is read, without the files `.dockerignore` excludes (the
//! Dockerfile and `.dockerignore` are always sent, as docker's CLI does); a Dockerfile outside
//! the context or read from stdin (`-f -`) goes into the tar under a generated name. `-` reads a
//! tar (or a lone Dockerfile) from stdin.
//!
//! The daemon's stream (`Step N/M : ...`, ` ---> Using cache`, the RUN output, `aux.ID`) is shown
//! as one line per step with its duration or `CACHED`, the RUN output indented, and a summary;
//! `--progress=plain` prints the stream as docker's classic builder does, `-q` only the id.
//!
//! It never reads a file the `.dockerignore` excludes, and never sends one.

use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use berth_build::ignore::Matcher;
use berth_types::Reference;
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{json_lines, with_query, ApiError, Body, Client, ConnectError, ReaderBody};
use crate::cmd::status;
use crate::stream::stdin_is_tty;

/// The header that carries `--secret`s to berthd: base64 of `{"id": "<base64 content>"}`.
pub const SECRETS_HEADER: &str = "X-Berth-Build-Secrets";

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default is "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take its value from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Secret to expose to the build (id=ID,src=PATH or id=ID,env=VAR)
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Type of progress output: auto, plain, quiet
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet", "rawjson"])]
    pub progress: String,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Compress the build context using gzip
    #[arg(long)]
    pub compress: bool,
    /// The build context: a directory, or "-" for a tar or a Dockerfile on stdin
    pub context: String,
}

/// How the stream is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One line per step, durations, `CACHED`, RUN output indented, a summary.
    Readable,
    /// The daemon's text as is (docker's classic output).
    Plain,
    /// Nothing but the id (the output is kept and printed on failure).
    Quiet,
}

pub async fn run(client: &mut Client, args: BuildArgs) -> Result<i32> {
    let started = Instant::now();
    let mode = if args.quiet || args.progress == "quiet" {
        Mode::Quiet
    } else if args.progress == "plain" || args.progress == "rawjson" {
        Mode::Plain
    } else {
        Mode::Readable
    };
    for t in &args.tags {
        if Reference::parse_normalized(t).is_err() {
            return Err(flag_error(&format!(
                "invalid argument {t:?} for \"-t, --tag\" flag: invalid reference format"
            )));
        }
    }
    let build_args = build_args(&args.build_args, |k| std::env::var(k).ok());
    let labels = labels(&args.labels);
    let secrets = match secrets_header(&args.secrets, |k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => return Err(flag_error(&format!("{e:#}"))),
    };
    if let Some(p) = &args.iidfile {
        // As docker: a stale id file never survives a failed build.
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => bail!("remove the image id file {p}: {e}"),
        }
    }
    let ctx = prepare_context(&args)?;

    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &args.tags {
        q.push(("t", t.clone()));
    }
    q.push(("dockerfile", ctx.dockerfile.clone()));
    if !build_args.is_empty() {
        q.push(("buildargs", serde_json::to_string(&build_args)?));
    }
    if !labels.is_empty() {
        q.push(("labels", serde_json::to_string(&labels)?));
    }
    if let Some(t) = &args.target {
        q.push(("target", t.clone()));
    }
    if args.no_cache {
        q.push(("nocache", "1".into()));
    }
    if args.pull {
        q.push(("pull", "1".into()));
    }
    if mode == Mode::Quiet {
        q.push(("q", "1".into()));
    }
    if let Some(n) = &args.network {
        q.push(("networkmode", n.clone()));
    }
    if let Some(p) = &args.platform {
        q.push(("platform", p.clone()));
    }
    for h in &args.add_hosts {
        q.push(("extrahosts", h.clone()));
    }
    if !args.cache_from.is_empty() {
        q.push(("cachefrom", serde_json::to_string(&args.cache_from)?));
    }
    q.push(("rm", if args.rm { "1" } else { "0" }.into()));
    if args.force_rm {
        q.push(("forcerm", "1".into()));
    }
    q.push(("version", "1".into()));
    let mut headers: Vec<(&str, String)> = Vec::new();
    if let Some(cfg) = crate::cmd::login::registry_config_header() {
        headers.push(("X-Registry-Config", cfg));
    }
    if let Some(s) = secrets {
        headers.push((SECRETS_HEADER, s));
    }

    let resp = client
        .send_stream(
            Method::POST,
            &with_query("/build", &q),
            ctx.body,
            "application/x-tar",
            &headers,
        )
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            // A context that could not be read explains the aborted request best.
            if let Some(msg) = ctx.failure.lock().ok().and_then(|g| g.clone()) {
                bail!("error reading the build context: {msg}");
            }
            return Err(daemon_error(e));
        }
    };

    let mut progress = Progress::new(mode, started, io::stdout());
    let mut body = resp.into_body();
    let streamed = json_lines(&mut body, |v| {
        progress.feed(&v).map_err(anyhow::Error::from)
    })
    .await;
    let failure = match streamed {
        Ok(()) => None,
        Err(e) => Some(match e.downcast::<Failure>() {
            Ok(f) => f,
            Err(e) => Failure {
                message: format!("{e:#}"),
                code: 1,
            },
        }),
    };
    if let Some(f) = failure {
        progress.fail();
        if mode == Mode::Quiet {
            let _ = io::stderr().write_all(&progress.kept);
        }
        return Err(status(f.code, f.message));
    }
    let Some(id) = progress.image_id() else {
        progress.fail();
        return Err(status(
            1,
            "the daemon ended the build without naming the image it built".to_string(),
        ));
    };
    progress.done(&id, &args.tags);
    if let Some(p) = &args.iidfile {
        std::fs::write(p, &id).with_context(|| format!("write the image id to {p}"))?;
    }
    Ok(0)
}

/// docker's exit code for an unreachable daemon (125) or a refused build (1, its message).
fn daemon_error(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<ConnectError>().is_some() {
        return status(125, format!("{e:#}"));
    }
    if let Some(a) = e.downcast_ref::<ApiError>() {
        return status(1, a.to_string());
    }
    e
}

/// A flag error, as docker prints them (exit 125).
fn flag_error(msg: &str) -> anyhow::Error {
    status(125, format!("berth: {msg}\n\nSee 'berth build --help'."))
}

/// `--build-arg K=V` as is; `--build-arg K` takes K from the environment, and is left out when
/// the environment has no K (the Dockerfile's default then applies).
fn build_args(raw: &[String], env: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Some(v) = env(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

/// `--label k=v` (a bare `k` is an empty value, as docker).
fn labels(raw: &[String]) -> BTreeMap<String, String> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// One `--secret` flag, read: its id and content.
fn read_secret(spec: &str, env: &impl Fn(&str) -> Option<String>) -> Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env_name = None;
    let mut typ = None;
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid secret {spec:?}: {part:?} is not KEY=VALUE"))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env_name = Some(v.to_string()),
            "type" => typ = Some(v.to_string()),
            "required" => {}
            other => bail!("invalid secret {spec:?}: unknown key {other:?} (id, src, env, type)"),
        }
    }
    match typ.as_deref() {
        None | Some("file") | Some("env") => {}
        Some(t) => bail!("invalid secret {spec:?}: type {t:?} is not file or env"),
    }
    if typ.as_deref() == Some("env") && env_name.is_none() {
        env_name = src.take();
    }
    let id = match id {
        Some(i) if !i.is_empty() => i,
        _ => match (&src, &env_name) {
            (Some(s), None) => Path::new(s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .ok_or_else(|| anyhow!("invalid secret {spec:?}: give it an id=ID"))?,
            (None, Some(e)) => e.clone(),
            _ => bail!("invalid secret {spec:?}: give it an id=ID"),
        },
    };
    if let Some(path) = src {
        let data =
            std::fs::read(&path).with_context(|| format!("read secret {id:?} from {path}"))?;
        return Ok((id, data));
    }
    let var = env_name.unwrap_or_else(|| id.clone());
    match env(&var) {
        Some(v) => Ok((id, v.into_bytes())),
        None => bail!(
            "secret {id:?}: no src=PATH given and the environment has no {var}: set one of them"
        ),
    }
}

/// The value of [`SECRETS_HEADER`] for the `--secret` flags (`None` when there are none).
fn secrets_header(
    specs: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut map = serde_json::Map::new();
    for s in specs {
        let (id, data) = read_secret(s, &env)?;
        map.insert(id, Value::String(b64.encode(data)));
    }
    Ok(Some(b64.encode(Value::Object(map).to_string())))
}

// ---------------------------------------------------------------------------------------------
// The context

/// What goes to the daemon: the tar body and the Dockerfile's name inside it.
struct PreparedContext {
    body: Body,
    dockerfile: String,
    /// Why the tar stream stopped early, if it did.
    failure: Arc<Mutex<Option<String>>>,
}

/// One thing of the context directory to put into the tar.
#[derive(Debug)]
struct Item {
    /// `/`-separated, relative to the context.
    rel: PathBuf,
    abs: PathBuf,
    kind: ItemKind,
    mode: u32,
    mtime: u64,
}

#[derive(Debug, PartialEq)]
enum ItemKind {
    Dir,
    File(u64),
    Symlink(PathBuf),
    /// A hard link to an earlier item.
    HardLink(PathBuf),
    Fifo,
}

/// A file added to the tar that is not in the directory (a Dockerfile from elsewhere, the
/// `.dockerignore` that hides it).
struct Extra {
    name: String,
    data: Vec<u8>,
}

fn prepare_context(args: &BuildArgs) -> Result<PreparedContext> {
    let ctx = args.context.as_str();
    if ctx.starts_with("http://")
        || ctx.starts_with("https://")
        || ctx.starts_with("git@")
        || ctx.starts_with("git://")
        || ctx.starts_with("github.com/")
    {
        bail!("unable to prepare context: contexts from URLs and git are not supported by berth: download or clone it and give its directory");
    }
    if ctx == "-" {
        return stdin_context(args);
    }
    let dir = Path::new(ctx);
    let abs = std::fs::canonicalize(dir)
        .map_err(|_| anyhow!("unable to prepare context: path {ctx:?} not found"))?;
    if !abs.is_dir() {
        bail!(
            "unable to prepare context: context must be a directory: {}",
            abs.display()
        );
    }
    // The Dockerfile: inside the context (its relative name), or outside / from stdin (added
    // under a generated name, as docker does).
    let (inside, outside): (Option<String>, Option<Vec<u8>>) = match args.file.as_deref() {
        Some("-") => {
            if stdin_is_tty() {
                bail!("unable to prepare context: -f - reads the Dockerfile from stdin, but stdin is a terminal");
            }
            let mut b = Vec::new();
            io::stdin()
                .read_to_end(&mut b)
                .context("read the Dockerfile from stdin")?;
            (None, Some(b))
        }
        given => {
            let path = match given {
                Some(f) => {
                    let p = PathBuf::from(f);
                    if p.is_absolute() {
                        p
                    } else {
                        std::env::current_dir()
                            .context("the current directory")?
                            .join(p)
                    }
                }
                None => {
                    let d = abs.join("Dockerfile");
                    let lower = abs.join("dockerfile");
                    if !d.exists() && lower.exists() {
                        lower
                    } else {
                        d
                    }
                }
            };
            let real = std::fs::canonicalize(&path).map_err(|_| {
                anyhow!(
                    "unable to prepare context: cannot locate Dockerfile {}: name it with -f",
                    path.display()
                )
            })?;
            if real.is_dir() {
                bail!(
                    "unable to prepare context: the Dockerfile {} is a directory",
                    real.display()
                );
            }
            match real.strip_prefix(&abs) {
                Ok(rel) if !rel.as_os_str().is_empty() => (Some(slash_path(rel)), None),
                _ => {
                    let b = std::fs::read(&real)
                        .with_context(|| format!("read the Dockerfile {}", real.display()))?;
                    (None, Some(b))
                }
            }
        }
    };
    // `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's `.dockerignore`
    // (BuildKit's rule, which berthd applies too).
    let own_ignore = match (&inside, &outside) {
        (Some(rel), _) => Some(abs.join(format!("{rel}.dockerignore"))),
        (None, Some(_)) => args
            .file
            .as_deref()
            .filter(|f| *f != "-")
            .map(|f| PathBuf::from(format!("{f}.dockerignore"))),
        (None, None) => None,
    };
    let read_opt = |p: &Path| -> Result<Option<Vec<u8>>> {
        match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => bail!("read {}: {e}", p.display()),
        }
    };
    let own_text = match &own_ignore {
        Some(p) => read_opt(p)?,
        None => None,
    };
    let ignore_text = match &own_text {
        Some(t) => Some(t.clone()),
        None => read_opt(&abs.join(".dockerignore"))?,
    };
    let matcher = match &ignore_text {
        Some(t) => Matcher::from_text(&String::from_utf8_lossy(t))
            .map_err(|e| anyhow!("unable to prepare context: {e}"))?,
        None => Matcher::default(),
    };
    let mut items = Vec::new();
    let mut links = HashMap::new();
    walk(
        &abs,
        Path::new(""),
        &matcher,
        inside.as_deref(),
        &mut items,
        &mut links,
    )?;
    let mut extras = Vec::new();
    let dockerfile = match (inside, outside) {
        (Some(rel), _) => {
            // The Dockerfile's own ignore file is always sent, like the Dockerfile itself.
            if let Some(t) = &own_text {
                let name = format!("{rel}.dockerignore");
                items.retain(|i| i.rel != Path::new(&name));
                extras.push(Extra {
                    name,
                    data: t.clone(),
                });
            }
            rel
        }
        (None, Some(data)) => {
            let name = format!(".dockerfile.{}", random_hex(10));
            // The generated name is hidden from COPY by the .dockerignore, as docker does.
            let mut ign = match &ignore_text {
                Some(t) => t.clone(),
                None => b".dockerignore".to_vec(),
            };
            let ign_name = if own_text.is_some() {
                format!("{name}.dockerignore")
            } else {
                ".dockerignore".to_string()
            };
            // Both generated names stay out of COPY's sight.
            ign.extend_from_slice(format!("\n{name}\n{ign_name}\n").as_bytes());
            items.retain(|i| i.rel != Path::new(&ign_name));
            extras.push(Extra {
                name: ign_name,
                data: ign,
            });
            extras.push(Extra {
                name: name.clone(),
                data,
            });
            name
        }
        (None, None) => unreachable!("one of them is set above"),
    };
    let failure = Arc::new(Mutex::new(None));
    let body = spawn_tar(items, extras, args.compress, failure.clone());
    Ok(PreparedContext {
        body,
        dockerfile,
        failure,
    })
}

/// `-`: a tar (maybe compressed) is sent as is; anything else is a Dockerfile, sent alone.
fn stdin_context(args: &BuildArgs) -> Result<PreparedContext> {
    if args.file.as_deref() == Some("-") {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    if stdin_is_tty() {
        bail!("unable to prepare context: the context \"-\" is read from stdin, but stdin is a terminal");
    }
    // The first block tells a tar (streamed on as it comes) from a Dockerfile.
    let mut stdin = io::stdin();
    let mut head = Vec::with_capacity(512);
    (&mut stdin)
        .take(512)
        .read_to_end(&mut head)
        .context("read the build context from stdin")?;
    let failure = Arc::new(Mutex::new(None));
    if is_archive(&head) {
        let dockerfile = args.file.clone().unwrap_or_else(|| "Dockerfile".into());
        let body = ReaderBody::spawn(io::Cursor::new(head).chain(stdin));
        return Ok(PreparedContext {
            body,
            dockerfile,
            failure,
        });
    }
    // A Dockerfile: sent alone, as "Dockerfile" (docker ignores -f here too).
    let mut data = head;
    stdin
        .read_to_end(&mut data)
        .context("read the Dockerfile from stdin")?;
    let extras = vec![Extra {
        name: "Dockerfile".into(),
        data,
    }];
    Ok(PreparedContext {
        body: spawn_tar(Vec::new(), extras, args.compress, failure.clone()),
        dockerfile: "Dockerfile".into(),
        failure,
    })
}

/// A tar (its `ustar` magic) or a compressed stream (gzip, bzip2, xz, zstd).
fn is_archive(b: &[u8]) -> bool {
    const MAGICS: [&[u8]; 4] = [
        &[0x1f, 0x8b],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    if MAGICS.iter().any(|m| b.starts_with(m)) {
        return true;
    }
    b.len() >= 262 && &b[257..262] == b"ustar"
}

/// A path relative to the context, `/`-separated.
fn slash_path(p: &Path) -> String {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Collects what to send under `root/rel`, in lexical order, skipping what the matcher
/// excludes (descending into an excluded directory only when an exception, or the Dockerfile,
/// may be below it).
fn walk(
    root: &Path,
    rel: &Path,
    matcher: &Matcher,
    dockerfile: Option<&str>,
    items: &mut Vec<Item>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let rd = std::fs::read_dir(&dir)
        .with_context(|| format!("error checking context: can't read {}", dir.display()))?;
    let mut names = Vec::new();
    for e in rd {
        let e =
            e.with_context(|| format!("error checking context: can't read {}", dir.display()))?;
        names.push(e.file_name());
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let child_rel = rel.join(&name);
        let key = slash_path(&child_rel);
        let abs = root.join(&child_rel);
        let md = std::fs::symlink_metadata(&abs)
            .with_context(|| format!("error checking context: can't stat {}", abs.display()))?;
        let always = key == ".dockerignore" || dockerfile == Some(key.as_str());
        let excluded = !always && matcher.excluded(&key);
        let ft = md.file_type();
        if ft.is_dir() {
            if excluded {
                let holds_dockerfile =
                    dockerfile.is_some_and(|d| d.starts_with(&format!("{key}/")));
                if holds_dockerfile || matcher.may_include_below(&key) {
                    walk(root, &child_rel, matcher, dockerfile, items, links)?;
                }
                continue;
            }
            items.push(item(child_rel.clone(), abs, ItemKind::Dir, &md));
            walk(root, &child_rel, matcher, dockerfile, items, links)?;
            continue;
        }
        if excluded {
            continue;
        }
        let kind = if ft.is_symlink() {
            let target = std::fs::read_link(&abs).with_context(|| {
                format!("error checking context: can't read link {}", abs.display())
            })?;
            ItemKind::Symlink(target)
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let id = (md.dev(), md.ino());
                if let Some(first) = links.get(&id) {
                    items.push(item(child_rel, abs, ItemKind::HardLink(first.clone()), &md));
                    continue;
                }
                links.insert(id, child_rel.clone());
            }
            ItemKind::File(md.len())
        } else if ft.is_fifo() {
            ItemKind::Fifo
        } else {
            // Sockets and device nodes have no place in an image built from a context.
            continue;
        };
        items.push(item(child_rel, abs, kind, &md));
    }
    Ok(())
}

fn item(rel: PathBuf, abs: PathBuf, kind: ItemKind, md: &Metadata) -> Item {
    Item {
        rel,
        abs,
        kind,
        mode: md.mode() & 0o7777,
        mtime: md.mtime().max(0) as u64,
    }
}

/// `n` random bytes as hex (from the kernel; time and pid if that fails).
fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the tar on a thread of its own into the request body, a chunk at a time.
fn spawn_tar(
    items: Vec<Item>,
    extras: Vec<Extra>,
    compress: bool,
    failure: Arc<Mutex<Option<String>>>,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let w = ChanWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let res = if compress {
            let gz = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            write_tar(&items, &extras, gz).and_then(|gz| gz.finish()?.flush())
        } else {
            write_tar(&items, &extras, w).and_then(|mut w| w.flush())
        };
        if let Err(e) = res {
            // The request side going away (BrokenPipe: the daemon is unreachable or stopped
            // reading) is a consequence: the request's own error explains it. A file that could
            // not be read is the cause.
            if e.kind() != io::ErrorKind::BrokenPipe {
                if let Ok(mut f) = failure.lock() {
                    *f = Some(e.to_string());
                }
            }
            let _ = tx.blocking_send(Err(e));
        }
    });
    ReaderBody::from_channel(rx)
}

/// The tar of `items` (read now) and `extras`; uid/gid 0, as docker's CLI sends.
fn write_tar<W: Write>(items: &[Item], extras: &[Extra], w: W) -> io::Result<W> {
    let mut tb = tar::Builder::new(w);
    tb.mode(tar::HeaderMode::Complete);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for it in items {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(it.mode);
        h.set_mtime(it.mtime);
        h.set_size(0);
        match &it.kind {
            ItemKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                tb.append_data(&mut h, &it.rel, io::empty())?;
            }
            ItemKind::File(size) => {
                let f = std::fs::File::open(&it.abs).map_err(|e| {
                    io::Error::new(e.kind(), format!("open {}: {e}", it.abs.display()))
                })?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let exact = Exact {
                    inner: f,
                    left: *size,
                    path: &it.abs,
                };
                tb.append_data(&mut h, &it.rel, exact)?;
            }
            ItemKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                tb.append_link(&mut h, &it.rel, target)?;
            }
            ItemKind::HardLink(first) => {
                h.set_entry_type(tar::EntryType::Link);
                tb.append_link(&mut h, &it.rel, first)?;
            }
            ItemKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                tb.append_data(&mut h, &it.rel, io::empty())?;
            }
        }
    }
    for x in extras {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o600);
        h.set_mtime(now);
        h.set_size(x.data.len() as u64);
        tb.append_data(&mut h, &x.name, x.data.as_slice())?;
    }
    tb.into_inner()
}

/// Reads exactly `left` bytes of a file (the size its tar header promised), failing when the
/// file shrank or grew while it was sent.
struct Exact<'a> {
    inner: std::fs::File,
    left: u64,
    path: &'a Path,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "{} grew while it was sent: build again",
                    self.path.display()
                ))),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} shrank while it was sent: build again",
                self.path.display()
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

const CHUNK: usize = 256 * 1024;

/// The writing end of the body: chunks of [`CHUNK`] bytes into a bounded channel.
struct ChanWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the daemon stopped reading the context",
            )
        })
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

// ---------------------------------------------------------------------------------------------
// The stream

/// The build failed: the daemon's message and docker's exit code for it.
#[derive(Debug)]
struct Failure {
    message: String,
    code: i32,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The step being shown.
struct Step {
    started: Instant,
    cached: bool,
    /// Its header line is still open (no output below it yet).
    open: bool,
}

/// Shows the daemon's JSON messages in one of the [`Mode`]s.
struct Progress<W: Write> {
    mode: Mode,
    out: W,
    started: Instant,
    /// Stream text not yet ended by a newline.
    partial: String,
    step: Option<Step>,
    steps: usize,
    cached: usize,
    aux_id: Option<String>,
    /// A line that is just an image id (a quiet build's answer).
    stream_id: Option<String>,
    built: Option<String>,
    tagged: Vec<String>,
    /// Quiet mode: everything, for stderr if the build fails.
    kept: Vec<u8>,
    last_status: HashMap<String, String>,
}

impl<W: Write> Progress<W> {
    fn new(mode: Mode, started: Instant, out: W) -> Self {
        Self {
            mode,
            out,
            started,
            partial: String::new(),
            step: None,
            steps: 0,
            cached: 0,
            aux_id: None,
            stream_id: None,
            built: None,
            tagged: Vec::new(),
            kept: Vec::new(),
            last_status: HashMap::new(),
        }
    }

    /// Takes one message; an error message ends the build with a [`Failure`].
    fn feed(&mut self, v: &Value) -> Result<(), Failure> {
        if let Some(f) = failure_of(v) {
            return Err(f);
        }
        if let Some(id) = v
            .get("aux")
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
        {
            self.aux_id = Some(id.to_string());
        }
        if let Some(s) = v.get("stream").and_then(Value::as_str) {
            self.stream(s);
        }
        if let Some(st) = v.get("status").and_then(Value::as_str) {
            self.status(v, st);
        }
        let _ = self.out.flush();
        Ok(())
    }

    fn stream(&mut self, s: &str) {
        match self.mode {
            Mode::Quiet => self.kept.extend_from_slice(s.as_bytes()),
            Mode::Plain => {
                let _ = self.out.write_all(s.as_bytes());
            }
            Mode::Readable => {}
        }
        self.partial.push_str(s);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            self.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    /// Pull progress inside the build (`id: status`), without the byte counters.
    fn status(&mut self, v: &Value, st: &str) {
        let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
        let line = if id.is_empty() {
            st.to_string()
        } else {
            format!("{id}: {st}")
        };
        match self.mode {
            Mode::Quiet => {
                self.kept.extend_from_slice(line.as_bytes());
                self.kept.push(b'\n');
            }
            Mode::Plain | Mode::Readable => {
                if v.get("progressDetail")
                    .and_then(|d| d.get("current"))
                    .is_some()
                {
                    return;
                }
                if self.last_status.get(id) == Some(&line) {
                    return;
                }
                self.last_status.insert(id.to_string(), line.clone());
                if self.mode == Mode::Readable {
                    self.output(&line);
                } else {
                    let _ = writeln!(self.out, "{line}");
                }
            }
        }
    }

    /// One whole line of the daemon's text.
    fn line(&mut self, line: &str) {
        if is_image_id(line) {
            self.stream_id = Some(line.to_string());
            return;
        }
        if let Some(rest) = line.strip_prefix("Successfully built ") {
            self.built = Some(rest.trim().to_string());
            return;
        }
        if let Some(rest) = line.strip_prefix("Successfully tagged ") {
            self.tagged.push(rest.trim().to_string());
            return;
        }
        if let Some((counter, text)) = step_line(line) {
            self.steps += 1;
            if self.mode == Mode::Readable {
                self.end_step(None);
                let _ = write!(self.out, "[{counter}] {text}");
            }
            self.step = Some(Step {
                started: Instant::now(),
                cached: false,
                open: true,
            });
            return;
        }
        if let Some(rest) = line.strip_prefix(" ---> ") {
            let rest = rest.trim();
            if rest == "Using cache" {
                if let Some(s) = self.step.as_mut() {
                    if !s.cached {
                        s.cached = true;
                        self.cached += 1;
                    }
                }
            } else if let Some(w) = rest.strip_prefix("[Warning]") {
                if self.mode == Mode::Readable {
                    self.output(&format!("warning:{w}"));
                }
            }
            // Running in / Removed intermediate container / the step's image id: not shown.
            return;
        }
        if line.starts_with("Removing intermediate container ") {
            return;
        }
        if self.mode == Mode::Readable {
            self.output(line);
        }
    }

    /// A line of a step's output (indented), or a line outside any step.
    fn output(&mut self, line: &str) {
        match self.step.as_mut() {
            Some(s) => {
                if s.open {
                    s.open = false;
                    let _ = writeln!(self.out);
                }
                let _ = writeln!(self.out, "    {line}");
            }
            None => {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    /// Ends the current step's display: its duration, `CACHED`, or `error`.
    fn end_step(&mut self, error: Option<&str>) {
        let Some(s) = self.step.take() else {
            return;
        };
        let what = match error {
            Some(e) => e.to_string(),
            None if s.cached => "CACHED".to_string(),
            None => duration(s.started.elapsed()),
        };
        if s.open {
            let _ = writeln!(self.out, "  {what}");
        } else {
            let _ = writeln!(self.out, "    => {what}");
        }
    }

    /// What the stream left unterminated, shown.
    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(rest.trim_end_matches('\r'));
        }
    }

    /// The build failed: close the step being shown.
    fn fail(&mut self) {
        self.flush_partial();
        if self.mode == Mode::Readable {
            self.end_step(Some("ERROR"));
        }
        let _ = self.out.flush();
    }

    /// The built image's id: `aux.ID`, else a line that was just an id (quiet builds), else
    /// what "Successfully built" named.
    fn image_id(&mut self) -> Option<String> {
        self.flush_partial();
        self.aux_id
            .clone()
            .or_else(|| self.stream_id.clone())
            .or_else(|| self.built.clone())
    }

    /// The build succeeded: the summary (readable), the id (quiet).
    fn done(&mut self, id: &str, requested_tags: &[String]) {
        match self.mode {
            Mode::Quiet => {
                let _ = writeln!(self.out, "{id}");
            }
            Mode::Plain => {}
            Mode::Readable => {
                self.end_step(None);
                let _ = writeln!(
                    self.out,
                    "built {id} in {}: {} steps, {} cached",
                    duration(self.started.elapsed()),
                    self.steps,
                    self.cached
                );
                let tags: Vec<String> = if self.tagged.is_empty() {
                    requested_tags.iter().map(|t| normalized_tag(t)).collect()
                } else {
                    self.tagged.clone()
                };
                for t in tags {
                    let _ = writeln!(self.out, "tagged {t}");
                }
            }
        }
        let _ = self.out.flush();
    }
}

/// `340ms` under a second, `1.25s` above.
fn duration(d: std::time::Duration) -> String {
    if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// `name` as docker prints a tag it made (`x` → `x:latest`).
fn normalized_tag(t: &str) -> String {
    match Reference::parse_normalized(t) {
        Ok(r) if r.tag().is_some() || r.digest().is_some() => t.to_string(),
        Ok(_) => format!("{t}:latest"),
        Err(_) => t.to_string(),
    }
}

/// `sha256:<64 hex>`.
fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// `Step 3/10 : RUN make` → ("3/10", "RUN make").
fn step_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counter, text) = rest.split_once(" : ")?;
    let (a, b) = counter.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b)).then_some((counter, text))
}

/// An `errorDetail` / `error` message, with docker's exit code (its `code`, else 1).
fn failure_of(v: &Value) -> Option<Failure> {
    let detail = v.get("errorDetail");
    let message = detail
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .or_else(|| v.get("error").and_then(Value::as_str))?;
    let code = detail
        .and_then(|d| d.get("code"))
        .and_then(Value::as_i64)
        .filter(|c| *c > 0 && *c < 256)
        .unwrap_or(1) as i32;
    Some(Failure {
        message: message.to_string(),
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn build_args_from_flags_and_environment() {
        let raw = vec!["A=1".to_string(), "B".into(), "C".into(), "D=".into()];
        let got = build_args(&raw, |k| (k == "B").then(|| "from-env".to_string()));
        let want: BTreeMap<String, String> = [("A", "1"), ("B", "from-env"), ("D", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn labels_like_docker() {
        let l = labels(&["a=b=c".into(), "bare".into()]);
        assert_eq!(l["a"], "b=c");
        assert_eq!(l["bare"], "");
    }

    #[test]
    fn secrets_from_files_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, b"s3cret").unwrap();
        let env = |k: &str| (k == "TOKEN").then(|| "from-env".to_string());
        let h = secrets_header(
            &[
                format!("id=tok,src={}", p.display()),
                "id=envtok,env=TOKEN".into(),
                "id=TOKEN".into(),
                format!("source={}", p.display()),
            ],
            env,
        )
        .unwrap()
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let v: Value = serde_json::from_slice(&b64.decode(h).unwrap()).unwrap();
        let get = |k: &str| b64.decode(v[k].as_str().unwrap()).unwrap();
        assert_eq!(get("tok"), b"s3cret");
        assert_eq!(get("envtok"), b"from-env");
        assert_eq!(get("TOKEN"), b"from-env");
        assert!(secrets_header(&["id=x".into()], |_| None).is_err());
        assert!(secrets_header(&["id=x,src=/nonexistent/berth".into()], |_| None).is_err());
        assert!(secrets_header(&["nonsense".into()], |_| None).is_err());
        assert!(secrets_header(&[], |_| None).unwrap().is_none());
    }

    #[test]
    fn archives_are_recognised() {
        assert!(is_archive(&[0x1f, 0x8b, 8, 0]));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&t));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
    }

    #[test]
    fn step_lines() {
        assert_eq!(
            step_line("Step 3/10 : RUN make -j2"),
            Some(("3/10", "RUN make -j2"))
        );
        assert_eq!(step_line("Step x/10 : RUN"), None);
        assert_eq!(step_line("Stepping out"), None);
    }

    fn feed_all(mode: Mode, msgs: &[Value]) -> (Progress<Vec<u8>>, Option<Failure>) {
        let mut p = Progress::new(mode, Instant::now(), Vec::new());
        for m in msgs {
            if let Err(f) = p.feed(m) {
                p.fail();
                return (p, Some(f));
            }
        }
        (p, None)
    }

    fn classic_stream() -> Vec<Value> {
        vec![
            json!({"stream": "Step 1/3 : FROM busybox"}),
            json!({"stream": "\n"}),
            json!({"stream": " ---> 0123456789ab\n"}),
            json!({"stream": "Step 2/3 : ENV A=1"}),
            json!({"stream": "\n"}),
            json!({"stream": " ---> Using cache\n ---> 1123456789ab\n"}),
            json!({"stream": "Step 3/3 : RUN echo hi"}),
            json!({"stream": "\n"}),
            json!({"stream": " ---> Running in 2123456789ab\n"}),
            json!({"stream": "hi\nthere"}),
            json!({"stream": "\n"}),
            json!({"stream": " ---> Removed intermediate container 2123456789ab\n"}),
            json!({"stream": " ---> 3123456789ab\n"}),
            json!({"aux": {"ID": "sha256:3123456789abcdef"}}),
            json!({"stream": "Successfully built 3123456789ab\n"}),
            json!({"stream": "Successfully tagged x:latest\n"}),
        ]
    }

    #[test]
    fn readable_progress_shows_steps_cache_output_and_a_summary() {
        let (mut p, f) = feed_all(Mode::Readable, &classic_stream());
        assert!(f.is_none());
        let id = p.image_id().unwrap();
        assert_eq!(id, "sha256:3123456789abcdef");
        p.done(&id, &["x".into()]);
        let out = String::from_utf8(p.out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("[1/3] FROM busybox  "), "{out}");
        assert!(lines[0].ends_with('s'), "{out}");
        assert_eq!(lines[1], "[2/3] ENV A=1  CACHED", "{out}");
        assert_eq!(lines[2], "[3/3] RUN echo hi", "{out}");
        assert_eq!(lines[3], "    hi");
        assert_eq!(lines[4], "    there");
        assert!(
            lines[5].starts_with("    => ") && lines[5].ends_with('s'),
            "{out}"
        );
        assert!(
            lines[6].starts_with("built sha256:3123456789abcdef in ")
                && lines[6].ends_with(": 3 steps, 1 cached"),
            "{out}"
        );
        assert_eq!(lines[7], "tagged x:latest");
        assert_eq!(lines.len(), 8, "{out}");
    }

    #[test]
    fn plain_progress_is_the_daemons_text() {
        let (mut p, _) = feed_all(Mode::Plain, &classic_stream());
        let id = p.image_id().unwrap();
        p.done(&id, &[]);
        let out = String::from_utf8(p.out).unwrap();
        assert!(
            out.starts_with("Step 1/3 : FROM busybox\n ---> 0123456789ab\n"),
            "{out}"
        );
        assert!(out.contains(" ---> Using cache\n"));
        assert!(out.ends_with("Successfully tagged x:latest\n"), "{out}");
    }

    #[test]
    fn quiet_prints_only_the_id_and_keeps_the_rest_for_failures() {
        let (mut p, _) = feed_all(Mode::Quiet, &classic_stream());
        let id = p.image_id().unwrap();
        p.done(&id, &[]);
        assert_eq!(p.out, b"sha256:3123456789abcdef\n");
        assert!(String::from_utf8_lossy(&p.kept).contains("Step 2/3 : ENV A=1"));
        // A daemon that answers a quiet build with the id as a stream line (as dockerd does).
        let id = format!("sha256:{}", "ab".repeat(32));
        let (mut p, _) = feed_all(Mode::Quiet, &[json!({"stream": format!("{id}\n")})]);
        assert_eq!(p.image_id().as_deref(), Some(id.as_str()));
    }

    #[test]
    fn an_error_message_fails_the_build_with_its_code() {
        let msgs = vec![
            json!({"stream": "Step 1/2 : FROM busybox\n"}),
            json!({"stream": "Step 2/2 : RUN false\n"}),
            json!({"errorDetail": {"code": 1, "message": "The command '/bin/sh -c false' returned a non-zero code: 1"},
                   "error": "The command '/bin/sh -c false' returned a non-zero code: 1"}),
        ];
        let (p, f) = feed_all(Mode::Readable, &msgs);
        let f = f.unwrap();
        assert_eq!(f.code, 1);
        assert!(f.message.contains("non-zero code: 1"));
        let out = String::from_utf8(p.out).unwrap();
        assert!(out.ends_with("[2/2] RUN false  ERROR\n"), "{out}");
        let f = failure_of(&json!({"errorDetail": {"code": 7, "message": "x"}})).unwrap();
        assert_eq!(f.code, 7);
        assert!(failure_of(&json!({"stream": "ok"})).is_none());
    }

    #[test]
    fn durations_read_well() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_micros(4_400)), "4ms");
        assert_eq!(duration(Duration::from_millis(999)), "999ms");
        assert_eq!(duration(Duration::from_millis(1_254)), "1.25s");
    }

    #[test]
    fn tags_are_normalized() {
        assert_eq!(normalized_tag("x"), "x:latest");
        assert_eq!(normalized_tag("x:v1"), "x:v1");
        assert_eq!(
            normalized_tag("localhost:5000/a"),
            "localhost:5000/a:latest"
        );
    }

    /// The names in a tar, in order, with the bytes of regular files.
    fn tar_names(data: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
        let mut a = tar::Archive::new(data);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let body = (e.header().entry_type() == tar::EntryType::Regular).then(|| {
                    let mut b = Vec::new();
                    e.read_to_end(&mut b).unwrap();
                    b
                });
                (name, body)
            })
            .collect()
    }

    fn tar_of(
        root: &Path,
        dockerfile: Option<&str>,
        ignore: &str,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        let m = Matcher::from_text(ignore).unwrap();
        let mut items = Vec::new();
        walk(
            root,
            Path::new(""),
            &m,
            dockerfile,
            &mut items,
            &mut HashMap::new(),
        )
        .unwrap();
        let out = write_tar(&items, &[], Vec::new()).unwrap();
        tar_names(&out)
    }

    #[test]
    fn the_context_tar_keeps_files_links_and_order() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(r.join("src/b.txt"), "bee").unwrap();
        std::fs::write(r.join("src/a.txt"), "ay").unwrap();
        std::os::unix::fs::symlink("a.txt", r.join("src/l")).unwrap();
        std::fs::hard_link(r.join("src/a.txt"), r.join("src/sub/hard")).unwrap();
        let got = tar_of(r, Some("Dockerfile"), "");
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "src",
                "src/a.txt",
                "src/b.txt",
                "src/l",
                "src/sub",
                "src/sub/hard"
            ]
        );
        assert_eq!(got[2].1.as_deref(), Some(&b"ay"[..]));
        // The hard link is a link entry, not a second copy.
        assert_eq!(got[6].1, None);
    }

    #[test]
    fn dockerignore_excludes_but_never_the_dockerfile_or_itself() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("build/keep")).unwrap();
        std::fs::create_dir_all(r.join("docker")).unwrap();
        std::fs::write(r.join("docker/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(r.join(".dockerignore"), "x").unwrap();
        std::fs::write(r.join("secret.key"), "k").unwrap();
        std::fs::write(r.join("app.txt"), "a").unwrap();
        std::fs::write(r.join("build/junk"), "j").unwrap();
        std::fs::write(r.join("build/keep/me"), "m").unwrap();
        let got = tar_of(
            r,
            Some("docker/Dockerfile"),
            "*.key\n.dockerignore\ndocker\nbuild\n!build/keep\n",
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "app.txt",
                "build/keep",
                "build/keep/me",
                "docker/Dockerfile"
            ]
        );
    }

    #[test]
    fn exact_reads_refuse_a_file_that_changed_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        let mut e = Exact {
            inner: std::fs::File::open(&p).unwrap(),
            left: 3,
            path: &p,
        };
        let mut b = Vec::new();
        assert!(e.read_to_end(&mut b).is_err());
        let mut e = Exact {
            inner: std::fs::File::open(&p).unwrap(),
            left: 9,
            path: &p,
        };
        assert!(e.read_to_end(&mut Vec::new()).is_err());
    }
}
