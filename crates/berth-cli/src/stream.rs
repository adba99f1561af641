//! The bytes of attach, exec and logs: Docker's 8-byte stream frames (`[stream,0,0,0,len BE
//! u32]`) when there is no TTY, raw bytes with one; stdin pumped into a hijacked connection;
//! the terminal put in raw mode and its size sent to the daemon.
//!
//! The terminal is always restored: `restore_terminal` runs before the process exits.

use std::io::Write;
use std::sync::Mutex;

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustix::termios::{self, OptionalActions, Termios};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{Client, Hijacked};

/// Splits Docker's multiplexed stream into stdout and stderr.
pub struct Demux {
    tty: bool,
    buf: Vec<u8>,
}

impl Demux {
    pub fn new(tty: bool) -> Self {
        Self {
            tty,
            buf: Vec::new(),
        }
    }

    /// Feeds received bytes; complete frames go to `out` (stream 0/1) or `err` (stream 2).
    pub fn feed(
        &mut self,
        data: &[u8],
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> std::io::Result<()> {
        if self.tty {
            out.write_all(data)?;
            return out.flush();
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while self.buf.len() - pos >= 8 {
            let h = &self.buf[pos..pos + 8];
            // A stream that does not start with a frame header is raw output: pass it on.
            if h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0 {
                out.write_all(&self.buf[pos..])?;
                pos = self.buf.len();
                break;
            }
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - pos - 8 < len {
                break;
            }
            let payload = &self.buf[pos + 8..pos + 8 + len];
            if h[0] == 2 {
                err.write_all(payload)?;
                err.flush()?;
            } else {
                out.write_all(payload)?;
                out.flush()?;
            }
            pos += 8 + len;
        }
        self.buf.drain(..pos);
        out.flush()
    }

    /// What remains at the end of the stream (a cut frame) is written as is.
    pub fn finish(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.buf.len() > 8 {
            out.write_all(&self.buf[8..])?;
        }
        self.buf.clear();
        out.flush()
    }
}

/// Copies a streaming response body through a demuxer to stdout/stderr.
pub async fn copy_body(body: &mut Incoming, tty: bool) -> Result<()> {
    let mut d = Demux::new(tty);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            d.feed(&data, &mut std::io::stdout(), &mut std::io::stderr())?;
        }
    }
    d.finish(&mut std::io::stdout())?;
    Ok(())
}

async fn copy_reader<R: AsyncRead + Unpin>(r: &mut R, tty: bool) -> Result<()> {
    let mut d = Demux::new(tty);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        d.feed(&buf[..n], &mut std::io::stdout(), &mut std::io::stderr())?;
    }
    d.finish(&mut std::io::stdout())?;
    Ok(())
}

/// Sends our stdin into `w` until it ends or, with `detach`, until the detach sequence is typed
/// (never sent). Returns whether it detached.
async fn pump_stdin<W: AsyncWrite + Unpin>(mut w: W, detach: Option<Vec<u8>>) -> bool {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 * 1024];
    let mut matcher = detach.map(berth_types::DetachMatcher::new);
    let mut out = Vec::with_capacity(buf.len());
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.clear();
                let detached = match matcher.as_mut() {
                    Some(m) => m.feed(&buf[..n], &mut out),
                    None => {
                        out.extend_from_slice(&buf[..n]);
                        false
                    }
                };
                if !out.is_empty() && w.write_all(&out).await.is_err() {
                    return false;
                }
                let _ = w.flush().await;
                if detached {
                    return true;
                }
            }
        }
    }
    // Half-close: the container sees EOF on its stdin, its output still flows back.
    let _ = w.shutdown().await;
    false
}

/// How a hijacked stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The daemon closed the output: the container (or exec) is done with us.
    Ended,
    /// The user typed the detach keys: the container keeps running.
    Detached,
}

