//! The image routes of the Engine API: list, inspect, history, tag, remove, pull and import
//! (`/images/create`), push, save (`/images/get`), load, prune, registry login (`/auth`) and
//! `/system/df`. Names may contain slashes (`localhost:5000/a/b`), so the per-image routes are
//! one wildcard that is split on its last segment, as Docker's `{name:.*}` routes are.
//!
//! Streams (pull, push, load, import) answer Docker's JSON lines; an error before the first
//! line is an HTTP error, an error after it is an `errorDetail` line, as Docker does.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_image::archive::{self, ImportOptions, LoadOptions, SaveFormat};
use berth_image::gc::{parse_rfc3339, DeleteItem};
use berth_image::image::Image;
use berth_image::registry::{Progress, ProgressFn};
use berth_types::api::{AuthConfig, AuthResponse, ImageDeleteResponseItem};
use berth_types::{Digest, Reference};
use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use serde_json::{json, Value};

use super::body::{BodyReader, BodyWriter};
use super::{Daemon, Routes};
use crate::error::EngineError;
use crate::images::{
    self as svc, blocking, error_line, labels_of, layer_progress, layer_status, name_attr,
    parse_auth_header, parse_reference, repo_digests, resolve,
};

pub fn routes() -> Routes {
    Routes::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/auth", post(auth))
        .route("/system/df", get(system_df))
        .route(
            "/images/{*rest}",
            get(get_image).post(post_image).delete(delete_image),
        )
}

// ------------------------------------------------------------------ query strings

/// A query string's pairs, decoded (`+` is a space, `%XX` a byte), repeated keys kept.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let mut out = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((decode(k), decode(v)));
        }
        Self(out)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's boolean parameters: `1`, `true`, `True`… are true; absent, `0`, `false` not.
    fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key).map(str::to_ascii_lowercase).as_deref(),
            Some("1" | "true" | "yes")
        )
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Docker's `filters` parameter: `{"name":["v"]}` or the older `{"name":{"v":true}}`.
fn parse_filters(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, Vec<String>>, EngineError> {
    let mut out = HashMap::new();
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(out);
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| EngineError::invalid(format!("invalid filter: {e}")))?;
    let Value::Object(m) = v else {
        return Err(EngineError::invalid("invalid filter: not a JSON object"));
    };
    for (k, v) in m {
        if !allowed.contains(&k.as_str()) {
            return Err(EngineError::invalid(format!("invalid filter '{k}'")));
        }
        let vals: Vec<String> = match v {
            Value::Array(a) => a
                .into_iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o
                .into_iter()
                .filter(|(_, b)| b.as_bool().unwrap_or(false))
                .map(|(k, _)| k)
                .collect(),
            Value::String(s) => vec![s],
            _ => return Err(EngineError::invalid(format!("invalid filter '{k}'"))),
        };
        out.entry(k).or_insert_with(Vec::new).extend(vals);
    }
    Ok(out)
}

/// Go's `path.Match` for the patterns `reference` filters use (`*`, `?`, literals; `*` does not
/// cross `/`).
fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => {
                let mut i = 0;
                loop {
                    if go(rest, t.get(i..).unwrap_or(&[])) {
                        return true;
                    }
                    match t.get(i) {
                        Some(c) if *c != '/' => i += 1,
                        _ => return false,
                    }
                }
            }
            Some(('?', rest)) => match t.split_first() {
                Some((c, tr)) if *c != '/' => go(rest, tr),
                _ => false,
            },
            Some((c, rest)) => match t.split_first() {
                Some((d, tr)) if d == c => go(rest, tr),
                _ => false,
            },
        }
    }
    go(&p, &t)
}

fn bad_bool(name: &str, v: &str) -> EngineError {
    EngineError::invalid(format!("invalid filter '{name}={v}'"))
}

// ------------------------------------------------------------------ streams

/// A streamed JSON answer: Docker's lines, each followed by `\r\n`.
fn json_stream() -> (Sender<Bytes>, Response) {
    let (tx, body) = Channel::<Bytes>::new(32);
    let resp = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::new(body),
    )
        .into_response();
    (tx, resp)
}

async fn send(tx: &mut Sender<Bytes>, v: &Value) -> bool {
    tx.send_data(Bytes::from(format!("{v}\r\n"))).await.is_ok()
}

// ------------------------------------------------------------------ per-image dispatch

/// The `{*rest}` of a per-image route (the `/vX.Y` prefix is another parameter).
fn wildcard(params: &HashMap<String, String>) -> &str {
    params.get("rest").map_or("", String::as_str)
}

