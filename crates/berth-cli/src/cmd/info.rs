//! `berth info [--format F]`: GET /info in docker's layout (the common fields).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::client::Client;
use crate::template::Template;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

/// The "Server:" part of docker info.
pub fn render(i: &Value) -> String {
    let s = |k: &str| match &i[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let n = |k: &str| i[k].as_i64().unwrap_or(0);
    let mut o = String::new();
    o.push_str("Client:\n");
    o.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    o.push_str(" Context:    default\n");
    o.push_str(" Debug Mode: false\n\n");
    o.push_str("Server:\n");
    o.push_str(&format!(" Containers: {}\n", n("Containers")));
    o.push_str(&format!("  Running: {}\n", n("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", n("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", n("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", n("Images")));
    o.push_str(&format!(" Server Version: {}\n", s("ServerVersion")));
    o.push_str(&format!(" Storage Driver: {}\n", s("Driver")));
    o.push_str(&format!(" Logging Driver: {}\n", s("LoggingDriver")));
    o.push_str(&format!(" Cgroup Driver: {}\n", s("CgroupDriver")));
    o.push_str(&format!(" Cgroup Version: {}\n", s("CgroupVersion")));
    if let Some(rt) = i["Runtimes"].as_object() {
        let mut names: Vec<&String> = rt.keys().collect();
        names.sort();
        o.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    o.push_str(&format!(" Default Runtime: {}\n", s("DefaultRuntime")));
    if let Some(sec) = i["SecurityOptions"].as_array() {
        o.push_str(" Security Options:\n");
        for opt in sec {
            let opt = opt.as_str().unwrap_or_default();
            let name = opt
                .split(',')
                .find_map(|kv| kv.strip_prefix("name="))
                .unwrap_or(opt);
            o.push_str(&format!("  {name}\n"));
        }
    }
    o.push_str(&format!(" Kernel Version: {}\n", s("KernelVersion")));
    o.push_str(&format!(" Operating System: {}\n", s("OperatingSystem")));
    o.push_str(&format!(" OSType: {}\n", s("OSType")));
    o.push_str(&format!(" Architecture: {}\n", s("Architecture")));
    o.push_str(&format!(" CPUs: {}\n", n("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        human_size_binary(n("MemTotal") as f64)
    ));
    o.push_str(&format!(" Name: {}\n", s("Name")));
    o.push_str(&format!(" ID: {}\n", s("ID")));
    o.push_str(&format!(" Docker Root Dir: {}\n", s("DockerRootDir")));
    o.push_str(&format!(
        " Debug Mode: {}\n",
        i["Debug"].as_bool().unwrap_or(false)
    ));
    o.push_str(&format!(
        " Experimental: {}\n",
        i["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    if let Some(m) = i["RegistryConfig"]["Mirrors"]
        .as_array()
        .filter(|m| !m.is_empty())
    {
        o.push_str(" Registry Mirrors:\n");
        for x in m {
            o.push_str(&format!("  {}\n", x.as_str().unwrap_or_default()));
        }
    }
    o.push_str(&format!(
        " Live Restore Enabled: {}\n",
        i["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    o
}

/// go-units' BytesSize: binary units, "15.5GiB".
pub fn human_size_binary(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1024.0 && i < UNITS.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", crate::format::go_g(s, 4), UNITS[i])
}

pub async fn run(client: &mut Client, args: InfoArgs) -> Result<i32> {
    let info: Value = client.get_json("/info").await?;
    match args.format.as_deref() {
        Some(f) if !f.is_empty() => {
            let t = if f == "json" {
                Template::parse("{{json .}}")?
            } else {
                Template::parse(&f.replace("\\t", "\t").replace("\\n", "\n"))?
            };
            println!("{}", t.render(&info)?);
        }
        _ => print!("{}", render(&info)),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout() {
        let out = render(
            &json!({"Containers": 2, "ContainersRunning": 1, "ServerVersion": "0.1.0", "MemTotal": 16_000_000_000i64, "NCPU": 2}),
        );
        assert!(out.contains("Server:\n Containers: 2\n  Running: 1\n"));
        assert!(out.contains(" Server Version: 0.1.0\n"));
        assert!(out.contains(" Total Memory: 14.9GiB\n"));
    }
}
