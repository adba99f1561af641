//! The HTTP side of the registry client: one pooled HTTP/1.1 client (rustls for HTTPS, trusting
//! the system roots plus every `certs.d/<host[:port]>/ca.crt`), the choice of endpoint (mirrors,
//! plain HTTP for loopback and insecure registries unless certs.d names them), auth challenges
//! answered once per request with tokens cached per scope, redirects, and retries with backoff
//! on connection errors, 5xx and 429.
//!
//! No HTTP type leaves the registry module. Credentials go only to the registry's own authority
//! and to the token realm it names, never along a redirect to another host (blob storage).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, LOCATION, USER_AGENT, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::auth::{basic_header, parse_challenge, token_from_json, token_url, Challenge};
use super::{Credentials, RegistryConfig, RegistryError};

/// The Docker Hub registry behind `docker.io` names.
const HUB_REGISTRY: &str = "https://registry-1.docker.io";

/// A request body: nothing, bytes in memory, or a stream fed by a task (blob uploads).
pub(crate) enum ReqBody {
    Empty,
    Bytes(Option<Bytes>),
    Stream {
        rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
        len: u64,
    },
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream { rx, .. } => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Bytes(b) => b.is_none(),
            ReqBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream { len, .. } => SizeHint::with_exact(*len),
        }
    }
}

/// One way to reach a registry: a base URL and the credentials that go with it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `http://127.0.0.1:5000` (no trailing slash).
    pub base: String,
    /// `127.0.0.1:5000`: the only authority credentials are sent to.
    pub authority: String,
    pub credentials: Option<Credentials>,
    /// A Docker Hub mirror rather than the registry of the reference.
    pub mirror: bool,
}

/// A request to make, rebuilt for each attempt.
pub(crate) struct Req<'a> {
    pub method: Method,
    /// A path (`/v2/...`) on the endpoint, or an absolute URL it gave us (upload locations).
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: &'a (dyn Fn() -> ReqBody + Send + Sync),
    /// Token scopes (`repository:a/b:pull`).
    pub scopes: &'a [String],
    /// What this is, for errors: `manifest of 127.0.0.1:5000/busybox:1`.
    pub what: &'a str,
    /// Whether 5xx and connection errors may be retried (false for requests that are not
    /// idempotent, such as starting an upload that may have been created).
    pub retry: bool,
}

fn empty_body() -> ReqBody {
    ReqBody::Empty
}

impl<'a> Req<'a> {
    pub fn get(url: String, scopes: &'a [String], what: &'a str) -> Self {
        Self {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: &empty_body,
            scopes,
            what,
            retry: true,
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

/// The pooled client and its caches.
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, ReqBody>,
    pub config: RegistryConfig,
    /// Registries (`host[:port]`) with a `<certs_dir>/<domain>/ca.crt`: spoken to over HTTPS,
    /// even on loopback or when listed as insecure.
    tls_domains: HashSet<String>,
    /// Bearer tokens by `authority|scopes`.
    tokens: Mutex<HashMap<String, String>>,
    /// Authorities that asked for Basic auth.
    basic: Mutex<HashSet<String>>,
}

/// Whether `domain` (`host[:port]`) is a loopback address, spoken to over plain HTTP.
pub(crate) fn is_loopback(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        domain.rsplit_once(':').map_or(domain, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `http://a:1/x` → `a:1`.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let a = rest.split('/').next().unwrap_or("");
    (!a.is_empty()).then_some(a)
}

/// The system's root certificates (none when there is no system CA store: HTTPS then fails with
/// a certificate error naming the host, plain HTTP still works).
pub fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// An HTTP/1 connector that speaks plain HTTP and HTTPS (rustls with `roots`), with a 30 s
/// connect timeout: what the registry client and berthd's downloads (`ADD <url>`, `import URL`)
/// both use.
pub fn https_connector(roots: rustls::RootCertStore) -> HttpsConnector<HttpConnector> {
    // Another part of the process may have installed a provider already: either is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

impl Transport {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        // The system roots plus the CAs of certs.d.
        let mut roots = system_roots();
        let tls_domains = match &config.certs_dir {
            Some(dir) => load_certs_dir(dir, &mut roots)?,
            None => HashSet::new(),
        };
        let https = https_connector(roots);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            config,
            tls_domains,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashSet::new()),
        })
    }

