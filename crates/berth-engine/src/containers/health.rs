//! Healthchecks: while a container with a `Healthcheck` (from its image or `--health-*`) runs, one
//! task runs the probe as an exec every interval, with a timeout, and keeps Docker's
//! `State.Health` (status, failing streak, the last five results) in the record, announcing each
//! change of status as a `health_status: …` event.
//!
//! The task ends by itself when the container exits or goes (it compares the exit counter it
//! started with), and is started again by every start and by the restore after a daemon
//! restart. It never holds the record's lock across an await, and never writes a result once
//! the container has exited (the exit's "unhealthy" stands, as Docker's).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::shim::Request;
use berth_types::api::{ExecConfig, Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use tokio::io::AsyncReadExt;

use super::lifecycle::parse_rfc3339;
use super::{shim, Entry, Status};
use crate::daemon::Daemon;

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;
/// Bytes of a probe's output kept.
const MAX_OUTPUT: usize = 4096;

/// A container's probe, with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// What to exec: `CMD` args as given, `CMD-SHELL` through `/bin/sh -c`.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The probe of a healthcheck config; `None` for no check (`NONE`, or no test).
pub fn probe_of(h: Option<&HealthConfig>) -> Option<Probe> {
    let h = h?;
    let test = h.test.as_deref().unwrap_or(&[]);
    let argv = match test.first().map(|s| s.as_str()) {
        Some("CMD") if test.len() > 1 => test[1..].to_vec(),
        Some("CMD-SHELL") if test.len() > 1 => {
            vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]
        }
        _ => return None,
    };
    Some(Probe {
        argv,
        interval: dur(h.interval, DEFAULT_INTERVAL),
        timeout: dur(h.timeout, DEFAULT_TIMEOUT),
        start_period: dur(h.start_period, Duration::ZERO),
        start_interval: dur(h.start_interval, DEFAULT_START_INTERVAL),
        retries: h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
    })
}

/// Applies one probe result as Docker's `handleProbeResult`: keeps the last results, counts the
/// failing streak (not while starting within the start period), and returns the new status if
/// it changed.
pub fn record_result(
    h: &mut Health,
    result: HealthcheckResult,
    retries: i64,
    in_start_period: bool,
) -> Option<HealthStatusEnum> {
    let old = h.status.unwrap_or(HealthStatusEnum::STARTING);
    let ok = result.exit_code == Some(0);
    let log = h.log.get_or_insert_with(Vec::new);
    log.push(result);
    if log.len() > MAX_LOG {
        let extra = log.len() - MAX_LOG;
        log.drain(..extra);
    }
    let streak = h.failing_streak.get_or_insert(0);
    if ok {
        *streak = 0;
        h.status = Some(HealthStatusEnum::HEALTHY);
    } else if !(old == HealthStatusEnum::STARTING && in_start_period) {
        *streak += 1;
        if *streak >= retries {
            h.status = Some(HealthStatusEnum::UNHEALTHY);
        }
    }
    let new = h.status.unwrap_or(old);
    (new != old).then_some(new)
}

