//! The port contract (`contract/mod.rs`) run against the embedded adapters: the SQLite store
//! (and key store) and queue on a file database, file blobs, and a manual clock.
//!
//! Another binding (the AWS adapters) is one `impl Backend` plus one `contract_tests!` call,
//! here or in a file of its own (`#[path = "contract/mod.rs"] mod contract;`).

#[path = "contract/mod.rs"]
mod contract;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use contract::Backend;
use reelay_core::clock::ManualClock;
use reelay_core::ports::{Blobs, KeyStore, Message, Queue, RateBudget, Store};
use reelay_local::{Db, Durability, FileBlobs, SqliteQueue, SqliteStore};
use reelay_providers::InProcessBudget;

/// One isolated embedded stack in a temporary folder: `db.sqlite` and `data/blobs/`.
struct LocalBackend {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    clients: Option<Clients>,
}

struct Clients {
    store: Arc<SqliteStore>,
    queue: Arc<SqliteQueue>,
    blobs: Arc<FileBlobs>,
    budget: Arc<InProcessBudget>,
}

impl LocalBackend {
    async fn new() -> LocalBackend {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let clients = Some(Self::open(dir.path(), &clock));
        LocalBackend { dir, clock, clients }
    }

    fn open(dir: &Path, clock: &Arc<ManualClock>) -> Clients {
        let db = Db::open(&dir.join("db.sqlite"), Durability::Process).expect("open db");
        Clients {
            store: Arc::new(SqliteStore::new(db.clone())),
            queue: Arc::new(SqliteQueue::new(db, clock.clone())),
            blobs: Arc::new(FileBlobs::new(Self::blob_root(dir)).expect("blob root")),
            budget: Arc::new(InProcessBudget::default()),
        }
    }

    fn blob_root(dir: &Path) -> PathBuf {
        dir.join("data").join("blobs")
    }

    fn clients(&self) -> &Clients {
        self.clients.as_ref().expect("clients")
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn store(&self) -> Arc<dyn Store> {
        self.clients().store.clone()
    }

    fn keys(&self) -> Arc<dyn KeyStore> {
        self.clients().store.clone()
    }

    fn queue(&self) -> Arc<dyn Queue> {
        self.clients().queue.clone()
    }

    fn blobs(&self) -> Arc<dyn Blobs> {
        self.clients().blobs.clone()
    }

    fn budget(&self) -> Arc<dyn RateBudget> {
        self.clients().budget.clone()
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn reopen(&mut self) {
        // Close the database first (the suite has dropped its handles), then open it afresh.
        let old = self.clients.take().expect("clients");
        assert_eq!(Arc::strong_count(&old.store), 1, "a store handle outlived the restart");
        assert_eq!(Arc::strong_count(&old.queue), 1, "a queue handle outlived the restart");
        drop(old);
        self.clients = Some(Self::open(self.dir.path(), &self.clock));
    }

    async fn read_url(&self, url: &str) -> Vec<u8> {
        let path = url
            .strip_prefix("file://")
            .unwrap_or_else(|| panic!("file blobs serve file:// URLs, got {url}"));
        assert!(Path::new(path).is_file(), "{url} names no file");
        std::fs::read(path).expect("read blob file")
    }

    async fn blob_listing(&self) -> Vec<String> {
        // Everything under `data/`, so a file that escaped `data/blobs/` shows as `../…`.
        let root = Self::blob_root(self.dir.path());
        let mut files = Vec::new();
        files_under(&self.dir.path().join("data"), &mut files);
        let mut keys: Vec<String> = files
            .iter()
            .map(|f| match f.strip_prefix(&root) {
                Ok(rel) => rel.display().to_string(),
                Err(_) => format!("../{}", f.strip_prefix(self.dir.path().join("data")).unwrap().display()),
            })
            .collect();
        keys.sort();
        keys
    }
}

contract_tests!(
    sqlite,
    LocalBackend::new,
    [
        store,
        executions,
        watchers,
        deliveries,
        keys,
        rate,
        queue,
        queue_strict,
        blobs
    ]
);

/// Local only (SQS has no such call): after a crash, the node makes its in-flight messages
/// visible at once instead of waiting out their visibility timeout.
#[tokio::test]
async fn sqlite_recover_in_flight_makes_in_flight_messages_visible() {
    let msg = |id: &str| {
        Message::Job(reelay_core::domain::JobKey {
            execution_id: "ex".into(),
            job_id: id.into(),
        })
    };
    let mut backend = LocalBackend::new().await;
    {
        let queue = backend.queue();
        queue.send(&[msg("a"), msg("b")], Duration::ZERO).await.unwrap();
        let flying = queue.receive(10, contract::LONG, Duration::ZERO).await.unwrap();
        assert_eq!(flying.len(), 2);
        queue.send(&[msg("acked")], Duration::ZERO).await.unwrap();
        let acked = queue.receive(10, contract::LONG, Duration::ZERO).await.unwrap();
        queue.ack(&acked[0].receipt).await.unwrap();
        queue.send(&[msg("delayed")], contract::LONG).await.unwrap();
    }
    backend.reopen().await;

    assert_eq!(backend.clients().queue.recover_in_flight().unwrap(), 2);
    let queue = backend.queue();
    let mut back = queue.receive(10, contract::LONG, Duration::ZERO).await.unwrap();
    back.sort_by_key(|d| format!("{:?}", d.message));
    assert_eq!(
        back.iter().map(|d| d.message.clone()).collect::<Vec<_>>(),
        [msg("a"), msg("b")]
    );
    assert!(back.iter().all(|d| d.receive_count == 2));
    for d in &back {
        queue.ack(&d.receipt).await.unwrap();
    }
    assert!(
        queue
            .receive(10, contract::LONG, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the delayed message stays delayed, the acked one gone"
    );
    assert_eq!(
        backend.clients().queue.recover_in_flight().unwrap(),
        0,
        "nothing else was in flight"
    );
}
