//! What a container changed, as Docker's users read it: `POST /commit` (the container's overlay
//! upper dir becomes a new layer over its image), `GET /containers/{id}/changes` (`docker diff`)
//! and `GET /containers/{id}/export` (a tar of the merged root filesystem).
//!
//! A stopped container's rootfs is unmounted but its upper dir keeps the changes, so commit and
//! changes read the upper dir directly; export mounts the overlay for the time of the export
//! (holding the container's operation lock, so no start races the temporary mount) and unmounts
//! it after. This module never writes into a container's snapshot.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_image::image::{apply_changes, CommitOptions};
use berth_types::ContainerId;
use http_body_util::channel::{Channel, Sender};
use serde_json::{json, Value};

use super::{Daemon, Routes};
use crate::containers::{Entry, Record, Status};
use crate::error::EngineError;
use crate::images::{blocking, parse_reference};

pub fn routes() -> Routes {
    Routes::new()
        .route("/commit", post(commit))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/export", get(export))
}

/// A query string's pairs in order, repeated keys kept (`changes` repeats).
type Pairs = Query<Vec<(String, String)>>;

fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Docker's booleans; `default` when absent or empty.
fn flag(q: &[(String, String)], key: &str, default: bool) -> bool {
    match first(q, key).map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some(v) => matches!(v, "1" | "true" | "yes"),
    }
}

fn container_id(id: &str) -> Result<ContainerId, EngineError> {
    ContainerId::new(id).map_err(|e| EngineError::internal(format!("container {id}: {e}")))
}

