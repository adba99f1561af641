//! `berth history [-q] [-H] [--no-trunc] [--format F] IMAGE`.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{enc, Client};
use crate::format::{self, ago, ellipsis, human_size_prec, short_id, Output};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

pub fn row(h: &Value, trunc: bool, human: bool) -> Value {
    let id = h["Id"].as_str().unwrap_or("<missing>");
    let id = if trunc && id.starts_with("sha256:") {
        short_id(id)
    } else {
        id.to_string()
    };
    let created = h["Created"].as_i64().unwrap_or(0);
    let by = h["CreatedBy"]
        .as_str()
        .unwrap_or_default()
        .replace('\t', " ");
    let size = h["Size"].as_i64().unwrap_or(0);
    json!({
        "ID": id,
        "CreatedSince": if human { ago(created) } else { format::go_time_string(created) },
        "CreatedAt": format::go_time_string(created),
        "CreatedBy": if trunc { ellipsis(&by, 45) } else { by },
        "Size": if human { human_size_prec(size as f64, 3) } else { size.to_string() },
        "Comment": h["Comment"].as_str().unwrap_or_default(),
    })
}

pub async fn run(client: &mut Client, args: HistoryArgs) -> Result<i32> {
    let list: Vec<Value> = client
        .get_json(&format!("/images/{}/history", enc(&args.image)))
        .await?;
    let trunc = !args.no_trunc;
    let rows: Vec<Value> = list.iter().map(|h| row(h, trunc, args.human)).collect();
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    if args.quiet && args.format.is_none() {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    let cols = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    Output::parse(args.format.as_deref())?.print(out, &rows, &cols, &cols)?;
    Ok(0)
}
