//! The Docker Engine API's routes. HTTP stops here: handlers turn requests into calls on the
//! engine's services and answers into Docker's JSON shapes. One file per resource; this one
//! puts them together and checks the `/vX.Y` prefix.

pub mod archive;
pub mod body;
pub mod build;
pub mod commit;
pub mod containers;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod stats;
pub mod stream;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_types::ErrorKind;

pub use crate::daemon::Daemon;
use crate::error::EngineError;
use crate::{API_VERSION, MIN_API_VERSION};

/// The routes of one resource, sharing the daemon.
pub type Routes = Router<Arc<Daemon>>;

/// The router of the whole API.
pub fn router(daemon: Arc<Daemon>) -> Router {
    let routes = Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(build::routes())
        .merge(containers::routes())
        .merge(commit::routes())
        .merge(archive::routes())
        .merge(exec::routes())
        .merge(stats::routes())
        .merge(events::routes())
        .merge(networks::routes())
        .merge(volumes::routes());
    let inner = routes.fallback(not_found).with_state(daemon);
    // Every route also answers under a `/vX.Y` prefix, which the middleware checks and strips
    // before the inner router routes (so handlers see only their own path parameters).
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(api_version_prefix))
}

/// Parses "1.45" into (1, 45).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Checks a `/vX.Y` prefix (Docker's clients send one on every request after `/_ping`) and
/// refuses versions outside what berthd speaks, with Docker's message; adds Docker's headers.
async fn api_version_prefix(mut req: Request, next: Next) -> Response {
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
            // Strip the prefix: `/v1.45/containers/json` → `/containers/json`.
            let stripped = &rest[ver.len()..];
            let new_path = if stripped.is_empty() { "/" } else { stripped };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_string(),
            };
            if let Ok(uri) = pq.parse() {
                *req.uri_mut() = uri;
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
