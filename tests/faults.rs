//! Faults on purpose (`reelay_testkit::faults`): a full two-scene execution (generate ×2 →
//! merge, every job and the execution with a client webhook) on the embedded store and queue,
//! the instant provider and media and file blobs, run once clean to count its calls, then
//! again once per call with that one call broken: each store write failing before or after it
//! was applied, or losing a race; each queue ack or send lost, each send duplicated; each blob
//! put broken mid-way; each provider submit answered with a 500 or nothing after it was
//! accepted. Messages are handled as the runners handle them (`worker::process`: a failed
//! handling comes back after its backoff, an unacked message after its visibility timeout),
//! with the timer's polls and stale sweep between rounds. Every run must end `completed`,
//! with each provider job submitted once and each client webhook message made and posted once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use reelay_core::clock::ManualClock;
use reelay_core::domain::{DeliveryState, ExecutionStatus};
use reelay_core::plan::{parse_value, PlanLimits};
use reelay_core::ports::{Blobs, Clock, Provider, Queue, Store};
use reelay_core::secrets::Sealer;
use reelay_core::webhooks::transport::{HttpAnswer, OutboundRequest, TransportError, WebhookTransport};
use reelay_core::webhooks::{DispatchSettings, Dispatcher};
use reelay_core::worker::{process, MessageHandler};
use reelay_core::{Engine, EngineSettings, Ports, Providers};
use reelay_local::{Db, FileBlobs, SqliteQueue, SqliteStore};
use reelay_testkit::faults::{Call, Fault, Faults, FaultyBlobs, FaultyProvider, FaultyQueue, FaultyStore, Target};
use reelay_testkit::instant::{InstantMedia, InstantProvider, InstantScenes};

/// How long a received message stays hidden (the runners' visibility timeout, shortened).
const VISIBILITY: Duration = Duration::from_secs(30);
/// What the timer's round moves the clock by: past the visibility timeout and the
/// dispatcher's sweep age, so lost acks and sends come back within a round or two.
const ROUND: Duration = Duration::from_secs(61);

fn plan() -> Value {
    let generate = |id: &str| json!({"id": id, "type": "generate", "params": {"provider": "instant", "modelId": "done", "sendJobWebhook": true}});
    json!({
        "jobs": [
            generate("a"),
            generate("b"),
            {"id": "m", "type": "merge", "params": {"items": [{"url": "$a"}, {"url": "$b"}], "transition": "fade", "sendJobWebhook": true}},
        ],
        "webhook": {"url": "https://hooks.example.com/x", "secret": "s"}
    })
}

/// A webhook receiver that answers 200 and counts posts by `webhook-id`.
#[derive(Default)]
struct Receiver {
    posts: Mutex<HashMap<String, u32>>,
}

#[async_trait::async_trait]
impl WebhookTransport for Receiver {
    async fn post(&self, request: OutboundRequest) -> Result<HttpAnswer, TransportError> {
        let id = request
            .headers
            .iter()
            .find(|(k, _)| k == "webhook-id")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        *self.posts.lock().unwrap().entry(id).or_default() += 1;
        Ok(HttpAnswer {
            status: 200,
            retry_after: None,
        })
    }
}

