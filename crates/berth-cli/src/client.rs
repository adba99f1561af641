//! The Engine API client: HTTP/1.1 over the daemon's unix socket, the same requests the docker
//! CLI sends. One keep-alive connection serves the plain requests of a command; streams that stay
//! open (attach, wait, logs -f, events) get their own connection.
//!
//! It never interprets what it carries beyond Docker's error body: commands own their shapes.

use std::io;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::autostart;

/// The API version berth speaks; lowered to the daemon's when it says it is older.
pub const API_VERSION: &str = "1.45";
/// The socket used when neither `-H` nor the environment name one.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// A request body: whole bytes, or a stream (imports, loads).
pub type Body = BoxBody<Bytes, io::Error>;

/// An error answer of the daemon: its HTTP status and Docker's `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

/// The daemon could not be reached at all.
#[derive(Debug)]
pub struct ConnectError {
    pub host: String,
    pub source: io::Error,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cannot connect to the berth daemon at {}. Is the berth daemon running? ({})",
            self.host, self.source
        )
    }
}

impl std::error::Error for ConnectError {}

/// Where the daemon listens: `-H`, else `BERTH_HOST`, else `DOCKER_HOST`, else the default.
pub fn resolve_host(flag: Option<&str>) -> String {
    if let Some(h) = flag {
        return h.to_string();
    }
    for var in ["BERTH_HOST", "DOCKER_HOST"] {
        if let Ok(h) = std::env::var(var) {
            if !h.is_empty() {
                return h;
            }
        }
    }
    DEFAULT_HOST.to_string()
}

/// The socket path of a `unix://PATH` host (a bare absolute path is taken as is).
pub fn socket_path(host: &str) -> Result<PathBuf> {
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(anyhow!("invalid host {host:?}: empty socket path"));
        }
        return Ok(PathBuf::from(p));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    Err(anyhow!(
        "unsupported host {host:?}: berth speaks to unix://PATH sockets only"
    ))
}

/// Percent-encodes a query component.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `path?k=v&...` with encoded values, skipping none.
pub fn with_query(path: &str, params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body read from a file or stdin by a blocking thread, a chunk at a time.
pub struct ReaderBody {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl ReaderBody {
    /// Streams `r` (a file, stdin) without holding it all in memory.
    pub fn spawn<R: io::Read + Send + 'static>(mut r: R) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; 256 * 1024];
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        });
        ReaderBody { rx }.boxed()
    }

    /// A body fed by whoever holds the sending end (a thread writing a tar, a chunk at a time).
    pub fn from_channel(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Body {
        ReaderBody { rx }.boxed()
    }
}

impl hyper::body::Body for ReaderBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// How long a connection opened ahead of its request ([`Client::reserve`]) stays worth using:
/// past this the daemon may have dropped it as idle (a pull ran in between).
const SPARE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection being opened (or opened) ahead of its request, and when it was opened.
type Spare = tokio::task::JoinHandle<Option<(SendRequest<Body>, std::time::Instant)>>;

/// A connection to the daemon plus the API version agreed with it.
pub struct Client {
    host: String,
    socket: PathBuf,
    version: String,
    sender: Option<SendRequest<Body>>,
    /// Connections opened ahead of time for requests of their own (streams, hijacks).
    spares: Vec<Spare>,
    /// How many spares to open once the next shared request is on its way.
    reserve: usize,
    autostart_tried: bool,
}

impl Client {
    pub fn new(host: String) -> Result<Self> {
        let socket = socket_path(&host)?;
        Ok(Self {
            host,
            socket,
            version: API_VERSION.to_string(),
            sender: None,
            spares: Vec::new(),
            reserve: 0,
            autostart_tried: false,
        })
    }

    /// Another client of the same daemon, for a connection used beside this one's (attach and
    /// wait next to start), taking one of the connections [`Client::reserve`]d. It never starts
    /// the daemon itself.
    pub fn sibling(&mut self) -> Client {
        Client {
            host: self.host.clone(),
            socket: self.socket.clone(),
            version: self.version.clone(),
            sender: None,
            spares: self.spares.pop().into_iter().collect(),
            reserve: 0,
            autostart_tried: true,
        }
    }

    /// Opens `n` connections for requests of their own (see [`Client::sibling`]) in the
    /// background as soon as the next shared request has been handed to its connection, so
    /// they are ready when its answer comes, and that request goes out first.
    pub fn reserve(&mut self, n: usize) {
        self.reserve = n;
    }

