//! `berth exec [-it] [-d] [-e] [-u] [-w] CONTAINER COMMAND...`: create the exec, start it on a
//! hijacked connection, then exit with its ExitCode from `/exec/{id}/json`.

use anyhow::Result;
use berth_types::api::{ExecConfig, ExecStartConfig};
use clap::Args;
use hyper::body::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::client::{enc, Client};
use crate::cmd::status;
use crate::stream;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments
    #[arg(value_name = "CONTAINER COMMAND [ARG...]", required = true, num_args = 2.., trailing_var_arg = true)]
    pub args: Vec<String>,
}

impl ExecArgs {
    pub fn to_config(&self) -> Result<ExecConfig> {
        let mut env = Vec::new();
        for f in &self.env_file {
            let content = std::fs::read_to_string(f)?;
            env.extend(crate::cmd::create::parse_env_file(&content));
        }
        for e in &self.env {
            if e.contains('=') {
                env.push(e.clone());
            } else if let Ok(v) = std::env::var(e) {
                env.push(format!("{e}={v}"));
            }
        }
        let attach = !self.detach;
        Ok(ExecConfig {
            attach_stdin: Some(attach && self.interactive),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            tty: Some(self.tty),
            env: (!env.is_empty()).then_some(env),
            cmd: Some(self.args[1..].to_vec()),
            user: self.user.clone(),
            working_dir: self.workdir.clone(),
            privileged: Some(self.privileged),
            detach_keys: self.detach_keys.clone().filter(|k| !k.is_empty()),
            console_size: if self.tty {
                stream::terminal_size().map(|(h, w)| vec![h as usize, w as usize])
            } else {
                None
            },
        })
    }
}

pub async fn run(client: &mut Client, args: ExecArgs) -> Result<i32> {
    let keys = stream::detach_keys(args.detach_keys.as_deref())?;
    let container = &args.args[0];
    let stdin = args.interactive && !args.detach;
    if args.tty && stdin && !stream::stdin_is_tty() {
        return Err(status(1, "the input device is not a TTY"));
    }
    let config = args.to_config()?;
    if !args.detach {
        // The connection exec start hijacks opens while the daemon creates the exec.
        client.reserve(1);
    }
    let created: Value = client
        .post_json(
            &format!("/containers/{}/exec", enc(container)),
            Some(&config),
        )
        .await?;
    let Some(id) = created["Id"].as_str().map(str::to_string) else {
        anyhow::bail!("exec create: no Id in the daemon's answer");
    };
    let start = ExecStartConfig {
        detach: Some(args.detach),
        tty: Some(args.tty),
        console_size: config.console_size.clone(),
    };
    let body = Bytes::from(serde_json::to_vec(&start)?);
    if args.detach {
        client
            .send(Method::POST, &format!("/exec/{id}/start"), Some(body), &[])
            .await?;
        return Ok(0);
    }
    let hijacked = client
        .hijack(Method::POST, &format!("/exec/{id}/start"), Some(body))
        .await?;
    let mut resize = None;
    if args.tty {
        if stdin {
            stream::set_raw_terminal().ok();
        }
        resize = Some(tokio::spawn(stream::follow_resizes(
            client.sibling(),
            format!("/exec/{id}/resize"),
        )));
    }
    let out = stream::pump(hijacked, args.tty, stdin, Some(keys)).await;
    stream::restore_terminal();
    if let Some(r) = resize {
        r.abort();
    }
    if out? == stream::Pumped::Detached {
        return Ok(0);
    }
    let info: Value = client.get_json(&format!("/exec/{id}/json")).await?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        e: ExecArgs,
    }

    #[test]
    fn flags_become_the_config() {
        let t = T::try_parse_from([
            "t", "-i", "-e", "A=1", "-u", "0", "-w", "/tmp", "c1", "sh", "-c", "ls -l",
        ])
        .unwrap();
        let c = serde_json::to_value(t.e.to_config().unwrap()).unwrap();
        assert_eq!(c["Cmd"], serde_json::json!(["sh", "-c", "ls -l"]));
        assert_eq!(c["AttachStdin"], true);
        assert_eq!(c["Env"], serde_json::json!(["A=1"]));
        assert_eq!(c["User"], "0");
        assert_eq!(c["WorkingDir"], "/tmp");
        assert!(T::try_parse_from(["t", "c1"]).is_err());
        let t = T::try_parse_from(["t", "-d", "c1", "true"]).unwrap();
        let c = serde_json::to_value(t.e.to_config().unwrap()).unwrap();
        assert_eq!(c["AttachStdout"], false);
    }
}