    /// The registry of `domain` itself.
    pub fn endpoint(&self, domain: &str) -> Result<Endpoint, RegistryError> {
        if domain.is_empty() || domain.contains(['/', '?', '#', '@', ' ']) {
            return Err(RegistryError::BadUrl(domain.to_string()));
        }
        let base = if domain == berth_types::reference::DEFAULT_DOMAIN {
            HUB_REGISTRY.to_string()
        } else if self.tls_domains.contains(domain) {
            format!("https://{domain}")
        } else if is_loopback(domain) || self.config.insecure.iter().any(|i| i == domain) {
            format!("http://{domain}")
        } else {
            format!("https://{domain}")
        };
        let authority = authority_of(&base).unwrap_or(domain).to_string();
        Ok(Endpoint {
            base,
            authority,
            credentials: self.config.credentials.get(domain).cloned(),
            mirror: false,
        })
    }

    /// Where to pull `domain`'s images from: its mirrors first (for `docker.io`), then itself.
    pub fn pull_endpoints(&self, domain: &str) -> Result<Vec<Endpoint>, RegistryError> {
        let mut out = Vec::new();
        if domain == berth_types::reference::DEFAULT_DOMAIN {
            for m in &self.config.mirrors {
                let base = m.trim_end_matches('/').to_string();
                let authority = authority_of(&base)
                    .ok_or_else(|| RegistryError::BadUrl(m.clone()))?
                    .to_string();
                out.push(Endpoint {
                    credentials: self.config.credentials.get(&authority).cloned(),
                    base,
                    authority,
                    mirror: true,
                });
            }
        }
        out.push(self.endpoint(domain)?);
        Ok(out)
    }

    fn token_key(ep: &Endpoint, scopes: &[String]) -> String {
        format!("{}|{}", ep.authority, scopes.join(" "))
    }

    fn auth_header(&self, ep: &Endpoint, scopes: &[String]) -> Option<String> {
        let key = Self::token_key(ep, scopes);
        if let Some(t) = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned()) {
            return Some(format!("Bearer {t}"));
        }
        let basic = self.basic.lock().is_ok_and(|b| b.contains(&ep.authority));
        match (&ep.credentials, basic) {
            (Some(c), true) => Some(basic_header(c)),
            _ => None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .config
            .retry_delay
            .saturating_mul(1u32 << attempt.min(8).saturating_sub(1));
        d.min(Duration::from_secs(2))
    }

