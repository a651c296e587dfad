//! The embedded node: the node (`reelay_node`) built on the SQLite store and queue and file
//! blobs, with the `local` provider, and its job runners, poll timer and the `local`
//! provider's callbacks as tasks of one process. `reelay run` and `reelay serve` are this
//! node; tests start it too.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use reelay_core::clock::SystemClock;
use reelay_core::ports::Clock;
use reelay_core::secrets::Sealer;
use reelay_core::signed_urls::UrlSigner;
use reelay_core::webhooks::Dispatcher;
use reelay_core::worker::{run_timer, run_workers, MessageHandler, WorkerSettings};
use reelay_core::Engine;
use reelay_node::{clear_scratch, deliver_local_callbacks, Adapters, LocalCallbacks, Node, NodeError, Settings};
use reelay_providers::InProcessBudget;

use crate::blobs::Served;
use crate::{Db, DbError, Durability, FileBlobs, SqliteQueue, SqliteStore};

#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Holds `reelay.db`, `blobs/`, `scratch/` and the local provider's `provider/`.
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub workers: WorkerSettings,
    /// The key that seals secrets at rest (base64, 32 bytes). Unset: `server.key` in the data
    /// folder, made on first start.
    pub secret_key: Option<String>,
    /// What every node is configured with. The `local` provider always runs here, whatever
    /// `node.providers.local` says.
    pub node: Settings,
    /// Where `reelay serve` listens (`http://127.0.0.1:8080`). Set, outputs are handed out at
    /// signed URLs under the public URL, or else under this; unset (`reelay run`), as files.
    pub listen_url: Option<String>,
}