    fn open_spares(&mut self) {
        for _ in 0..std::mem::take(&mut self.reserve) {
            let socket = self.socket.clone();
            self.spares.push(tokio::spawn(async move {
                let stream = UnixStream::connect(&socket).await.ok()?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .ok()?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                Some((sender, std::time::Instant::now()))
            }));
        }
    }

    /// The connection for a request of its own: a reserved one if it opened, is still fresh
    /// and open, else a new one (whose failure is the one reported).
    async fn own_connection(&mut self) -> Result<SendRequest<Body>> {
        if let Some(spare) = self.spares.pop() {
            if let Ok(Some((mut s, at))) = spare.await {
                if at.elapsed() < SPARE_MAX_AGE && s.ready().await.is_ok() {
                    return Ok(s);
                }
            }
        }
        let mut s = self.connect().await?;
        s.ready().await.context("daemon connection")?;
        Ok(s)
    }

    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// Opens a new connection (starting the daemon once if nobody answers and that is allowed).
    async fn connect(&mut self) -> Result<SendRequest<Body>> {
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) if !self.autostart_tried && autostart::wanted(&e) => {
                self.autostart_tried = true;
                autostart::start_daemon(&self.host, &self.socket)
                    .await
                    .map_err(|err| {
                        anyhow!(ConnectError {
                            host: self.host.clone(),
                            source: e,
                        })
                        .context(format!("{err:#}"))
                    })?;
                UnixStream::connect(&self.socket)
                    .await
                    .map_err(|source| ConnectError {
                        host: self.host.clone(),
                        source,
                    })?
            }
            Err(source) => {
                return Err(ConnectError {
                    host: self.host.clone(),
                    source,
                }
                .into())
            }
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the daemon")?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: Body,
        json: bool,
        headers: &[(&str, String)],
        upgrade: bool,
    ) -> Result<Request<Body>> {
        let uri = if path == "/_ping" {
            path.to_string()
        } else {
            format!("/v{}{}", self.version, path)
        };
        let mut b = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("Host", "api.moby.localhost")
            .header(
                "User-Agent",
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            );
        if json {
            b = b.header("Content-Type", "application/json");
        }
        if upgrade {
            b = b.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(body).context("build request")
    }

    /// Sends one request on the shared connection; an error status becomes an [`ApiError`].
    /// A daemon older than [`API_VERSION`] is retried once at its version (whole bodies only).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        for attempt in 0..2 {
            let json = body.is_some();
            let b = body.clone().map(full).unwrap_or_else(empty);
            let req = self.build(&method, path, b, json, headers, false)?;
            let resp = self.send_shared(req).await?;
            match check(resp).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    if attempt == 0 && self.downgrade(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn send_shared(&mut self, req: Request<Body>) -> Result<Response<Incoming>> {
        let mut reused = None;
        if let Some(mut s) = self.sender.take() {
            if s.ready().await.is_ok() {
                reused = Some(s);
            }
        }
        let mut sender = match reused {
            Some(s) => s,
            None => {
                let mut s = self.connect().await?;
                s.ready().await.context("daemon connection")?;
                s
            }
        };
        // The request is queued on its connection here; spares open behind it.
        let sent = sender.send_request(req);
        self.open_spares();
        let resp = sent.await.context("request to the daemon")?;
        self.sender = Some(sender);
        Ok(resp)
    }

    /// Sends a request with a streamed body on a fresh connection, after agreeing the version.
    pub async fn send_stream(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        self.negotiate().await?;
        let mut req = self.build(&method, path, body, false, headers, false)?;
        req.headers_mut().insert(
            "Content-Type",
            content_type.parse().context("content type")?,
        );
        let mut s = self.connect().await?;
        s.ready().await.context("daemon connection")?;
        let resp = s.send_request(req).await.context("request to the daemon")?;
        check(resp).await
    }

    /// Sends a request on a connection of its own (long streams: logs -f, events, wait).
    pub async fn send_own(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>> {
        for attempt in 0..2 {
            let json = body.is_some();
            let b = body.clone().map(full).unwrap_or_else(empty);
            let req = self.build(&method, path, b, json, &[], false)?;
            let mut s = self.own_connection().await?;
            let resp = s.send_request(req).await.context("request to the daemon")?;
            match check(resp).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    if attempt == 0 && self.downgrade(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// `GET /_ping` and adopt the daemon's API version when it is older than ours.
    pub async fn negotiate(&mut self) -> Result<()> {
        let req = self.build(&Method::GET, "/_ping", empty(), false, &[], false)?;
        let resp = self.send_shared(req).await?;
        if let Some(v) = resp
            .headers()
            .get("Api-Version")
            .and_then(|v| v.to_str().ok())
        {
            if version_lt(v, &self.version) {
                self.version = v.to_string();
            }
        }
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    /// Lowers the version when the daemon said ours is too new; true if it did.
    fn downgrade(&mut self, e: &anyhow::Error) -> bool {
        let Some(api) = e.downcast_ref::<ApiError>() else {
            return false;
        };
        let Some(max) = max_version_from_error(&api.message) else {
            return false;
        };
        if version_lt(&max, &self.version) {
            self.version = max;
            true
        } else {
            false
        }
    }

    /// Hijacks a connection: `Connection: Upgrade` → 101, then the raw stream both ways.
    /// A daemon answering 200 instead (no upgrade) gives a read-only stream of its body.
    pub async fn hijack(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Hijacked> {
        for attempt in 0..2 {
            let json = body.is_some();
            let b = body.clone().map(full).unwrap_or_else(empty);
            let req = self.build(&method, path, b, json, &[], true)?;
            let mut s = self.own_connection().await?;
            let resp = s.send_request(req).await.context("request to the daemon")?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let up = hyper::upgrade::on(resp)
                    .await
                    .context("upgrade the connection")?;
                return Ok(Hijacked::Upgraded(TokioIo::new(up)));
            }
            match check(resp).await {
                Ok(r) => return Ok(Hijacked::Body(r.into_body())),
                Err(e) => {
                    if attempt == 0 && self.downgrade(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// GET and decode JSON.
    pub async fn get_json<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let resp = self.send(Method::GET, path, None, &[]).await?;
        decode(resp).await
    }

    /// POST a JSON body (or none) and decode the JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = match body {
            Some(b) => Some(Bytes::from(serde_json::to_vec(b)?)),
            None => None,
        };
        let resp = self.send(Method::POST, path, bytes, &[]).await?;
        decode(resp).await
    }

    /// A request whose answer body does not matter (204s and the like).
    pub async fn call(&mut self, method: Method, path: &str) -> Result<()> {
        let resp = self.send(method, path, None, &[]).await?;
        let _ = resp.into_body().collect().await;
        Ok(())
    }
}

/// The stream of a hijacked connection.
pub enum Hijacked {
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
    Body(Incoming),
}

/// Turns an error status into an [`ApiError`] carrying Docker's message.
async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError {
            status: status.as_u16(),
            message: error_message(&body, status),
        }
        .into());
    }
    Ok(resp)
}

/// Docker's `{"message": ...}`, else the body text, else the status line.
pub fn error_message(body: &[u8], status: StatusCode) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        status.to_string()
    } else {
        text
    }
}

/// Reads a whole body.
pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .context("read the daemon's answer")?
        .to_bytes())
}

/// Reads and decodes a JSON body.
pub async fn decode<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let bytes = read_all(resp).await?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "decode the daemon's answer: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })
}