    /// Sends a request: answers one auth challenge, follows up to 5 redirects, retries
    /// connection errors, 5xx and 429 with backoff. Returns whatever final response came; the
    /// caller maps statuses to errors with [`status_error`].
    pub async fn send(
        &self,
        ep: &Endpoint,
        r: &Req<'_>,
    ) -> Result<Response<Incoming>, RegistryError> {
        let mut url = if r.url.starts_with("http://") || r.url.starts_with("https://") {
            r.url.clone()
        } else {
            format!("{}{}", ep.base, r.url)
        };
        let mut attempt = 0u32;
        let mut auth_tried = false;
        let mut redirects = 0u32;
        loop {
            let uri: Uri = url
                .parse()
                .map_err(|_| RegistryError::BadUrl(url.clone()))?;
            let same_host = uri.authority().map(|a| a.as_str()) == Some(ep.authority.as_str());
            let mut b = Request::builder()
                .method(r.method.clone())
                .uri(uri)
                .header(USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")));
            for (k, v) in &r.headers {
                b = b.header(k, v);
            }
            if same_host {
                if let Some(h) = self.auth_header(ep, r.scopes) {
                    b = b.header(AUTHORIZATION, h);
                }
            }
            let req = b.body((r.body)()).map_err(|e| RegistryError::Http {
                method: r.method.to_string(),
                url: url.clone(),
                source: Box::new(e),
            })?;
            let resp = match self.client.request(req).await {
                Ok(resp) => resp,
                Err(e) => {
                    let e = self.request_error(r.method.as_str(), url, e);
                    attempt += 1;
                    // An untrusted certificate stays untrusted: no retry.
                    if r.retry
                        && attempt < self.config.attempts
                        && !matches!(e.0, RegistryError::Certificate { .. })
                    {
                        url = e.1;
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(e.0);
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && same_host && !auth_tried {
                auth_tried = true;
                let challenge = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(parse_challenge);
                match challenge {
                    Some(Challenge::Basic) if ep.credentials.is_some() => {
                        if let Ok(mut b) = self.basic.lock() {
                            b.insert(ep.authority.clone());
                        }
                        continue;
                    }
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        let token = self
                            .fetch_token(ep, &realm, service.as_deref(), r.scopes)
                            .await?;
                        if let Ok(mut t) = self.tokens.lock() {
                            t.insert(Self::token_key(ep, r.scopes), token);
                        }
                        continue;
                    }
                    _ => return Ok(resp),
                }
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && r.retry
                && attempt + 1 < self.config.attempts
            {
                attempt += 1;
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Some(loc) = loc {
                    redirects += 1;
                    if redirects > 5 {
                        return Err(RegistryError::Status {
                            what: r.what.to_string(),
                            status: status.as_u16(),
                            detail: ": more than 5 redirects".into(),
                        });
                    }
                    url = resolve_location(&url, &loc)?;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Asks a token server for a token for `scopes`, with the endpoint's credentials if any.
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        if !(realm.starts_with("http://") || realm.starts_with("https://")) {
            return Err(RegistryError::Token {
                realm: realm.to_string(),
                problem: "the realm is not an http(s) URL".into(),
            });
        }
        let url = token_url(realm, service, scopes);
        let uri: Uri = url
            .parse()
            .map_err(|_| RegistryError::BadUrl(url.clone()))?;
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")));
        if let Some(c) = &ep.credentials {
            b = b.header(AUTHORIZATION, basic_header(c));
        }
        let req = b.body(ReqBody::Empty).map_err(|e| RegistryError::Http {
            method: "GET".into(),
            url: url.clone(),
            source: Box::new(e),
        })?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| self.request_error("GET", url.clone(), e).0)?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: ep.authority.clone(),
                what: format!("a token for {}", scopes.join(" ")),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Token {
                realm: realm.to_string(),
                problem: format!("answered {status}"),
            });
        }
        let body = read_limited(resp.into_body(), 1 << 20, "token answer").await?;
        token_from_json(&body).ok_or_else(|| RegistryError::Token {
            realm: realm.to_string(),
            problem: "the answer has no token".into(),
        })
    }

    /// The error for a request that got no response: [`RegistryError::Certificate`] when the
    /// server's certificate was not trusted, [`RegistryError::Http`] otherwise. Hands `url`
    /// back for a retry.
    fn request_error(
        &self,
        method: &str,
        url: String,
        e: hyper_util::client::legacy::Error,
    ) -> (RegistryError, String) {
        if let Some(problem) = certificate_problem(&e) {
            let host = authority_of(&url).unwrap_or(&url).to_string();
            let certs_dir = self
                .config
                .certs_dir
                .as_ref()
                .map_or_else(|| "certs.d".to_string(), |d| d.display().to_string());
            return (
                RegistryError::Certificate {
                    host,
                    problem,
                    certs_dir,
                },
                url,
            );
        }
        let err = RegistryError::Http {
            method: method.to_string(),
            url: url.clone(),
            source: Box::new(e),
        };
        (err, url)
    }

    /// `GET /v2/` with these credentials: Ok when the registry accepts them.
    pub async fn login(&self, domain: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let mut ep = self.endpoint(domain)?;
        ep.credentials = Some(creds.clone());
        let what = format!("login to {domain}");
        let resp = self.send(&ep, &Req::get("/v2/".into(), &[], &what)).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(status_error(resp, &what, &ep.authority).await)
    }
}

/// Reads every `<dir>/<domain>/ca.crt` (PEM, one or more certificates) into `roots`; returns
/// the domains that have one. A missing `dir` is no error (nothing configured); an unreadable
/// or malformed `ca.crt`, or one without a certificate, is, naming the file.
fn load_certs_dir(
    dir: &Path,
    roots: &mut rustls::RootCertStore,
) -> Result<HashSet<String>, RegistryError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut domains = HashSet::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(domains),
        Err(source) => {
            return Err(RegistryError::Io {
                op: "read certificate directory",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| RegistryError::Io {
            op: "read certificate directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let Some(domain) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let file = entry.path().join("ca.crt");
        let pem = match std::fs::read(&file) {
            Ok(p) => p,
            // A directory without ca.crt (or a stray file): nothing to trust there.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(source) => {
                return Err(RegistryError::Io {
                    op: "read CA certificate",
                    path: file,
                    source,
                })
            }
        };
        let bad = |problem: String| {
            RegistryError::Tls(format!(
                "{}: {problem}: it must hold the registry's CA certificate(s) in PEM",
                file.display()
            ))
        };
        let mut count = 0usize;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("not valid PEM ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("certificate {} is not usable ({e})", count + 1)))?;
            count += 1;
        }
        if count == 0 {
            return Err(bad("no certificate in it".into()));
        }
        domains.insert(domain);
    }
    Ok(domains)
}

/// What rustls said about the server's certificate, if that is why a request failed.
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // An io::Error's `source()` skips the error it wraps: look inside it too.
        let inner = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(c)) =
                candidate.downcast_ref::<rustls::Error>()
            {
                return Some(format!("{c:?}"));
            }
        }
        // Descend into the wrapped error (io errors nest: hyper-rustls wraps tokio-rustls's).
        cur = inner.or_else(|| err.source());
    }
    None
}

/// The next URL of a redirect: absolute, or a path on the current host.
fn resolve_location(current: &str, loc: &str) -> Result<String, RegistryError> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Ok(loc.to_string());
    }
    if loc.starts_with('/') {
        let scheme_end = current.find("://").map_or(0, |i| i + 3);
        let host_end = current
            .get(scheme_end..)
            .and_then(|r| r.find('/'))
            .map_or(current.len(), |i| i + scheme_end);
        return Ok(format!("{}{loc}", current.get(..host_end).unwrap_or("")));
    }
    Err(RegistryError::BadUrl(loc.to_string()))
}

