//! `reelay serve`: the local API on a port, with the runners and the timer in the process.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use reelay_api::{router, ApiState};
use reelay_core::ports::KeyStore;
use reelay_local::{LocalNode, LocalSettings};

use crate::follow::LOCAL_TENANT;

pub async fn serve(mut settings: LocalSettings, addr: &str) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    // Outputs are served at signed URLs under the public URL, else here. A wildcard address
    // is no place to fetch from: this machine's clients reach it on loopback.
    let reachable = match local.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())),
        ip if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, local.port())),
        _ => local,
    };
    settings.listen_url = Some(format!("http://{reachable}"));
    let mut node = LocalNode::open(settings)?;
    let keys: Arc<dyn KeyStore> = node.store().clone();
    // A first start has no key: make one for development, shown this once.
    if keys.list_keys().await?.is_empty() {
        let key = crate::keys::create(keys.as_ref(), "development", LOCAL_TENANT).await?;
        println!("development API key (shown once): {key}");
    }
    node.start();
    let app = router(ApiState {
        engine: node.engine().clone(),
        keys,
    });
    // Printed on stdout so scripts (and tests) can find the port when given :0.
    println!("listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    node.stop().await;
    Ok(ExitCode::SUCCESS)
}