async fn get_image(
    State(d): State<Arc<Daemon>>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, EngineError> {
    let rest = wildcard(&params);
    if let Some(name) = rest.strip_suffix("/json") {
        return inspect(d, name.to_string()).await;
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return history(d, name.to_string()).await;
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save(d, vec![name.to_string()]).await;
    }
    Err(EngineError::not_found("page not found"))
}

async fn post_image(
    State(d): State<Arc<Daemon>>,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, EngineError> {
    let rest = wildcard(&params);
    let q = Query::parse(q.as_deref());
    if let Some(name) = rest.strip_suffix("/tag") {
        return tag(d, name.to_string(), q).await;
    }
    if let Some(name) = rest.strip_suffix("/push") {
        return push(d, name.to_string(), q, headers).await;
    }
    Err(EngineError::not_found("page not found"))
}

// ------------------------------------------------------------------ list, inspect, history

fn created_unix(img: &Image) -> i64 {
    img.config
        .created
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(0)
}

/// Docker's `Parent`/`ParentId`: the image a build step was made from, or "".
fn parent_of(d: &Daemon, img: &Image) -> String {
    d.images
        .index()
        .ok()
        .and_then(|ix| ix.parent_of(img.id()).ok().flatten())
        .map(|p| p.to_string())
        .unwrap_or_default()
}

fn summary(img: &Image, parent: String, shared: i64, containers: i64) -> Value {
    json!({
        "Containers": containers,
        "Created": created_unix(img),
        "Id": img.id().to_string(),
        "Labels": labels_of(img),
        "ParentId": parent,
        "RepoDigests": repo_digests(img),
        "RepoTags": img.tags.iter().map(Reference::familiar_string).collect::<Vec<_>>(),
        "SharedSize": shared,
        "Size": img.record.size,
    })
}

async fn list(
    State(d): State<Arc<Daemon>>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, EngineError> {
    let q = Query::parse(q.as_deref());
    let filters = parse_filters(
        q.get("filters"),
        &["dangling", "label", "reference", "before", "since", "until"],
    )?;
    let shared = q.flag("shared-size");
    let all = q.flag("all");
    let out = blocking(move || {
        // Images only the build cache holds are intermediate images: hidden unless `all`.
        let hidden = if all {
            HashSet::new()
        } else {
            crate::build::usage::cache_only_images(&d)?
        };
        let records = d.images.index()?.images()?;
        let mut images = Vec::with_capacity(records.len());
        for r in records {
            match d.images.get_by_id(&r.id) {
                Ok(i) => images.push(i),
                // An image a store check found broken still lists, as Docker lists it.
                Err(e) => tracing::warn!("image {}: {e}", r.id),
            }
        }
        let mut keep: Vec<Image> = Vec::new();
        let time_of = |name: &str| -> Result<i64, EngineError> {
            Ok(created_unix(&resolve(&d.images, name)?))
        };
        let before: Option<i64> = filters
            .get("before")
            .and_then(|v| v.first())
            .map(|n| time_of(n))
            .transpose()?;
        let since: Option<i64> = filters
            .get("since")
            .and_then(|v| v.first())
            .map(|n| time_of(n))
            .transpose()?;
        let dangling = match filters.get("dangling").and_then(|v| v.first()) {
            None => None,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => return Err(bad_bool("dangling", v)),
            },
        };
        for img in &images {
            if hidden.contains(&img.id().to_string()) {
                continue;
            }
            let t = created_unix(img);
            if dangling.is_some_and(|want| want != img.tags.is_empty()) {
                continue;
            }
            if before.is_some_and(|b| t >= b) || since.is_some_and(|s| t <= s) {
                continue;
            }
            if let Some(labels) = filters.get("label") {
                let have = img
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default();
                let ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                    None => have.contains_key(l),
                });
                if !ok {
                    continue;
                }
            }
            let mut img = img.clone();
            if let Some(pats) = filters.get("reference") {
                // As Docker: only the matching names are listed.
                img.tags.retain(|t| {
                    pats.iter()
                        .any(|p| glob(p, &t.familiar_string()) || glob(p, &t.familiar_name()))
                });
                if img.tags.is_empty() {
                    continue;
                }
                img.repo_digests.retain(|(repo, _)| {
                    let name = Reference::parse_normalized(repo)
                        .map(|r| r.familiar_name())
                        .unwrap_or_else(|_| repo.clone());
                    pats.iter().any(|p| glob(p, &name))
                });
            }
            keep.push(img);
        }
        let usage: HashMap<Digest, (i64, i64)> = if shared {
            svc::df_images(&d)?
                .images
                .iter()
                .filter_map(|v| {
                    let id = Digest::parse(v["Id"].as_str()?).ok()?;
                    Some((id, (v["SharedSize"].as_i64()?, v["Containers"].as_i64()?)))
                })
                .collect()
        } else {
            HashMap::new()
        };
        keep.sort_by_key(|i| std::cmp::Reverse(created_unix(i)));
        let list: Vec<Value> = keep
            .iter()
            .map(|i| {
                let (s, c) = usage.get(i.id()).copied().unwrap_or((-1, -1));
                summary(i, parent_of(&d, i), s, c)
            })
            .collect();
        Ok(Value::Array(list))
    })
    .await?;
    Ok(Json(out))
}

