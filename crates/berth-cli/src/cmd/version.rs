//! `berth version [--format F]`: the client's version, then the daemon's (GET /version) in
//! docker's layout.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{Client, API_VERSION};
use crate::template::Template;

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn client_info(api: &str) -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": api,
        "DefaultAPIVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "Context": "default",
    })
}

/// docker's "Client:"/"Server:" text.
pub fn render(client: &Value, server: Option<&Value>) -> String {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut out = String::new();
    out.push_str("Client:\n");
    out.push_str(&format!(" Version:           {}\n", s(client, "Version")));
    let api = s(client, "ApiVersion");
    let default = s(client, "DefaultAPIVersion");
    if api != default {
        out.push_str(&format!(
            " API version:       {api} (downgraded from {default})\n"
        ));
    } else {
        out.push_str(&format!(" API version:       {api}\n"));
    }
    out.push_str(&format!(
        " OS/Arch:           {}/{}\n",
        s(client, "Os"),
        s(client, "Arch")
    ));
    out.push_str(&format!(" Context:           {}\n", s(client, "Context")));
    if let Some(sv) = server {
        out.push_str("\nServer:\n");
        let comps = sv["Components"].as_array().cloned().unwrap_or_default();
        let engine = comps
            .iter()
            .find(|c| c["Name"] == "Engine")
            .cloned()
            .unwrap_or_else(|| sv.clone());
        out.push_str(" Engine:\n");
        out.push_str(&format!("  Version:          {}\n", s(sv, "Version")));
        out.push_str(&format!(
            "  API version:      {} (minimum version {})\n",
            s(sv, "ApiVersion"),
            s(sv, "MinAPIVersion")
        ));
        for (k, label) in [
            ("GoVersion", "Go version"),
            ("GitCommit", "Git commit"),
            ("BuildTime", "Built"),
        ] {
            let mut v = s(sv, k);
            if k == "BuildTime" {
                if let Some((t, _)) = crate::format::parse_rfc3339(&v) {
                    v = crate::format::ansic(t);
                }
            }
            if !v.is_empty() {
                out.push_str(&format!("  {:<18}{v}\n", format!("{label}:")));
            }
        }
        out.push_str(&format!(
            "  OS/Arch:          {}/{}\n",
            s(sv, "Os"),
            s(sv, "Arch")
        ));
        out.push_str(&format!(
            "  Experimental:     {}\n",
            engine["Details"]["Experimental"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| sv["Experimental"].as_bool().unwrap_or(false).to_string())
        ));
        for c in comps.iter().filter(|c| c["Name"] != "Engine") {
            out.push_str(&format!(" {}:\n", s(c, "Name")));
            out.push_str(&format!("  Version:          {}\n", s(c, "Version")));
            if let Some(g) = c["Details"]["GitCommit"].as_str() {
                out.push_str(&format!("  GitCommit:        {g}\n"));
            }
        }
    }
    out
}

pub async fn run(client: &mut Client, args: VersionArgs) -> Result<i32> {
    let server: Result<Value> = client.get_json("/version").await;
    let c = client_info(client.api_version());
    match args.format.as_deref() {
        Some(f) if !f.is_empty() => {
            let data = json!({"Client": c, "Server": server.as_ref().ok()});
            let t = if f == "json" {
                Template::parse("{{json .}}")?
            } else {
                Template::parse(&f.replace("\\t", "\t").replace("\\n", "\n"))?
            };
            println!("{}", t.render(&data)?);
        }
        _ => print!("{}", render(&c, server.as_ref().ok())),
    }
    match server {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("{e:#}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let c = client_info("1.41");
        let sv = json!({"Version": "0.1.0", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"});
        let out = render(&c, Some(&sv));
        assert!(out.starts_with("Client:\n Version:"));
        assert!(out.contains(" API version:       1.41 (downgraded from 1.45)"));
        assert!(out.contains("Server:\n Engine:\n  Version:          0.1.0"));
        assert!(out.contains("  API version:      1.45 (minimum version 1.24)"));
    }
}
