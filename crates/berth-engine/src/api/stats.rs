//! `GET /containers/{id}/stats` (one JSON, or one per second while streaming, as Docker) and
//! `POST /containers/{id}/update`. The readings and the limits live in `containers::stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_types::api::ContainerUpdateBody;
use serde_json::{json, Value};

use super::containers::qbool;
use super::stream::async_stream;
use super::{Daemon, Routes};
use crate::containers::stats::{stats_json, zero_json, Sample};
use crate::error::EngineError;

type Q = Query<HashMap<String, String>>;

/// How often a stream reports, as Docker's collector.
const INTERVAL: Duration = Duration::from_secs(1);

pub fn routes() -> Routes {
    Routes::new()
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/update", post(update))
}

/// Docker's default for `stream` is true; `0`/`false` turn it off.
fn stream_wanted(q: &HashMap<String, String>) -> bool {
    match q.get("stream") {
        None => true,
        Some(v) => qbool(q, "stream") || v.is_empty(),
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// One frame: the container's usage against the reading before, or zeros when it does not run.
async fn frame(d: &Arc<Daemon>, id: &str, prev: &mut Option<Sample>) -> Result<Value, EngineError> {
    let e = d.containers.get(id)?;
    let (name, full_id) = {
        let r = e.rec();
        (r.name.clone(), r.id.clone())
    };
    match d.container_sample(&full_id).await? {
        Some(cur) => {
            let v = stats_json(&name, &full_id, &cur, prev.as_ref());
            *prev = Some(cur);
            Ok(v)
        }
        None => {
            *prev = None;
            Ok(zero_json(&name, &full_id))
        }
    }
}

async fn stats(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let e = d.containers.get(&id)?;
    let id = e.rec().id.clone();
    let stream = stream_wanted(&q);
    if !stream {
        let mut prev = None;
        let mut v = frame(&d, &id, &mut prev).await?;
        // Without one-shot, Docker primes the CPU numbers with a first reading a second before.
        if prev.is_some() && !qbool(&q, "one-shot") {
            tokio::time::sleep(INTERVAL).await;
            v = frame(&d, &id, &mut prev).await?;
        }
        return Ok(Json(v).into_response());
    }
    let body = async_stream(move |tx| async move {
        let mut prev = None;
        loop {
            let Ok(v) = frame(&d, &id, &mut prev).await else {
                // Removed: the stream ends.
                break;
            };
            if tx.send(Ok(line(&v))).await.is_err() {
                break;
            }
            tokio::time::sleep(INTERVAL).await;
        }
    });
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, EngineError> {
    let u: ContainerUpdateBody = if body.is_empty() {
        ContainerUpdateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?
    };
    let warnings = d.container_update(&id, u).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_defaults_to_true() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(stream_wanted(&HashMap::new()));
        assert!(stream_wanted(&q("stream", "1")));
        assert!(stream_wanted(&q("stream", "true")));
        assert!(!stream_wanted(&q("stream", "0")));
        assert!(!stream_wanted(&q("stream", "false")));
        assert!(line(&json!({"a": 1})).ends_with(b"\n"));
    }
}
