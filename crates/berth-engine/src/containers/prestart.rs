//! Pre-started containers: when the same `run --rm` comes again and again (a script, a CI job,
//! a benchmark), berthd makes the next container of that shape ahead of time — record, rootfs
//! mounted, config.json, network, shim up, init waiting in its namespaces — and a create that
//! asks for exactly that shape takes it. The run then costs a start request instead of a mount,
//! a fork+exec and a namespace set-up.
//!
//! Exactly that shape: the key is a hash of the whole create request (canonical JSON) and the
//! image id its name resolves to now, so a claimed container is the one a cold create would have
//! made, down to its command, environment and limits; only its id, name and creation time are
//! given at the claim. Only `--rm` containers without anything that another container could
//! contend for are made ahead: no published ports, volumes, binds, fixed addresses, MACs, or
//! `container:` modes. A key is made ahead once two of its containers have been removed within
//! [`TTL`]; a pre-started container unclaimed after [`TTL`] is discarded, and at most
//! [`MAX_WARM`] exist at once.
//!
//! A pre-started container is invisible: it is not in the store, so no list, lookup, event,
//! prune or `system df` sees it. It must never hold anything a user could notice: an image
//! about to be removed discards its pre-started containers first, a daemon stop discards them
//! all, and a daemon that died leaves them to the next start (`Containers::open` deletes what
//! never reached the store).

use std::collections::{HashMap, HashSet};

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_types::api::{ContainerCreateBody, HostConfig};

use super::Entry;

/// How long a pre-started container waits to be claimed, and the window in which two removals
/// of one key make it worth pre-starting.
pub const TTL: Duration = Duration::from_secs(30);
/// At most this many pre-started containers exist at once (the oldest goes first).
pub const MAX_WARM: usize = 4;
/// Pre-started containers kept per key.
pub const DEPTH: usize = 2;
/// A create waits at most this long for a container of its key still being made (it is then
/// further along than a cold create would be).
pub const WAIT: Duration = Duration::from_millis(200);

/// How to make another container like a removed one.
#[derive(Debug, Clone)]
pub struct Seed {
    pub key: u64,
    pub body: Arc<ContainerCreateBody>,
    /// The image id the body's image name resolved to.
    pub image_id: String,
}

struct Warm {
    key: u64,
    entry: Arc<Entry>,
    made: Instant,
}

#[derive(Default)]
struct Inner {
    ready: Vec<Warm>,
    /// Keys being made right now, and how many of each.
    making: HashMap<u64, usize>,
    /// Removals per key: (count within the window, last).
    seen: HashMap<u64, (u32, Instant)>,
    /// Keys that cannot be made ahead (their create needs something shared, found out late).
    refused: HashSet<u64>,
}

impl Inner {
    fn done_making(&mut self, key: u64) {
        if let Some(n) = self.making.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.making.remove(&key);
            }
        }
    }
}

/// The pre-started containers, by key.
pub struct Pool {
    enabled: bool,
    /// Bumped whenever pre-started containers are taken out for an image or for good: one
    /// being made across such a moment is discarded when done.
    epoch: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
    changed: tokio::sync::Notify,
}

impl Pool {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            epoch: std::sync::atomic::AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the pre-started container of `key`; waits up to [`WAIT`] for one being made.
    pub async fn take(&self, key: u64) -> Option<Arc<Entry>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = self.lock();
                if let Some(i) = g.ready.iter().position(|w| w.key == key) {
                    return Some(g.ready.swap_remove(i).entry);
                }
                if !g.making.contains_key(&key) {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Counts a removal of a container of `key`; returns how many to make ahead now (the key is
    /// then marked as being made that many times: call [`Pool::made`] or [`Pool::failed`] for
    /// each). [`DEPTH`] are kept per key, so that a run back to back with the last one finds one
    /// ready while the next is being made.
    pub fn want(&self, key: u64) -> usize {
        if !self.enabled {
            return 0;
        }
        let now = Instant::now();
        let mut g = self.lock();
        if g.seen.len() > 256 {
            g.seen.retain(|_, (_, at)| now.duration_since(*at) < TTL);
        }
        let n = {
            let s = g.seen.entry(key).or_insert((0, now));
            if now.duration_since(s.1) >= TTL {
                s.0 = 0;
            }
            s.0 = s.0.saturating_add(1);
            s.1 = now;
            s.0
        };
        if n < 2 || g.refused.contains(&key) {
            return 0;
        }
        let have = g.making.get(&key).copied().unwrap_or(0)
            + g.ready.iter().filter(|w| w.key == key).count();
        let more = DEPTH.saturating_sub(have);
        if more > 0 {
            *g.making.entry(key).or_insert(0) += more;
        }
        more
    }

    /// The moment a container starts being made (give it to [`Pool::made`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A container of `key`, begun at `epoch`, is ready; returns what to discard: the ones
    /// pushed out by [`MAX_WARM`], or this one when its image went (or the daemon stops)
    /// while it was being made.
    pub fn made(&self, key: u64, entry: Arc<Entry>, epoch: u64) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        {
            let mut g = self.lock();
            g.done_making(key);
            if epoch != self.epoch() {
                return vec![entry];
            }
            g.ready.push(Warm {
                key,
                entry,
                made: Instant::now(),
            });
            while g.ready.len() > MAX_WARM {
                let oldest = g
                    .ready
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| w.made)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                out.push(g.ready.swap_remove(oldest).entry);
            }
        }
        self.changed.notify_waiters();
        out
    }

