//! Every state change is an event: containers (create, start, die, destroy, …), images (pull,
//! tag, delete, …). Subscribers (`GET /events`) get new ones live; a bounded history serves
//! `since`. The future web UI and migration hooks read the same stream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// How many past events `since` can reach.
const HISTORY: usize = 4096;

/// One event, in the JSON shape Docker sends.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Deprecated duplicates Docker still sends for containers and images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: &'static str,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The event bus.
pub struct Events {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    /// Publishes an event of `typ` ("container", "image", "network", "volume", "daemon") about
    /// object `id`. For containers and images, `attributes` usually carry "name" and "image".
    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let legacy = typ == "container" || typ == "image";
        let ev = Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if typ == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            typ: typ.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local",
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Past events at or after `since_nanos`, and a receiver for the ones after them.
    pub fn subscribe(&self, since_nanos: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        // Lock the history while subscribing so nothing falls between the two.
        let h = self.history.lock();
        let rx = self.tx.subscribe();
        let past = match (since_nanos, h) {
            (Some(s), Ok(h)) => h.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            _ => Vec::new(),
        };
        (past, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_and_live_events() {
        let ev = Events::new();
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        attrs.insert("image".to_string(), "busybox".to_string());
        ev.emit("container", "create", "abc", attrs);
        let (past, mut rx) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].action, "create");
        assert_eq!(past[0].from.as_deref(), Some("busybox"));
        ev.emit("image", "tag", "sha256:1", BTreeMap::new());
        let live = rx.try_recv().expect("a live event");
        assert_eq!(live.typ, "image");
        let (none, _) = ev.subscribe(None);
        assert!(none.is_empty());
        let json = serde_json::to_value(&past[0]).unwrap();
        assert_eq!(json["Actor"]["Attributes"]["name"], "web");
        assert_eq!(json["scope"], "local");
    }
}
