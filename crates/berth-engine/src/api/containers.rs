//! The container routes: create, list, inspect, the lifecycle verbs, attach, logs, wait, top,
//! resize, prune. Handlers parse Docker's query strings and bodies, call the daemon's verbs
//! (`containers::lifecycle`), and render Docker's JSON shapes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use berth_runtime::shim::Request as ShimReq;
use berth_types::api::ContainerCreateBody;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::{async_stream, hijack, stream_type};
use super::{Daemon, Routes};
use crate::containers::lifecycle::parse_rfc3339;
use crate::containers::{shim, Entry, PendingStart, Record, Status};
use crate::error::EngineError;

type Q = Query<HashMap<String, String>>;

pub fn routes() -> Routes {
    Routes::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/top", get(top))
}

/// Docker's booleans in query strings: 1/true/True; 0/false/empty.
pub fn qbool(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE" | "yes"))
}

fn qint(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, EngineError> {
    match q.get(k).map(|s| s.as_str()) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| EngineError::invalid(format!("invalid value for {k}: {v:?}"))),
    }
}

/// Docker's `filters` JSON: `{"key":["v1","v2"]}` or the old `{"key":{"v1":true}}`.
pub fn filters(q: &HashMap<String, String>) -> Result<HashMap<String, Vec<String>>, EngineError> {
    let Some(raw) = q.get("filters").filter(|s| !s.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| EngineError::invalid(format!("invalid filters {raw:?}: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| EngineError::invalid(format!("invalid filters {raw:?}: not an object")))?;
    let mut out = HashMap::new();
    for (k, v) in obj {
        let vals: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(m) => m.keys().cloned().collect(),
            Value::String(s) => vec![s.clone()],
            _ => return Err(EngineError::invalid(format!("invalid filter {k:?}"))),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, EngineError> {
    if body.is_empty() {
        return serde_json::from_str("{}")
            .map_err(|e| EngineError::invalid(format!("invalid JSON body: {e}")));
    }
    serde_json::from_slice(body).map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))
}

async fn create(State(d): State<Arc<Daemon>>, q: Q, body: Bytes) -> Result<Response, EngineError> {
    let body: ContainerCreateBody = json_body(&body)?;
    let (id, warnings) = d.container_create(q.get("name").cloned(), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

/// Go's HumanDuration, as `docker ps` shows it.
pub fn human_duration(secs: f64) -> String {
    let s = secs as i64;
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = (secs / 3600.0).round() as i64;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", h / 24 / 365)
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ago(t: &str) -> String {
    parse_rfc3339(t).map_or_else(String::new, |t| human_duration(now_secs() - t))
}

/// The Status column of `docker ps`.
pub fn status_text(r: &Record) -> String {
    let health = r
        .state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .map(|s| match s.to_string().as_str() {
            "starting" => " (health: starting)".to_string(),
            "" | "none" => String::new(),
            other => format!(" ({other})"),
        })
        .unwrap_or_default();
    match r.state.status {
        Status::Running => format!("Up {}{health}", ago(&r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
    }
}

/// The Command column: argv joined, each arg quoted when it needs it (as Docker does).
fn command_text(r: &Record) -> String {
    std::iter::once(&r.path)
        .chain(r.args.iter())
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn unix_secs(t: &str) -> i64 {
    parse_rfc3339(t).map_or(0, |s| s as i64)
}

fn network_mode(r: &Record) -> String {
    match r.host_config.network_mode.as_deref() {
        Some(m) if !m.is_empty() && m != "default" => m.to_string(),
        _ => "bridge".to_string(),
    }
}

/// Bytes under a directory (not following links, not crossing mounts).
pub fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for entry in rd.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// The container rows of `GET /system/df`: summaries with SizeRw (the upper dir) and
/// SizeRootFs. Blocking.
pub fn df_containers(d: &Daemon) -> Vec<Value> {
    d.containers
        .list()
        .iter()
        .map(|e| {
            let r = e.snapshot();
            let mut v = summary(&r);
            let rw = berth_types::ContainerId::new(&r.id)
                .map(|cid| dir_size(&d.containers.snapshotter.paths(&cid).upper))
                .unwrap_or(0);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rw);
            v
        })
        .collect()
}

/// The `Ports` list of `GET /containers/json`: published bindings, then exposed ports
/// that are not published.
fn ports_list(r: &Record) -> Vec<Value> {
    let mut out = Vec::new();
    let split = |k: &str| {
        let (p, t) = k.split_once('/').unwrap_or((k, "tcp"));
        (p.parse::<u16>().unwrap_or(0), t.to_string())
    };
    for (k, bs) in &r.ports_live {
        let (p, t) = split(k);
        for b in bs {
            out.push(json!({
                "IP": b.host_ip.clone().unwrap_or_default(),
                "PrivatePort": p,
                "PublicPort": b.host_port.as_deref().and_then(|h| h.parse::<u16>().ok()).unwrap_or(0),
                "Type": t,
            }));
        }
    }
    for k in r.config.exposed_ports.iter().flatten() {
        if !r.ports_live.contains_key(k) {
            let (p, t) = split(k);
            out.push(json!({"PrivatePort": p, "Type": t}));
        }
    }
    out
}

/// `NetworkSettings.Ports` of inspect: exposed ports map to null, published ones to their
/// bindings.
fn ports_map(r: &Record) -> Value {
    let mut m = serde_json::Map::new();
    for k in r.config.exposed_ports.iter().flatten() {
        m.insert(k.clone(), Value::Null);
    }
    if r.state.status.is_live() {
        for (k, bs) in &r.ports_live {
            m.insert(
                k.clone(),
                json!(bs
                    .iter()
                    .map(|b| json!({"HostIp": b.host_ip, "HostPort": b.host_port}))
                    .collect::<Vec<_>>()),
            );
        }
    }
    Value::Object(m)
}

fn summary(r: &Record) -> Value {
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command_text(r),
        "Created": unix_secs(&r.created),
        "Ports": ports_list(r),
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.state.status.as_str(),
        "Status": status_text(r),
        "HostConfig": {"NetworkMode": network_mode(r)},
        "NetworkSettings": {"Networks": r.net_live},
        "Mounts": crate::volumes::mounts_json(r),
    })
}

/// Docker's `label` filter: every `key` or `key=value` holds on the container.
fn labels_match(r: &Record, want: &[String]) -> bool {
    let have = r.config.labels.as_ref();
    want.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => have.and_then(|h| h.get(k)).is_some_and(|x| x == v),
        None => have.is_some_and(|h| h.contains_key(l.as_str())),
    })
}

fn matches_filters(r: &Record, f: &HashMap<String, Vec<String>>) -> Result<bool, EngineError> {
    for (k, vals) in f {
        let any = |pred: &dyn Fn(&str) -> bool| vals.iter().any(|v| pred(v));
        let ok = match k.as_str() {
            "id" => any(&|v| r.id.starts_with(v)),
            "name" => any(&|v| r.name.contains(v.trim_start_matches('/'))),
            "status" => {
                for v in vals {
                    if !matches!(
                        v.as_str(),
                        "created"
                            | "restarting"
                            | "running"
                            | "removing"
                            | "paused"
                            | "exited"
                            | "dead"
                    ) {
                        return Err(EngineError::invalid(format!("invalid filter 'status={v}'")));
                    }
                }
                any(&|v| v == r.state.status.as_str())
            }
            "exited" => any(&|v| {
                r.state.status == Status::Exited && v.parse::<i64>().ok() == Some(r.state.exit_code)
            }),
            "label" => labels_match(r, vals),
            "ancestor" => any(&|v| {
                r.image == v
                    || r.image_id == v
                    || r.image_id.trim_start_matches("sha256:").starts_with(v)
                    || (r.image == format!("{v}:latest"))
                    || (format!("{}:latest", r.image) == v)
            }),
            "health" => any(&|v| {
                let h = r
                    .state
                    .health
                    .as_ref()
                    .and_then(|h| h.status)
                    .map_or("none".to_string(), |s| s.to_string());
                h == v
            }),
            "network" => any(&|v| {
                r.net_config.contains_key(v)
                    || r.net_live.contains_key(v)
                    || r.net_config
                        .values()
                        .chain(r.net_live.values())
                        .any(|e| e.network_id.as_deref().is_some_and(|id| id.starts_with(v)))
                    || r.host_config.network_mode.as_deref() == Some(v)
            }),
            "publish" => any(&|v| {
                let v = if v.contains('/') {
                    v.to_string()
                } else {
                    format!("{v}/tcp")
                };
                r.ports_live.values().flatten().any(|b| {
                    b.host_port
                        .as_deref()
                        .is_some_and(|h| v == format!("{h}/tcp") || v == format!("{h}/udp"))
                }) && r.ports_live.iter().any(|(k, bs)| {
                    let proto = k.split_once('/').map_or("tcp", |x| x.1);
                    bs.iter().any(|b| {
                        b.host_port
                            .as_deref()
                            .is_some_and(|h| v == format!("{h}/{proto}"))
                    })
                })
            }),
            "expose" => any(&|v| {
                let v = if v.contains('/') {
                    v.to_string()
                } else {
                    format!("{v}/tcp")
                };
                r.config.exposed_ports.iter().flatten().any(|k| *k == v)
            }),
            "volume" => any(&|v| {
                r.volumes
                    .iter()
                    .any(|m| m.name == v || m.destination == v || m.source == v)
            }),
            "before" | "since" | "is-task" => true,
            other => return Err(EngineError::invalid(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let all = qbool(&q, "all");
    let limit = qint(&q, "limit")?.filter(|l| *l > 0);
    let f = filters(&q)?;
    let mut recs: Vec<Record> = d.containers.list().iter().map(|e| e.snapshot()).collect();
    recs.reverse(); // newest first, as Docker lists
    if let Some(b) = f.get("before").and_then(|v| v.first()) {
        let b = d.containers.get(b)?.snapshot().created;
        recs.retain(|r| r.created < b);
    }
    if let Some(s) = f.get("since").and_then(|v| v.first()) {
        let s = d.containers.get(s)?.snapshot().created;
        recs.retain(|r| r.created > s);
    }
    let mut out = Vec::new();
    for r in recs {
        let shown = all
            || limit.is_some()
            || r.state.status.is_live()
            || f.contains_key("status")
            || f.contains_key("exited");
        if !shown || !matches_filters(&r, &f)? {
            continue;
        }
        out.push(summary(&r));
        if limit.is_some_and(|l| out.len() as i64 >= l) {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /containers/{id}/json`: Docker's inspect shape.
pub fn inspect_json(d: &Daemon, r: &Record) -> Value {
    let st = &r.state;
    let mut config = serde_json::to_value(&r.config).unwrap_or(json!({}));
    let host = crate::containers::spec::hostname(r);
    config["Hostname"] = json!(host);
    for k in ["Domainname", "User", "WorkingDir"] {
        if config.get(k).is_none() {
            config[k] = json!("");
        }
    }
    for k in [
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
    ] {
        if config.get(k).is_none() {
            config[k] = json!(false);
        }
    }
    if config.get("Entrypoint").is_none() {
        config["Entrypoint"] = Value::Null;
    }
    let mut hc = serde_json::to_value(&r.host_config).unwrap_or(json!({}));
    hc["NetworkMode"] = json!(network_mode(r));
    if hc.get("RestartPolicy").is_none() {
        hc["RestartPolicy"] = json!({"Name": "no", "MaximumRetryCount": 0});
    }
    if hc.get("LogConfig").is_none() {
        hc["LogConfig"] = json!({"Type": "json-file", "Config": {}});
    }
    for k in [
        "Memory",
        "NanoCpus",
        "CpuShares",
        "MemorySwap",
        "CpuQuota",
        "CpuPeriod",
    ] {
        if hc.get(k).is_none() {
            hc[k] = json!(0);
        }
    }
    for k in [
        "Privileged",
        "ReadonlyRootfs",
        "AutoRemove",
        "PublishAllPorts",
    ] {
        if hc.get(k).is_none() {
            hc[k] = json!(false);
        }
    }
    let dir = d.containers.dir(&r.id);
    let health = st
        .health
        .as_ref()
        .map(|h| serde_json::to_value(h).unwrap_or(Value::Null));
    let mut state = json!({
        "Status": st.status.as_str(),
        "Running": st.status.is_live(),
        "Paused": st.status == Status::Paused,
        "Restarting": st.status == Status::Restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.status == Status::Dead,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
    });
    if let Some(h) = health {
        state["Health"] = h;
    }
    let snap = d.containers.snapshotter.paths(
        &berth_types::ContainerId::new(&r.id)
            .unwrap_or_else(|_| berth_types::ContainerId::new(&"0".repeat(64)).expect("valid id")),
    );
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": state,
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": d.containers.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": hc,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "UpperDir": snap.upper,
                "WorkDir": snap.work,
                "MergedDir": snap.rootfs,
            }
        },
        "Mounts": crate::volumes::mounts_json(r),
        "Config": config,
        "NetworkSettings": network_settings(d, r),
    })
}

/// `NetworkSettings` of inspect: the top-level address fields come from the default bridge
/// network's endpoint, as Docker fills them.
fn network_settings(d: &Daemon, r: &Record) -> Value {
    let def = r.net_live.get("bridge");
    let f = |g: &dyn Fn(&berth_types::api::EndpointSettings) -> Option<Value>, z: Value| {
        def.and_then(g).unwrap_or(z)
    };
    json!({
        "Bridge": "",
        "SandboxID": r.sandbox_key.rsplit('/').next().filter(|_| !r.sandbox_key.is_empty()).unwrap_or(""),
        "SandboxKey": r.sandbox_key,
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports_map(r),
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": f(&|e| e.endpoint_id.clone().map(Value::from), json!("")),
        "Gateway": f(&|e| e.gateway.clone().map(Value::from), json!("")),
        "GlobalIPv6Address": f(&|e| e.global_ipv6_address.clone().map(Value::from), json!("")),
        "GlobalIPv6PrefixLen": f(&|e| e.global_ipv6_prefix_len.map(Value::from), json!(0)),
        "IPAddress": f(&|e| e.ip_address.clone().map(Value::from), json!("")),
        "IPPrefixLen": f(&|e| e.ip_prefix_len.map(Value::from), json!(0)),
        "IPv6Gateway": f(&|e| e.ipv6_gateway.clone().map(Value::from), json!("")),
        "MacAddress": f(&|e| e.mac_address.clone().map(Value::from), json!("")),
        "Networks": d.container_networks(r),
    })
}

async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, EngineError> {
    let r = d.containers.get(&id)?.snapshot();
    Ok(Json(inspect_json(&d, &r)))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response, EngineError> {
    d.container_start(&id).await?;
    Ok(no_content())
}

async fn stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    d.container_stop(
        &id,
        qint(&q, "t")?,
        q.get("signal").cloned().filter(|s| !s.is_empty()),
    )
    .await?;
    Ok(no_content())
}

async fn restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    d.container_restart(
        &id,
        qint(&q, "t")?,
        q.get("signal").cloned().filter(|s| !s.is_empty()),
    )
    .await?;
    Ok(no_content())
}

async fn kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    d.container_kill(&id, q.get("signal").map_or("", |s| s.as_str()))
        .await?;
    Ok(no_content())
}

async fn pause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response, EngineError> {
    d.container_pause(&id, true).await?;
    Ok(no_content())
}

async fn unpause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response, EngineError> {
    d.container_pause(&id, false).await?;
    Ok(no_content())
}

async fn rename(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let name = q.get("name").cloned().unwrap_or_default();
    d.container_rename(&id, &name).await?;
    Ok(no_content())
}

async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    d.container_remove_opts(&id, qbool(&q, "force"), qbool(&q, "v"))
        .await?;
    Ok(no_content())
}

async fn wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let cond = q.get("condition").cloned().unwrap_or_default();
    if !matches!(cond.as_str(), "" | "not-running" | "next-exit" | "removed") {
        return Err(EngineError::invalid(format!(
            "invalid condition: \"{cond}\""
        )));
    }
    // Errors known now are HTTP errors; then the headers go out at once (clients such as the
    // docker CLI wait for them before they start the container) and the body when it exits.
    let e = d.containers.get(&id)?;
    let key = e.rec().id.clone();
    let stream = async_stream(move |tx| async move {
        let body = match d.container_wait(&key, &cond).await {
            Ok((code, err)) => {
                let error = if err.is_empty() {
                    Value::Null
                } else {
                    json!({"Message": err})
                };
                json!({"StatusCode": code, "Error": error})
            }
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let mut line = body.to_string();
        line.push('\n');
        let _ = tx.send(Ok(Bytes::from(line))).await;
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn prune(State(d): State<Arc<Daemon>>, q: Q) -> Result<Json<Value>, EngineError> {
    let f = filters(&q)?;
    let mut deleted = Vec::new();
    for e in d.containers.list() {
        let r = e.snapshot();
        if !matches!(
            r.state.status,
            Status::Exited | Status::Created | Status::Dead
        ) {
            continue;
        }
        if f.get("label").is_some_and(|want| !labels_match(&r, want)) {
            continue;
        }
        if d.container_remove(&r.id, false).await.is_ok() {
            deleted.push(r.id);
        }
    }
    d.events.emit("container", "prune", "", Default::default());
    Ok(Json(
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

async fn resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let e = d.containers.get(&id)?;
    let r = e.snapshot();
    let h = qint(&q, "h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let w = qint(&q, "w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    if !r.state.status.is_live() {
        return Err(EngineError::conflict(format!(
            "Container {} is not running",
            r.id
        )));
    }
    shim::call(
        &d.containers.shim_dir(&r.id),
        &ShimReq::Resize { rows: h, cols: w },
    )
    .await
    .map_err(|e| EngineError::conflict(format!("cannot resize container {}: {e}", r.id)))?;
    Ok(StatusCode::OK.into_response())
}

/// [`splice`] for the exec routes.
pub async fn splice_pub(
    client: Box<dyn super::stream::Conn>,
    shim: tokio::net::UnixStream,
    stdin: bool,
    detach: Option<Vec<u8>>,
) {
    splice(client, shim, stdin, detach).await
}

/// The detach sequence an attach watches for: only a TTY's stdin is watched (as Docker does);
/// `spec` is the request's `detachKeys` (Docker's default ctrl-p,ctrl-q when empty).
pub fn detach_keys(
    spec: Option<&str>,
    tty: bool,
    stdin: bool,
) -> Result<Option<Vec<u8>>, EngineError> {
    let keys = berth_types::parse_detach_keys(spec.unwrap_or(""))
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    Ok((tty && stdin).then_some(keys))
}

/// Copies between a hijacked client and a shim's attach stream until either side ends, or the
/// client types the detach sequence (then the attach ends and the container keeps running).
async fn splice(
    mut client: Box<dyn super::stream::Conn>,
    shim: tokio::net::UnixStream,
    stdin: bool,
    detach: Option<Vec<u8>>,
) {
    let (mut sr, mut sw) = shim.into_split();
    let (mut cr, mut cw) = tokio::io::split(&mut client);
    let to_client = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    let from_client = async {
        if !stdin {
            return std::future::pending::<()>().await;
        }
        match detach {
            None => {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            }
            Some(keys) => {
                let mut m = berth_types::DetachMatcher::new(keys);
                let mut buf = vec![0u8; 16 * 1024];
                let mut out = Vec::with_capacity(buf.len());
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    out.clear();
                    let detached = m.feed(&buf[..n], &mut out);
                    if !out.is_empty() && sw.write_all(&out).await.is_err() {
                        break;
                    }
                    if detached {
                        // Detach: end the attach, leave the container's stdin open.
                        return;
                    }
                }
            }
        }
        // The client closed its side: the container's stdin ends.
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = to_client => {}
        _ = from_client => {}
    }
}

async fn attach(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
    req: Request,
) -> Result<Response, EngineError> {
    let e = d.containers.get(&id)?;
    let r = e.snapshot();
    let stdin = qbool(&q, "stdin");
    let stdout = qbool(&q, "stdout");
    let stderr = qbool(&q, "stderr");
    let logs = qbool(&q, "logs");
    let stream = qbool(&q, "stream");
    let tty = r.tty();
    let detach = detach_keys(q.get("detachKeys").map(String::as_str), tty, stdin)?;
    let want = ShimReq::Attach {
        stdin,
        stdout,
        stderr,
    };
    match r.state.status {
        Status::Running | Status::Paused if stream => {
            let conn = shim::request(&d.containers.shim_dir(&r.id), &want)
                .await
                .map_err(|e| {
                    EngineError::conflict(format!("cannot attach to container {}: {e}", r.id))
                })?;
            Ok(hijack(req, tty, move |c| splice(c, conn, stdin, detach)))
        }
        Status::Created | Status::Exited | Status::Restarting if stream => {
            // Attach before start: wait for the start to hand over the shim.
            let (tx, rx) = tokio::sync::oneshot::channel::<PendingStart>();
            e.pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(tx);
            Ok(hijack(req, tty, move |c| async move {
                let Ok(p) = rx.await else { return };
                let conn = shim::request(&p.socket, &want).await;
                let _ = p.connected.send(());
                if let Ok(conn) = conn {
                    splice(c, conn, stdin, detach).await;
                }
            }))
        }
        _ if logs => {
            // Only the log, no live stream.
            let d2 = d.clone();
            Ok(hijack(req, tty, move |mut c| async move {
                let opts = LogOpts {
                    stdout,
                    stderr,
                    tty,
                    ..Default::default()
                };
                let _ = write_logs(&d2, &e, &opts, &mut c).await;
                let _ = c.shutdown().await;
            }))
        }
        _ => Err(EngineError::conflict(
            "You cannot attach to a stopped container, start it first".to_string(),
        )),
    }
}

#[derive(Default, Clone)]
struct LogOpts {
    stdout: bool,
    stderr: bool,
    follow: bool,
    timestamps: bool,
    since: Option<f64>,
    until: Option<f64>,
    tail: Option<usize>,
    tty: bool,
}

/// Parses `since`/`until`: unix seconds (with fraction) or RFC 3339.
fn parse_time(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok().or_else(|| parse_rfc3339(s))
}

/// Formats one log entry as Docker's log stream does.
fn frame(opts: &LogOpts, stream: &str, time: &str, text: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    if opts.timestamps {
        payload.extend_from_slice(time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(text.as_bytes());
    if opts.tty {
        return payload;
    }
    let kind = if stream == "stderr" { 2 } else { 1 };
    let mut out = berth_runtime::shim::frame_header(kind, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    out
}

/// One json-file line → (stream, time, text), if it is one.
fn parse_line(line: &[u8]) -> Option<(String, String, String)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    Some((
        v.get("stream")?.as_str()?.to_string(),
        v.get("time")?.as_str()?.to_string(),
        v.get("log")?.as_str()?.to_string(),
    ))
}

fn wanted(opts: &LogOpts, stream: &str, time: &str) -> bool {
    let s_ok = (stream == "stdout" && opts.stdout) || (stream == "stderr" && opts.stderr);
    if !s_ok {
        return false;
    }
    if opts.since.is_some() || opts.until.is_some() {
        let t = parse_rfc3339(time).unwrap_or(0.0);
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
            return false;
        }
    }
    true
}

/// Writes the log (rotated files first) and, with follow, what comes while the container runs.
async fn write_logs<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
    d: &Daemon,
    e: &Arc<Entry>,
    opts: &LogOpts,
    out: &mut W,
) -> std::io::Result<()> {
    let id = e.rec().id.clone();
    let path = d.containers.log_path(&id);
    let mut files = Vec::new();
    for n in (1..=20).rev() {
        let mut p = path.clone().into_os_string();
        p.push(format!(".{n}"));
        files.push(std::path::PathBuf::from(p));
    }
    files.push(path.clone());
    let mut entries: Vec<(String, String, String)> = Vec::new();
    // The current file stays open while following: a container removed right after it exits
    // (docker-py's run(remove=True) reads the stream after removing) takes its directory away,
    // but what it wrote is still read from here, as Docker's follower reads its open file.
    let mut current: Option<std::fs::File> = None;
    for f in &files {
        let data = if f == &path {
            let Ok(mut file) = std::fs::File::open(f) else {
                continue;
            };
            let mut data = Vec::new();
            if std::io::Read::read_to_end(&mut file, &mut data).is_err() {
                continue;
            }
            current = Some(file);
            data
        } else {
            let Ok(data) = tokio::fs::read(f).await else {
                continue;
            };
            data
        };
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(en) = parse_line(line) {
                if wanted(opts, &en.0, &en.1) {
                    entries.push(en);
                }
            }
        }
    }
    if let Some(t) = opts.tail {
        let n = entries.len().saturating_sub(t);
        entries.drain(..n);
    }
    for (s, t, text) in &entries {
        out.write_all(&frame(opts, s, t, text)).await?;
    }
    out.flush().await?;
    if !opts.follow {
        return Ok(());
    }
    // Follow: read what is appended while the container lives (also across a rotation).
    let mut partial: Vec<u8> = Vec::new();
    let mut rx = e.changed.subscribe();
    let watch = path.parent().and_then(LogWatch::new);
    let ino_of = |f: &std::fs::File| {
        f.metadata()
            .map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    loop {
        // The state first, then the file: a container seen stopped has written all it will.
        let live = {
            let r = e.rec();
            r.state.status.is_live()
                || r.state.status == Status::Restarting
                || r.state.status == Status::Created
        };
        let removed = e.removed.load(std::sync::atomic::Ordering::SeqCst);
        // What was appended to the open file.
        let mut buf = Vec::new();
        if let Some(f) = current.as_mut() {
            let _ = std::io::Read::read_to_end(f, &mut buf);
        }
        // Rotated (the path names another file now) or created since: continue with it from
        // its start (the old one was read to its end just above).
        let path_ino =
            std::fs::metadata(&path).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m));
        let switched = path_ino != 0 && current.as_ref().map(ino_of) != Some(path_ino);
        let got = !buf.is_empty();
        partial.extend_from_slice(&buf);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            if let Some((s, t, text)) = parse_line(&line[..line.len() - 1]) {
                if wanted(opts, &s, &t) {
                    out.write_all(&frame(opts, &s, &t, &text)).await?;
                }
            }
        }
        if got {
            out.flush().await?;
        }
        if switched {
            current = std::fs::File::open(&path).ok();
            partial.clear();
            continue;
        }
        if got {
            continue;
        }
        if !live || removed {
            return Ok(());
        }
        // Woken by the shim's writes (inotify on the log's directory: appends, rotation) or by
        // a state change; a slow poll stays as a safety net (and is all there is without
        // inotify).
        match &watch {
            Some(w) => {
                tokio::select! {
                    _ = w.changed() => {}
                    _ = rx.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            None => {
                let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
            }
        }
    }
}

/// An inotify watch on a container's log directory, so `logs -f` sees a line as soon as the
/// shim writes it (Docker's json-file follower does the same).
struct LogWatch(tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>);

impl LogWatch {
    fn new(dir: &std::path::Path) -> Option<Self> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::MOVED_TO,
        )
        .ok()?;
        // SAFETY: `fd` is an open inotify descriptor that the AsyncFd owns (moved in) until it
        // is dropped, so it stays open and `as_raw_fd` returns the same descriptor throughout.
        unsafe { tokio::io::unix::AsyncFd::register(fd) }
            .ok()
            .map(Self)
    }

    /// Waits for at least one event and drains the queue (the events themselves don't matter:
    /// the caller re-reads the file).
    async fn changed(&self) {
        let Ok(mut guard) = self.0.readable().await else {
            std::future::pending::<()>().await;
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(self.0.get_ref(), &mut buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        guard.clear_ready();
    }
}

async fn logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let e = d.containers.get(&id)?;
    let r = e.snapshot();
    let log_type = r
        .host_config
        .log_config
        .as_ref()
        .and_then(|l| l.typ.clone())
        .unwrap_or_default();
    if log_type == "none" {
        return Err(EngineError::invalid(
            "configured logging driver does not support reading",
        ));
    }
    let opts = LogOpts {
        stdout: qbool(&q, "stdout"),
        stderr: qbool(&q, "stderr"),
        follow: qbool(&q, "follow"),
        timestamps: qbool(&q, "timestamps"),
        since: q
            .get("since")
            .and_then(|s| parse_time(s))
            .filter(|s| *s > 0.0),
        until: q
            .get("until")
            .and_then(|s| parse_time(s))
            .filter(|s| *s > 0.0),
        tail: match q.get("tail").map(|s| s.as_str()) {
            None | Some("") | Some("all") => None,
            Some(n) => Some(
                n.parse::<usize>()
                    .map_err(|_| EngineError::invalid(format!("invalid value for tail: {n:?}")))?,
            ),
        },
        tty: r.tty(),
    };
    if !opts.stdout && !opts.stderr {
        return Err(EngineError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tty = opts.tty;
    let stream = async_stream(move |tx| async move {
        let (mut w, mut rd) = tokio::io::duplex(64 * 1024);
        let pump = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        };
        let write = async {
            let _ = write_logs(&d, &e, &opts, &mut w).await;
            drop(w);
        };
        tokio::join!(write, pump);
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_type(tty)),
    );
    Ok(resp)
}

async fn top(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, EngineError> {
    let e = d.containers.get(&id)?;
    let r = e.snapshot();
    if !r.state.status.is_live() {
        return Err(EngineError::conflict(format!(
            "Container {} is not running",
            r.id
        )));
    }
    let root = d.containers.state_root.clone();
    let ps_args = q
        .get("ps_args")
        .cloned()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-ef".into());
    let id2 = r.id.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<Value, EngineError> {
        let c = berth_runtime::Container::load(&root, &id2)
            .map_err(|e| EngineError::conflict(format!("container {id2}: {e}")))?;
        let pids = c
            .pids()
            .map_err(|e| EngineError::internal(format!("container {id2}: {e}")))?;
        let args: Vec<&str> = ps_args.split_whitespace().collect();
        let o = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::internal(format!("run ps: {e}")))?;
        if !o.status.success() {
            return Err(EngineError::internal(format!(
                "ps {ps_args}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let titles: Vec<&str> = header.split_whitespace().collect();
        let pid_col = titles.iter().position(|t| *t == "PID").ok_or_else(|| {
            EngineError::invalid("Couldn't find PID field in ps output".to_string())
        })?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<i32>() else {
                continue;
            };
            if !pids.contains(&pid) {
                continue;
            }
            let mut row: Vec<String> = fields[..titles.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len() - 1..].join(" "));
            procs.push(row);
        }
        Ok(json!({"Titles": titles, "Processes": procs}))
    })
    .await
    .map_err(|e| EngineError::internal(e.to_string()))??;
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0.2), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(45.0), "45 seconds");
        assert_eq!(human_duration(61.0), "About a minute");
        assert_eq!(human_duration(600.0), "10 minutes");
        assert_eq!(human_duration(3700.0), "About an hour");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
    }

    #[test]
    fn filters_parse_both_forms() {
        let mut q = HashMap::new();
        q.insert(
            "filters".to_string(),
            r#"{"status":["running"],"label":{"a=b":true}}"#.to_string(),
        );
        let f = filters(&q).unwrap();
        assert_eq!(f["status"], vec!["running"]);
        assert_eq!(f["label"], vec!["a=b"]);
        q.insert("filters".to_string(), "{bad".to_string());
        assert!(filters(&q).is_err());
    }

    #[test]
    fn log_frames() {
        let o = LogOpts {
            stdout: true,
            stderr: true,
            timestamps: true,
            ..Default::default()
        };
        let f = frame(&o, "stderr", "2026-01-01T00:00:00Z", "hi\n");
        assert_eq!(f[0], 2);
        assert_eq!(&f[8..], b"2026-01-01T00:00:00Z hi\n");
        let (s, t, l) =
            parse_line(br#"{"log":"x\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(
            (s.as_str(), t.as_str(), l.as_str()),
            ("stdout", "2026-01-01T00:00:00Z", "x\n")
        );
        assert!(parse_line(b"garbage").is_none());
    }
}