/// One execution's world: the engine on faulty ports over SQLite, files and instant stand-ins.
struct Rig {
    engine: Arc<Engine>,
    faults: Arc<Faults>,
    store: Arc<SqliteStore>,
    queue: Arc<FaultyQueue>,
    webhook_queue: Arc<SqliteQueue>,
    provider: Arc<InstantProvider>,
    clock: Arc<ManualClock>,
    sealer: Sealer,
    blob_dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let faults = Faults::new();
        let db = Db::in_memory().expect("db");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let store = Arc::new(SqliteStore::new(db.clone()));
        let raw_queue: Arc<dyn Queue> = Arc::new(SqliteQueue::new(db.clone(), dyn_clock.clone()));
        let queue = Arc::new(FaultyQueue::new(raw_queue, faults.clone()));
        let webhook_queue = Arc::new(SqliteQueue::webhooks(db, dyn_clock.clone()));
        let blob_dir = tempfile::tempdir().expect("tempdir");
        let file_blobs: Arc<dyn Blobs> = Arc::new(FileBlobs::new(blob_dir.path()).expect("blobs"));
        let provider = Arc::new(InstantProvider::new(Vec::new()));
        let faulty_provider: Arc<dyn Provider> = Arc::new(FaultyProvider::new(provider.clone(), faults.clone()));
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let settings = EngineSettings {
            limits: PlanLimits {
                max_jobs: 100,
                max_body_bytes: usize::MAX,
            },
            ..EngineSettings::default()
        };
        let engine = Arc::new(Engine::new(
            Ports {
                store: Arc::new(FaultyStore::new(store.clone(), faults.clone())),
                queue: queue.clone(),
                webhook_queue: Arc::new(FaultyQueue::new(webhook_queue.clone(), faults.clone())),
                sealer: sealer.clone(),
                blobs: Arc::new(FaultyBlobs::new(file_blobs, faults.clone())),
                media: Arc::new(InstantMedia::default()),
                scenes: Arc::new(InstantScenes::default()),
                providers: Providers::new().with(faulty_provider),
                clock: dyn_clock,
            },
            settings,
        ));
        Rig {
            engine,
            faults,
            store,
            queue,
            webhook_queue,
            provider,
            clock,
            sealer,
            blob_dir,
        }
    }

    /// Submits the plan as a client would: on an error it looks for what was stored (a write
    /// applied whose answer was lost) before it submits again.
    async fn start(&self) -> String {
        for _ in 0..3 {
            let request = parse_value(&plan(), self.engine.providers(), self.engine.settings().limits).expect("plan");
            match self.engine.start("t", request).await {
                Ok(execution) => return execution.id,
                Err(e) => {
                    let stored = self.store.list_executions("t", None, None, 10).await.expect("list");
                    if let Some(execution) = stored.first() {
                        return execution.id.clone();
                    }
                    eprintln!("submit failed, nothing stored, submitting again: {e}");
                }
            }
        }
        panic!("the submission never went through");
    }

    /// Handles every visible job message as a runner does; how many there were.
    async fn drain(&self) -> usize {
        let mut handled = 0;
        for _ in 0..1000 {
            let batch = self
                .queue
                .receive(16, VISIBILITY, Duration::ZERO)
                .await
                .expect("receive");
            if batch.is_empty() {
                return handled;
            }
            for delivery in &batch {
                handled += 1;
                process(self.engine.as_ref(), self.queue.as_ref(), delivery).await;
            }
        }
        panic!("the queue never drained");
    }

    /// Runs the execution to its end: messages, then the timer (polls, stale sweep) with the
    /// clock moved on, until it has ended and a lease's worth of rounds brings nothing more.
    async fn run(&self, id: &str, label: &str) -> ExecutionStatus {
        let quiet_needed = (EngineSettings::default().lease.as_secs() / ROUND.as_secs()) as usize + 1;
        let mut quiet = 0;
        for _ in 0..300 {
            let handled = self.drain().await;
            let status = self.store.execution(id).await.expect("read").expect("exists").status;
            quiet = if handled == 0 { quiet + 1 } else { 0 };
            if status.is_terminal() && quiet >= quiet_needed {
                return status;
            }
            self.clock.advance(ROUND);
            // As `worker::tick`: a failing tick is logged and tried at the next.
            let _ = self.engine.poll_due(100).await;
            let _ = self.engine.sweep_stale(100).await;
        }
        panic!(
            "{label}: execution {id} never settled (fired {:?})",
            self.faults.fired()
        );
    }

    /// The client webhooks: the dispatcher (on the plain store and queue, as its own function
    /// would be) sends what the engine queued and what its sweep finds; posts by webhook-id.
    async fn deliver_webhooks(&self) -> HashMap<String, u32> {
        let receiver = Arc::new(Receiver::default());
        let clock: Arc<dyn Clock> = self.clock.clone();
        let dispatcher = Dispatcher::new(
            self.store.clone(),
            self.webhook_queue.clone(),
            receiver.clone(),
            self.sealer.clone(),
            clock,
            DispatchSettings::default(),
        );
        for _ in 0..5 {
            self.clock.advance(ROUND);
            dispatcher.sweep(100).await.expect("sweep");
            loop {
                let batch = self
                    .webhook_queue
                    .receive(16, VISIBILITY, Duration::ZERO)
                    .await
                    .expect("receive");
                if batch.is_empty() {
                    break;
                }
                for delivery in &batch {
                    process(
                        &dispatcher as &dyn MessageHandler,
                        self.webhook_queue.as_ref(),
                        delivery,
                    )
                    .await;
                }
            }
        }
        let posts = receiver.posts.lock().unwrap().clone();
        posts
    }

    /// Files a put left behind (a broken put must leave none).
    fn leftovers(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.to_string_lossy().contains(".part-") {
                    out.push(path.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.blob_dir.path(), &mut out);
        out
    }
}

