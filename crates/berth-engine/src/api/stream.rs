//! Hijacked connections (attach, exec start): Docker answers `101 Switching Protocols` to a
//! request with `Upgrade: tcp` and then speaks the raw stream on the connection: 8-byte
//! framed stdout/stderr without a TTY, raw bytes with one; the client's bytes are stdin.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;

/// The media type of a stream with or without a TTY.
pub fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// The upgraded connection, as tokio I/O.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

/// Answers 101 and runs `f` on the connection once the client has switched. Without an
/// `Upgrade` header the answer is a plain streamed body fed by `f`'s writes (no stdin).
pub fn hijack<F, Fut>(mut req: Request, tty: bool, f: F) -> Response
where
    F: FnOnce(Box<dyn Conn>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    if wants_upgrade {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                f(Box::new(TokioIo::new(up))).await;
            }
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(stream_type(tty)),
        );
        return r;
    }
    // A plain response: a duplex pipe whose read half is the body.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move { f(Box::new(ours)).await });
    let body = Body::from_stream(tokio_util_stream(theirs));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_type(tty)),
    );
    r
}

/// A bidirectional byte stream.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Conn for T {}

fn tokio_util_stream(
    mut r: tokio::io::DuplexStream,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    async_stream(move |tx| async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    })
}

/// A stream fed by a task through a channel.
pub fn async_stream<F, Fut>(
    f: F,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    ReceiverStream(rx)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
