//! `berth images [-a] [-q] [--format F] [--no-trunc] [--digests] [REPOSITORY[:TAG]]`: one row per
//! repo:tag, `<none>` for untagged images, docker's columns and field names.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{with_query, Client};
use crate::cmd::ps::filters_json;
use crate::format::{self, ago, human_size_prec, short_id, Output};

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Only images of this repository[:tag]
    pub reference: Option<String>,
}

/// Splits "repo:tag" at the tag's colon (not a registry port's).
pub fn split_repo_tag(s: &str) -> (String, String) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (s[..i].to_string(), s[i + 1..].to_string()),
        _ => (s.to_string(), "<none>".to_string()),
    }
}

/// The rows of one image summary (one per tag).
pub fn rows(img: &Value, trunc: bool) -> Vec<Value> {
    let id = img["Id"].as_str().unwrap_or_default();
    let shown_id = if trunc { short_id(id) } else { id.to_string() };
    let created = img["Created"].as_i64().unwrap_or(0);
    let size = img["Size"].as_i64().unwrap_or(0);
    let strs = |k: &str| -> Vec<String> {
        img[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut tags: Vec<(String, String)> = strs("RepoTags")
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .map(|t| split_repo_tag(t))
        .collect();
    let digests = strs("RepoDigests");
    if tags.is_empty() {
        let repo = digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map_or("<none>".to_string(), |(r, _)| r.to_string());
        tags.push((repo, "<none>".into()));
    }
    tags.into_iter()
        .map(|(repo, tag)| {
            let digest = digests
                .iter()
                .find_map(|d| {
                    d.split_once('@')
                        .filter(|(r, _)| *r == repo)
                        .map(|(_, dg)| dg.to_string())
                })
                .unwrap_or_else(|| "<none>".into());
            json!({
                "ID": shown_id,
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": ago(created),
                "CreatedAt": format::go_time_string(created),
                "Size": human_size_prec(size as f64, 3),
                "VirtualSize": human_size_prec(size as f64, 3),
                "SharedSize": match img["SharedSize"].as_i64() {
                    Some(s) if s >= 0 => human_size_prec(s as f64, 3),
                    _ => "N/A".to_string(),
                },
                "UniqueSize": "N/A",
                "Containers": match img["Containers"].as_i64() {
                    Some(c) if c >= 0 => c.to_string(),
                    _ => "N/A".to_string(),
                },
            })
        })
        .collect()
}

pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

pub async fn run(client: &mut Client, args: ImagesArgs) -> Result<i32> {
    let mut filters = args.filter.clone();
    if let Some(r) = &args.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q = Vec::new();
    if args.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        q.push(("filters", f));
    }
    let list: Vec<Value> = client.get_json(&with_query("/images/json", &q)).await?;
    let trunc = !args.no_trunc;
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    if args.quiet && args.format.is_none() {
        let mut seen = Vec::new();
        for img in &list {
            let id = img["Id"].as_str().unwrap_or_default();
            let id = if trunc { short_id(id) } else { id.to_string() };
            if !seen.contains(&id) {
                writeln!(out, "{id}")?;
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let all: Vec<Value> = list.iter().flat_map(|i| rows(i, trunc)).collect();
    let mut cols = vec![("Repository", "REPOSITORY"), ("Tag", "TAG")];
    if args.digests {
        cols.push(("Digest", "DIGEST"));
    }
    cols.extend([
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("Size", "SIZE"),
    ]);
    Output::parse(args.format.as_deref())?.print(out, &all, &cols, HEADERS)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags() {
        assert_eq!(
            split_repo_tag("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/a"),
            ("localhost:5000/a".into(), "<none>".into())
        );
    }

    #[test]
    fn image_rows() {
        let img = json!({
            "Id": "sha256:2747bfabc09bd14f0006a351785f1470911ad623f2f5b04bb8e5afdf7b9e97f8",
            "RepoTags": ["busybox:latest", "busybox:1"],
            "RepoDigests": [],
            "Created": 1, "Size": 1_980_000, "SharedSize": -1, "Containers": -1
        });
        let r = rows(&img, true);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["ID"], "2747bfabc09b");
        assert_eq!(r[0]["Repository"], "busybox");
        assert_eq!(r[1]["Tag"], "1");
        assert_eq!(r[0]["Size"], "1.98MB");
        let none = rows(
            &json!({"Id": "sha256:ab", "RepoTags": null, "Size": 0}),
            true,
        );
        assert_eq!(none[0]["Repository"], "<none>");
        assert_eq!(none[0]["Tag"], "<none>");
    }
}
