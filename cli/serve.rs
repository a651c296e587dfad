//! `reelay serve`: the local API on a port, with the runners and the timer in the process.

use std::process::ExitCode;
use std::sync::Arc;

use reelay_api::{router, ApiState};
use reelay_core::ports::KeyStore;
use reelay_local::{LocalNode, LocalSettings};

use crate::follow::LOCAL_TENANT;

pub async fn serve(settings: LocalSettings, addr: &str) -> anyhow::Result<ExitCode> {
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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    // Printed on stdout so scripts (and tests) can find the port when given :0.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    node.stop().await;
    Ok(ExitCode::SUCCESS)
}
