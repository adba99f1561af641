//! `berth login [-u USER] [-p PASS | --password-stdin] [SERVER]` and `berth logout [SERVER]`:
//! checked with the daemon (POST /auth), kept in `$BERTH_CONFIG/config.json` (default
//! `~/.berth`) in docker's `auths` format, and sent as `X-Registry-Auth` on pull and push.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use berth_types::api::AuthConfig;
use clap::Args;
use serde_json::{json, Value};

use crate::client::Client;

/// Docker Hub's key in the credentials file.
pub const HUB_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub server: Option<String>,
}

fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".berth").join("config.json")
}

fn load_config() -> Value {
    std::fs::read(config_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

fn save_config(v: &Value) -> Result<()> {
    let p = config_path();
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(v)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p).with_context(|| format!("write {}", p.display()))
}

/// The credentials-file key of a server (`docker.io` and friends are Docker Hub's key).
pub fn server_key(server: Option<&str>) -> String {
    match server {
        None
        | Some("")
        | Some("docker.io")
        | Some("index.docker.io")
        | Some("registry-1.docker.io") => HUB_SERVER.to_string(),
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// One stored login as Docker's AuthConfig JSON, if `auth` decodes to `user:password`.
fn auth_config(key: &str, auth: &str) -> Option<Value> {
    let s = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let (u, p) = s.split_once(':')?;
    Some(json!({"username": u, "password": p, "serveraddress": key}))
}

/// `X-Registry-Config` for a build (base64url JSON of `{server: AuthConfig}` for every stored
/// login, as docker sends it), so the daemon can pull private `FROM` images; `None` if none.
pub fn registry_config_header() -> Option<String> {
    let cfg = load_config();
    let auths = cfg["auths"].as_object()?;
    let all: serde_json::Map<String, Value> = auths
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), auth_config(k, v["auth"].as_str()?)?)))
        .collect();
    (!all.is_empty())
        .then(|| base64::engine::general_purpose::URL_SAFE.encode(Value::Object(all).to_string()))
}

/// Base64url JSON of the stored credentials for a registry domain (`e30=`, i.e. `{}`, if none).
pub fn registry_auth_header(domain: &str) -> String {
    let key = server_key(Some(domain));
    let cfg = load_config();
    let auth = cfg["auths"][&key]["auth"].as_str().unwrap_or_default();
    let body = auth_config(&key, auth).unwrap_or_else(|| json!({}));
    base64::engine::general_purpose::URL_SAFE.encode(body.to_string())
}

pub async fn login(client: &mut Client, args: LoginArgs) -> Result<i32> {
    let key = server_key(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => bail!("Must provide --username with --password-stdin"),
        None => {
            eprint!("Username: ");
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s)?;
            s.trim().to_string()
        }
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            eprint!("Password: ");
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if username.is_empty() || password.is_empty() {
        bail!("Error: Username and password required");
    }
    let auth = AuthConfig {
        username: Some(username.clone()),
        password: Some(password.clone()),
        serveraddress: Some(key.clone()),
    };
    let resp: Value = client.post_json("/auth", Some(&auth)).await?;
    let mut cfg = load_config();
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][&key] = json!({"auth": token});
    save_config(&cfg)?;
    println!(
        "{}",
        resp["Status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("Login Succeeded")
    );
    Ok(0)
}

pub fn logout(args: LogoutArgs) -> Result<i32> {
    let key = server_key(args.server.as_deref());
    let mut cfg = load_config();
    let removed = cfg["auths"]
        .as_object_mut()
        .map(|m| m.remove(&key).is_some())
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    println!("Removing login credentials for {key}");
    save_config(&cfg).map_err(|e| anyhow!("{e:#}"))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys() {
        assert_eq!(server_key(None), HUB_SERVER);
        assert_eq!(server_key(Some("docker.io")), HUB_SERVER);
        assert_eq!(
            server_key(Some("https://localhost:5000/")),
            "localhost:5000"
        );
    }

    #[test]
    fn auth_header_without_credentials_is_empty_json() {
        std::env::set_var("BERTH_CONFIG", "/nonexistent/berth-test");
        assert_eq!(registry_auth_header("localhost:5000"), "e30=");
    }
}
