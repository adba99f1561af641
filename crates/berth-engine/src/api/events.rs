//! `GET /events`: the event bus as Docker streams it, one JSON object per line: the past events
//! since `since`, then the live ones until `until` (the stream then ends) or until the client
//! goes. Filters as Docker's `daemon/events/filter.go`: type, event, container, image, label,
//! daemon, network, volume, scope.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast::error::RecvError;

use super::containers::filters;
use super::stream::async_stream;
use super::{Daemon, Routes};
use crate::containers::lifecycle::parse_rfc3339;
use crate::error::EngineError;
use crate::events::Event;

type Q = Query<HashMap<String, String>>;
type Filters = HashMap<String, Vec<String>>;

pub fn routes() -> Routes {
    Routes::new().route("/events", get(events))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A `since`/`until` value in nanoseconds: Unix seconds with an optional fraction
/// (`1700000000.5`, what the docker CLI sends) or an RFC 3339 time.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.contains('T') {
        return parse_rfc3339(s).map(|f| (f * 1e9) as i64);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Go's filters.ExactMatch: no values for the key, or one of them equal to `v`.
fn exact(f: &Filters, key: &str, v: &str) -> bool {
    f.get(key).is_none_or(|vals| vals.iter().any(|x| x == v))
}

/// Go's filters.FuzzyMatch: no values for the key, or one equal to `v` or a prefix of it.
fn fuzzy(f: &Filters, key: &str, v: &str) -> bool {
    f.get(key)
        .is_none_or(|vals| vals.iter().any(|x| x == v || v.starts_with(x.as_str())))
}

/// An object filter (`container=web`): by id (or its prefix) or by the "name" attribute.
fn by_name(f: &Filters, key: &str, ev: &Event) -> bool {
    if !f.contains_key(key) {
        return true;
    }
    if ev.typ != key {
        return false;
    }
    let name = ev.actor.attributes.get("name").map_or("", |s| s.as_str());
    fuzzy(f, key, &ev.actor.id) || (!name.is_empty() && fuzzy(f, key, name))
}

/// `repo:tag` → `repo` (a registry port is not a tag).
fn strip_tag(s: &str) -> &str {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') && !s.contains('@') => &s[..i],
        _ => s,
    }
}

/// Whether an event passes Docker's event filters.
pub fn include(ev: &Event, f: &Filters) -> bool {
    let action = ev.action.as_str();
    // Docker: "health_status", "exec_create", "exec_start" also match "health_status: healthy".
    let event_ok = match f.get("event") {
        None => true,
        Some(vals) => vals.iter().any(|v| {
            v == action
                || (matches!(v.as_str(), "health_status" | "exec_create" | "exec_start")
                    && action.starts_with(v.as_str()))
        }),
    };
    let image_ok = f.contains_key("image") && {
        let attr = if ev.typ == "image" { "name" } else { "image" };
        let name = ev.actor.attributes.get(attr).map_or("", |s| s.as_str());
        [
            ev.actor.id.as_str(),
            name,
            strip_tag(&ev.actor.id),
            strip_tag(name),
        ]
        .iter()
        .any(|c| !c.is_empty() && exact(f, "image", c))
    };
    let labels_ok = f.get("label").is_none_or(|vals| {
        vals.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => ev.actor.attributes.get(k).is_some_and(|x| x == v),
            None => ev.actor.attributes.contains_key(l.as_str()),
        })
    });
    event_ok
        && exact(f, "type", &ev.typ)
        && exact(f, "scope", ev.scope)
        && [
            "container",
            "daemon",
            "network",
            "volume",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(f, k, ev))
        && (!f.contains_key("image") || image_ok)
        && labels_ok
}