    /// Making a container of `key` failed; with `refuse`, the key is never made ahead again.
    pub fn failed(&self, key: u64, refuse: bool) {
        {
            let mut g = self.lock();
            g.done_making(key);
            if refuse {
                g.refused.insert(key);
            }
        }
        self.changed.notify_waiters();
    }

    /// Takes `entry` out if it is still unclaimed (its time is up).
    pub fn take_entry(&self, entry: &Arc<Entry>) -> Option<Arc<Entry>> {
        let mut g = self.lock();
        let i = g.ready.iter().position(|w| Arc::ptr_eq(&w.entry, entry))?;
        Some(g.ready.swap_remove(i).entry)
    }

    /// Takes out every pre-started container made from image `image_id` (it is being removed).
    pub fn take_image(&self, image_id: &str) -> Vec<Arc<Entry>> {
        let mut g = self.lock();
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut g.ready)
            .into_iter()
            .partition(|w| w.entry.rec().image_id == image_id);
        g.ready = keep;
        gone.into_iter().map(|w| w.entry).collect()
    }

    /// Takes out every pre-started container (the daemon stops).
    pub fn take_all(&self) -> Vec<Arc<Entry>> {
        let mut g = self.lock();
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut g.ready)
            .into_iter()
            .map(|w| w.entry)
            .collect()
    }
}

/// The key of a create request that may be made ahead, or None when it may not: only `--rm`
/// containers, and nothing that two containers of one shape would contend for.
pub fn key_of(body: &ContainerCreateBody, image_id: &str) -> Option<u64> {
    let hc = body.host_config.as_ref()?;
    if hc.auto_remove != Some(true) || shares_something(hc) {
        return None;
    }
    if body.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
        return None;
    }
    for ep in body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref())
        .into_iter()
        .flat_map(|m| m.values())
    {
        let fixed = ep.ipam_config.is_some()
            || ep.mac_address.as_deref().is_some_and(|m| !m.is_empty())
            || ep.aliases.as_ref().is_some_and(|a| !a.is_empty())
            || ep.links.as_ref().is_some_and(|l| !l.is_empty());
        if fixed {
            return None;
        }
    }
    // Canonical: serde_json's maps are sorted, whatever order the request's maps came in.
    let canonical = serde_json::to_value(body).ok()?.to_string();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut h);
    image_id.hash(&mut h);
    Some(h.finish())
}