/// A duration as Go prints it (`30s`, `1.5s`, `500ms`), for Docker's timeout message.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let ms = ns as f64 / 1e6;
        return format!("{}ms", trim_float(ms));
    }
    let total = d.as_secs_f64();
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let s = total - h * 3600.0 - m * 60.0;
    let mut out = String::new();
    if h > 0.0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0.0 || m > 0.0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(s)));
    out
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Output of a multiplexed stream (8-byte headers) as plain text, at most `MAX_OUTPUT` bytes.
fn demux(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= raw.len() {
        let len = u32::from_be_bytes([raw[i + 4], raw[i + 5], raw[i + 6], raw[i + 7]]) as usize;
        let end = (i + 8).saturating_add(len).min(raw.len());
        out.extend_from_slice(&raw[i + 8..end]);
        i = end;
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}

fn now() -> String {
    berth_runtime::container::rfc3339_now()
}

impl Daemon {
    /// Starts the health monitor of a container that has just started (or was found running
    /// after a daemon restart): status "starting", then one probe per interval.
    pub fn health_start(self: &Arc<Self>, e: &Arc<Entry>) {
        let (probe, id) = {
            let mut r = e.rec();
            let Some(probe) = probe_of(r.config.healthcheck.as_ref()) else {
                return;
            };
            let h = r.state.health.get_or_insert_with(Health::default);
            h.status = Some(HealthStatusEnum::STARTING);
            h.failing_streak = Some(0);
            if h.log.is_none() {
                h.log = Some(Vec::new());
            }
            (probe, r.id.clone())
        };
        if let Err(err) = self.containers.save(e) {
            tracing::warn!("save the health of {id}: {err}");
        }
        let exits = e.exits.load(Ordering::SeqCst);
        let d = self.clone();
        let e = e.clone();
        tokio::spawn(async move { d.health_loop(e, probe, exits).await });
    }

    /// Whether the run the monitor was started for still goes on.
    fn same_run(e: &Entry, exits: u64) -> bool {
        e.exits.load(Ordering::SeqCst) == exits
            && !e.removed.load(Ordering::SeqCst)
            && e.rec().state.status.is_live()
    }

    async fn health_loop(self: Arc<Self>, e: Arc<Entry>, probe: Probe, exits: u64) {
        let mut changed = e.changed.subscribe();
        loop {
            let interval = {
                let r = e.rec();
                let since_start = parse_rfc3339(&r.state.started_at)
                    .map(|t| now_secs() - t)
                    .unwrap_or(f64::MAX);
                let starting = r.state.health.as_ref().and_then(|h| h.status)
                    == Some(HealthStatusEnum::STARTING);
                if since_start < probe.start_period.as_secs_f64() && starting {
                    probe.start_interval
                } else {
                    probe.interval
                }
            };
            // Sleep, waking early to leave as soon as the container exits.
            let sleep = tokio::time::sleep(interval);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    r = changed.changed() => {
                        if r.is_err() || !Self::same_run(&e, exits) {
                            return;
                        }
                    }
                }
            }
            if !Self::same_run(&e, exits) {
                return;
            }
            if e.rec().state.status == Status::Paused {
                continue;
            }
            let result = self.run_probe(&e, &probe).await;
            let started = parse_rfc3339(result.start.as_deref().unwrap_or("")).unwrap_or(0.0);
            let (id, change) = {
                let mut r = e.rec();
                // Exited meanwhile: the exit's status stands.
                if e.exits.load(Ordering::SeqCst) != exits || !r.state.status.is_live() {
                    return;
                }
                let in_start = parse_rfc3339(&r.state.started_at)
                    .is_some_and(|s| started - s < probe.start_period.as_secs_f64());
                let h = r.state.health.get_or_insert_with(Health::default);
                let change = record_result(h, result, probe.retries, in_start);
                (r.id.clone(), change)
            };
            if let Err(err) = self.containers.save(&e) {
                tracing::warn!("save the health of {id}: {err}");
            }
            if let Some(s) = change {
                let attrs = e.rec().event_attrs();
                self.events
                    .emit("container", &format!("health_status: {s}"), &id, attrs);
            }
        }
    }

    /// Runs the probe once as an exec, capturing its output, killing it after the timeout.
    async fn run_probe(self: &Arc<Self>, e: &Arc<Entry>, probe: &Probe) -> HealthcheckResult {
        let start = now();
        let fail = |code: i64, output: String| HealthcheckResult {
            start: Some(start.clone()),
            end: Some(now()),
            exit_code: Some(code),
            output: Some(output),
        };
        let id = e.rec().id.clone();
        let cfg = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(probe.argv.clone()),
            ..Default::default()
        };
        let exec_id = match self.exec_create(&id, cfg) {
            Ok(x) => x,
            Err(err) => return fail(-1, err.message),
        };
        let r = self.run_probe_exec(&exec_id, probe, &start).await;
        self.containers
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&exec_id);
        r.unwrap_or_else(|m| fail(-1, m))
    }

    async fn run_probe_exec(
        self: &Arc<Self>,
        exec_id: &str,
        probe: &Probe,
        start: &str,
    ) -> Result<HealthcheckResult, String> {
        let ex = self.exec_get(exec_id).map_err(|e| e.message)?;
        let mut done = ex.changed.subscribe();
        let dir = self.exec_prepare(&ex).await.map_err(|e| e.message)?;
        let mut conn = shim::request(
            &dir,
            &Request::Attach {
                stdin: false,
                stdout: true,
                stderr: true,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let kill_dir = dir.clone();
        self.exec_run(&ex, dir).await.map_err(|e| e.message)?;
        let finished = async {
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if raw.len() < 2 * MAX_OUTPUT + 64 {
                            raw.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
            // The exit code arrives once the exec's watcher has read the exit record.
            while ex.state().exit_code.is_none() {
                if done.changed().await.is_err() {
                    break;
                }
            }
            raw
        };
        match tokio::time::timeout(probe.timeout, finished).await {
            Ok(raw) => Ok(HealthcheckResult {
                start: Some(start.to_string()),
                end: Some(now()),
                exit_code: Some(ex.state().exit_code.unwrap_or(-1)),
                output: Some(demux(&raw)),
            }),
            Err(_) => {
                let _ = shim::call(
                    &kill_dir,
                    &Request::Kill {
                        signal: libc::SIGKILL,
                    },
                )
                .await;
                Ok(HealthcheckResult {
                    start: Some(start.to_string()),
                    end: Some(now()),
                    exit_code: Some(-1),
                    output: Some(format!(
                        "Health check exceeded timeout ({})",
                        go_duration(probe.timeout)
                    )),
                })
            }
        }
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(code: i64) -> HealthcheckResult {
        HealthcheckResult {
            start: Some("2026-01-01T00:00:00Z".into()),
            end: Some("2026-01-01T00:00:01Z".into()),
            exit_code: Some(code),
            output: Some(String::new()),
        }
    }

    #[test]
    fn probes_from_configs() {
        let hc = |test: &[&str]| HealthConfig {
            test: Some(test.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let p = probe_of(Some(&hc(&["CMD-SHELL", "test -f /ok"]))).unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(p.interval, DEFAULT_INTERVAL);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.retries, 3);
        let p = probe_of(Some(&hc(&["CMD", "true", "x"]))).unwrap();
        assert_eq!(p.argv, ["true", "x"]);
        assert!(probe_of(Some(&hc(&["NONE"]))).is_none());
        assert!(probe_of(Some(&hc(&[]))).is_none());
        assert!(probe_of(Some(&hc(&["CMD"]))).is_none());
        assert!(probe_of(None).is_none());
        let mut h = hc(&["CMD", "true"]);
        h.interval = Some(1_000_000_000);
        h.retries = Some(2);
        h.timeout = Some(-5);
        let p = probe_of(Some(&h)).unwrap();
        assert_eq!(p.interval, Duration::from_secs(1));
        assert_eq!(p.retries, 2);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn health_state_machine() {
        let mut h = Health {
            status: Some(HealthStatusEnum::STARTING),
            failing_streak: Some(0),
            log: None,
        };
        // Failures within the start period do not count.
        assert_eq!(record_result(&mut h, res(1), 2, true), None);
        assert_eq!(h.failing_streak, Some(0));
        assert_eq!(record_result(&mut h, res(1), 2, false), None);
        assert_eq!(h.failing_streak, Some(1));
        assert_eq!(
            record_result(&mut h, res(1), 2, false),
            Some(HealthStatusEnum::UNHEALTHY)
        );
        assert_eq!(record_result(&mut h, res(1), 2, false), None);
        assert_eq!(h.failing_streak, Some(3));
        assert_eq!(
            record_result(&mut h, res(0), 2, false),
            Some(HealthStatusEnum::HEALTHY)
        );
        assert_eq!(h.failing_streak, Some(0));
        // Healthy stays healthy until `retries` failures in a row.
        assert_eq!(record_result(&mut h, res(1), 2, false), None);
        assert_eq!(h.status, Some(HealthStatusEnum::HEALTHY));
        assert_eq!(h.log.as_ref().unwrap().len(), MAX_LOG);
        // A probe error (-1) is a failure too.
        assert_eq!(
            record_result(&mut h, res(-1), 2, true),
            Some(HealthStatusEnum::UNHEALTHY)
        );
        let j = serde_json::to_value(&h).unwrap();
        assert_eq!(j["Status"], "unhealthy");
        assert_eq!(j["Log"][4]["ExitCode"], -1);
    }

    #[test]
    fn durations_and_output() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"ok\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        raw.extend_from_slice(b"err\n");
        raw.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 99, b'x']);
        assert_eq!(demux(&raw), "ok\nerr\nx");
        assert_eq!(demux(&[1, 2]), "");
        let big = [vec![1, 0, 0, 0, 0, 0, 0x20, 0], vec![b'a'; 0x2000]].concat();
        assert_eq!(demux(&big).len(), MAX_OUTPUT);
    }
}
