//! `berth system df` and `berth system prune [-f] [-a]` (plus `container prune`, `image prune`).

use std::io::{BufRead, Write};

use anyhow::Result;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{ApiError, Client};
use crate::format::{human_size, Output};

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Sums sizes without overflowing on hostile numbers.
fn total<I: Iterator<Item = i64>>(it: I) -> i64 {
    it.fold(0i64, i64::saturating_add)
}

fn reclaimable(r: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(r),
            i128::from(r) * 100 / i128::from(total)
        )
    } else {
        human_size(r)
    }
}

/// The rows of `system df` from GET /system/df.
pub fn df_rows(d: &Value) -> Vec<Value> {
    let arr = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    let images = arr("Images");
    let img_total = d["LayersSize"]
        .as_i64()
        .unwrap_or_else(|| total(images.iter().map(|i| i["Size"].as_i64().unwrap_or(0))));
    let img_active: Vec<&Value> = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .collect();
    let used: i64 = total(img_active.iter().map(|i| {
        i["Size"]
            .as_i64()
            .unwrap_or(0)
            .saturating_sub(i["SharedSize"].as_i64().unwrap_or(0).max(0))
    }));
    let containers = arr("Containers");
    let running = |c: &Value| c["State"].as_str() == Some("running");
    let c_size: i64 = total(containers.iter().map(|c| c["SizeRw"].as_i64().unwrap_or(0)));
    let c_reclaim: i64 = total(
        containers
            .iter()
            .filter(|c| !running(c))
            .map(|c| c["SizeRw"].as_i64().unwrap_or(0)),
    );
    let vols = arr("Volumes");
    let v_size: i64 = total(
        vols.iter()
            .map(|v| v["UsageData"]["Size"].as_i64().unwrap_or(0).max(0)),
    );
    let v_reclaim: i64 = total(
        vols.iter()
            .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
            .map(|v| v["UsageData"]["Size"].as_i64().unwrap_or(0).max(0)),
    );
    let cache = arr("BuildCache");
    let b_size: i64 = total(cache.iter().map(|b| b["Size"].as_i64().unwrap_or(0)));
    let b_reclaim: i64 = total(
        cache
            .iter()
            .filter(|b| {
                !b["InUse"].as_bool().unwrap_or(false) && !b["Shared"].as_bool().unwrap_or(false)
            })
            .map(|b| b["Size"].as_i64().unwrap_or(0)),
    );
    let row = |t: &str, count: usize, active: usize, size: i64, rec: String| {
        serde_json::json!({
            "Type": t, "TotalCount": count.to_string(), "Active": active.to_string(),
            "Size": human_size(size), "Reclaimable": rec,
        })
    };
    vec![
        row(
            "Images",
            images.len(),
            img_active.len(),
            img_total,
            reclaimable((img_total - used).max(0), img_total),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| running(c)).count(),
            c_size,
            reclaimable(c_reclaim, c_size),
        ),
        row(
            "Local Volumes",
            vols.len(),
            vols.iter()
                .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
                .count(),
            v_size,
            reclaimable(v_reclaim, v_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache
                .iter()
                .filter(|b| b["InUse"].as_bool().unwrap_or(false))
                .count(),
            b_size,
            human_size(b_reclaim),
        ),
    ]
}

pub async fn df(client: &mut Client, args: DfArgs) -> Result<i32> {
    let d: Value = client.get_json("/system/df").await?;
    let cols = [
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];
    let _ = args.verbose;
    Output::parse(args.format.as_deref())?.print(
        &mut std::io::stdout().lock(),
        &df_rows(&d),
        &cols,
        &cols,
    )?;
    Ok(0)
}

/// Asks docker's question on stderr; true only for y/yes.
pub fn confirm(warning: &str) -> bool {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    if std::io::stdin().lock().read_line(&mut s).is_err() {
        return false;
    }
    matches!(s.trim().to_lowercase().as_str(), "y" | "yes")
}

