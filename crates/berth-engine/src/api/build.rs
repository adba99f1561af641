//! `POST /build` (Docker's classic builder API: the context tar in the body, Docker's JSON lines
//! out) and `POST /build/prune`. HTTP stops here: the query becomes [`BuildQuery`], the build
//! runs on a blocking thread over [`crate::build`], and its words come back through the
//! [`Sink`]. An error before the first line is an HTTP error (status from its kind); after it,
//! Docker's `{"errorDetail":...}` line. Tags are applied only once the build succeeded.
//!
//! BuildKit's API (`version=2`, gRPC sessions) is not implemented: berthd answers `/_ping` with
//! `Builder-Version: 1`, which makes the docker CLI use this endpoint.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use base64::Engine as _;
use berth_types::api::AuthConfig;
use berth_types::{Digest, Reference};
use bytes::Bytes;
use serde_json::{json, Value};

use super::body::BodyReader;
use super::{Daemon, Routes};
use crate::build::backend::{BackendOptions, EngineBackend};
use crate::build::output::{Sink, StreamWriter};
use crate::build::{context, usage};
use crate::error::EngineError;
use crate::images::{blocking, name_attr, server_domain};

pub fn routes() -> Routes {
    Routes::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

type Pairs = Query<Vec<(String, String)>>;

/// The `/build` query, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildQuery {
    /// The Dockerfile's path inside the context, cleaned (`Dockerfile` by default).
    pub dockerfile: String,
    /// `t`, each with its default tag.
    pub tags: Vec<Reference>,
    pub quiet: bool,
    pub no_cache: bool,
    pub pull: bool,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `networkmode` (`default` = none given).
    pub network: Option<String>,
    pub platform: Option<String>,
}

fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Go's `strconv.ParseBool`, as Docker reads its flags; `default` when absent.
fn flag(q: &[(String, String)], key: &str, default: bool) -> Result<bool, EngineError> {
    match first(q, key) {
        None => Ok(default),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(EngineError::invalid(format!(
            "invalid value for {key}: {v:?} is not a boolean"
        ))),
    }
}

/// Cleans the Dockerfile path and keeps it inside the context.
fn dockerfile_path(name: Option<&str>) -> Result<String, EngineError> {
    let name = name.unwrap_or("Dockerfile");
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(EngineError::invalid(format!(
                        "the Dockerfile ({name}) must be within the build context"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(EngineError::invalid(format!(
            "the Dockerfile ({name}) must be a file within the build context"
        )));
    }
    Ok(parts.join("/"))
}

/// Parses and checks the query: every tag is valid before anything is built.
pub fn parse_query(q: &[(String, String)]) -> Result<BuildQuery, EngineError> {
    match first(q, "version") {
        None | Some("1") => {}
        Some("2") => {
            return Err(EngineError::new(
                berth_types::ErrorKind::Unsupported,
                "berth implements Docker's classic builder API (version 1), not BuildKit (version 2): build with DOCKER_BUILDKIT=0 or `berth build`",
            ))
        }
        Some(v) => {
            return Err(EngineError::invalid(format!(
                "unsupported builder version {v:?}: berth implements the classic builder (version 1)"
            )))
        }
    }
    if first(q, "remote").is_some() {
        return Err(EngineError::invalid(
            "remote build contexts (remote=URL) are not supported by berth: send the context as a tar in the request body",
        ));
    }
    let mut tags = Vec::new();
    for t in q.iter().filter(|(k, _)| k == "t").map(|(_, v)| v) {
        if t.is_empty() {
            continue;
        }
        let r = Reference::parse_normalized(t).map_err(EngineError::from)?;
        if r.digest().is_some() {
            return Err(EngineError::invalid(format!(
                "invalid reference format: build tag {t:?} cannot be a digest"
            )));
        }
        let r = r.with_default_tag();
        if !tags.contains(&r) {
            tags.push(r);
        }
    }
    let build_args = match first(q, "buildargs") {
        None => BTreeMap::new(),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| EngineError::invalid(format!("invalid buildargs: {e}")))?,
    };
    let labels = match first(q, "labels") {
        None => BTreeMap::new(),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| EngineError::invalid(format!("invalid labels: {e}")))?,
    };
    Ok(BuildQuery {
        dockerfile: dockerfile_path(first(q, "dockerfile"))?,
        tags,
        quiet: flag(q, "q", false)?,
        no_cache: flag(q, "nocache", false)?,
        pull: flag(q, "pull", false)?,
        build_args,
        labels,
        target: first(q, "target").map(str::to_string),
        network: first(q, "networkmode")
            .filter(|n| *n != "default")
            .map(str::to_string),
        platform: first(q, "platform").map(str::to_string),
    })
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(s).ok())
}