impl LocalSettings {
    /// The embedded node on `data_dir` with `node`'s settings, and engine timings for local
    /// renders: they are quick, so poll soon and fall back from webhooks soon.
    pub fn new(data_dir: impl Into<PathBuf>, node: Settings) -> Self {
        let mut node = node;
        node.engine.poll_first = Duration::from_millis(500);
        node.engine.poll_max = Duration::from_secs(5);
        node.engine.webhook_grace = Duration::from_secs(5);
        LocalSettings {
            data_dir: data_dir.into(),
            durability: Durability::Process,
            workers: WorkerSettings::default(),
            secret_key: None,
            node,
            listen_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot use data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("another reelay process is using {0}; stop it first")]
    Locked(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not recover after a restart: {0}")]
    Recovery(String),
    #[error("the server key is unusable: {0}")]
    ServerKey(String),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// The sealing key: given, or the data folder's `server.key` (made once, readable by the owner only).
fn server_key(settings: &LocalSettings) -> Result<Sealer, OpenError> {
    let bad = |e: &dyn std::fmt::Display| OpenError::ServerKey(e.to_string());
    if let Some(key) = &settings.secret_key {
        return Sealer::from_base64(key).map_err(|e| bad(&e));
    }
    let path = settings.data_dir.join("server.key");
    if !path.exists() {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => file.write_all(Sealer::generate_key().as_bytes()).map_err(|e| bad(&e))?,
            // Made by a concurrent `reelay keys` call: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(bad(&e)),
        }
    }
    let key = std::fs::read_to_string(&path).map_err(|e| bad(&e))?;
    Sealer::from_base64(&key).map_err(|e| bad(&e))
}

pub struct LocalNode {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    store: Arc<SqliteStore>,
    queue: Arc<SqliteQueue>,
    webhook_queue: Arc<SqliteQueue>,
    workers: WorkerSettings,
    local_callbacks: Option<LocalCallbacks>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Held for the node's life: one process per data folder, which is what makes the
    /// restart recovery below (taking over every lease and in-flight message) safe.
    _lock: File,
}

impl LocalNode {
    /// Opens (or creates) the node's state and recovers from a previous process's crash.
    pub fn open(settings: LocalSettings) -> Result<LocalNode, OpenError> {
        let dir = &settings.data_dir;
        let data_dir_err = |source| OpenError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_err)?;
        let lock = File::create(dir.join("reelay.lock")).map_err(data_dir_err)?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked(dir.clone()));
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = Db::open(&dir.join("reelay.db"), settings.durability)?;
        let store = Arc::new(SqliteStore::new(db.clone()));
        let queue = Arc::new(SqliteQueue::new(db.clone(), clock.clone()));
        let webhook_queue = Arc::new(SqliteQueue::webhooks(db, clock));
        let sealer = server_key(&settings)?;
        let leases = store
            .release_all_leases()
            .map_err(|e| OpenError::Recovery(e.to_string()))?;
        let in_flight = queue
            .recover_in_flight()
            .and_then(|n| Ok(n + webhook_queue.recover_in_flight()?))
            .map_err(|e| OpenError::Recovery(e.to_string()))?;
        if leases + in_flight > 0 {
            tracing::info!(leases, in_flight, "took over work left by a previous process");
        }
        let swept = clear_scratch(dir).map_err(data_dir_err)?;
        if swept > 0 {
            tracing::info!(swept, "removed the scratch folders of interrupted media work");
        }
        let mut blobs = FileBlobs::new(dir.join("blobs")).map_err(|e| OpenError::Recovery(e.to_string()))?;
        if let Some(listen) = &settings.listen_url {
            let public = &settings.node.engine.callback_base;
            blobs = blobs.served(Served {
                base: public.clone().unwrap_or_else(|| listen.clone()),
                anywhere: public.is_some(),
                signer: UrlSigner::new(&sealer),
                expiry: settings.node.output_url_expiry,
            });
        }
        let adapters = Adapters {
            store: store.clone(),
            keys: store.clone(),
            job_queue: queue.clone(),
            webhook_queue: webhook_queue.clone(),
            // One process runs every job.
            media_queue: None,
            blobs: Arc::new(blobs),
            // One process: its own count is the account's.
            budget: Arc::new(InProcessBudget::default()),
            scenes: None,
        };
        let mut shared = settings.node.clone();
        shared.providers.local = true;
        let mut node = Node::build(&adapters, sealer, &shared, dir)?;
        let (shutdown, _) = watch::channel(false);
        Ok(LocalNode {
            engine: node.engine().clone(),
            dispatcher: node.dispatcher().clone(),
            local_callbacks: node.take_local_callbacks(),
            store,
            queue,
            webhook_queue,
            workers: settings.workers,
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

    /// The store, also as the API-key store.
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Starts the job runners, the timer, and delivery of provider webhooks.
    pub fn start(&mut self) {
        let queues: [(Arc<dyn MessageHandler>, Arc<SqliteQueue>); 2] = [
            (self.engine.clone(), self.queue.clone()),
            (self.dispatcher.clone(), self.webhook_queue.clone()),
        ];
        for (handler, queue) in queues {
            self.tasks.spawn(run_workers(
                handler,
                queue,
                self.workers.clone(),
                self.shutdown.subscribe(),
            ));
        }
        self.tasks.spawn(run_timer(
            self.engine.clone(),
            self.dispatcher.clone(),
            self.workers.clone(),
            self.shutdown.subscribe(),
        ));
        if let Some(callbacks) = self.local_callbacks.take() {
            let engine = self.engine.clone();
            let mut stop = self.shutdown.subscribe();
            self.tasks.spawn(async move {
                tokio::select! {
                    _ = deliver_local_callbacks(engine, callbacks) => {}
                    _ = stop.changed() => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_removes_what_interrupted_media_work_left_in_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = reelay_node::scratch::scratch_dir(dir.path());
        std::fs::create_dir_all(scratch.join("task-Ab12Cd")).unwrap();
        std::fs::write(scratch.join("task-Ab12Cd/partial.mp4"), b"half a movie").unwrap();
        let _node = LocalNode::open(LocalSettings::new(dir.path(), Settings::default())).unwrap();
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "scratch was emptied");
    }
}