/// POST a prune endpoint; a daemon without it (404) counts as nothing pruned.
async fn prune_one(client: &mut Client, path: &str) -> Result<Option<Value>> {
    match client.post_json::<Value, Value>(path, None).await {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(|a| a.status == 404) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Prints `TITLE:`, the items, and a blank line; nothing when the list is empty.
pub fn print_list(title: &str, v: &Value, key: &str) {
    if let Some(items) = v[key].as_array().filter(|a| !a.is_empty()) {
        println!("{title}:");
        for i in items {
            match i {
                Value::String(s) => println!("{s}"),
                Value::Object(_) => {
                    if let Some(u) = i["Untagged"].as_str() {
                        println!("untagged: {u}");
                    }
                    if let Some(d) = i["Deleted"].as_str() {
                        println!("deleted: {d}");
                    }
                }
                _ => {}
            }
        }
        println!();
    }
}

async fn prune_containers(client: &mut Client) -> Result<i64> {
    let Some(v) = prune_one(client, "/containers/prune").await? else {
        return Ok(0);
    };
    print_list("Deleted Containers", &v, "ContainersDeleted");
    Ok(v["SpaceReclaimed"].as_i64().unwrap_or(0))
}

async fn prune_images(client: &mut Client, all: bool) -> Result<i64> {
    let path = if all {
        format!(
            "/images/prune?filters={}",
            crate::client::enc(r#"{"dangling":{"false":true}}"#)
        )
    } else {
        "/images/prune".to_string()
    };
    let Some(v) = prune_one(client, &path).await? else {
        return Ok(0);
    };
    print_list("Deleted Images", &v, "ImagesDeleted");
    Ok(v["SpaceReclaimed"].as_i64().unwrap_or(0))
}

pub async fn prune(client: &mut Client, args: PruneArgs) -> Result<i32> {
    if !args.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
        if args.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if args.all {
            "  - all images without at least one container associated to them\n  - all build cache\n"
        } else {
            "  - all dangling images\n  - unused build cache\n"
        });
        if !confirm(&w) {
            return Ok(0);
        }
    }
    let mut total = prune_containers(client).await?;
    if let Some(v) = prune_one(client, "/networks/prune").await? {
        print_list("Deleted Networks", &v, "NetworksDeleted");
    }
    if args.volumes {
        if let Some(v) = prune_one(client, "/volumes/prune").await? {
            print_list("Deleted Volumes", &v, "VolumesDeleted");
            total += v["SpaceReclaimed"].as_i64().unwrap_or(0);
        }
    }
    total += prune_images(client, args.all).await?;
    let build = if args.all {
        "/build/prune?all=1"
    } else {
        "/build/prune"
    };
    if let Some(v) = prune_one(client, build).await? {
        print_list("Deleted build cache objects", &v, "CachesDeleted");
        total += v["SpaceReclaimed"].as_i64().unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size(total));
    let _ = Method::POST;
    Ok(0)
}

pub async fn container_prune(client: &mut Client, args: ContainerPruneArgs) -> Result<i32> {
    if !args.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let total = prune_containers(client).await?;
    println!("Total reclaimed space: {}", human_size(total));
    Ok(0)
}

pub async fn image_prune(client: &mut Client, args: ImagePruneArgs) -> Result<i32> {
    let w = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(w) {
        return Ok(0);
    }
    let total = prune_images(client, args.all).await?;
    println!("Total reclaimed space: {}", human_size(total));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn df_table() {
        let d = json!({
            "LayersSize": 2_000_000,
            "Images": [{"Size": 2_000_000, "SharedSize": 0, "Containers": 1}, {"Size": 0, "Containers": 0}],
            "Containers": [{"State": "running", "SizeRw": 10}, {"State": "exited", "SizeRw": 30}],
            "Volumes": [], "BuildCache": []
        });
        let r = df_rows(&d);
        assert_eq!(r[0]["TotalCount"], "2");
        assert_eq!(r[0]["Active"], "1");
        assert_eq!(r[0]["Size"], "2MB");
        assert_eq!(r[0]["Reclaimable"], "0B (0%)");
        assert_eq!(r[1]["Reclaimable"], "30B (75%)");
        assert_eq!(r[2]["Size"], "0B");
    }
}