/// `X-Registry-Config`: base64 JSON of `{registry: AuthConfig}`, keyed here by domain.
fn registry_config(h: &HeaderMap) -> Result<HashMap<String, AuthConfig>, EngineError> {
    let Some(v) = h.get("X-Registry-Config").and_then(|v| v.to_str().ok()) else {
        return Ok(HashMap::new());
    };
    if v.trim().is_empty() {
        return Ok(HashMap::new());
    }
    let bytes = b64(v).ok_or_else(|| EngineError::invalid("X-Registry-Config: not base64"))?;
    let m: HashMap<String, AuthConfig> = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::invalid(format!("X-Registry-Config: {e}")))?;
    Ok(m.into_iter().map(|(k, a)| (server_domain(&k), a)).collect())
}

/// `X-Berth-Build-Secrets`: base64 JSON of `{id: base64 content}`.
fn build_secrets(h: &HeaderMap) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
    let Some(v) = h.get("X-Berth-Build-Secrets").and_then(|v| v.to_str().ok()) else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: String| EngineError::invalid(format!("X-Berth-Build-Secrets: {why}"));
    let bytes = b64(v).ok_or_else(|| bad("not base64".into()))?;
    let m: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    m.into_iter()
        .map(|(k, v)| {
            let data = b64(&v).ok_or_else(|| bad(format!("secret {k:?} is not base64")))?;
            Ok((k, data))
        })
        .collect()
}

/// The streamed body: the first line, then the rest.
struct Lines {
    first: Option<Bytes>,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(b)));
        }
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

async fn build(
    State(d): State<Arc<Daemon>>,
    Query(q): Pairs,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EngineError> {
    let query = parse_query(&q)?;
    crate::build::sweep_containers(&d).await;
    let opts = BackendOptions {
        auth: registry_config(&headers)?,
        secrets: build_secrets(&headers)?,
        network: query.network.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let sink = Sink::new(tx, tokio::runtime::Handle::current(), query.quiet);
    let reader = BodyReader::new(body);
    let d2 = d.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut code = None;
        let r = run_build(&d2, &sink, query, opts, reader, &mut code);
        match r {
            Err(e) if sink.started() => {
                sink.fail(&e.message, code);
                Ok(())
            }
            r => r,
        }
    });
    // An error before the first line is the answer's status; after it, a line of the stream.
    let Some(first) = rx.recv().await else {
        task.await
            .map_err(|e| EngineError::internal(format!("the build failed: {e}")))??;
        return Ok(StatusCode::OK.into_response());
    };
    let lines = Lines {
        first: Some(first),
        rx,
    };
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Reads the Dockerfile (and its ignore file) from the unpacked context.
fn read_context_file(ctx: &std::path::Path, name: &str) -> Result<Option<String>, EngineError> {
    let root = pathrs::Root::open(ctx)
        .map_err(|e| EngineError::internal(format!("open the build context: {e}")))?;
    let mut f = match root.open_subpath(name, pathrs::flags::OpenFlags::O_RDONLY) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Ok(None);
    }
    let mut s = String::new();
    f.by_ref()
        .take(16 << 20)
        .read_to_string(&mut s)
        .map_err(|e| EngineError::invalid(format!("read {name} from the build context: {e}")))?;
    Ok(Some(s))
}