/// Whether a host config names something outside the container that another container of the
/// same shape would contend for or that must exist at create: ports, volumes, binds, other
/// containers, user-defined networks, quotas.
fn shares_something(hc: &HostConfig) -> bool {
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let other_container = |m: &Option<String>| {
        m.as_deref()
            .is_some_and(|m| m.starts_with("container:") || m.starts_with("ns:"))
    };
    let network_ok = matches!(
        hc.network_mode.as_deref().unwrap_or(""),
        "" | "default" | "bridge" | "none" | "host"
    );
    !network_ok
        || hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        || hc.publish_all_ports == Some(true)
        || nonempty(&hc.binds)
        || nonempty(&hc.volumes_from)
        || nonempty(&hc.links)
        || hc.mounts.as_ref().is_some_and(|m| !m.is_empty())
        || hc.storage_opt.as_ref().is_some_and(|s| !s.is_empty())
        || other_container(&hc.pid_mode)
        || other_container(&hc.ipc_mode)
        || other_container(&hc.uts_mode)
        || other_container(&hc.cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> ContainerCreateBody {
        serde_json::from_str(json).expect("test body")
    }

    #[test]
    fn only_rm_containers_without_shared_things_have_a_key() {
        let rm = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true}}"#;
        assert!(key_of(&body(rm), "sha256:a").is_some());
        for not in [
            r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{}}"#,
            r#"{"Image":"busybox","Cmd":["true"]}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"PortBindings":{"80/tcp":[{"HostPort":"8080"}]}}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"PublishAllPorts":true}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"Binds":["/tmp:/x"]}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"Mounts":[{"Type":"volume","Target":"/v"}]}}"#,
            r#"{"Image":"b","Volumes":{"/v":{}},"HostConfig":{"AutoRemove":true}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"NetworkMode":"mynet"}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"NetworkMode":"container:web"}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true,"PidMode":"container:web"}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true},"NetworkingConfig":{"EndpointsConfig":{"bridge":{"IPAMConfig":{"IPv4Address":"172.17.0.9"}}}}}"#,
            r#"{"Image":"b","HostConfig":{"AutoRemove":true},"NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":"02:42:ac:11:00:09"}}}}"#,
        ] {
            assert_eq!(key_of(&body(not), "sha256:a"), None, "{not}");
        }
    }

    #[test]
    fn the_key_is_the_whole_request_and_the_image() {
        let a = body(
            r#"{"Image":"b","Cmd":["true"],"Labels":{"x":"1","y":"2"},"HostConfig":{"AutoRemove":true}}"#,
        );
        let same = body(
            r#"{"Labels":{"y":"2","x":"1"},"HostConfig":{"AutoRemove":true},"Cmd":["true"],"Image":"b"}"#,
        );
        let other_cmd = body(r#"{"Image":"b","Cmd":["false"],"HostConfig":{"AutoRemove":true}}"#);
        let other_env =
            body(r#"{"Image":"b","Cmd":["true"],"Env":["A=1"],"HostConfig":{"AutoRemove":true}}"#);
        let k = key_of(&a, "sha256:a");
        assert_eq!(k, key_of(&same, "sha256:a"));
        assert_ne!(k, key_of(&a, "sha256:b"), "another image id");
        assert_ne!(k, key_of(&other_cmd, "sha256:a"));
        assert_ne!(
            key_of(&other_cmd, "sha256:a"),
            key_of(&other_env, "sha256:a")
        );
    }

    fn entry(image_id: &str) -> Arc<Entry> {
        let rec: super::super::Record = serde_json::from_value(serde_json::json!({
            "id": "0".repeat(64), "name": "n", "created": "", "image": "b", "image_id": image_id,
            "config": {}, "host_config": {}, "path": "true", "args": [],
            "state": {"status": "created", "pid": 0, "exit_code": 0, "error": "",
                      "started_at": "", "finished_at": "", "oom_killed": false}
        }))
        .expect("test record");
        Entry::new(rec)
    }

    #[tokio::test]
    async fn a_key_is_made_ahead_from_its_second_removal_and_taken_once() {
        let p = Pool::new(true);
        assert_eq!(p.want(7), 0, "one removal is not a pattern");
        assert_eq!(p.want(7), DEPTH);
        assert_eq!(p.want(7), 0, "already being made");
        for _ in 0..DEPTH {
            assert!(p.made(7, entry("sha256:a"), p.epoch()).is_empty());
        }
        assert_eq!(p.want(7), 0, "already made");
        assert!(p.take(8).await.is_none());
        assert!(p.take(7).await.is_some());
        assert_eq!(p.want(7), 1, "one taken: one more");
        p.failed(7, false);
        for _ in 1..DEPTH {
            assert!(p.take(7).await.is_some());
        }
        assert!(p.take(7).await.is_none(), "each taken once");
        let off = Pool::new(false);
        assert_eq!(off.want(7) + off.want(7), 0);
    }

    #[tokio::test]
    async fn a_create_waits_for_its_key_being_made() {
        let p = Arc::new(Pool::new(true));
        p.want(1);
        assert_eq!(p.want(1), DEPTH);
        let p2 = p.clone();
        let maker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            p2.made(1, entry("sha256:a"), p2.epoch());
        });
        assert!(p.take(1).await.is_some());
        maker.await.expect("maker");
        p.want(2);
        assert_eq!(p.want(2), DEPTH);
        for _ in 0..DEPTH {
            p.failed(2, true);
        }
        assert!(p.take(2).await.is_none());
        assert_eq!(p.want(2), 0, "refused for good");
    }

    #[test]
    fn at_most_max_warm_and_images_and_stop_take_theirs() {
        let p = Pool::new(true);
        let mut out = Vec::new();
        for k in 0..(MAX_WARM as u64 + 2) {
            let image = if k % 2 == 0 { "sha256:a" } else { "sha256:b" };
            out.extend(p.made(k, entry(image), p.epoch()));
        }
        assert_eq!(out.len(), 2, "the oldest two pushed out");
        let a = p.take_image("sha256:a");
        let b = p.take_all();
        assert_eq!(a.len() + b.len(), MAX_WARM);
        assert!(a.iter().all(|e| e.rec().image_id == "sha256:a"));
        assert!(p.take_all().is_empty());
        // One being made while its image went is handed back to be discarded.
        let before = p.epoch();
        p.take_image("sha256:a");
        assert_eq!(p.made(1, entry("sha256:b"), before).len(), 1);
        assert!(p.take_all().is_empty());
    }
}
