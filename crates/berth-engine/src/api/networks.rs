//! Network routes: `/networks` list, inspect, create, remove, connect, disconnect, prune.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_types::api::EndpointSettings;
use serde_json::{json, Value};

use super::containers::{filters, qbool};
use super::{Daemon, Routes};
use crate::error::EngineError;
use crate::networks::{CreateRequest, NetRecord, SubnetRec};

type Q = Query<HashMap<String, String>>;

pub fn routes() -> Routes {
    Routes::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn body_json(body: &Bytes) -> Result<Value, EngineError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(EngineError::invalid("invalid JSON: expected an object"));
    }
    Ok(v)
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

fn bool_field(v: &Value, k: &str) -> Result<bool, EngineError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(EngineError::invalid(format!(
            "invalid JSON: {k} must be a boolean"
        ))),
    }
}

fn map_field(v: &Value, k: &str) -> Result<BTreeMap<String, String>, EngineError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|_| {
            EngineError::invalid(format!("invalid JSON: {k} must be an object of strings"))
        }),
    }
}

/// Reads `POST /networks/create`'s body as Docker's clients send it (docker CLI, compose,
/// docker-py all differ a little).
pub fn create_request(v: &Value) -> Result<CreateRequest, EngineError> {
    let name = str_field(v, "Name")?;
    if name.is_empty() {
        return Err(EngineError::invalid("network name is required (Name)"));
    }
    let mut subnets = Vec::new();
    if let Some(ipam) = v.get("IPAM").filter(|i| !i.is_null()) {
        match str_field(ipam, "Driver")?.as_str() {
            "" | "default" => {}
            other => {
                return Err(EngineError::not_found(format!(
                    "IPAM driver \"{other}\" not found: berth uses its default IPAM"
                )))
            }
        }
        match ipam.get("Config") {
            None | Some(Value::Null) => {}
            Some(Value::Array(cs)) => {
                for c in cs {
                    subnets.push(SubnetRec {
                        subnet: str_field(c, "Subnet")?,
                        gateway: str_field(c, "Gateway")?,
                        ip_range: Some(str_field(c, "IPRange")?).filter(|r| !r.is_empty()),
                    });
                }
            }
            Some(_) => {
                return Err(EngineError::invalid(
                    "invalid JSON: IPAM.Config must be a list",
                ))
            }
        }
    }
    Ok(CreateRequest {
        name,
        driver: str_field(v, "Driver")?,
        internal: bool_field(v, "Internal")?,
        attachable: bool_field(v, "Attachable")?,
        enable_ipv6: bool_field(v, "EnableIPv6")?,
        subnets,
        options: map_field(v, "Options")?,
        labels: map_field(v, "Labels")?,
    })
}

fn matches(
    d: &Daemon,
    n: &NetRecord,
    f: &HashMap<String, Vec<String>>,
) -> Result<bool, EngineError> {
    for (k, vals) in f {
        let any = |p: &dyn Fn(&str) -> bool| vals.iter().any(|v| p(v));
        let ok = match k.as_str() {
            "name" => any(&|v| n.name.contains(v)),
            "id" => any(&|v| n.id.starts_with(v)),
            "driver" => any(&|v| n.driver == v),
            "scope" => any(&|v| v == "local"),
            "type" => {
                for v in vals {
                    if v != "custom" && v != "builtin" {
                        return Err(EngineError::invalid(format!(
                            "invalid filter: 'type'='{v}'"
                        )));
                    }
                }
                any(&|v| (v == "builtin") == n.is_predefined())
            }
            "label" => vals.iter().all(|l| match l.split_once('=') {
                Some((a, b)) => n.labels.get(a).is_some_and(|x| x == b),
                None => n.labels.contains_key(l.as_str()),
            }),
            "dangling" => {
                let dangling = !n.is_predefined()
                    && d.network_json(n)["Containers"]
                        .as_object()
                        .is_none_or(|m| m.is_empty());
                any(&|v| match v {
                    "true" | "1" => dangling,
                    _ => !dangling,
                })
            }
            other => return Err(EngineError::invalid(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let f = filters(&q)?;
    let mut out = Vec::new();
    for n in d.networks.list() {
        if matches(&d, &n, &f)? {
            out.push(d.network_json(&n));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, EngineError> {
    let n = d.networks.get(&id)?;
    Ok(Json(d.network_json(&n)))
}

async fn create(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response, EngineError> {
    let req = create_request(&body_json(&body)?)?;
    let n = d.network_create(req).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response, EngineError> {
    d.network_remove(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, EngineError> {
    let v = body_json(&body)?;
    let container = str_field(&v, "Container")?;
    if container.is_empty() {
        return Err(EngineError::invalid("no container given (Container)"));
    }
    let cfg: EndpointSettings = match v.get("EndpointConfig") {
        None | Some(Value::Null) => EndpointSettings::default(),
        Some(c) => serde_json::from_value(c.clone())
            .map_err(|e| EngineError::invalid(format!("invalid JSON: EndpointConfig: {e}")))?,
    };
    d.network_connect(&id, &container, cfg).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, EngineError> {
    let v = body_json(&body)?;
    let container = str_field(&v, "Container")?;
    if container.is_empty() {
        return Err(EngineError::invalid("no container given (Container)"));
    }
    d.network_disconnect(&id, &container, bool_field(&v, "Force")?)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn prune(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let f = filters(&q)?;
    for k in f.keys() {
        if !matches!(k.as_str(), "until" | "label" | "label!") {
            return Err(EngineError::invalid(format!("invalid filter '{k}'")));
        }
    }
    let _ = qbool;
    let deleted = d.network_prune(&f).await?;
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_as_clients_send_them() {
        let v = json!({"Name": "n", "CheckDuplicate": true, "Driver": "bridge",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}], "Options": {}},
            "Internal": true, "EnableIPv6": false, "Options": {"a": "b"}, "Labels": {"l": "1"}});
        let r = create_request(&v).unwrap();
        assert_eq!(r.name, "n");
        assert!(r.internal);
        assert_eq!(r.subnets[0].subnet, "10.9.0.0/24");
        assert_eq!(r.subnets[0].gateway, "10.9.0.1");
        assert_eq!(r.labels["l"], "1");
        // docker-compose 1.x sends nulls
        let v = json!({"Name": "p_default", "Driver": null, "IPAM": null, "Options": null, "Labels": null, "Internal": false});
        assert!(create_request(&v).is_ok());
        assert!(create_request(&json!({"Name": ""})).is_err());
        assert!(create_request(&json!({"Name": 5})).is_err());
        assert!(create_request(&json!({"Name": "x", "IPAM": {"Config": "no"}})).is_err());
        assert!(create_request(&json!({"Name": "x", "IPAM": {"Driver": "weird"}})).is_err());
        assert!(create_request(&json!({"Name": "x", "Labels": {"a": 1}})).is_err());
    }
}
