//! `ADD <url>` and `docker import URL`: an HTTP(S) GET over the same stack the registry client uses (hyper with rustls
//! and the system roots), following redirects, bounded in size and time. The file name is the
//! URL path's last segment, else Content-Disposition's `filename`, as Docker's classic builder
//! guesses it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The most a download may weigh.
pub const MAX_BYTES: u64 = 4 << 30;
/// How long a download may take in all.
pub const MAX_TIME: Duration = Duration::from_secs(15 * 60);
const MAX_REDIRECTS: usize = 10;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {0:?}: only http:// and https:// URLs can be downloaded")]
    BadUrl(String),
    #[error("failed to GET {url} with status {status}")]
    Status { url: String, status: StatusCode },
    #[error("download {url}: {message}")]
    Transfer { url: String, message: String },
    #[error("download {url}: more than {MAX_BYTES} bytes")]
    TooLarge { url: String },
    #[error("download {url}: no answer within {} s", MAX_TIME.as_secs())]
    Timeout { url: String },
    #[error("download {url}: too many redirects")]
    Redirects { url: String },
    #[error("write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A pooled HTTP(S) client for downloads.
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Fetcher {
    pub fn new() -> Self {
        let https = berth_image::registry::https_connector(berth_image::registry::system_roots());
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// Downloads `url` into the file `dest`; returns the file name the URL names.
    pub async fn fetch(&self, url: &str, dest: &Path) -> Result<String, FetchError> {
        match tokio::time::timeout(MAX_TIME, self.fetch_inner(url, dest)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
            }),
        }
    }

    async fn fetch_inner(&self, url: &str, dest: &Path) -> Result<String, FetchError> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let uri: Uri = current
                .parse()
                .ok()
                .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")))
                .ok_or_else(|| FetchError::BadUrl(current.clone()))?;
            let req = Request::get(uri.clone())
                .header(
                    header::USER_AGENT,
                    concat!("berth/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::new())
                .map_err(|_| FetchError::BadUrl(current.clone()))?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Transfer {
                    url: current.clone(),
                    message: e.to_string(),
                })?;
            let status = resp.status();
            if status.is_redirection() {
                let Some(loc) = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                else {
                    return Err(FetchError::Status {
                        url: current,
                        status,
                    });
                };
                current = resolve_location(&uri, loc);
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: current,
                    status,
                });
            }
            let disposition = resp
                .headers()
                .get(header::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = resp.into_body();
            let mut f = std::fs::File::create(dest).map_err(|source| FetchError::Write {
                path: dest.display().to_string(),
                source,
            })?;
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| FetchError::Transfer {
                    url: current.clone(),
                    message: e.to_string(),
                })?;
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    if total > MAX_BYTES {
                        return Err(FetchError::TooLarge { url: current });
                    }
                    f.write_all(&data).map_err(|source| FetchError::Write {
                        path: dest.display().to_string(),
                        source,
                    })?;
                }
            }
            return Ok(file_name(uri.path(), disposition.as_deref()));
        }
        Err(FetchError::Redirects {
            url: url.to_string(),
        })
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

/// A `Location` against the URL that answered it.
fn resolve_location(base: &Uri, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let auth = base.authority().map_or("", |a| a.as_str());
    if loc.starts_with('/') {
        return format!("{scheme}://{auth}{loc}");
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{auth}{dir}/{loc}")
}

/// Docker's guess: the URL path's last segment, else Content-Disposition's `filename`.
fn file_name(path: &str, disposition: Option<&str>) -> String {
    let safe = |s: &str| {
        let base = s.rsplit('/').next().unwrap_or("");
        (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
    };
    if !path.ends_with('/') {
        if let Some(n) = safe(path) {
            return n;
        }
    }
    if let Some(d) = disposition {
        for part in d.split(';').skip(1) {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k.trim().eq_ignore_ascii_case("filename") {
                    let v = v.trim().trim_matches('"');
                    if !v.ends_with('/') {
                        if let Some(n) = safe(v) {
                            return n;
                        }
                    }
                }
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_docker_guesses_them() {
        assert_eq!(file_name("/a/b/c.tar.gz", None), "c.tar.gz");
        assert_eq!(
            file_name("/dir/", Some("attachment; filename=\"x.txt\"")),
            "x.txt"
        );
        assert_eq!(file_name("/", Some("attachment; filename=../../x")), "x");
        assert_eq!(file_name("/", None), "");
        assert_eq!(file_name("/..", None), "");
    }

    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let base: Uri = "http://h:1/a/b?q=1".parse().unwrap();
        assert_eq!(resolve_location(&base, "https://x/y"), "https://x/y");
        assert_eq!(resolve_location(&base, "/z"), "http://h:1/z");
        assert_eq!(resolve_location(&base, "z"), "http://h:1/a/z");
    }

    #[test]
    fn downloads_from_a_local_server() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                for n in 0..2 {
                    let (mut s, _) = l.accept().await.unwrap();
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let resp = if n == 0 {
                        "HTTP/1.1 302 Found\r\nLocation: /files/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    } else {
                        "HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"hello.txt\"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string()
                    };
                    s.write_all(resp.as_bytes()).await.unwrap();
                }
            });
            let t = tempfile::tempdir().unwrap();
            let dest = t.path().join("dl");
            let name = Fetcher::new()
                .fetch(&format!("http://127.0.0.1:{port}/start"), &dest)
                .await
                .unwrap();
            assert_eq!(name, "hello.txt");
            assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
            let e = Fetcher::new().fetch("ftp://x/y", &dest).await.unwrap_err();
            assert!(matches!(e, FetchError::BadUrl(_)), "{e}");
        });
    }
}
