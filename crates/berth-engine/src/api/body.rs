//! Request and response bodies used from blocking threads (image load/save/import, container
//! archives): a `Read` over a request body and a `Write` into a streamed response body.

use std::io::{self, Read, Write};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::channel::Sender;
use http_body_util::BodyExt;

/// Reads a request body from a blocking thread.
pub struct BodyReader {
    body: Body,
    handle: tokio::runtime::Handle,
    buf: Bytes,
}

impl BodyReader {
    pub fn new(body: Body) -> Self {
        Self {
            body,
            handle: tokio::runtime::Handle::current(),
            buf: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.handle.block_on(self.body.frame()) {
                None => return Ok(0),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf = d;
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = out.len().min(self.buf.len());
        let chunk = self.buf.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        Ok(n)
    }
}

/// Writes a response body from a blocking thread, in chunks of up to 256 KiB.
pub struct BodyWriter {
    tx: Sender<Bytes>,
    handle: tokio::runtime::Handle,
    buf: Vec<u8>,
}

const WRITE_CHUNK: usize = 256 << 10;

impl BodyWriter {
    pub fn new(tx: Sender<Bytes>, handle: tokio::runtime::Handle) -> Self {
        Self {
            tx,
            handle,
            buf: Vec::with_capacity(WRITE_CHUNK),
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.handle
            .block_on(self.tx.send_data(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