/// The image's `Config` as Docker's API (before 1.50) shows it: the legacy container-config
/// fields first, then what the image config sets.
fn inspect_config(img: &Image) -> Value {
    let c = img.config.config.clone().unwrap_or_default();
    let mut v = json!({
        "Hostname": "",
        "Domainname": "",
        "User": c.user.clone().unwrap_or_default(),
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": c.env,
        "Cmd": c.cmd,
        "Image": "",
        "Volumes": c.volumes,
        "WorkingDir": c.working_dir.clone().unwrap_or_default(),
        "Entrypoint": c.entrypoint,
        "OnBuild": c.extra.get("OnBuild").cloned().unwrap_or(Value::Null),
        "Labels": c.labels,
    });
    if let Some(m) = v.as_object_mut() {
        if let Some(p) = c.exposed_ports.filter(|p| !p.is_empty()) {
            m.insert("ExposedPorts".into(), json!(p));
        }
        if let Some(h) = c.healthcheck {
            m.insert("Healthcheck".into(), h);
        }
        if let Some(s) = c.stop_signal.filter(|s| !s.is_empty()) {
            m.insert("StopSignal".into(), json!(s));
        }
        for k in ["Shell", "ArgsEscaped", "StopTimeout"] {
            if let Some(x) = c.extra.get(k).filter(|x| !x.is_null()) {
                m.insert(k.into(), x.clone());
            }
        }
    }
    v
}