/// An upload location with one more query parameter.
pub(crate) fn with_query(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut body: Incoming,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| RegistryError::Body {
            what: what.to_string(),
            source,
        })?;
        if let Ok(data) = frame.into_data() {
            let size = out.len() as u64 + data.len() as u64;
            if size > limit {
                return Err(RegistryError::TooLarge {
                    what: what.to_string(),
                    size,
                    limit,
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The error for an unexpected response, with the registry's own error code and message.
pub(crate) async fn status_error(
    resp: Response<Incoming>,
    what: &str,
    registry: &str,
) -> RegistryError {
    let status = resp.status().as_u16();
    let body = read_limited(resp.into_body(), 64 * 1024, what)
        .await
        .unwrap_or_default();
    let detail = error_detail(&body);
    match status {
        401 => RegistryError::Unauthorized {
            registry: registry.to_string(),
            what: what.to_string(),
        },
        403 => RegistryError::Denied {
            registry: registry.to_string(),
            what: what.to_string(),
        },
        _ => RegistryError::Status {
            what: what.to_string(),
            status,
            detail,
        },
    }
}

/// `: MANIFEST_UNKNOWN: manifest unknown` from a distribution error body, or nothing.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(e) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let mut s = String::new();
    for i in e.errors.iter().take(3) {
        s.push_str(": ");
        if let Some(c) = &i.code {
            s.push_str(&c.chars().take(64).collect::<String>());
        }
        if let Some(m) = &i.message {
            s.push_str(" (");
            s.push_str(&m.chars().take(200).collect::<String>());
            s.push(')');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_schemes() {
        for d in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(d), "{d}");
        }
        for d in [
            "example.com",
            "10.0.0.1:5000",
            "localhost.example:1",
            "[::2]:1",
        ] {
            assert!(!is_loopback(d), "{d}");
        }
        let t = Transport::new(RegistryConfig {
            insecure: vec!["reg.test:5000".into()],
            mirrors: vec!["http://127.0.0.1:9/".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            t.endpoint("127.0.0.1:5000").unwrap().base,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            t.endpoint("reg.test:5000").unwrap().base,
            "http://reg.test:5000"
        );
        assert_eq!(t.endpoint("quay.io").unwrap().base, "https://quay.io");
        assert_eq!(t.endpoint("docker.io").unwrap().base, HUB_REGISTRY);
        let eps = t.pull_endpoints("docker.io").unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].base, "http://127.0.0.1:9");
        assert_eq!(eps[0].authority, "127.0.0.1:9");
        assert!(eps[0].mirror);
        assert_eq!(t.pull_endpoints("quay.io").unwrap().len(), 1);
        assert!(t.endpoint("a/b").is_err());
    }

    #[test]
    fn certs_d_means_https() {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args([
                "-subj",
                "/CN=berth unit",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ])
            .current_dir(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("skipped: openssl is needed");
            return;
        }
        let certs = dir.path().join("certs.d");
        for d in ["127.0.0.1:5443", "reg.test:5000", "nothing-here:1"] {
            std::fs::create_dir_all(certs.join(d)).unwrap();
        }
        let pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        std::fs::write(certs.join("127.0.0.1:5443/ca.crt"), &pem).unwrap();
        // Several certificates in one file are all trusted.
        std::fs::write(certs.join("reg.test:5000/ca.crt"), format!("{pem}{pem}")).unwrap();
        let t = Transport::new(RegistryConfig {
            insecure: vec!["reg.test:5000".into(), "nothing-here:1".into()],
            certs_dir: Some(certs),
            ..Default::default()
        })
        .unwrap();
        // certs.d wins over loopback and over the insecure list.
        assert_eq!(
            t.endpoint("127.0.0.1:5443").unwrap().base,
            "https://127.0.0.1:5443"
        );
        assert_eq!(
            t.endpoint("reg.test:5000").unwrap().base,
            "https://reg.test:5000"
        );
        // A directory without ca.crt changes nothing; nor does another port.
        assert_eq!(
            t.endpoint("nothing-here:1").unwrap().base,
            "http://nothing-here:1"
        );
        assert_eq!(
            t.endpoint("127.0.0.1:5000").unwrap().base,
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn locations() {
        assert_eq!(
            resolve_location(
                "http://a:1/v2/x/blobs/uploads/",
                "/v2/x/blobs/uploads/u?s=1"
            )
            .unwrap(),
            "http://a:1/v2/x/blobs/uploads/u?s=1"
        );
        assert_eq!(
            resolve_location("http://a/x", "https://b/y").unwrap(),
            "https://b/y"
        );
        assert!(resolve_location("http://a/x", "y").is_err());
        assert_eq!(
            with_query("http://a/u?s=1", "digest=d"),
            "http://a/u?s=1&digest=d"
        );
        assert_eq!(with_query("http://a/u", "digest=d"), "http://a/u?digest=d");
    }

    #[test]
    fn error_details() {
        assert_eq!(
            error_detail(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            ": MANIFEST_UNKNOWN (manifest unknown)"
        );
        assert_eq!(error_detail(b"<html>"), "");
    }
}