fn line(ev: &Event) -> Bytes {
    let mut b = serde_json::to_vec(ev).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn events(State(d): State<Arc<Daemon>>, q: Q) -> Result<Response, EngineError> {
    let f = filters(&q)?;
    let time = |k: &str| -> Result<Option<i64>, EngineError> {
        match q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_timestamp(s)
                .map(Some)
                .ok_or_else(|| EngineError::invalid(format!("invalid value for {k}: {s:?}"))),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(EngineError::invalid(format!(
                "since time ({}) cannot be after until time ({})",
                q.get("since").map_or("", |s| s.as_str()),
                q.get("until").map_or("", |s| s.as_str())
            )));
        }
    }
    let (past, mut rx) = d.events.subscribe(since);
    let body = async_stream(move |tx| async move {
        let before_until = |ev: &Event| until.is_none_or(|u| ev.time_nano <= u);
        for ev in past.iter().filter(|e| before_until(e) && include(e, &f)) {
            if tx.send(Ok(line(ev))).await.is_err() {
                return;
            }
        }
        loop {
            let left =
                until.map(|u| Duration::from_nanos(u.saturating_sub(now_nanos()).max(0) as u64));
            if left.is_some_and(|l| l.is_zero()) {
                return;
            }
            let next = async {
                match left {
                    Some(l) => tokio::time::timeout(l, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                r = next => match r {
                    // `until` has come.
                    None => return,
                    Some(Ok(ev)) => {
                        if before_until(&ev) && include(&ev, &f) && tx.send(Ok(line(&ev))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(RecvError::Lagged(_))) => {}
                    Some(Err(RecvError::Closed)) => return,
                },
                // The client went away.
                _ = tx.closed() => return,
            }
        }
    });
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;
    use std::collections::BTreeMap;

    fn ev(typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let bus = Events::new();
        let a: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        bus.emit(typ, action, id, a);
        bus.subscribe(Some(0)).0.remove(0)
    }

    fn f(pairs: &[(&str, &str)]) -> Filters {
        let mut m: Filters = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp("10"), Some(10_000_000_000));
        assert_eq!(parse_timestamp("10.5"), Some(10_500_000_000));
        assert_eq!(parse_timestamp("10.000000001"), Some(10_000_000_001));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:10Z"),
            Some(10_000_000_000)
        );
        assert_eq!(parse_timestamp("x"), None);
        assert_eq!(parse_timestamp("1.x"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("99999999999999999999"), None);
    }

    #[test]
    fn filters_match_like_docker() {
        let start = ev(
            "container",
            "start",
            "abcdef123",
            &[
                ("name", "web"),
                ("image", "busybox:latest"),
                ("tier", "front"),
            ],
        );
        let health = ev(
            "container",
            "health_status: healthy",
            "abcdef123",
            &[("name", "web"), ("image", "busybox:latest")],
        );
        let tag = ev("image", "tag", "sha256:99", &[("name", "busybox:latest")]);
        assert!(include(&start, &f(&[])));
        assert!(include(&start, &f(&[("type", "container")])));
        assert!(!include(&tag, &f(&[("type", "container")])));
        assert!(include(&start, &f(&[("event", "start")])));
        assert!(!include(&start, &f(&[("event", "stop")])));
        assert!(include(
            &start,
            &f(&[("event", "stop"), ("event", "start")])
        ));
        assert!(include(&health, &f(&[("event", "health_status")])));
        assert!(!include(&start, &f(&[("event", "health_status")])));
        assert!(include(&start, &f(&[("container", "web")])));
        assert!(include(&start, &f(&[("container", "abcd")])));
        assert!(!include(&start, &f(&[("container", "db")])));
        assert!(!include(&tag, &f(&[("container", "web")])));
        assert!(include(&start, &f(&[("image", "busybox")])));
        assert!(include(&start, &f(&[("image", "busybox:latest")])));
        assert!(include(&tag, &f(&[("image", "busybox")])));
        assert!(!include(&start, &f(&[("image", "alpine")])));
        assert!(include(&start, &f(&[("label", "tier=front")])));
        assert!(include(&start, &f(&[("label", "tier")])));
        assert!(!include(&start, &f(&[("label", "tier=back")])));
        assert!(!include(&start, &f(&[("label", "tier"), ("label", "x")])));
        assert!(!include(&start, &f(&[("daemon", "x")])));
        assert_eq!(
            strip_tag("localhost:5000/busybox"),
            "localhost:5000/busybox"
        );
        assert_eq!(
            strip_tag("localhost:5000/busybox:1"),
            "localhost:5000/busybox"
        );
        assert!(line(&start).ends_with(b"\n"));
    }
}
