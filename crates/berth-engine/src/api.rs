//! The Docker Engine API's routes. HTTP stops here: handlers turn requests into calls on the
//! engine's state and answers into Docker's JSON shapes. So far: version negotiation (`/_ping`,
//! the `/vX.Y` prefix), `/version` and `/info`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_types::ErrorKind;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::{API_VERSION, MIN_API_VERSION, VERSION};

/// What the handlers share.
pub struct Daemon {
    pub data_root: PathBuf,
    pub images: berth_image::image::ImageStore,
}

/// The router of the whole API.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let routes = Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info));
    // Every route also answers under a `/vX.Y` prefix, which the middleware checks.
    Router::new()
        .merge(routes.clone())
        .nest("/{version}", routes)
        .fallback(not_found)
        .with_state(daemon)
        .layer(middleware::from_fn(api_version_prefix))
}

/// Parses "1.45" into (1, 45).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Checks a `/vX.Y` prefix (Docker's clients send one on every request after `/_ping`) and
/// refuses versions outside what berthd speaks, with Docker's message; adds Docker's headers.
async fn api_version_prefix(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v") {
        let ver = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(v) = parse_version(ver) {
            let min = parse_version(MIN_API_VERSION).unwrap_or((1, 24));
            let max = parse_version(API_VERSION).unwrap_or((1, 45));
            if v < min {
                return EngineError::new(
                    ErrorKind::InvalidArgument,
                    format!("client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"),
                )
                .into_response();
            }
            if v > max {
                return EngineError::new(
                    ErrorKind::InvalidArgument,
                    format!("client version {ver} is too new. Maximum supported API version is {API_VERSION}"),
                )
                .into_response();
            }
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

async fn ping(method: Method) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert("Builder-Version", HeaderValue::from_static("1"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = if method == Method::HEAD { "" } else { "OK" };
    (StatusCode::OK, headers, body).into_response()
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

async fn version() -> Json<Value> {
    let kernel = kernel_version();
    Json(json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": kernel,
            }
        }],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn info(State(d): State<Arc<Daemon>>) -> Result<Json<Value>, EngineError> {
    let images = d
        .images
        .index()
        .and_then(|i| Ok(i.images()?.len()))
        .map_err(|e| EngineError::new(ErrorKind::Internal, format!("image index: {e}")))?;
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    Ok(Json(json!({
        "ID": "",
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": images,
        "Driver": "overlayfs",
        "DriverStatus": [],
        "DockerRootDir": d.data_root,
        "Plugins": {"Volume": ["local"], "Network": [], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "OomKillDisable": cgroup_version == "1",
        "IPv4Forwarding": false,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": berth_runtime::container::rfc3339_now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": kernel_version(),
        "OperatingSystem": "berth",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "Name": hostname,
        "Labels": [],
        "ServerVersion": VERSION,
        "Runtimes": {"berth-runc": {"path": "berth-runc"}},
        "DefaultRuntime": "berth-runc",
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    })))
}

async fn not_found() -> EngineError {
    EngineError::new(ErrorKind::NotFound, "page not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(parse_version("1.45"), Some((1, 45)));
        assert!(parse_version("1.9").unwrap() < parse_version("1.24").unwrap());
        assert_eq!(parse_version("x.1"), None);
        assert_eq!(parse_version("145"), None);
    }
}