fn inspect_json(d: &Daemon, img: &Image) -> Value {
    let extra = |k: &str| {
        img.config
            .extra
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let lower: Vec<String> = d
        .images
        .lower_dirs(img)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut v = json!({
        "Id": img.id().to_string(),
        "RepoTags": img.tags.iter().map(Reference::familiar_string).collect::<Vec<_>>(),
        "RepoDigests": repo_digests(img),
        "Parent": parent_of(d, img),
        "Comment": extra("comment"),
        "Created": img.config.created.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "DockerVersion": extra("docker_version"),
        "Author": img.config.author.clone().unwrap_or_default(),
        "Config": inspect_config(img),
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Size": img.record.size,
        "GraphDriver": {
            "Data": {"LowerDir": lower.join(":")},
            "Name": "overlayfs",
        },
        "RootFS": {
            "Type": img.config.rootfs.kind,
            "Layers": img.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    if let (Some(var), Some(m)) = (&img.config.variant, v.as_object_mut()) {
        m.insert("Variant".into(), json!(var));
    }
    v
}

async fn inspect(d: Arc<Daemon>, name: String) -> Result<Response, EngineError> {
    let v = blocking(move || {
        let img = resolve(&d.images, &name)?;
        Ok(inspect_json(&d, &img))
    })
    .await?;
    Ok(Json(v).into_response())
}

async fn history(d: Arc<Daemon>, name: String) -> Result<Response, EngineError> {
    let items = blocking(move || {
        resolve(&d.images, &name)?;
        let ix = d.images.index()?;
        let entries = d.image_service.ops.history(&ix, &name)?;
        Ok(entries
            .into_iter()
            .map(|e| {
                // Docker's `ImageHistoryResponseItem`, with `Tags` null where there are none.
                let tags = if e.tags.is_empty() {
                    Value::Null
                } else {
                    json!(e.tags)
                };
                json!({
                    "Comment": e.comment,
                    "Created": e.created_unix.unwrap_or(0),
                    "CreatedBy": e.created_by,
                    "Id": e.image_column_full(),
                    "Size": e.size,
                    "Tags": tags,
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(items).into_response())
}

/// The `Id` column of the history API: the full image id, or `<missing>`.
trait FullId {
    fn image_column_full(&self) -> String;
}

impl FullId for berth_image::gc::HistoryEntry {
    fn image_column_full(&self) -> String {
        self.id
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "<missing>".into())
    }
}

// ------------------------------------------------------------------ tag, remove, prune

async fn tag(d: Arc<Daemon>, name: String, q: Query) -> Result<Response, EngineError> {
    let repo = q.get("repo").unwrap_or_default().to_string();
    let tag = q.get("tag").unwrap_or_default().to_string();
    blocking(move || {
        let img = resolve(&d.images, &name)?;
        if repo.is_empty() {
            return Err(EngineError::invalid(
                "invalid reference format: repository name must have at least one component",
            ));
        }
        let mut r = parse_reference(&repo)?;
        if !tag.is_empty() {
            r = r.with_tag(&tag)?;
        }
        let target = r.with_default_tag();
        let mut ix = d.images.index()?;
        d.image_service
            .ops
            .tag(&mut ix, &img.id().to_string(), &target.to_string())?;
        drop(ix);
        d.events.emit(
            "image",
            "tag",
            &img.id().to_string(),
            name_attr(&target.familiar_string()),
        );
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

fn emit_deleted(d: &Daemon, items: &[DeleteItem], image: Option<&Digest>) {
    for it in items {
        match it {
            DeleteItem::Untagged(n) => {
                let id = image.map(|i| i.to_string()).unwrap_or_else(|| n.clone());
                d.events.emit("image", "untag", &id, name_attr(&id));
            }
            DeleteItem::Deleted(id) => {
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

fn delete_items(items: Vec<DeleteItem>) -> Vec<ImageDeleteResponseItem> {
    items
        .into_iter()
        .map(|i| match i {
            DeleteItem::Untagged(n) => ImageDeleteResponseItem {
                untagged: Some(n),
                deleted: None,
            },
            DeleteItem::Deleted(id) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(id.to_string()),
            },
        })
        .collect()
}

async fn delete_image(
    State(d): State<Arc<Daemon>>,
    Path(params): Path<HashMap<String, String>>,
    RawQuery(q): RawQuery,
) -> Result<Response, EngineError> {
    let name = wildcard(&params).to_string();
    let q = Query::parse(q.as_deref());
    let force = q.flag("force");
    let items = blocking(move || {
        let id = resolve(&d.images, &name)?.id().clone();
        let items = svc::remove(&d, &name, force)?;
        emit_deleted(&d, &items, Some(&id));
        Ok(delete_items(items))
    })
    .await?;
    Ok(Json(items).into_response())
}

async fn prune(
    State(d): State<Arc<Daemon>>,
    RawQuery(q): RawQuery,
) -> Result<Response, EngineError> {
    let q = Query::parse(q.as_deref());
    let filters = parse_filters(q.get("filters"), &["dangling", "label", "until"])?;
    let all = match filters.get("dangling").and_then(|v| v.first()) {
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => false,
            "false" | "0" => true,
            _ => return Err(bad_bool("dangling", v)),
        },
    };
    let labels = filters.get("label").cloned().unwrap_or_default();
    let until = match filters.get("until").and_then(|v| v.first()) {
        None => None,
        Some(u) => Some(parse_until(u)?),
    };
    let v = blocking(move || {
        // Intermediate images belong to the build cache: `builder prune` removes them.
        let cache_held = crate::build::usage::cache_only_images(&d)?;
        let records = d.images.index()?.images()?;
        let layer_sizes: HashMap<Digest, u64> = d
            .images
            .index()?
            .all_layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.size))
            .collect();
        let mut deleted = Vec::new();
        let mut space = 0u64;
        for r in records {
            let Ok(img) = d.images.get_by_id(&r.id) else {
                continue;
            };
            if !all && !img.tags.is_empty() {
                continue;
            }
            if cache_held.contains(&img.id().to_string()) {
                continue;
            }
            if !d.image_service.users(img.id()).is_empty()
                || !d.images.index()?.users_of(img.id())?.is_empty()
            {
                continue;
            }
            if until.is_some_and(|u| created_unix(&img) >= u) {
                continue;
            }
            let have = img
                .config
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let labels_ok = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                None => have.contains_key(l),
            });
            if !labels_ok {
                continue;
            }
            let items = {
                let mut ix = d.images.index()?;
                d.image_service
                    .ops
                    .rmi(&mut ix, &img.id().to_string(), true)?
            };
            for it in &items {
                if let DeleteItem::Deleted(id) = it {
                    space += layer_sizes.get(id).copied().unwrap_or(0);
                }
            }
            emit_deleted(&d, &items, Some(img.id()));
            deleted.extend(items);
        }
        let deleted = delete_items(deleted);
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": space,
        }))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// An `until` filter: unix seconds, or an RFC 3339 time.
fn parse_until(u: &str) -> Result<i64, EngineError> {
    if let Ok(n) = u.split('.').next().unwrap_or(u).parse::<i64>() {
        return Ok(n);
    }
    parse_rfc3339(u).ok_or_else(|| EngineError::invalid(format!("invalid filter 'until={u}'")))
}

// ------------------------------------------------------------------ pull and import

async fn create(
    State(d): State<Arc<Daemon>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EngineError> {
    let q = Query::parse(q.as_deref());
    if let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) {
        let from = from.to_string();
        return pull(d, from, q, headers).await;
    }
    if let Some(src) = q.get("fromSrc") {
        let src = src.to_string();
        return import(d, src, q, body).await;
    }
    Err(EngineError::invalid(
        "give fromImage (to pull) or fromSrc (to import)",
    ))
}

fn auth_of(headers: &HeaderMap) -> Result<Option<AuthConfig>, EngineError> {
    match headers.get("X-Registry-Auth") {
        None => Ok(None),
        Some(h) => parse_auth_header(
            h.to_str()
                .map_err(|_| EngineError::invalid("X-Registry-Auth: not ASCII"))?,
        ),
    }
}

async fn pull(
    d: Arc<Daemon>,
    from: String,
    q: Query,
    headers: HeaderMap,
) -> Result<Response, EngineError> {
    let mut r = parse_reference(&from)?;
    let tag = q.get("tag").unwrap_or_default();
    if !tag.is_empty() {
        r = match Digest::parse(tag) {
            Ok(dg) => r.with_digest(dg),
            Err(_) if tag.contains(':') => {
                return Err(EngineError::invalid(format!(
                    "invalid reference format: {tag:?} is neither a tag nor a digest"
                )))
            }
            Err(_) => r.with_tag(tag)?,
        };
    }
    let r = r.docker_ref();
    let auth = auth_of(&headers)?;
    let client = d.image_service.client(r.domain(), auth.as_ref())?;
    let before = {
        let (d, r) = (d.clone(), r.clone());
        blocking(move || Ok(d.images.index()?.by_reference(&r)?.map(|i| i.id))).await?
    };
    let shown_tag = r
        .tag()
        .map(str::to_string)
        .or_else(|| r.digest().map(|g| g.to_string()))
        .unwrap_or_default();
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let state = Mutex::new(svc::PullLines::default());
    let (from_path, tag2) = (r.path().to_string(), shown_tag.clone());
    let progress: ProgressFn = Arc::new(move |p| {
        if let Ok(mut s) = state.lock() {
            for v in s.lines(p, &from_path, &tag2) {
                let _ = ptx.send(v);
            }
        }
    });
    let store = svc::store(&d);
    let r2 = r.clone();
    let mut task = tokio::spawn(async move { client.pull(&store, &r2, progress).await });
    // An error before the first line is an HTTP error. The receiver ends without a line only
    // when the pull ended (it dropped its progress callback) without saying anything.
    let first = prx.recv().await;
    let (tx, resp) = json_stream();
    if first.is_none() {
        let res = (&mut task)
            .await
            .map_err(|e| EngineError::internal(format!("the pull failed: {e}")))?;
        let pulled = res.map_err(pull_error)?;
        tokio::spawn(finish_pull(d, tx, None, prx, Ok(Ok(pulled)), r, before));
        return Ok(resp);
    }
    tokio::spawn(finish_pull(d, tx, first, prx, Err(task), r, before));
    Ok(resp)
}

/// A pull's error as Docker's daemon answers it: a registry's refusal is not the daemon's 401
/// (which would make the CLI ask for a login), and a denied repository reads as not found.
fn pull_error(e: berth_image::registry::RegistryError) -> EngineError {
    let e = EngineError::from(e);
    match e.kind {
        berth_types::ErrorKind::Unauthorized => EngineError::internal(e.message),
        berth_types::ErrorKind::PermissionDenied => EngineError::not_found(e.message),
        _ => e,
    }
}

type PullResult = Result<berth_image::registry::PulledImage, berth_image::registry::RegistryError>;

async fn finish_pull(
    d: Arc<Daemon>,
    mut tx: Sender<Bytes>,
    first: Option<Value>,
    mut prx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    outcome: Result<PullResult, tokio::task::JoinHandle<PullResult>>,
    r: Reference,
    before: Option<Digest>,
) {
    let mut connected = true;
    if let Some(v) = first {
        connected &= send(&mut tx, &v).await;
    }
    // The receiver ends when the pull dropped its progress callback, that is when it ended.
    while let Some(v) = prx.recv().await {
        if connected {
            connected &= send(&mut tx, &v).await;
        }
    }
    let res = match outcome {
        Ok(r) => r,
        Err(task) => match task.await {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut tx, &error_line(&format!("the pull failed: {e}"))).await;
                return;
            }
        },
    };
    match res {
        Ok(p) => {
            let shown = r.familiar_string();
            let status = if before.as_ref() == Some(&p.id) {
                format!("Status: Image is up to date for {shown}")
            } else {
                format!("Status: Downloaded newer image for {shown}")
            };
            let _ = send(
                &mut tx,
                &json!({"status": format!("Digest: {}", p.manifest_digest)}),
            )
            .await;
            let _ = send(&mut tx, &json!({ "status": status })).await;
            d.events
                .emit("image", "pull", &shown, name_attr(&r.familiar_name()));
        }
        Err(e) => {
            let _ = send(&mut tx, &error_line(&e.to_string())).await;
        }
    }
}

async fn import(
    d: Arc<Daemon>,
    src: String,
    q: Query,
    body: Body,
) -> Result<Response, EngineError> {
    let from_url = src.starts_with("http://") || src.starts_with("https://");
    if src != "-" && !from_url {
        return Err(EngineError::invalid(format!(
            "cannot import from {src:?}: give an http:// or https:// URL, or send the tar in the request body (fromSrc=-)"
        )));
    }
    let mut tags = Vec::new();
    if let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) {
        let mut r = parse_reference(repo)?;
        if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
            r = r.with_tag(t)?;
        }
        if r.digest().is_some() {
            return Err(EngineError::invalid(
                "invalid reference format: cannot import with a digest",
            ));
        }
        tags.push(r.with_default_tag());
    }
    let changes: Vec<String> = q
        .all("changes")
        .into_iter()
        .flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| !c.trim().is_empty())
        .collect();
    let opts = ImportOptions {
        tags,
        message: q.get("message").map(str::to_string),
        changes,
        source: Some(src.clone()),
        format: Default::default(),
    };
    let d2 = d.clone();
    let id = if from_url {
        // `docker import URL`: the daemon downloads the tarball (into its own temp dir, removed
        // whatever happens), then imports it as if it had been sent.
        let tmp = tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(d.images.tmp_dir())
            .map_err(|e| EngineError::internal(format!("create a temp file for {src}: {e}")))?;
        d.builds
            .fetcher()
            .fetch(&src, tmp.path())
            .await
            .map_err(|e| EngineError::invalid(e.to_string()))?;
        blocking(move || {
            let f = std::fs::File::open(tmp.path())
                .map_err(|e| EngineError::internal(format!("open the download of {src}: {e}")))?;
            let img = d2.images.import(std::io::BufReader::new(f), &opts)?;
            drop(tmp);
            Ok(img.id().clone())
        })
        .await?
    } else {
        let reader = BodyReader::new(body);
        blocking(move || {
            let img = d2.images.import(reader, &opts)?;
            Ok(img.id().clone())
        })
        .await?
    };
    d.events.emit(
        "image",
        "import",
        &id.to_string(),
        name_attr(&id.to_string()),
    );
    let (mut tx, resp) = json_stream();
    tokio::spawn(async move {
        let _ = send(&mut tx, &json!({"status": id.to_string()})).await;
    });
    Ok(resp)
}

// ------------------------------------------------------------------ push

/// Turns the registry client's push progress into Docker's lines, for the image's layers only.
struct PushLines {
    layers: HashSet<Digest>,
    last_pct: HashMap<Digest, u64>,
}

impl PushLines {
    fn lines(&mut self, p: Progress) -> Vec<Value> {
        let mut out = Vec::new();
        match p {
            Progress::Pushing { id, current, total } if self.layers.contains(&id) => {
                let pct = (current * 100).checked_div(total).unwrap_or(0);
                if self.last_pct.insert(id.clone(), pct) != Some(pct) {
                    out.push(layer_progress("Pushing", id.short(), current, total));
                }
            }
            Progress::Pushed { id } if self.layers.contains(&id) => {
                out.push(layer_status("Pushed", id.short()));
            }
            Progress::AlreadyExists { id } if self.layers.contains(&id) => {
                out.push(layer_status("Layer already exists", id.short()));
            }
            Progress::Mounted { id, from } if self.layers.contains(&id) => {
                let from = from.strip_prefix("library/").unwrap_or(&from).to_string();
                out.push(layer_status(&format!("Mounted from {from}"), id.short()));
            }
            _ => {}
        }
        out
    }
}

async fn push(
    d: Arc<Daemon>,
    name: String,
    q: Query,
    headers: HeaderMap,
) -> Result<Response, EngineError> {
    let mut r = parse_reference(&name)?;
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        r = match Digest::parse(t) {
            Ok(dg) => r.with_digest(dg),
            Err(_) => r.with_tag(t)?,
        };
    }
    let r = r.with_default_tag();
    let auth = auth_of(&headers)?;
    let client = d.image_service.client(r.domain(), auth.as_ref())?;
    let (d2, r2) = (d.clone(), r.clone());
    let img = blocking(move || match d2.images.get(&r2.to_string()) {
        Ok(i) => Ok(i),
        Err(berth_image::image::ImageError::Index(berth_image::IndexError::NotFound(_))) => {
            Err(EngineError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                r2.familiar_name()
            )))
        }
        Err(e) => Err(e.into()),
    })
    .await?;
    let layers: Vec<Digest> = img
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let state = Mutex::new(PushLines {
        layers: layers.iter().cloned().collect(),
        last_pct: HashMap::new(),
    });
    let progress: ProgressFn = Arc::new(move |p| {
        if let Ok(mut s) = state.lock() {
            for v in s.lines(p) {
                let _ = ptx.send(v);
            }
        }
    });
    let (tx, resp) = json_stream();
    let store = svc::store(&d);
    tokio::spawn(async move {
        let mut tx = tx;
        let _ = send(
            &mut tx,
            &json!({"status": format!("The push refers to repository [{}]", r.name())}),
        )
        .await;
        for l in layers.iter().rev() {
            let _ = send(&mut tx, &layer_status("Preparing", l.short())).await;
        }
        let source = img.id().to_string();
        let r2 = r.clone();
        let task = tokio::spawn(async move { client.push(&store, &source, &r2, progress).await });
        while let Some(v) = prx.recv().await {
            let _ = send(&mut tx, &v).await;
        }
        let res = match task.await {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut tx, &error_line(&format!("the push failed: {e}"))).await;
                return;
            }
        };
        match res {
            Ok(rep) => {
                let md = rep.manifest_digest.clone();
                let (d3, md2) = (d.clone(), md.clone());
                let (image_id, repo) = (img.id().clone(), r.name());
                let size = blocking(move || {
                    // Docker's RepoDigests: the repository now holds the image under this digest.
                    if let Ok(mut ix) = d3.images.index() {
                        let _ = ix.add_repo_digest(&image_id, &repo, &md2);
                    }
                    Ok(d3.images.content().size(&md2).unwrap_or(0))
                })
                .await
                .unwrap_or(0);
                let tag = r
                    .tag()
                    .map(str::to_string)
                    .unwrap_or_else(|| md.to_string());
                let _ = send(
                    &mut tx,
                    &json!({"status": format!("{tag}: digest: {md} size: {size}")}),
                )
                .await;
                let _ = send(
                    &mut tx,
                    &json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": md.to_string(), "Size": size}}),
                )
                .await;
                d.events.emit(
                    "image",
                    "push",
                    &r.familiar_string(),
                    name_attr(&r.familiar_name()),
                );
            }
            Err(e) => {
                let _ = send(&mut tx, &error_line(&e.to_string())).await;
            }
        }
    });
    Ok(resp)
}

