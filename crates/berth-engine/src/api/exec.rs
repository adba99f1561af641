//! The exec routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked unless
//! detached), `POST /exec/{id}/resize`, `GET /exec/{id}/json`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use berth_runtime::shim::Request as ShimReq;
use berth_types::api::ExecConfig;
use serde_json::{json, Value};

use super::stream::hijack;
use super::{Daemon, Routes};
use crate::containers::shim;
use crate::error::EngineError;

type Q = Query<std::collections::HashMap<String, String>>;

pub fn routes() -> Routes {
    Routes::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, EngineError> {
    let cfg: ExecConfig = serde_json::from_slice(&body)
        .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?;
    let eid = d.exec_create(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": eid}))).into_response())
}

#[derive(serde::Deserialize, Default)]
struct StartBody {
    #[serde(rename = "Detach", default)]
    detach: bool,
    #[serde(rename = "Tty", default)]
    tty: bool,
}

async fn start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, EngineError> {
    let ex = d.exec_get(&id)?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| EngineError::invalid(format!("read body: {e}")))?;
    let sb: StartBody = if bytes.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::invalid(format!("invalid JSON: {e}")))?
    };
    let dir = d.exec_prepare(&ex).await?;
    if sb.detach {
        d.exec_run(&ex, dir).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let stdin = ex.config.attach_stdin.unwrap_or(false);
    let stdout = ex.config.attach_stdout.unwrap_or(true);
    let stderr = ex.config.attach_stderr.unwrap_or(true);
    let conn = shim::request(
        &dir,
        &ShimReq::Attach {
            stdin,
            stdout,
            stderr,
        },
    )
    .await
    .map_err(|e| EngineError::internal(format!("attach to exec {}: {e}", ex.id)))?;
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let tty = ex.tty() || sb.tty;
    let detach = super::containers::detach_keys(ex.config.detach_keys.as_deref(), tty, stdin)?;
    // The process starts only once the client has the 101: output sent together with the
    // headers can vanish into a client's header buffer (docker-py reads the raw socket after
    // them). A start that fails is told on the stream, as Docker does; its exit code (126/127)
    // is in the exec's inspect.
    Ok(hijack(req, tty, move |mut c| async move {
        if let Err(e) = d.exec_run(&ex, dir).await {
            use tokio::io::AsyncWriteExt;
            let msg = format!("{}\r\n", e.message);
            let mut out = Vec::new();
            if !tty {
                out.extend_from_slice(&berth_runtime::shim::frame_header(
                    berth_runtime::shim::STREAM_STDERR,
                    msg.len(),
                ));
            }
            out.extend_from_slice(msg.as_bytes());
            let _ = c.write_all(&out).await;
            let _ = c.shutdown().await;
            return;
        }
        super::containers::splice_pub(c, conn, stdin, detach).await;
    }))
}

async fn resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, EngineError> {
    let ex = d.exec_get(&id)?;
    let h = q.get("h").and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
    let w = q.get("w").and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
    let dir = d.config.exec_root.join("x").join(&ex.id[..12]);
    shim::call(&dir, &ShimReq::Resize { rows: h, cols: w })
        .await
        .map_err(|e| EngineError::conflict(format!("cannot resize exec {}: {e}", ex.id)))?;
    Ok(StatusCode::OK.into_response())
}

async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, EngineError> {
    let ex = d.exec_get(&id)?;
    let mut st = ex.state();
    if st.running {
        // The shim writes the exit record before an attached client sees EOF, but the task
        // that records it may not have run yet when that client (docker exec) asks for the
        // exit code: read the record itself, else the state the task has set meanwhile.
        let dir = d
            .config
            .exec_root
            .join("x")
            .join(ex.id.get(..12).unwrap_or(&ex.id));
        match berth_runtime::shim::ExitRecord::read(&dir) {
            Ok(Some(x)) => {
                st.running = false;
                st.exit_code = Some(x.exit_code as i64);
            }
            _ => st = ex.state(),
        }
    }
    let cmd = ex.config.cmd.clone().unwrap_or_default();
    Ok(Json(json!({
        "ID": ex.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": {
            "tty": ex.tty(),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": ex.config.privileged.unwrap_or(false),
            "user": ex.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": ex.config.attach_stdin.unwrap_or(false),
        "OpenStderr": ex.config.attach_stderr.unwrap_or(false),
        "OpenStdout": ex.config.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": ex.container_id,
        "DetachKeys": "",
        "Pid": st.pid,
    })))
}
