//! Docker's JSON message stream (pull, push, load, import) shown as docker shows it: one line per
//! layer id updated in place with a progress bar on a terminal, plain status lines otherwise.
//! An `errorDetail`/`error` message ends the stream with that error.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Shows messages as they arrive.
pub struct Display {
    tty: bool,
    to_stderr: bool,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    /// Last line printed per id in plain mode, so repeats are not printed twice.
    last: HashMap<String, String>,
}

/// One message decoded from the stream.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub id: Option<String>,
    pub status: Option<String>,
    pub stream: Option<String>,
    pub current: Option<u64>,
    pub total: Option<u64>,
    pub error: Option<String>,
    /// `aux.ID` (import, build) or similar.
    pub aux_id: Option<String>,
}

impl Message {
    pub fn from_value(v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let detail = v.get("progressDetail");
        let n = |k: &str| {
            detail
                .and_then(|d| d.get(k))
                .and_then(Value::as_i64)
                .filter(|n| *n >= 0)
                .map(|n| n as u64)
        };
        let error = v
            .get("errorDetail")
            .and_then(|d| d.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| s("error"));
        Self {
            id: s("id").filter(|i| !i.is_empty()),
            status: s("status"),
            stream: s("stream"),
            current: n("current"),
            total: n("total"),
            error,
            aux_id: v
                .get("aux")
                .and_then(|a| a.get("ID"))
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// The plain-text line docker prints for this message (no progress bar).
    pub fn plain_line(&self) -> Option<String> {
        if let Some(s) = &self.stream {
            return Some(s.trim_end_matches('\n').to_string());
        }
        let status = self.status.as_deref()?;
        Some(match &self.id {
            Some(id) => format!("{id}: {status}"),
            None => status.to_string(),
        })
    }
}

fn status_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Display {
    /// `tty`: draw bars; else plain lines. `to_stderr`: write there (docker run's implicit pull).
    pub fn new(tty: bool, to_stderr: bool) -> Self {
        let multi = tty.then(|| {
            MultiProgress::with_draw_target(if to_stderr {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::stdout()
            })
        });
        Self {
            tty,
            to_stderr,
            multi,
            bars: HashMap::new(),
            last: HashMap::new(),
        }
    }

    fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => {
                if self.to_stderr {
                    let _ = writeln!(std::io::stderr(), "{line}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
            }
        }
    }

    /// Shows one message; an error message becomes the returned error.
    pub fn show(&mut self, v: &Value) -> Result<()> {
        let m = Message::from_value(v);
        if let Some(e) = m.error {
            return Err(anyhow!("{e}"));
        }
        let Some(id) = m.id.clone() else {
            if let Some(line) = m.plain_line() {
                match &self.multi {
                    // Below the layers' lines, in order, as docker shows it.
                    Some(multi) => {
                        let b = multi.add(
                            ProgressBar::new(0).with_style(
                                ProgressStyle::with_template("{msg}")
                                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                            ),
                        );
                        b.finish_with_message(line);
                    }
                    None => self.println(&line),
                }
            }
            return Ok(());
        };
        let status = m.status.clone().unwrap_or_default();
        if !self.tty {
            // Docker prints no progress lines when not on a terminal.
            if m.current.is_some() || m.total.is_some() {
                return Ok(());
            }
            let line = format!("{id}: {status}");
            if self.last.get(&id) != Some(&line) {
                self.println(&line);
                self.last.insert(id, line);
            }
            return Ok(());
        }
        let Some(multi) = &self.multi else {
            return Ok(());
        };
        let bar = self
            .bars
            .entry(id.clone())
            .or_insert_with(|| {
                multi.add(
                    ProgressBar::new(0)
                        .with_style(status_style())
                        .with_prefix(id.clone()),
                )
            })
            .clone();
        match (m.current, m.total) {
            (Some(cur), Some(total)) if total > 0 => {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(total);
                bar.set_position(cur.min(total));
            }
            _ => bar.set_style(status_style()),
        }
        bar.set_message(status);
        bar.tick();
        Ok(())
    }

    /// Leaves every bar drawn as it last was.
    pub fn finish(&mut self) {
        for b in self.bars.values() {
            b.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_messages() {
        let m = Message::from_value(&json!({
            "status": "Downloading", "id": "abc",
            "progressDetail": {"current": 5, "total": 10}, "progress": "[=> ]"
        }));
        assert_eq!(m.id.as_deref(), Some("abc"));
        assert_eq!((m.current, m.total), (Some(5), Some(10)));
        assert_eq!(m.plain_line().as_deref(), Some("abc: Downloading"));
        let e = Message::from_value(&json!({"errorDetail": {"message": "boom"}, "error": "boom"}));
        assert_eq!(e.error.as_deref(), Some("boom"));
        let s = Message::from_value(&json!({"stream": "Loaded image: x:latest\n"}));
        assert_eq!(s.plain_line().as_deref(), Some("Loaded image: x:latest"));
        let n = Message::from_value(&json!({"progressDetail": {"current": -1}}));
        assert_eq!(n.current, None);
        assert_eq!(n.plain_line(), None);
    }

    #[test]
    fn errors_end_the_stream() {
        let mut d = Display::new(false, true);
        assert!(d
            .show(&json!({"status": "Pulling fs layer", "id": "a"}))
            .is_ok());
        assert!(d.show(&json!({"error": "denied"})).is_err());
    }
}