// ------------------------------------------------------------------ save and load

async fn save_many(
    State(d): State<Arc<Daemon>>,
    RawQuery(q): RawQuery,
) -> Result<Response, EngineError> {
    let names = Query::parse(q.as_deref()).all("names");
    if names.is_empty() {
        return Err(EngineError::invalid("no images named: give names=…"));
    }
    save(d, names).await
}

async fn save(d: Arc<Daemon>, names: Vec<String>) -> Result<Response, EngineError> {
    // Every name must exist before the first byte goes out.
    let (d2, n2) = (d.clone(), names.clone());
    let ids = blocking(move || {
        n2.iter()
            .map(|n| resolve(&d2.images, n).map(|i| i.id().clone()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let (tx, body) = Channel::<Bytes>::new(8);
    let handle = tokio::runtime::Handle::current();
    let d3 = d.clone();
    tokio::task::spawn_blocking(move || {
        let w = BodyWriter::new(tx, handle);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        match archive::save(&d3.images, &refs, SaveFormat::DockerArchive, w) {
            Ok(mut w) => {
                if w.flush().is_ok() {
                    for id in &ids {
                        d3.events.emit(
                            "image",
                            "save",
                            &id.to_string(),
                            name_attr(&id.to_string()),
                        );
                    }
                }
            }
            // The status is sent: cutting the stream short is how the client learns of it.
            Err(e) => tracing::warn!("save {names:?}: {e}"),
        }
    });
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        )],
        Body::new(body),
    )
        .into_response())
}

