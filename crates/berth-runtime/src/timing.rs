//! Stage timings for `run`/`create`, printed to stderr when BERTH_TIMING=1: how we know where each
//! millisecond of a container start goes. Costs one branch per mark when off; safe in the init
//! (a single raw write, no allocation beyond the message).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ON: AtomicBool = AtomicBool::new(false);
static T0: AtomicU64 = AtomicU64::new(0);

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Turns timing on if BERTH_TIMING=1; `since_ns` is the clock origin (0: now).
pub fn init_from_env() {
    if std::env::var_os("BERTH_TIMING").is_some_and(|v| v == "1") {
        ON.store(true, Ordering::Relaxed);
        let origin = std::env::var("BERTH_TIMING_T0")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(now_ns);
        T0.store(origin, Ordering::Relaxed);
        // Keep the origin across the re-exec of the binary.
        std::env::set_var("BERTH_TIMING_T0", origin.to_string());
    }
}

/// Whether timing is on (to skip building a stage name that would not be printed).
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Prints "<ms since origin> <pid> <stage>" when timing is on.
pub fn mark(stage: &str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let ms = now_ns().saturating_sub(T0.load(Ordering::Relaxed)) as f64 / 1e6;
    let line = format!("{ms:8.3} {:>6} {stage}\n", std::process::id());
    let _ = crate::sys::write_all(rustix::stdio::stderr(), line.as_bytes());
}