/// Reads newline-delimited JSON values from a streaming body, calling `f` on each.
pub async fn json_lines<F>(body: &mut Incoming, mut f: F) -> Result<()>
where
    F: FnMut(serde_json::Value) -> Result<()>,
{
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("read the daemon's stream")?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = trim_ascii(&line);
                if !line.is_empty() {
                    if let Ok(v) = serde_json::from_slice(line) {
                        f(v)?;
                    }
                }
            }
            // Some daemons send values without newlines between them.
            if !buf.is_empty() {
                if let Ok(v) = serde_json::from_slice(trim_ascii(&buf)) {
                    buf.clear();
                    f(v)?;
                }
            }
        }
    }
    let rest = trim_ascii(&buf);
    if !rest.is_empty() {
        if let Ok(v) = serde_json::from_slice(rest) {
            f(v)?;
        }
    }
    Ok(())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// "client version 1.45 is too new. Maximum supported API version is 1.41" → "1.41".
fn max_version_from_error(msg: &str) -> Option<String> {
    let idx = msg.find("Maximum supported API version is ")?;
    let v: String = msg[idx + "Maximum supported API version is ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v = v.trim_end_matches('.').to_string();
    parse_version(&v).map(|_| v)
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// a < b for "X.Y" versions; unparsable compares as not less.
pub fn version_lt(a: &str, b: &str) -> bool {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resolution_and_paths() {
        assert_eq!(resolve_host(Some("unix:///x.sock")), "unix:///x.sock");
        assert_eq!(
            socket_path("unix:///run/berth/berth.sock").unwrap(),
            PathBuf::from("/run/berth/berth.sock")
        );
        assert_eq!(
            socket_path("/a/b.sock").unwrap(),
            PathBuf::from("/a/b.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:2375").is_err());
        assert!(socket_path("unix://").is_err());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(enc("a b/c:d"), "a%20b%2Fc%3Ad");
        assert_eq!(
            with_query("/x", &[("name", "n1".into()), ("f", "{\"a\":1}".into())]),
            "/x?name=n1&f=%7B%22a%22%3A1%7D"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(
                br#"{"message":"No such container: x"}"#,
                StatusCode::NOT_FOUND
            ),
            "No such container: x"
        );
        assert_eq!(error_message(b"plain\n", StatusCode::BAD_REQUEST), "plain");
        assert_eq!(
            error_message(b"", StatusCode::NOT_FOUND),
            "404 Not Found".to_string()
        );
        let e = ApiError {
            status: 404,
            message: "No such image: busybox:latest".into(),
        };
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such image: busybox:latest"
        );
    }

    #[test]
    fn version_downgrade_parsing() {
        assert_eq!(
            max_version_from_error(
                "client version 1.45 is too new. Maximum supported API version is 1.41"
            ),
            Some("1.41".into())
        );
        assert_eq!(max_version_from_error("nope"), None);
        assert!(version_lt("1.41", "1.45"));
        assert!(!version_lt("1.45", "1.45"));
        assert!(!version_lt("x", "1.45"));
    }

    #[test]
    fn trims() {
        assert_eq!(trim_ascii(b"  {}\r\n"), b"{}");
        assert_eq!(trim_ascii(b"   "), b"");
    }

    /// A daemon stand-in: answers `200 <n>` to each request of its n-th connection (from 1),
    /// except on the connections in `drop`, which it closes at once. Returns the socket path
    /// and a receiver of (connection number, request line).
    async fn fake_daemon(
        dir: &std::path::Path,
        drop: &'static [usize],
    ) -> (
        PathBuf,
        tokio::sync::mpsc::UnboundedReceiver<(usize, String)>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = dir.join("d.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                n += 1;
                if drop.contains(&n) {
                    continue;
                }
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            let line = String::from_utf8_lossy(&head)
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_string();
                            let _ = tx.send((n, line));
                            let body = n.to_string();
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                });
            }
        });
        (path, rx)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reserved_connections_serve_the_siblings_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut seen) = fake_daemon(dir.path(), &[]).await;
        let mut c = Client::new(format!("unix://{}", path.display())).expect("client");
        c.reserve(2);
        let body = read_all(c.send(Method::POST, "/a", None, &[]).await.expect("a"))
            .await
            .expect("body");
        assert_eq!(
            &body[..],
            b"1",
            "the shared request has the first connection"
        );
        let (mut s1, mut s2) = (c.sibling(), c.sibling());
        let (r1, r2) = tokio::join!(
            s1.send_own(Method::POST, "/b", None),
            s2.send_own(Method::POST, "/c", None)
        );
        let mut conns = vec![
            read_all(r1.expect("b")).await.expect("b body"),
            read_all(r2.expect("c")).await.expect("c body"),
        ];
        conns.sort();
        assert_eq!(conns, vec![Bytes::from("2"), Bytes::from("3")]);
        let mut lines = Vec::new();
        while let Ok(l) = seen.try_recv() {
            lines.push(l);
        }
        lines.sort();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], (1, "POST /v1.45/a HTTP/1.1".to_string()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reserved_connection_the_daemon_closed_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The second connection (the reserved one) is closed by the daemon.
        let (path, _seen) = fake_daemon(dir.path(), &[2]).await;
        let mut c = Client::new(format!("unix://{}", path.display())).expect("client");
        c.reserve(1);
        c.call(Method::POST, "/a").await.expect("a");
        let mut s = c.sibling();
        // Let the reserved connection see its end.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let body = read_all(s.send_own(Method::GET, "/b", None).await.expect("b"))
            .await
            .expect("body");
        assert_eq!(&body[..], b"3", "a new connection answered");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sibling_without_a_daemon_reports_the_connect_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!("unix://{}", dir.path().join("none.sock").display());
        let mut c = Client::new(host).expect("client");
        c.reserve(1);
        let mut s = c.sibling();
        let e = s.send_own(Method::GET, "/b", None).await.unwrap_err();
        assert!(e.downcast_ref::<ConnectError>().is_some(), "{e:#}");
    }
}