/// The image config a commit records: the container's config with the request body's non-null
/// fields on top (Docker's merge), in the image store's type.
fn committed_config(
    rec: &Record,
    body: &Bytes,
) -> Result<berth_image::image::config::ContainerConfig, EngineError> {
    let mut base = serde_json::to_value(&rec.config)
        .map_err(|e| EngineError::internal(format!("container config: {e}")))?;
    let body = String::from_utf8_lossy(body);
    if !body.trim().is_empty() {
        let over: Value = serde_json::from_str(&body)
            .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?;
        match over {
            Value::Null => {}
            Value::Object(m) => {
                if let Value::Object(b) = &mut base {
                    for (k, v) in m {
                        if !v.is_null() {
                            b.insert(k, v);
                        }
                    }
                }
            }
            _ => {
                return Err(EngineError::invalid(
                    "invalid JSON: the body must be a container config object",
                ))
            }
        }
    }
    if let Value::Object(b) = &mut base {
        b.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(base)
        .map_err(|e| EngineError::invalid(format!("invalid container config: {e}")))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
async fn commit(
    State(d): State<Arc<Daemon>>,
    Query(q): Pairs,
    body: Bytes,
) -> Result<Response, EngineError> {
    let key = first(&q, "container")
        .ok_or_else(|| EngineError::invalid("a container is required: container=NAME|ID"))?;
    let e = d.containers.get(key)?;
    let rec = e.snapshot();

    let mut tags = Vec::new();
    if let Some(repo) = first(&q, "repo") {
        let mut r = parse_reference(repo)?;
        if let Some(t) = first(&q, "tag") {
            r = r.with_tag(t)?;
        }
        if r.digest().is_some() {
            return Err(EngineError::invalid(
                "invalid reference format: cannot commit to a digest",
            ));
        }
        tags.push(r.with_default_tag());
    } else if first(&q, "tag").is_some() {
        return Err(EngineError::invalid("a tag needs a repository: repo=NAME"));
    }
    let changes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "changes")
        .flat_map(|(_, v)| v.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| !c.trim().is_empty())
        .collect();
    let config = committed_config(&rec, &body)?;
    // Bad changes are the user's mistake (400), found before anything is paused or written.
    apply_changes(&mut config.clone(), &changes)
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    let comment = first(&q, "comment").map(str::to_string);
    let created_by = std::iter::once(rec.path.as_str())
        .chain(rec.args.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let opts = CommitOptions {
        author: first(&q, "author").map(str::to_string),
        message: comment.clone(),
        created_by: (!created_by.is_empty()).then_some(created_by),
        container_config: Some(config),
        changes,
        pause: flag(&q, "pause", true),
        format: Default::default(),
        tags: tags.clone(),
    };

    let paused_here = opts.pause && rec.state.status == Status::Running;
    if paused_here {
        d.container_pause(&rec.id, true).await?;
    }
    let upper = d
        .containers
        .snapshotter
        .paths(&container_id(&rec.id)?)
        .upper;
    let tmp_root = d.config.data_root.join("tmp");
    let parent = rec.image_id.clone();
    let d2 = d.clone();
    let result = blocking(move || {
        // A container never started has no upper dir yet: it changed nothing.
        let empty;
        let upper = if upper.is_dir() {
            upper
        } else {
            std::fs::create_dir_all(&tmp_root).map_err(|e| {
                EngineError::internal(format!("create {}: {e}", tmp_root.display()))
            })?;
            empty = tempfile_dir(&tmp_root)?;
            empty.0.clone()
        };
        Ok(d2.images.commit(&upper, &parent, &opts)?.id().to_string())
    })
    .await;
    if paused_here {
        // The container may have gone meanwhile (killed, removed): nothing left to unpause.
        let _ = d.container_pause(&rec.id, false).await;
    }
    let id = result?;

    let mut attrs = rec.event_attrs();
    attrs.insert("comment".to_string(), comment.unwrap_or_default());
    attrs.insert("imageID".to_string(), id.clone());
    if let Some(t) = tags.first() {
        attrs.insert("imageRef".to_string(), t.familiar_string());
        d.events.emit(
            "image",
            "tag",
            &id,
            BTreeMap::from([("name".to_string(), t.familiar_string())]),
        );
    }
    d.events.emit("container", "commit", &rec.id, attrs);
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}

/// An empty directory removed on drop (the upper of a container never started).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn tempfile_dir(parent: &std::path::Path) -> Result<TempDir, EngineError> {
    for n in 0..100u32 {
        let p = parent.join(format!(
            "empty-upper-{}-{}-{n}",
            std::process::id(),
            crate::containers::new_id().get(..12).unwrap_or("x")
        ));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir(p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(EngineError::internal(format!(
                    "create {}: {e}",
                    p.display()
                )))
            }
        }
    }
    Err(EngineError::internal(format!(
        "cannot create a temporary directory in {}",
        parent.display()
    )))
}

