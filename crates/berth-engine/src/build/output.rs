//! What a build says to its client: Docker's JSON lines (`{"stream":"Step 1/3 : ..."}`, pull
//! progress, `{"aux":{"ID":...}}`, `{"errorDetail":...}`), sent into the response body from the
//! build's blocking thread. With `q=1` the lines are held back: they go out only if the build
//! fails (so the user sees what failed), as Docker's quiet builds do.
//!
//! The sink also tells the build when the client went away (the body's receiver is dropped):
//! waits select on [`Sink::closed`], writes fail with `BrokenPipe`.

use std::io::{self, Write};
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

/// The response body's feed.
pub struct Sink {
    tx: Sender<Bytes>,
    handle: tokio::runtime::Handle,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    quiet: bool,
    held: Vec<Bytes>,
    /// Whether any line went into the body.
    sent: bool,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

impl Sink {
    pub fn new(tx: Sender<Bytes>, handle: tokio::runtime::Handle, quiet: bool) -> Self {
        Self {
            tx,
            handle,
            state: Mutex::new(State {
                quiet,
                ..State::default()
            }),
        }
    }

    /// Holds the line (quiet) or says it is about to be sent.
    fn hold(&self, b: &Bytes) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.quiet {
            s.held.push(b.clone());
            return true;
        }
        s.sent = true;
        false
    }

    /// Sends a JSON line from a blocking thread (never from async code).
    pub fn send_blocking(&self, v: &Value) -> io::Result<()> {
        let b = line(v);
        if self.hold(&b) {
            return if self.tx.is_closed() {
                Err(gone())
            } else {
                Ok(())
            };
        }
        self.tx.blocking_send(b).map_err(|_| gone())
    }

    /// Sends a JSON line from async code.
    pub async fn send(&self, v: &Value) -> io::Result<()> {
        let b = line(v);
        if self.hold(&b) {
            return if self.tx.is_closed() {
                Err(gone())
            } else {
                Ok(())
            };
        }
        self.tx.send(b).await.map_err(|_| gone())
    }

    /// Sends a line even in quiet mode (the image id of a quiet build).
    pub fn send_always(&self, v: &Value) -> io::Result<()> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).sent = true;
        self.tx.blocking_send(line(v)).map_err(|_| gone())
    }

    /// Whether anything was sent or held: a failure must then be reported in the stream.
    pub fn started(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.sent || !s.held.is_empty()
    }

    /// Reports a failure in the stream: what quiet mode held back, then Docker's error line
    /// (with the exit code of a failed RUN, which the docker CLI exits with).
    pub fn fail(&self, message: &str, code: Option<i64>) {
        let held = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.sent = true;
            std::mem::take(&mut s.held)
        };
        for b in held {
            if self.tx.blocking_send(b).is_err() {
                return;
            }
        }
        let detail = match code {
            Some(c) => json!({"code": c, "message": message}),
            None => json!({ "message": message }),
        };
        let _ = self
            .tx
            .blocking_send(line(&json!({"errorDetail": detail, "error": message})));
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

/// The executor's text output: each write becomes one `{"stream": "..."}` line. Bytes that end
/// in the middle of a UTF-8 character wait for the rest (a RUN's output comes in any chunks).
pub struct StreamWriter<'a> {
    sink: &'a Sink,
    carry: Vec<u8>,
}

impl<'a> StreamWriter<'a> {
    pub fn new(sink: &'a Sink) -> Self {
        Self {
            sink,
            carry: Vec::new(),
        }
    }
}

/// How many bytes at the end of `b` are the start of an unfinished UTF-8 character.
fn incomplete_tail(b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => b.len() - e.valid_up_to(),
        Err(_) => 0,
    }
}

impl Write for StreamWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.carry.extend_from_slice(buf);
        let keep = incomplete_tail(&self.carry).min(3);
        let cut = self.carry.len() - keep;
        if cut > 0 {
            let text = String::from_utf8_lossy(&self.carry[..cut]).into_owned();
            self.carry.drain(..cut);
            self.sink.send_blocking(&json!({ "stream": text }))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.carry.is_empty() {
            let text = String::from_utf8_lossy(&self.carry).into_owned();
            self.carry.clear();
            self.sink.send_blocking(&json!({ "stream": text }))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(
        quiet: bool,
    ) -> (
        tokio::runtime::Runtime,
        Sink,
        tokio::sync::mpsc::Receiver<Bytes>,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let s = Sink::new(tx, rt.handle().clone(), quiet);
        (rt, s, rx)
    }

    fn lines(rx: &mut tokio::sync::mpsc::Receiver<Bytes>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            assert!(b.ends_with(b"\r\n"));
            out.push(serde_json::from_slice(&b).unwrap());
        }
        out
    }

    #[test]
    fn writes_become_stream_lines_and_split_characters_wait() {
        let (_rt, s, mut rx) = sink(false);
        let mut w = StreamWriter::new(&s);
        w.write_all(b"Step 1/2 : FROM x\n").unwrap();
        let e = "é".as_bytes();
        w.write_all(&[b'a', e[0]]).unwrap();
        w.write_all(&[e[1], b'\n']).unwrap();
        w.flush().unwrap();
        let l = lines(&mut rx);
        assert_eq!(l[0], json!({"stream": "Step 1/2 : FROM x\n"}));
        assert_eq!(l[1], json!({"stream": "a"}));
        assert_eq!(l[2], json!({"stream": "é\n"}));
        assert!(s.started());
    }

    #[test]
    fn quiet_builds_hold_lines_until_a_failure() {
        let (_rt, s, mut rx) = sink(true);
        assert!(!s.started());
        s.send_blocking(&json!({"stream": "Step 1/1 : FROM x\n"}))
            .unwrap();
        assert!(lines(&mut rx).is_empty(), "held back");
        assert!(s.started());
        s.fail("boom", None);
        let l = lines(&mut rx);
        assert_eq!(l[0]["stream"], "Step 1/1 : FROM x\n");
        assert_eq!(
            l[1],
            json!({"errorDetail": {"message": "boom"}, "error": "boom"})
        );
        s.fail("The command 'false' returned a non-zero code: 1", Some(1));
        assert_eq!(lines(&mut rx)[0]["errorDetail"]["code"], 1);
    }

    #[test]
    fn a_gone_client_fails_writes() {
        let (_rt, s, rx) = sink(false);
        drop(rx);
        assert!(s.is_closed());
        let mut w = StreamWriter::new(&s);
        assert_eq!(w.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
