//! The daemon-level network operations: the ones that touch containers too (connect,
//! disconnect, remove, prune) and the JSON shapes Docker's clients read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_types::api::EndpointSettings;
use berth_types::ErrorKind;
use serde_json::{json, Value};

use super::{mode_of, Mode, NetRecord};
use crate::containers::{Record, Status};
use crate::daemon::Daemon;
use crate::error::EngineError;

fn forbidden(m: impl Into<String>) -> EngineError {
    EngineError::new(ErrorKind::PermissionDenied, m)
}

fn blocking_err(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("background task failed: {e}"))
}

/// The endpoint of a container on one network as Docker shows it: live while running, the
/// stored config (without addresses) otherwise.
pub fn endpoint_view(r: &Record, name: &str) -> Option<EndpointSettings> {
    if let Some(l) = r.net_live.get(name) {
        return Some(l.clone());
    }
    let c = r.net_config.get(name)?;
    Some(EndpointSettings {
        ipam_config: c.ipam_config.clone(),
        links: None,
        aliases: c.aliases.clone(),
        mac_address: Some(c.mac_address.clone().unwrap_or_default()),
        driver_opts: None,
        gw_priority: Some(0),
        network_id: c.network_id.clone(),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        dns_names: None,
    })
}

impl Daemon {
    /// `NetworkSettings.Networks` of a container.
    pub fn container_networks(&self, r: &Record) -> BTreeMap<String, EndpointSettings> {
        let mut out = BTreeMap::new();
        match mode_of(r) {
            Mode::Host | Mode::None => {
                let name = if mode_of(r) == Mode::Host {
                    "host"
                } else {
                    "none"
                };
                let id = self.networks.get(name).map(|n| n.id).ok();
                out.insert(
                    name.to_string(),
                    EndpointSettings {
                        network_id: id,
                        ..Default::default()
                    },
                );
            }
            Mode::Container(_) => {}
            Mode::Bridge(_) => {
                for name in r.net_config.keys().chain(r.net_live.keys()) {
                    if let Some(v) = endpoint_view(r, name) {
                        out.insert(name.clone(), v);
                    }
                }
            }
        }
        out
    }

    /// Names of running containers with an endpoint on the network.
    fn active_on(&self, net: &NetRecord) -> Vec<String> {
        self.containers
            .list()
            .iter()
            .filter_map(|e| {
                let r = e.rec();
                r.net_live
                    .values()
                    .any(|ep| ep.network_id.as_deref() == Some(&net.id))
                    .then(|| r.name.clone())
            })
            .collect()
    }

    /// Whether any container (running or not) refers to the network.
    fn used(&self, net: &NetRecord) -> bool {
        self.containers.list().iter().any(|e| {
            let r = e.rec();
            r.net_config.contains_key(&net.name)
                || r.net_config
                    .values()
                    .any(|c| c.network_id.as_deref() == Some(&net.id))
                || matches!(mode_of(&r), Mode::Bridge(ref m) if *m == net.name || *m == net.id)
        })
    }

