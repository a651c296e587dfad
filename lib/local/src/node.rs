//! The embedded node: the engine on the SQLite store and queue, file blobs, ffmpeg, and the
//! `local` provider, with its job runners, poll timer and provider-webhook delivery as tasks
//! of one process. `reelay run` and `reelay serve` are this node; tests start it too.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use reelay_core::clock::SystemClock;
use reelay_core::ports::Clock;
use reelay_core::worker::{run_timer, run_workers, WorkerSettings};
use reelay_core::{Engine, EngineSettings, Ports, Providers, Via};
use reelay_media::FfmpegMedia;
use reelay_providers::{LocalProvider, LocalProviderSettings, ProviderWebhook};

use crate::{Db, DbError, Durability, FileBlobs, SqliteQueue, SqliteStore};

#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Holds `reelay.db`, `blobs/`, `scratch/` and the local provider's `provider/`.
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub engine: EngineSettings,
    pub workers: WorkerSettings,
    /// How long the `local` provider's models "think" before rendering.
    pub provider_delay: Duration,
}

impl NodeSettings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeSettings {
            data_dir: data_dir.into(),
            durability: Durability::Process,
            engine: EngineSettings {
                // Local renders are quick: poll soon, and fall back from webhooks soon.
                poll_first: Duration::from_millis(500),
                poll_max: Duration::from_secs(5),
                webhook_grace: Duration::from_secs(5),
                ..EngineSettings::default()
            },
            workers: WorkerSettings::default(),
            provider_delay: Duration::from_millis(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("another reelay process is using {0}; stop it first")]
    Locked(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not recover after a restart: {0}")]
    Recovery(String),
}

pub struct LocalNode {
    engine: Arc<Engine>,
    queue: Arc<SqliteQueue>,
    settings: NodeSettings,
    webhooks: Option<tokio::sync::mpsc::UnboundedReceiver<ProviderWebhook>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held for the node's life: one process per data folder, which is what makes the
    /// restart recovery below (taking over every lease and in-flight message) safe.
    _lock: File,
}

impl LocalNode {
    /// Opens (or creates) the node's state and recovers from a previous process's crash.
    pub fn open(settings: NodeSettings) -> Result<LocalNode, NodeError> {
        let dir = &settings.data_dir;
        let data_dir_err = |source| NodeError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_err)?;
        let lock = File::create(dir.join("reelay.lock")).map_err(data_dir_err)?;
        if lock.try_lock().is_err() {
            return Err(NodeError::Locked(dir.clone()));
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = Db::open(&dir.join("reelay.db"), settings.durability)?;
        let store = Arc::new(SqliteStore::new(db.clone()));
        let queue = Arc::new(SqliteQueue::new(db, clock.clone()));
        let leases = store
            .release_all_leases()
            .map_err(|e| NodeError::Recovery(e.to_string()))?;
        let in_flight = queue
            .recover_in_flight()
            .map_err(|e| NodeError::Recovery(e.to_string()))?;
        if leases + in_flight > 0 {
            tracing::info!(leases, in_flight, "took over work left by a previous process");
        }
        let blobs = Arc::new(FileBlobs::new(dir.join("blobs")).map_err(|e| NodeError::Recovery(e.to_string()))?);
        let (local, webhooks) = LocalProvider::new(LocalProviderSettings {
            workdir: dir.join("provider"),
            delay: settings.provider_delay,
        })
        .map_err(data_dir_err)?;
        let ports = Ports {
            store,
            queue: queue.clone(),
            blobs,
            media: Arc::new(FfmpegMedia::new(dir.join("scratch"))),
            providers: Providers::new().with(local),
            clock,
        };
        let engine = Arc::new(Engine::new(ports, settings.engine.clone()));
        let (shutdown, _) = watch::channel(false);
        Ok(LocalNode {
            engine,
            queue,
            settings,
            webhooks: Some(webhooks),
            shutdown,
            tasks: JoinSet::new(),
            _lock: lock,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn queue(&self) -> &Arc<SqliteQueue> {
        &self.queue
    }

    /// Starts the job runners, the timer, and delivery of provider webhooks.
    pub fn start(&mut self) {
        let queue: Arc<dyn reelay_core::ports::Queue> = self.queue.clone();
        self.tasks.spawn(run_workers(
            self.engine.clone(),
            queue,
            self.settings.workers.clone(),
            self.shutdown.subscribe(),
        ));
        self.tasks.spawn(run_timer(
            self.engine.clone(),
            self.settings.workers.clone(),
            self.shutdown.subscribe(),
        ));
        if let Some(mut webhooks) = self.webhooks.take() {
            let engine = self.engine.clone();
            let mut stop = self.shutdown.subscribe();
            self.tasks.spawn(async move {
                loop {
                    let hook = tokio::select! {
                        hook = webhooks.recv() => hook,
                        _ = stop.changed() => None,
                    };
                    let Some(hook) = hook else { break };
                    let via = Via::Webhook { token: &hook.token };
                    if let Err(e) = engine.provider_update(&hook.job, via, hook.status).await {
                        // A lost webhook is what polling is for.
                        tracing::warn!(error = %e, "provider webhook not recorded");
                    }
                }
            });
        }
    }

    /// Stops the tasks; work in flight is left for the next start to take over.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