async fn load(
    State(d): State<Arc<Daemon>>,
    RawQuery(_q): RawQuery,
    body: Body,
) -> Result<Response, EngineError> {
    let reader = BodyReader::new(body);
    let d2 = d.clone();
    let report =
        blocking(move || Ok(archive::load(&d2.images, reader, &LoadOptions::default())?)).await?;
    let mut lines = Vec::new();
    for (id, tags) in &report.images {
        if tags.is_empty() {
            lines.push(json!({"stream": format!("Loaded image ID: {id}\n")}));
            d.events
                .emit("image", "load", &id.to_string(), name_attr(&id.to_string()));
        }
        for t in tags {
            lines.push(json!({"stream": format!("Loaded image: {}\n", t.familiar_string())}));
            d.events.emit(
                "image",
                "load",
                &id.to_string(),
                name_attr(&t.familiar_string()),
            );
        }
    }
    let (mut tx, resp) = json_stream();
    tokio::spawn(async move {
        for l in lines {
            if !send(&mut tx, &l).await {
                break;
            }
        }
    });
    Ok(resp)
}

// ------------------------------------------------------------------ auth and df

async fn auth(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response, EngineError> {
    let a: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| EngineError::invalid(format!("invalid auth config: {e}")))?;
    let domain = svc::server_domain(a.serveraddress.as_deref().unwrap_or_default());
    let creds = svc::credentials(&a).unwrap_or(berth_image::registry::Credentials {
        username: String::new(),
        password: String::new(),
    });
    let client = d.image_service.client(&domain, Some(&a))?;
    match client.login(&domain, &creds).await {
        Ok(()) => Ok(Json(AuthResponse {
            status: "Login Succeeded".into(),
            identity_token: Some(String::new()),
        })
        .into_response()),
        Err(e) => {
            let err = EngineError::from(e);
            if err.kind == berth_types::ErrorKind::Unauthorized {
                let scheme = if is_plain_http(&d, &domain) {
                    "http"
                } else {
                    "https"
                };
                return Err(EngineError::new(
                    berth_types::ErrorKind::Unauthorized,
                    format!("login attempt to {scheme}://{domain}/v2/ failed with status: 401 Unauthorized"),
                ));
            }
            Err(err)
        }
    }
}