/// The build itself, on a blocking thread.
fn run_build(
    d: &Arc<Daemon>,
    sink: &Sink,
    q: BuildQuery,
    opts: BackendOptions,
    body: BodyReader,
    exit_code: &mut Option<i64>,
) -> Result<(), EngineError> {
    berth_runtime::timing::mark("build: begin");
    let dir = d.builds.new_dir()?;
    let mut body = body;
    let extracted = context::extract(&mut body, &dir.context());
    // Read what the client still sends after the archive's end (a tar's padding; the rest of a
    // context that failed to unpack, bounded): an answer that came while it was still writing
    // would reach it as a broken pipe instead of the error.
    let _ = std::io::copy(&mut (&mut body).take(4 << 20), &mut std::io::sink());
    extracted.map_err(|e| match e {
        context::ContextError::Io { .. } => EngineError::internal(e.to_string()),
        e => EngineError::invalid(e.to_string()),
    })?;
    let text = read_context_file(&dir.context(), &q.dockerfile)?.ok_or_else(|| {
        EngineError::invalid(format!(
            "Cannot locate specified Dockerfile: {}",
            q.dockerfile
        ))
    })?;
    let ignore_text =
        match read_context_file(&dir.context(), &format!("{}.dockerignore", q.dockerfile))? {
            Some(t) => Some(t),
            None => read_context_file(&dir.context(), ".dockerignore")?,
        };
    berth_runtime::timing::mark("build: context unpacked");
    let dockerfile = berth_build::parse(&text).map_err(|e| EngineError::invalid(e.to_string()))?;
    let bopts = berth_build::BuildOptions {
        context: dir.context(),
        build_args: q.build_args.clone(),
        target: q.target.clone(),
        no_cache: q.no_cache,
        pull: q.pull,
        labels: q.labels.clone(),
        network: q.network.clone(),
        ignore: ignore_text
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let result = {
        let mut backend = EngineBackend::new(d.clone(), sink, &dir, opts);
        let mut out = StreamWriter::new(sink);
        let r = berth_build::build(&dockerfile, &bopts, &mut backend, &mut out);
        let _ = std::io::Write::flush(&mut out);
        r
    };
    berth_runtime::timing::mark("build: steps done");
    if let Err(berth_build::BuildError::Backend {
        source: berth_build::BackendError::RunFailed { code, .. },
        ..
    }) = &result
    {
        *exit_code = Some(*code);
    }
    let result = result.map_err(|e| {
        if sink.is_closed() {
            EngineError::internal("the client went away: the build was cancelled")
        } else {
            EngineError::invalid(with_line(&e))
        }
    })?;
    let id = Digest::parse(&result.image)
        .map_err(|_| EngineError::internal(format!("bad image id {}", result.image)))?;
    let gone = |_| EngineError::internal("the client went away");
    if !q.quiet {
        sink.send_blocking(&json!({"aux": {"ID": id.to_string()}}))
            .map_err(gone)?;
        sink.send_blocking(&json!({"stream": format!("Successfully built {}\n", id.short())}))
            .map_err(gone)?;
    }
    for t in &q.tags {
        d.images.index()?.tag(t, &id)?;
        d.events.emit(
            "image",
            "tag",
            &id.to_string(),
            name_attr(&t.familiar_string()),
        );
        if !q.quiet {
            sink.send_blocking(
                &json!({"stream": format!("Successfully tagged {}\n", t.familiar_string())}),
            )
            .map_err(gone)?;
        }
    }
    if q.quiet {
        sink.send_always(&json!({"stream": format!("{id}\n")}))
            .map_err(gone)?;
    }
    berth_runtime::timing::mark("build: tagged");
    drop(dir);
    berth_runtime::timing::mark("build: cleaned up");
    Ok(())
}

/// A build error's message naming its Dockerfile line (Docker's classic messages do not, which
/// leaves the user guessing which COPY failed), unless it already does.
fn with_line(e: &berth_build::BuildError) -> String {
    let m = e.to_string();
    match e.line() {
        Some(n) if !m.contains(&format!("line {n}")) => format!("{m} (Dockerfile line {n})"),
        _ => m,
    }
}

/// Docker's `until` of `builder prune`: a duration back from now (`24h`, `90m`, `1h30m`), unix
/// seconds, or an RFC 3339 time.
fn parse_until(s: &str, now: i64) -> Result<i64, EngineError> {
    let bad = || EngineError::invalid(format!("invalid filter 'until={s}'"));
    if let Ok(n) = s.split('.').next().unwrap_or(s).parse::<i64>() {
        return Ok(n);
    }
    if let Some(t) = berth_image::gc::parse_rfc3339(s) {
        return Ok(t);
    }
    // A Go duration.
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(now - total as i64)
}

/// `POST /build/prune?all=&filters=`: `{"CachesDeleted":[...],"SpaceReclaimed":N}`.
async fn prune(State(d): State<Arc<Daemon>>, Query(q): Pairs) -> Result<Response, EngineError> {
    let all = flag(&q, "all", false)?;
    crate::build::sweep_containers(&d).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_secs() as i64);
    let mut until = None;
    if let Some(f) = first(&q, "filters") {
        let v: Value = serde_json::from_str(f)
            .map_err(|e| EngineError::invalid(format!("invalid filter: {e}")))?;
        let Value::Object(m) = v else {
            return Err(EngineError::invalid("invalid filter: not a JSON object"));
        };
        for (k, v) in m {
            let vals: Vec<String> = match v {
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                Value::Object(o) => o.into_iter().map(|(k, _)| k).collect(),
                _ => Vec::new(),
            };
            match k.as_str() {
                "until" => {
                    if let Some(u) = vals.first() {
                        until = Some(parse_until(u, now)?);
                    }
                }
                // BuildKit's record filters: every classic cache entry is a regular,
                // private, unused record.
                "id" | "type" | "description" | "inuse" | "shared" | "private" | "parents"
                | "mutable" | "immutable" => {}
                other => return Err(EngineError::invalid(format!("invalid filter '{other}'"))),
            }
        }
    }
    let d2 = d.clone();
    let pruned = blocking(move || usage::prune(&d2, all, until)).await?;
    for (id, items) in &pruned.deleted {
        for it in items {
            if let berth_image::gc::DeleteItem::Deleted(x) = it {
                if x == id {
                    d.events.emit(
                        "image",
                        "delete",
                        &id.to_string(),
                        name_attr(&id.to_string()),
                    );
                }
            }
        }
    }
    Ok(Json(json!({
        "CachesDeleted": pruned.entries,
        "SpaceReclaimed": pruned.space,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_parse_as_docker_sends_them() {
        let b = parse_query(&q(&[
            ("t", "x"),
            ("t", "localhost:5000/a/b:1"),
            ("t", "x:latest"),
            ("q", "1"),
            ("nocache", "true"),
            ("rm", "1"),
            ("forcerm", "0"),
            ("buildargs", r#"{"A":"1","B":null}"#),
            ("labels", r#"{"l":"v"}"#),
            ("networkmode", "default"),
            ("target", "build"),
            ("dockerfile", "./sub//Dockerfile.dev"),
            ("cachefrom", "[]"),
            ("memory", "0"),
            ("version", "1"),
        ]))
        .unwrap();
        assert_eq!(
            b.tags
                .iter()
                .map(|t| t.familiar_string())
                .collect::<Vec<_>>(),
            vec!["x:latest", "localhost:5000/a/b:1"]
        );
        assert!(b.quiet && b.no_cache && !b.pull);
        assert_eq!(b.build_args["A"].as_deref(), Some("1"));
        assert_eq!(b.build_args["B"], None);
        assert_eq!(b.labels["l"], "v");
        assert_eq!(b.network, None);
        assert_eq!(b.target.as_deref(), Some("build"));
        assert_eq!(b.dockerfile, "sub/Dockerfile.dev");
        let d = parse_query(&[]).unwrap();
        assert_eq!(d.dockerfile, "Dockerfile");
        assert!(d.tags.is_empty() && !d.quiet);
    }

    #[test]
    fn bad_queries_are_refused_before_building() {
        for (pairs, want) in [
            (vec![("t", "UPPER")], "invalid reference format"),
            (
                vec![("t", "ok"), ("t", "bad tag")],
                "invalid reference format",
            ),
            (
                vec![("t", &*format!("x@sha256:{}", "a".repeat(64)))],
                "cannot be a digest",
            ),
            (vec![("version", "2")], "classic builder"),
            (vec![("remote", "https://x/y.git")], "not supported"),
            (
                vec![("dockerfile", "../Dockerfile")],
                "within the build context",
            ),
            (vec![("buildargs", "[1]")], "invalid buildargs"),
            (vec![("q", "maybe")], "not a boolean"),
        ] {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, *v)).collect();
            let e = parse_query(&q(&pairs)).unwrap_err();
            assert!(e.message.contains(want), "{pairs:?}: {}", e.message);
        }
        let e = parse_query(&q(&[("version", "2")])).unwrap_err();
        assert_eq!(e.kind, berth_types::ErrorKind::Unsupported);
    }

    #[test]
    fn dockerfile_paths_stay_inside() {
        assert_eq!(
            dockerfile_path(Some("a/../Dockerfile")).unwrap(),
            "Dockerfile"
        );
        assert_eq!(
            dockerfile_path(Some("/abs/Dockerfile")).unwrap(),
            "abs/Dockerfile"
        );
        assert!(dockerfile_path(Some("a/../../x")).is_err());
        assert!(dockerfile_path(Some(".")).is_err());
    }

    #[test]
    fn headers_decode() {
        let mut h = HeaderMap::new();
        let cfg = base64::engine::general_purpose::URL_SAFE.encode(
            r#"{"https://index.docker.io/v1/":{"username":"u","password":"p"},"127.0.0.1:5000":{"username":"v"}}"#,
        );
        h.insert("X-Registry-Config", cfg.parse().unwrap());
        let secret = base64::engine::general_purpose::STANDARD.encode("s3cr3t");
        let s =
            base64::engine::general_purpose::STANDARD.encode(format!(r#"{{"tok":"{secret}"}}"#));
        h.insert("X-Berth-Build-Secrets", s.parse().unwrap());
        let a = registry_config(&h).unwrap();
        assert_eq!(a["docker.io"].username.as_deref(), Some("u"));
        assert_eq!(a["127.0.0.1:5000"].username.as_deref(), Some("v"));
        assert_eq!(build_secrets(&h).unwrap()["tok"], b"s3cr3t");
        h.insert("X-Berth-Build-Secrets", "!!".parse().unwrap());
        assert!(build_secrets(&h).is_err());
        assert!(registry_config(&HeaderMap::new()).unwrap().is_empty());
    }

    #[test]
    fn build_errors_name_their_line_once() {
        let e = berth_build::BuildError::Invalid {
            line: Some(3),
            message: "COPY failed: file not found in build context".into(),
        };
        assert_eq!(
            with_line(&e),
            "COPY failed: file not found in build context (Dockerfile line 3)"
        );
        let e = berth_build::BuildError::Backend {
            line: Some(4),
            source: berth_build::BackendError::RunFailed {
                command: "/bin/sh -c exit 7".into(),
                code: 7,
            },
        };
        assert_eq!(
            with_line(&e),
            "The command '/bin/sh -c exit 7' returned a non-zero code: 7 (Dockerfile line 4)"
        );
        let e = berth_build::BuildError::Parse {
            line: 2,
            message: "unknown instruction: FOO".into(),
        };
        assert_eq!(
            with_line(&e),
            "dockerfile parse error on line 2: unknown instruction: FOO"
        );
    }

    #[test]
    fn until_takes_durations_seconds_and_times() {
        assert_eq!(parse_until("24h", 100_000).unwrap(), 100_000 - 86_400);
        assert_eq!(parse_until("1h30m", 10_000).unwrap(), 10_000 - 5400);
        assert_eq!(parse_until("90s", 100).unwrap(), 10);
        assert_eq!(parse_until("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_until("1970-01-01T00:01:00Z", 0).unwrap(), 60);
        assert!(parse_until("soon", 0).is_err());
        assert!(parse_until("10x", 0).is_err());
        assert!(parse_until("", 0).is_err());
    }
}
