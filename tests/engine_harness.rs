//! The engine on the embedded SQLite store and queue with instant stand-ins (or the ports a
//! test gives), driven message by message so that duplicates, crashes and time are under the
//! test's control.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use reelay_core::clock::ManualClock;
use reelay_core::domain::{Execution, Job, JobKey};
use reelay_core::plan::{parse_value, PlanLimits};
use reelay_core::ports::{Blobs, Clock, Message, Provider, Queue, SceneRunner, Store};
use reelay_core::secrets::Sealer;
use reelay_core::worker::{MediaForwarding, MessageHandler};
use reelay_core::{Engine, EngineSettings, Handled, Ports, Providers};
use reelay_local::{Db, SqliteQueue, SqliteStore};
use reelay_testkit::instant::{InstantMedia, InstantProvider, InstantScenes, NullBlobs};

/// How the harness delivers each message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delivery {
    Once,
    /// Handled, then sent again: every message arrives twice, the copy later.
    TwiceLater,
    /// Two handlers take the same message at the same time.
    TwiceAtOnce,
}

pub struct Harness {
    pub engine: Arc<Engine>,
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub webhook_queue: Arc<SqliteQueue>,
    pub sealer: Sealer,
    pub provider: Arc<InstantProvider>,
    pub media: Arc<InstantMedia>,
    pub clock: Arc<ManualClock>,
    pub settings: EngineSettings,
}

pub fn harness(failing: &[&str]) -> Harness {
    harness_with(failing, Arc::new(NullBlobs))
}

pub fn harness_with(failing: &[&str], blobs: Arc<dyn Blobs>) -> Harness {
    let provider = Arc::new(InstantProvider::new(failing.iter().map(|s| s.to_string())));
    harness_on(
        provider,
        Vec::new(),
        Arc::new(InstantScenes::default()),
        blobs,
        EngineSettings::default(),
    )
}

/// The harness with `others` beside the instant provider, and the given scene runner,
/// blobs and settings (whose plan limits are lifted).
pub fn harness_on(
    provider: Arc<InstantProvider>,
    others: Vec<Arc<dyn Provider>>,
    scenes: Arc<dyn SceneRunner>,
    blobs: Arc<dyn Blobs>,
    settings: EngineSettings,
) -> Harness {
    let db = Db::in_memory().expect("db");
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = Arc::new(SqliteStore::new(db.clone()));
    let queue = Arc::new(SqliteQueue::new(db.clone(), dyn_clock.clone()));
    let webhook_queue = Arc::new(SqliteQueue::webhooks(db, dyn_clock.clone()));
    let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
    let media = Arc::new(InstantMedia::default());
    let settings = EngineSettings {
        limits: PlanLimits {
            max_jobs: 10_000,
            max_body_bytes: usize::MAX,
        },
        ..settings
    };
    let providers = others
        .into_iter()
        .fold(Providers::new().with(provider.clone()), |all, p| all.with(p));
    let engine = Arc::new(Engine::new(
        Ports {
            store: store.clone(),
            queue: queue.clone(),
            webhook_queue: webhook_queue.clone(),
            sealer: sealer.clone(),
            blobs,
            media: media.clone(),
            scenes,
            providers,
            clock: dyn_clock,
        },
        settings.clone(),
    ));
    Harness {
        engine,
        store,
        queue,
        webhook_queue,
        sealer,
        provider,
        media,
        clock,
        settings,
    }
}

pub fn key(execution: &str, job: &str) -> JobKey {
    JobKey {
        execution_id: execution.to_string(),
        job_id: job.to_string(),
    }
}

impl Harness {
    pub async fn submit(&self, plan: Value) -> String {
        let request = parse_value(&plan, self.engine.providers(), self.settings.limits).expect("valid plan");
        self.engine.start("t", request).await.expect("submit").id
    }

    /// Delivers messages until the queue has nothing visible.
    pub async fn drain(&self, mode: Delivery) {
        self.drain_with(self.queue.as_ref(), self.engine.as_ref(), mode).await;
    }

