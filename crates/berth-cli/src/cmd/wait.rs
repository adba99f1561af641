//! `berth wait`: blocks until each container stops and prints its exit code (docker's `wait`
//! itself exits 0 when it could wait; a container it could not wait for makes it exit 1).

use anyhow::Result;
use berth_types::api::ContainerWaitResponse;
use hyper::Method;

use crate::client::{decode, enc, Client};
use crate::cmd::each;
use crate::cmd::lifecycle::Targets;

pub async fn run(client: &mut Client, args: Targets) -> Result<i32> {
    each(client, &args.containers, |c, t| {
        Box::pin(async move {
            let resp = c
                .send_own(Method::POST, &format!("/containers/{}/wait", enc(t)), None)
                .await?;
            let w: ContainerWaitResponse = decode(resp).await?;
            Ok(Some(w.status_code.to_string()))
        })
    })
    .await
}
