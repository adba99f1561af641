//! Volume routes: `/volumes` list, create, inspect, remove, prune.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use super::containers::{filters, qbool};
use super::{Daemon, Routes};
use crate::error::EngineError;
use crate::volumes::{labels_match, volume_json};

type Q = Query<HashMap<String, String>>;

pub fn routes() -> Routes {
    Routes::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

fn blocking_err(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("background task failed: {e}"))
}

/// A string map of the create body (`DriverOpts`, `Labels`); null or absent is empty.
fn map_field(v: &Value, k: &str) -> Result<BTreeMap<String, String>, EngineError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|_| {
            EngineError::invalid(format!("invalid JSON: {k} must be an object of strings"))
        }),
    }
}

fn str_field(v: &Value, k: &str) -> Result<String, EngineError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(EngineError::invalid(format!(
            "invalid JSON: {k} must be a string"
        ))),
    }
}

async fn create(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response, EngineError> {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(EngineError::invalid("invalid JSON: expected an object"));
    }
    let name = str_field(&v, "Name")?;
    let driver = str_field(&v, "Driver")?;
    let opts = map_field(&v, "DriverOpts")?;
    let labels = map_field(&v, "Labels")?;
    let rec = d.volume_create(&name, &driver, &opts, &labels).await?;
    Ok((StatusCode::CREATED, Json(volume_json(&d.volumes, &rec))).into_response())
}

async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, EngineError> {
    let rec = d.volumes.get(&name)?;
    Ok(Json(volume_json(&d.volumes, &rec)))
}

async fn list(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let f = filters(&q)?;
    for (k, vals) in &f {
        match k.as_str() {
            "name" | "label" | "driver" => {}
            "dangling" => {
                for v in vals {
                    if !matches!(v.as_str(), "true" | "false" | "1" | "0") {
                        return Err(EngineError::invalid(format!(
                            "invalid filter 'dangling={v}'"
                        )));
                    }
                }
            }
            other => return Err(EngineError::invalid(format!("invalid filter '{other}'"))),
        }
    }
    let d2 = d.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, EngineError> {
        let mut out = Vec::new();
        for v in d2.volumes.list()? {
            let any = |k: &str, p: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|vals| vals.iter().any(|x| p(x)))
            };
            let ok = any("name", &|x| v.name.contains(x))
                && any("driver", &|x| v.driver == x)
                && labels_match(&v.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[]))
                && any("dangling", &|x| {
                    let want = matches!(x, "true" | "1");
                    d2.volume_users(&v.name).is_empty() == want
                });
            if ok {
                out.push(volume_json(&d2.volumes, &v));
            }
        }
        Ok(out)
    })
    .await
    .map_err(blocking_err)??;
    Ok(Json(json!({"Volumes": out, "Warnings": []})))
}

async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    d.volume_remove(&name, qbool(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let f = filters(&q)?;
    // `all` arrives as a filter (docker CLI ≥ 23: `--all` → filters all=true).
    let all = f
        .get("all")
        .is_some_and(|v| v.iter().any(|x| matches!(x.as_str(), "true" | "1")))
        || qbool(&q, "all");
    let (gone, space) = d.volume_prune(all, &f).await?;
    Ok(Json(
        json!({"VolumesDeleted": gone, "SpaceReclaimed": space}),
    ))
}