    /// Delivers `queue`'s messages to `handler` until it has nothing visible; how many
    /// deliveries there were.
    pub async fn drain_with(&self, queue: &SqliteQueue, handler: &dyn MessageHandler, mode: Delivery) -> usize {
        // Copies sent and not yet delivered: their own delivery is not copied again.
        let mut copies: HashSet<Message> = HashSet::new();
        let mut delivered = 0;
        for _ in 0..100_000 {
            let batch = queue
                .receive(16, Duration::from_secs(30), Duration::ZERO)
                .await
                .expect("receive");
            if batch.is_empty() {
                return delivered;
            }
            delivered += batch.len();
            for d in batch {
                let handled = match mode {
                    Delivery::TwiceAtOnce => {
                        let (a, b) = tokio::join!(handler.handle(&d.message), handler.handle(&d.message));
                        let (a, b) = (a.expect("handle"), b.expect("handle"));
                        // Of two racing handlers, one may be told to come back later.
                        if a == Handled::Done {
                            b
                        } else {
                            a
                        }
                    }
                    _ => handler.handle(&d.message).await.expect("handle"),
                };
                match handled {
                    Handled::Done => {
                        queue.ack(&d.receipt).await.expect("ack");
                        if mode == Delivery::TwiceLater && !copies.remove(&d.message) {
                            copies.insert(d.message.clone());
                            queue
                                .send(std::slice::from_ref(&d.message), Duration::ZERO)
                                .await
                                .expect("resend");
                        }
                    }
                    Handled::RetryAfter(delay) => {
                        queue.retry_later(&d.receipt, delay).await.expect("retry");
                        self.clock.advance(delay);
                    }
                }
            }
        }
        panic!("the queue never drained");
    }

    /// A queue of its own (a media runner's), on the harness's clock.
    pub fn another_queue(&self) -> Arc<SqliteQueue> {
        Arc::new(SqliteQueue::new(Db::in_memory().expect("db"), self.clock.clone()))
    }

    /// The runners split as on AWS, taking turns until neither has a message: a provider
    /// runner on the job queue (the engine, media jobs forwarded to `media_queue`) and
    /// `media_runner` on `media_queue`. How many deliveries the media runner had; checks
    /// that the provider runner ran no media work.
    pub async fn run_split(
        &self,
        media_queue: &Arc<SqliteQueue>,
        media_runner: &dyn MessageHandler,
        mode: Delivery,
    ) -> usize {
        let provider_runner = MediaForwarding::new(self.engine.clone(), media_queue.clone());
        let mut on_media = 0;
        loop {
            let ran = self.media.runs();
            let on_jobs = self.drain_with(&self.queue, &provider_runner, mode).await;
            assert_eq!(self.media.runs(), ran, "the provider runner ran media work");
            let delivered = self.drain_with(media_queue, media_runner, mode).await;
            on_media += delivered;
            if on_jobs + delivered == 0 {
                return on_media;
            }
        }
    }

    /// The next visible message (the test knows there is one).
    pub async fn receive_one(&self) -> reelay_core::ports::Delivery {
        let mut batch = self
            .queue
            .receive(1, Duration::from_secs(30), Duration::ZERO)
            .await
            .expect("receive");
        assert_eq!(batch.len(), 1, "a message was expected");
        batch.remove(0)
    }

    pub async fn execution(&self, id: &str) -> (Execution, HashMap<String, Job>) {
        let (e, jobs) = self.store.execution_with_jobs(id).await.expect("read").expect("exists");
        (e, jobs.into_iter().map(|j| (j.id().to_string(), j)).collect())
    }

    pub fn assert_each_submitted_once(&self, execution: &str, jobs: usize) {
        let submits: Vec<u32> = self
            .provider
            .submits()
            .into_iter()
            .filter(|(k, _)| k.execution_id == execution)
            .map(|(_, n)| n)
            .collect();
        assert_eq!(submits.len(), jobs, "every job reached the provider");
        assert!(
            submits.iter().all(|n| *n == 1),
            "a job was submitted twice: {submits:?}"
        );
    }
}