/// The paths a container's mount points create in its upper dir (the files berthd bind-mounts
/// over): Docker keeps them in an init layer, so neither `docker diff` nor a commit shows them.
const MOUNT_POINTS: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// `GET /containers/{id}/changes`: `[{"Path":"/tmp/x","Kind":1}]`.
async fn changes(
    State(d): State<Arc<Daemon>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, EngineError> {
    let e = d.containers.get(&key)?;
    let rec = e.snapshot();
    let upper = d
        .containers
        .snapshotter
        .paths(&container_id(&rec.id)?)
        .upper;
    let d2 = d.clone();
    let list = blocking(move || {
        if !upper.is_dir() {
            return Ok(Vec::new());
        }
        let lowers = lower_dirs(&d2, &rec)?;
        let all = berth_image::changes::changes(&upper, &lowers)
            .map_err(|e| EngineError::internal(format!("changes of container {}: {e}", rec.id)))?;
        // An empty file added at a mount point is the mount point, not a change.
        let mount_point = |c: &berth_image::changes::Change| {
            c.kind == berth_image::changes::ChangeKind::Added
                && MOUNT_POINTS.contains(&c.path.as_str())
                && std::fs::symlink_metadata(upper.join(c.path.trim_start_matches('/')))
                    .is_ok_and(|m| m.len() == 0)
        };
        Ok(all
            .iter()
            .filter(|c| !mount_point(c))
            .map(|c| json!({"Path": c.path, "Kind": c.kind as i32}))
            .collect::<Vec<Value>>())
    })
    .await?;
    Ok(Json(Value::Array(list)))
}

/// The overlay lowerdirs of the container's image, top first.
fn lower_dirs(d: &Daemon, rec: &Record) -> Result<Vec<PathBuf>, EngineError> {
    let id = rec
        .image_id
        .parse()
        .map_err(|_| EngineError::internal(format!("bad image id {}", rec.image_id)))?;
    let image = d.images.get_by_id(&id).map_err(|_| {
        EngineError::not_found(format!(
            "No such image: {} (the image of container {})",
            rec.image, rec.id
        ))
    })?;
    Ok(d.images.lower_dirs(&image))
}

/// Writes into a response body from a blocking thread.
struct BodyWriter {
    tx: Sender<Bytes>,
    handle: tokio::runtime::Handle,
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.handle
            .block_on(self.tx.send_data(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `GET /containers/{id}/export`: a tar of the merged root filesystem.
async fn export(
    State(d): State<Arc<Daemon>>,
    Path(key): Path<String>,
) -> Result<Response, EngineError> {
    let e = d.containers.get(&key)?;
    let id = e.rec().id.clone();
    let cid = container_id(&id)?;
    let lowers = {
        let rec = e.snapshot();
        let d2 = d.clone();
        blocking(move || lower_dirs(&d2, &rec)).await?
    };
    let (tx, body) = Channel::<Bytes>::new(8);
    let handle = tokio::runtime::Handle::current();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), EngineError>>();
    let d2 = d.clone();
    let e2: Arc<Entry> = e.clone();
    tokio::spawn(async move {
        // No start, stop or remove while the rootfs is mounted here.
        let _op = e2.op.lock().await;
        let live = e2.rec().state.status.is_live();
        let snap = d2.containers.snapshotter.paths(&cid);
        let mounted_here = !live && !berth_image::snapshot::is_mount_point(&snap.rootfs);
        if mounted_here {
            let sn = d2.containers.snapshotter.clone();
            let cid2 = cid.clone();
            let r = tokio::task::spawn_blocking(move || sn.prepare(&cid2, &lowers)).await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    let _ = ready_tx.send(Err(EngineError::internal(format!(
                        "mount the rootfs of container {id}: {err}"
                    ))));
                    return;
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(EngineError::internal(format!(
                        "a worker thread failed: {err}"
                    ))));
                    return;
                }
            }
        }
        let _ = ready_tx.send(Ok(()));
        let root = snap.rootfs.clone();
        let w = BodyWriter { tx, handle };
        let res = tokio::task::spawn_blocking(move || {
            berth_image::archive::export::export_rootfs(&root, io::BufWriter::new(w))
                .map(|(w, _)| drop(w.into_inner()))
        })
        .await;
        if let Ok(Err(err)) = &res {
            tracing::warn!("export of container {id}: {err}");
        }
        if mounted_here {
            let sn = d2.containers.snapshotter.clone();
            let _ = tokio::task::spawn_blocking(move || sn.unmount(&cid, true)).await;
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err),
        Err(_) => return Err(EngineError::internal("the export task failed")),
    }
    let rec = e.snapshot();
    d.events
        .emit("container", "export", &rec.id, rec.event_attrs());
    let mut resp = Response::new(Body::new(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_when_absent() {
        let q = vec![
            ("pause".to_string(), "0".to_string()),
            ("x".to_string(), "".to_string()),
        ];
        assert!(!flag(&q, "pause", true));
        assert!(flag(&q, "x", true));
        assert!(flag(&q, "missing", true));
        assert!(!flag(&q, "missing", false));
        assert_eq!(first(&q, "x"), None);
    }
}
