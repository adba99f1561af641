//! `HEAD|GET|PUT /containers/{id}/archive`: what `docker cp` speaks. The work (and every
//! safety rule) is in `containers::archive`; this file only moves bytes and headers.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::channel::Channel;

use super::body::{BodyReader, BodyWriter};
use super::containers::qbool;
use super::{Daemon, Routes};
use crate::containers::archive::{engine_error, ExtractOptions, PathStat};
use crate::error::EngineError;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

pub fn routes() -> Routes {
    Routes::new().route(
        "/containers/{id}/archive",
        get(get_archive).head(head_archive).put(put_archive),
    )
}

fn path_of(q: &HashMap<String, String>) -> Result<String, EngineError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(EngineError::invalid("Path cannot be empty")),
    }
}

fn blocking_err(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("archive task failed: {e}"))
}

fn stat_header(st: &PathStat) -> HeaderValue {
    HeaderValue::from_str(&st.header_value()).unwrap_or(HeaderValue::from_static(""))
}

async fn head_archive(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, EngineError> {
    let path = path_of(&q)?;
    let st = tokio::task::spawn_blocking(move || {
        d.with_container_fs(&id, |s| {
            s.fs.stat(&path).map_err(|e| engine_error(e, &path, &id))
        })
    })
    .await
    .map_err(blocking_err)??;
    Ok((StatusCode::OK, [(STAT_HEADER, stat_header(&st))]).into_response())
}

async fn get_archive(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, EngineError> {
    let path = path_of(&q)?;
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<Result<PathStat, EngineError>>();
    let (tx, body) = Channel::<Bytes>::new(8);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut stat_tx = Some(stat_tx);
        let r = d.with_container_fs(&id, |s| {
            let st = s.fs.stat(&path).map_err(|e| engine_error(e, &path, &id))?;
            if let Some(t) = stat_tx.take() {
                let _ = t.send(Ok(st));
            }
            let w = BodyWriter::new(tx, handle);
            let mut w =
                s.fs.tar(&path, w)
                    .map_err(|e| engine_error(e, &path, &id))?;
            w.flush()
                .map_err(|e| EngineError::internal(format!("send the archive: {e}")))
        });
        if let Err(e) = r {
            match stat_tx.take() {
                Some(t) => {
                    let _ = t.send(Err(e));
                }
                // The status is sent: cutting the stream short is how the client learns.
                None => tracing::warn!("archive of {id}:{path}: {}", e.message),
            }
        }
    });
    let st = stat_rx
        .await
        .map_err(|_| EngineError::internal("archive task failed"))??;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (
                header::HeaderName::from_static("x-docker-container-path-stat"),
                stat_header(&st),
            ),
        ],
        Body::new(body),
    )
        .into_response())
}

async fn put_archive(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, EngineError> {
    let path = path_of(&q)?;
    let no_overwrite = qbool(&q, "noOverwriteDirNonDir");
    let copy_uid_gid = qbool(&q, "copyUIDGID");
    let reader = BodyReader::new(body);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let r = d.with_container_fs(&id, |s| {
            let chown = if copy_uid_gid { s.copy_owner()? } else { None };
            let opts = ExtractOptions {
                no_overwrite_dir_non_dir: no_overwrite,
                chown,
            };
            s.fs.extract(&path, &mut reader, &opts)
                .map_err(|e| engine_error(e, &path, &id))
        });
        if r.is_err() {
            // The client is still sending its tar: read the rest (at most 1 GiB) so that it
            // gets this answer instead of a broken pipe (seen with `docker cp -` in CI).
            let _ = io::copy(&mut (&mut reader).take(1 << 30), &mut io::sink());
        }
        r
    })
    .await
    .map_err(blocking_err)??;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_path_is_refused() {
        assert!(path_of(&HashMap::new()).is_err());
        let q = HashMap::from([("path".to_string(), "/etc".to_string())]);
        assert_eq!(path_of(&q).unwrap(), "/etc");
    }
}