/// What one run showed: its execution's end, and how often each job and webhook went out.
struct Outcome {
    calls: Vec<Call>,
}

/// Runs one execution with `faults` injected, and checks its end.
async fn run_with(label: &str, inject: &[(Target, u64, Fault)]) -> Outcome {
    let rig = Rig::new();
    for (target, index, fault) in inject {
        rig.faults.inject(*target, *index, *fault);
    }
    let id = rig.start().await;
    let status = rig.run(&id, label).await;
    let fired = rig.faults.fired();
    let context = format!("{label}: fired {fired:?}");
    assert_eq!(fired.len(), inject.len(), "{context}: a fault never fired");
    assert_eq!(status, ExecutionStatus::Completed, "{context}");
    let (execution, jobs) = rig.store.execution_with_jobs(&id).await.unwrap().unwrap();
    assert_eq!(execution.completed_jobs, 3, "{context}");
    assert_eq!(execution.open_jobs, 0, "{context}");
    let merge = jobs.iter().find(|j| j.id() == "m").expect("merge");
    assert_eq!(execution.result, merge.output, "{context}: the result is the merge's");

    // Each provider job reached the provider once.
    let mut submits: Vec<(String, u32)> = rig
        .provider
        .submits()
        .into_iter()
        .filter(|(k, _)| k.execution_id == id)
        .map(|(k, n)| (k.job_id, n))
        .collect();
    submits.sort();
    assert_eq!(
        submits,
        vec![("a".to_string(), 1), ("b".to_string(), 1)],
        "{context}: a job was submitted twice or never"
    );

    // Each client webhook message was made once: the execution's and each job's.
    let deliveries = rig.store.deliveries(&id).await.unwrap();
    let mut about: Vec<Option<String>> = deliveries.iter().map(|d| d.job_id.clone()).collect();
    about.sort();
    assert_eq!(
        about,
        vec![None, Some("a".into()), Some("b".into()), Some("m".into())],
        "{context}: webhook messages"
    );
    let end = deliveries.iter().find(|d| d.job_id.is_none()).unwrap();
    let body: Value = serde_json::from_str(&end.body).unwrap();
    assert_eq!(body["status"], "completed", "{context}");

    // ... and posted once each, lost sends found by the dispatcher's sweep.
    let posts = rig.deliver_webhooks().await;
    let expected: HashMap<String, u32> = deliveries.iter().map(|d| (d.id.clone(), 1)).collect();
    assert_eq!(posts, expected, "{context}: webhook posts");
    for d in rig.store.deliveries(&id).await.unwrap() {
        assert_eq!(d.state, DeliveryState::Delivered, "{context}: {}", d.id);
    }
    assert_eq!(
        rig.leftovers(),
        Vec::<String>::new(),
        "{context}: a broken put left a file"
    );
    Outcome {
        calls: rig.faults.log(),
    }
}

/// The calls of a clean run.
async fn clean_calls() -> Vec<Call> {
    run_with("clean", &[]).await.calls
}

fn count(calls: &[Call], target: Target) -> u64 {
    calls
        .iter()
        .filter(|c| match target {
            Target::Call(t) => **c == t,
            Target::StoreWrites => c.is_store_write(),
            Target::Any => true,
        })
        .count() as u64
}