fn is_plain_http(d: &Daemon, domain: &str) -> bool {
    let host = domain.rsplit_once(':').map_or(domain, |(h, _)| h);
    host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || d.config.insecure_registries.iter().any(|i| i == domain)
}

async fn system_df(State(d): State<Arc<Daemon>>) -> Result<Response, EngineError> {
    let d2 = d.clone();
    let containers = tokio::task::spawn_blocking(move || super::containers::df_containers(&d2))
        .await
        .unwrap_or_default();
    let d3 = d.clone();
    let volumes = tokio::task::spawn_blocking(move || d3.df_volumes())
        .await
        .unwrap_or_default();
    let d4 = d.clone();
    let build_cache = blocking(move || crate::build::usage::df(&d4)).await?;
    let df = blocking(move || svc::df_images(&d)).await?;
    Ok(Json(json!({
        "LayersSize": df.layers_size,
        "Images": df.images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": build_cache,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_repeat() {
        let q = Query::parse(Some("names=busybox&names=a%2Fb%3A1&force=1&x=a+b&bad=%zz"));
        assert_eq!(q.all("names"), vec!["busybox", "a/b:1"]);
        assert!(q.flag("force"));
        assert!(!q.flag("noprune"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert!(Query::parse(None).0.is_empty());
    }

    #[test]
    fn filters_in_both_shapes() {
        let f = parse_filters(
            Some(r#"{"dangling":{"true":true},"label":["a=b"]}"#),
            &["dangling", "label"],
        )
        .unwrap();
        assert_eq!(f["dangling"], vec!["true"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some(r#"{"nope":["x"]}"#), &["dangling"]).is_err());
        assert!(parse_filters(Some("not json"), &["dangling"]).is_err());
        assert!(parse_filters(Some("[]"), &["dangling"]).is_err());
        assert!(parse_filters(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn reference_globs_as_go_path_match() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("busy*", "a/busybox"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/*", "a/b"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("b?sybox", "bsybox"));
        assert!(glob("", ""));
    }

    #[test]
    fn pull_lines_follow_dockers_order() {
        let mut p = svc::PullLines::default();
        let id = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let l = p.lines(
            Progress::Resolved {
                reference: "busybox:latest".into(),
                digest: id.clone(),
            },
            "library/busybox",
            "latest",
        );
        assert_eq!(l[0]["status"], "Pulling from library/busybox");
        assert_eq!(l[0]["id"], "latest");
        let l = p.lines(
            Progress::Downloading {
                id: id.clone(),
                current: 1,
                total: 10,
            },
            "",
            "",
        );
        assert_eq!(l[0]["status"], "Pulling fs layer");
        assert_eq!(l[1]["status"], "Downloading");
        assert_eq!(l[1]["id"], "aaaaaaaaaaaa");
        // The same percent again: no line.
        let l = p.lines(
            Progress::Downloading {
                id: id.clone(),
                current: 1,
                total: 10,
            },
            "",
            "",
        );
        assert!(l.is_empty());
        let l = p.lines(Progress::Done { id: id.clone() }, "", "");
        assert_eq!(l[0]["status"], "Pull complete");
        let l = p.lines(
            Progress::Downloading {
                id,
                current: 0,
                total: 0,
            },
            "",
            "",
        );
        assert_eq!(l.len(), 1, "no division by zero, no second announcement");
    }

    #[test]
    fn until_takes_seconds_or_times() {
        assert_eq!(parse_until("10").unwrap(), 10);
        assert_eq!(parse_until("10.5").unwrap(), 10);
        assert_eq!(parse_until("1970-01-01T00:01:00Z").unwrap(), 60);
        assert!(parse_until("soon").is_err());
    }
}