    fn net_event(&self, action: &str, net: &NetRecord, container: Option<&str>) {
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), net.name.clone());
        a.insert("type".to_string(), net.driver.clone());
        if let Some(c) = container {
            a.insert("container".to_string(), c.to_string());
        }
        self.events.emit("network", action, &net.id, a);
    }

    /// Docker's network JSON (inspect and list).
    pub fn network_json(&self, net: &NetRecord) -> Value {
        let mut containers = serde_json::Map::new();
        for e in self.containers.list() {
            let r = e.rec();
            for ep in r.net_live.values() {
                if ep.network_id.as_deref() != Some(&net.id) {
                    continue;
                }
                let v4 = match (&ep.ip_address, ep.ip_prefix_len) {
                    (Some(a), Some(l)) if !a.is_empty() => format!("{a}/{l}"),
                    _ => String::new(),
                };
                let v6 = match (&ep.global_ipv6_address, ep.global_ipv6_prefix_len) {
                    (Some(a), Some(l)) if !a.is_empty() => format!("{a}/{l}"),
                    _ => String::new(),
                };
                containers.insert(
                    r.id.clone(),
                    json!({
                        "Name": r.name,
                        "EndpointID": ep.endpoint_id.clone().unwrap_or_default(),
                        "MacAddress": ep.mac_address.clone().unwrap_or_default(),
                        "IPv4Address": v4,
                        "IPv6Address": v6,
                    }),
                );
            }
        }
        let config: Vec<Value> = net
            .subnets
            .iter()
            .map(|s| {
                let mut c = json!({"Subnet": s.subnet, "Gateway": s.gateway});
                if let Some(r) = &s.ip_range {
                    c["IPRange"] = json!(r);
                }
                c
            })
            .collect();
        let mut options = net.options.clone();
        if net.name == "bridge" {
            options.insert("com.docker.network.bridge.name".into(), net.bridge.clone());
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            );
        }
        json!({
            "Name": net.name,
            "Id": net.id,
            "Created": net.created,
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv4": net.is_bridge(),
            "EnableIPv6": net.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": null, "Config": config},
            "Internal": net.internal,
            "Attachable": net.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": net.labels,
        })
    }

    /// `POST /networks/create`.
    pub async fn network_create(
        self: &Arc<Self>,
        req: super::CreateRequest,
    ) -> Result<NetRecord, EngineError> {
        let d = self.clone();
        let net = tokio::task::spawn_blocking(move || d.networks.create(req))
            .await
            .map_err(blocking_err)??;
        self.net_event("create", &net, None);
        Ok(net)
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(self: &Arc<Self>, key: &str) -> Result<(), EngineError> {
        let net = self.networks.get(key)?;
        let active = self.active_on(&net);
        let d = self.clone();
        let id = net.id.clone();
        let net = tokio::task::spawn_blocking(move || d.networks.remove(&id, &active))
            .await
            .map_err(blocking_err)??;
        self.net_event("destroy", &net, None);
        Ok(())
    }

    /// `POST /networks/prune`: user networks no container refers to.
    pub async fn network_prune(
        self: &Arc<Self>,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, EngineError> {
        let until = match filters.get("until").and_then(|v| v.first()) {
            Some(u) => Some(
                until_secs(u)
                    .ok_or_else(|| EngineError::invalid(format!("invalid filter 'until={u}'")))?,
            ),
            None => None,
        };
        let mut deleted = Vec::new();
        for net in self.networks.list() {
            if net.is_predefined() || self.used(&net) {
                continue;
            }
            if let Some(u) = until {
                let created =
                    crate::containers::lifecycle::parse_rfc3339(&net.created).unwrap_or(0.0);
                if created > u {
                    continue;
                }
            }
            if let Some(want) = filters.get("label") {
                if !labels_match(&net.labels, want) {
                    continue;
                }
            }
            if let Some(want) = filters.get("label!") {
                if want
                    .iter()
                    .any(|l| labels_match(&net.labels, std::slice::from_ref(l)))
                {
                    continue;
                }
            }
            if self.network_remove(&net.id).await.is_ok() {
                deleted.push(net.name);
            }
        }
        Ok(deleted)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(
        self: &Arc<Self>,
        key: &str,
        container: &str,
        cfg: EndpointSettings,
    ) -> Result<(), EngineError> {
        let net = self.networks.get(key)?;
        let e = self.containers.get(container)?;
        let _op = e.op.lock().await;
        let rec = e.snapshot();
        if !net.is_bridge() {
            return Err(forbidden(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        if !matches!(mode_of(&rec), Mode::Bridge(_)) {
            return Err(forbidden("container sharing network namespace with another container or host cannot be connected to any other network"));
        }
        if rec.net_config.contains_key(&net.name) || rec.net_live.contains_key(&net.name) {
            return Err(forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            )));
        }
        let cfg = self.networks.check_endpoint(&net, cfg)?;
        let running = matches!(rec.state.status, Status::Running | Status::Paused)
            && !rec.sandbox_key.is_empty();
        if running {
            let d = self.clone();
            let mut r = rec.clone();
            let name = net.name.clone();
            let c = cfg.clone();
            let r = tokio::task::spawn_blocking(move || {
                d.networks.connect_live(&mut r, &name, &c).map(|_| r)
            })
            .await
            .map_err(blocking_err)??;
            e.rec().net_live = r.net_live;
        }
        e.rec().net_config.insert(net.name.clone(), cfg);
        self.containers.save(&e)?;
        self.net_event("connect", &net, Some(&rec.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        self: &Arc<Self>,
        key: &str,
        container: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let net = self.networks.get(key)?;
        let e = match self.containers.get(container) {
            Ok(e) => e,
            // Docker's --force drops the endpoint of a container that is gone.
            Err(_) if force => return Ok(()),
            Err(err) => return Err(err),
        };
        let _op = e.op.lock().await;
        let rec = e.snapshot();
        if !net.is_bridge() {
            return Err(forbidden(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        if !rec.net_config.contains_key(&net.name) && !rec.net_live.contains_key(&net.name) {
            return Err(forbidden(format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            )));
        }
        if rec.net_live.contains_key(&net.name) {
            let d = self.clone();
            let mut r = rec.clone();
            let name = net.name.clone();
            let r = tokio::task::spawn_blocking(move || {
                d.networks.disconnect_live(&mut r, &name);
                r
            })
            .await
            .map_err(blocking_err)?;
            e.rec().net_live = r.net_live;
        }
        e.rec().net_config.remove(&net.name);
        self.containers.save(&e)?;
        self.net_event("disconnect", &net, Some(&rec.id));
        Ok(())
    }
}

fn labels_match(have: &BTreeMap<String, String>, want: &[String]) -> bool {
    want.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => have.get(k).is_some_and(|x| x == v),
        None => have.contains_key(l.as_str()),
    })
}

/// A prune `until`: a timestamp (Unix or RFC 3339) or a Go duration before now ("24h", "90m").
fn until_secs(u: &str) -> Option<f64> {
    if let Some(n) = crate::api::events::parse_timestamp(u) {
        return Some(n as f64 / 1e9);
    }
    let unit = u.chars().last()?;
    let n: f64 = u[..u.len() - 1].parse().ok()?;
    let mult = match unit {
        'h' => 3600.0,
        'm' => 60.0,
        's' => 1.0,
        _ => return None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(now - n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_until_forms() {
        assert_eq!(until_secs("1700000000"), Some(1_700_000_000.0));
        let h = until_secs("24h").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - 86400.0 - h).abs() < 5.0);
        assert!(until_secs("soon").is_none());
        assert!(until_secs("").is_none());
    }

    #[test]
    fn label_filters() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(labels_match(&l, &["a".into()]));
        assert!(labels_match(&l, &["a=1".into()]));
        assert!(!labels_match(&l, &["a=2".into()]));
        assert!(!labels_match(&l, &["b".into()]));
    }
}