/// Breaks the `index`-th call of `target` with `fault`, for every index a clean run has.
async fn sweep(target: Target, faults: &[Fault]) -> u64 {
    let started = Instant::now();
    let calls = clean_calls().await;
    let n = count(&calls, target);
    assert!(n > 0, "a clean run makes no {target:?}");
    if std::env::var_os("FAULTS_LOG").is_some() {
        eprintln!("clean run: {calls:?}");
    }
    for fault in faults {
        for index in 0..n {
            let label = format!("{target:?} #{index} ({:?}) {fault:?}", calls_of(&calls, target, index));
            run_with(&label, &[(target, index, *fault)]).await;
        }
    }
    eprintln!(
        "{target:?}: {n} calls × {faults:?} swept in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    n
}

/// Which call the `index`-th of `target` was in the clean run (for messages).
fn calls_of(calls: &[Call], target: Target, index: u64) -> Option<Call> {
    calls
        .iter()
        .filter(|c| match target {
            Target::Call(t) => **c == t,
            Target::StoreWrites => c.is_store_write(),
            Target::Any => true,
        })
        .nth(index as usize)
        .copied()
}

#[tokio::test]
async fn every_store_write_failing_before_it_is_applied_is_recovered() {
    let n = sweep(Target::StoreWrites, &[Fault::Error]).await;
    assert!(n >= 10, "only {n} writes in a clean run");
}

#[tokio::test]
async fn every_store_write_applied_with_its_answer_lost_is_recovered() {
    sweep(Target::StoreWrites, &[Fault::ErrorAfter]).await;
}

#[tokio::test]
async fn every_store_write_losing_a_race_or_repeated_is_recovered() {
    sweep(Target::StoreWrites, &[Fault::Stale, Fault::Duplicate]).await;
}

#[tokio::test]
async fn every_message_delivered_again_after_its_ack_was_lost_changes_nothing() {
    sweep(Target::Call(Call::Ack), &[Fault::Drop, Fault::ErrorAfter]).await;
}

#[tokio::test]
async fn every_send_lost_failed_or_duplicated_is_recovered() {
    sweep(
        Target::Call(Call::Send),
        &[Fault::Drop, Fault::Error, Fault::ErrorAfter, Fault::Duplicate],
    )
    .await;
}

#[tokio::test]
async fn every_retry_later_lost_is_recovered() {
    // A clean run retries nothing: break a write so that one message is retried, and lose that.
    run_with(
        "retry_later lost",
        &[
            (Target::Call(Call::UpdateJob), 3, Fault::Error),
            (Target::Call(Call::RetryLater), 0, Fault::Drop),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_blob_put_broken_midway_or_unanswered_is_stored_again() {
    sweep(
        Target::Call(Call::Put),
        &[Fault::Error, Fault::ErrorAfter, Fault::Duplicate],
    )
    .await;
}

#[tokio::test]
async fn a_provider_that_fails_after_accepting_a_submit_is_not_paid_twice() {
    // A 500 before, a 500 after the submit was accepted, an accepted submit's answer lost.
    sweep(
        Target::Call(Call::Submit),
        &[Fault::Error, Fault::ErrorAfter, Fault::Drop],
    )
    .await;
    sweep(Target::Call(Call::Download), &[Fault::Error]).await;
}

#[tokio::test]
async fn every_write_delayed_under_racing_handlers_changes_nothing() {
    // Two runners take each message at once while one write at a time is slowed down.
    let calls = clean_calls().await;
    let n = count(&calls, Target::StoreWrites);
    for index in 0..n {
        let rig = Rig::new();
        rig.faults
            .inject(Target::StoreWrites, index, Fault::Delay(Duration::from_millis(5)));
        let id = rig.start().await;
        for _ in 0..300 {
            let batch = rig
                .queue
                .receive(16, VISIBILITY, Duration::ZERO)
                .await
                .expect("receive");
            if batch.is_empty() {
                if rig.store.execution(&id).await.unwrap().unwrap().status.is_terminal() {
                    break;
                }
                rig.clock.advance(ROUND);
                let _ = rig.engine.poll_due(100).await;
                continue;
            }
            for d in &batch {
                let (a, b) = tokio::join!(
                    process(rig.engine.as_ref(), rig.queue.as_ref(), d),
                    process(rig.engine.as_ref(), rig.queue.as_ref(), d)
                );
                let ((), ()) = (a, b);
            }
        }
        let status = rig.run(&id, &format!("delay at write #{index}")).await;
        assert_eq!(status, ExecutionStatus::Completed, "delay at write #{index}");
        let submits: Vec<u32> = rig
            .provider
            .submits()
            .into_iter()
            .filter(|(k, _)| k.execution_id == id)
            .map(|(_, n)| n)
            .collect();
        assert_eq!(submits, vec![1, 1], "delay at write #{index}");
        assert_eq!(
            rig.store.deliveries(&id).await.unwrap().len(),
            4,
            "delay at write #{index}"
        );
    }
}