/// Runs a hijacked stream to its end: output demuxed to our stdout/stderr, our stdin sent in
/// when `stdin` is set. With a TTY, `detach` is the key sequence that detaches (docker's
/// ctrl-p,ctrl-q by default). Returns when the daemon closes the output side or on detach.
pub async fn pump(h: Hijacked, tty: bool, stdin: bool, detach: Option<Vec<u8>>) -> Result<Pumped> {
    match h {
        Hijacked::Upgraded(io) => {
            let (mut r, w) = tokio::io::split(io);
            if !stdin {
                drop(w);
                copy_reader(&mut r, tty).await?;
                return Ok(Pumped::Ended);
            }
            let mut input = tokio::spawn(pump_stdin(w, detach.filter(|_| tty)));
            let output = copy_reader(&mut r, tty);
            tokio::pin!(output);
            tokio::select! {
                res = &mut output => {
                    input.abort();
                    res?;
                    Ok(Pumped::Ended)
                }
                detached = &mut input => {
                    if matches!(detached, Ok(true)) {
                        return Ok(Pumped::Detached);
                    }
                    // Our stdin ended: the output still flows until the daemon closes it.
                    output.await?;
                    Ok(Pumped::Ended)
                }
            }
        }
        Hijacked::Body(mut b) => {
            copy_body(&mut b, tty).await?;
            Ok(Pumped::Ended)
        }
    }
}

/// The `--detach-keys` value as bytes (docker's default when not given), or a usage error.
pub fn detach_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    berth_types::parse_detach_keys(spec.unwrap_or(""))
        .map_err(|e| crate::cmd::status(125, format!("berth: {e}")))
}

static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts the terminal on stdin in raw mode (remembered for [`restore_terminal`]).
pub fn set_raw_terminal() -> Result<()> {
    let stdin = std::io::stdin();
    let orig = termios::tcgetattr(&stdin)?;
    let mut raw = orig.clone();
    raw.make_raw();
    termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
    if let Ok(mut s) = SAVED.lock() {
        if s.is_none() {
            *s = Some(orig);
        }
    }
    Ok(())
}

/// Puts the terminal back as it was, if we changed it.
pub fn restore_terminal() {
    if let Ok(mut s) = SAVED.lock() {
        if let Some(orig) = s.take() {
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &orig);
        }
    }
}

pub fn stdin_is_tty() -> bool {
    termios::isatty(std::io::stdin())
}

pub fn stderr_is_tty() -> bool {
    termios::isatty(std::io::stderr())
}

pub fn stdout_is_tty() -> bool {
    termios::isatty(std::io::stdout())
}

/// The terminal's (height, width), if stdout or stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    if ws.ws_row == 0 || ws.ws_col == 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// Sends the terminal's size to `path` (`/containers/ID/resize` or `/exec/ID/resize`).
pub async fn resize(client: &mut Client, path: &str) {
    if let Some((h, w)) = terminal_size() {
        let _ = client
            .call(hyper::Method::POST, &format!("{path}?h={h}&w={w}"))
            .await;
    }
}

/// Resizes now and on every SIGWINCH, until the task is dropped.
pub async fn follow_resizes(mut client: Client, path: String) {
    resize(&mut client, &path).await;
    let Ok(mut sig) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while sig.recv().await.is_some() {
        resize(&mut client, &path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn demuxes_frames_split_anywhere() {
        let mut all = frame(1, b"hello ");
        all.extend(frame(2, b"oops\n"));
        all.extend(frame(1, b"world\n"));
        for cut in 0..all.len() {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut d = Demux::new(false);
            d.feed(&all[..cut], &mut out, &mut err).unwrap();
            d.feed(&all[cut..], &mut out, &mut err).unwrap();
            assert_eq!(out, b"hello world\n");
            assert_eq!(err, b"oops\n");
        }
    }

    #[test]
    fn tty_streams_are_raw() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut d = Demux::new(true);
        d.feed(b"\x01\x00raw", &mut out, &mut err).unwrap();
        assert_eq!(out, b"\x01\x00raw");
        assert!(err.is_empty());
    }

    #[test]
    fn unframed_output_passes_through() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut d = Demux::new(false);
        d.feed(b"plain text here\n", &mut out, &mut err).unwrap();
        assert_eq!(out, b"plain text here\n");
    }
}
