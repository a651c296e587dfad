//! Faults on purpose on the AWS adapters (DynamoDB, SQS, S3 on moto): the two-scene execution
//! of `tests/faults.rs`, on real time (SQS's visibility is moto's own clock), with short
//! leases and delays. The same sweep as the embedded one, one fault per run, at every index a
//! clean run has: each DynamoDB write failing before it is applied, applied with its answer
//! lost, and applied twice; each job-queue send lost, failed, applied with its answer lost, and
//! duplicated; each SQS message's ack lost. DynamoDB throttling is injected at the SDK's HTTP
//! boundary on a sample of requests.
//!
//! A run mostly waits (visibility, leases, the quiet time before it is called settled), so
//! `CONCURRENT` runs go at once, each on a table and queues of its own (`AwsWorld::fresh_space`):
//! the engine's polls and sweeps scan the whole table and a runner drains the whole queue, so
//! rigs sharing them would handle each other's jobs.

#[allow(dead_code)] // Each test binary uses part of it.
mod aws;

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

use reelay_aws::DynamoStore;
use reelay_core::clock::SystemClock;
use reelay_core::domain::{ExecutionStatus, Job};
use reelay_core::plan::{parse_value, PlanLimits};
use reelay_core::ports::{Clock, Queue, Store};
use reelay_core::secrets::Sealer;
use reelay_core::worker::process;
use reelay_core::{Engine, EngineSettings, Ports, Providers};
use reelay_testkit::faults::{Call, Fault, Faults, FaultyQueue, FaultyStore, Target};
use reelay_testkit::instant::{InstantMedia, InstantProvider, InstantScenes};

use aws::world::AwsWorld;

const VISIBILITY: Duration = Duration::from_secs(2);

/// How many runs go at once. A run is ~6 s, mostly asleep; moto (one Python process, its
/// DynamoDB requests serialised) and the two cores are what more would crowd, and nextest runs
/// two of these tests at once, each on its own moto.
const CONCURRENT: usize = 10;

/// Answers chosen DynamoDB request attempts with a throttling error, as DynamoDB does: the
/// request is turned into one moto refuses (so nothing is applied) and its answer replaced.
#[derive(Debug, Clone, Default)]
struct Throttler {
    state: Arc<Mutex<ThrottleState>>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    attempts: u64,
    throttle: HashSet<u64>,
    code: &'static str,
    fired: u64,
}

#[derive(Debug, Clone)]
struct Throttled(bool);

impl Storable for Throttled {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Throttler {
    fn name(&self) -> &'static str {
        "Throttler"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut state = self.state.lock().unwrap();
        let n = state.attempts;
        state.attempts += 1;
        let hit = state.throttle.contains(&n);
        if hit {
            state.fired += 1;
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.InjectedThrottle");
        }
        cfg.interceptor_state().store_put(Throttled(hit));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Throttled>().is_some_and(|t| t.0) {
            let code = self.state.lock().unwrap().code;
            let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected"}}"#);
            let response = context.response_mut();
            *response.status_mut() = 400u16.try_into()?;
            response.headers_mut().remove("content-length");
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            *response.body_mut() = SdkBody::from(body);
        }
        Ok(())
    }
}

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

struct Rig {
    engine: Engine,
    faults: Arc<Faults>,
    /// The test's own reads, past the throttler and the faults.
    plain: DynamoStore,
    queue: Arc<FaultyQueue>,
    provider: Arc<InstantProvider>,
    throttler: Throttler,
}

impl Rig {
    /// An engine on a table and queues of its own on `world`'s moto.
    async fn new(world: &AwsWorld) -> Rig {
        let space = world.fresh_space().await;
        let faults = Faults::new();
        let throttler = Throttler::default();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&world.config)
                .endpoint_url(&world.moto.url)
                .interceptor(SharedInterceptor::new(throttler.clone()))
                .build(),
        );
        let store = Arc::new(world.store_on(dynamodb, &space.table));
        let raw_queue: Arc<dyn Queue> = Arc::new(world.job_queue_in(&space));
        let queue = Arc::new(FaultyQueue::new(raw_queue, faults.clone()));
        let provider = Arc::new(InstantProvider::new(Vec::new()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings = EngineSettings {
            lease: Duration::from_secs(2),
            retry_base: Duration::from_millis(500),
            poll_first: Duration::from_secs(1),
            stale_queued_after: Duration::from_secs(3),
            resend_after: Duration::from_secs(1),
            limits: PlanLimits {
                max_jobs: 100,
                max_body_bytes: usize::MAX,
            },
            ..EngineSettings::default()
        };
        let engine = Engine::new(
            Ports {
                store: Arc::new(FaultyStore::new(store.clone(), faults.clone())),
                queue: queue.clone(),
                webhook_queue: Arc::new(world.webhook_queue_in(&space)),
                sealer: Sealer::from_base64(&Sealer::generate_key()).unwrap(),
                blobs: Arc::new(world.blobs()),
                media: Arc::new(InstantMedia::default()),
                scenes: Arc::new(InstantScenes::default()),
                providers: Providers::new().with(provider.clone()),
                clock,
            },
            settings,
        );
        Rig {
            engine,
            faults,
            plain: world.store_in(&space),
            queue,
            provider,
            throttler,
        }
    }

    /// Submits the plan as a client would: on an error it looks for what was stored (a write
    /// applied whose answer was lost) before it submits again.
    async fn start(&self) -> String {
        for _ in 0..5 {
            let request = parse_value(&plan(), self.engine.providers(), self.engine.settings().limits).expect("plan");
            match self.engine.start(TENANT, request).await {
                Ok(execution) => return execution.id,
                Err(_) => {
                    let stored = self.plain.list_executions(TENANT, None, None, 10).await.expect("list");
                    if let Some(execution) = stored.first() {
                        return execution.id.clone();
                    }
                }
            }
        }
        panic!("the submission never went through");
    }

    /// Handles messages as the job runner does, with the timer between, until the execution
    /// has ended and a lease's worth of time brings nothing more.
    async fn run(&self, id: &str, label: &str) -> ExecutionStatus {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            let batch = self
                .queue
                .receive(10, VISIBILITY, Duration::ZERO)
                .await
                .unwrap_or_default();
            for d in &batch {
                process(&self.engine, self.queue.as_ref(), d).await;
            }
            if !batch.is_empty() {
                quiet_since = None;
                continue;
            }
            let status = self.plain.execution(id).await.ok().flatten().map(|e| e.status);
            let quiet = *quiet_since.get_or_insert_with(Instant::now);
            if status.is_some_and(|s| s.is_terminal()) && quiet.elapsed() > VISIBILITY + Duration::from_secs(1) {
                return status.unwrap();
            }
            let _ = self.engine.poll_due(100).await;
            let _ = self.engine.sweep_stale(100).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{label}: execution {id} never settled (fired {:?}); jobs: {}",
            self.faults.fired(),
            self.jobs(id).await
        );
    }

    /// Runs one execution and checks its end: completed, each job submitted once, each
    /// webhook message made once.
    async fn check(&self, label: &str) {
        let id = self.start().await;
        let status = self.run(&id, label).await;
        let mut submits: Vec<(String, u32)> = self
            .provider
            .submits()
            .into_iter()
            .filter(|(k, _)| k.execution_id == id)
            .map(|(k, n)| (k.job_id, n))
            .collect();
        submits.sort();
        let mut about: Vec<Option<String>> = self
            .plain
            .deliveries(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.job_id)
            .collect();
        about.sort();
        let expected_about = vec![None, Some("a".into()), Some("b".into()), Some("m".into())];
        if status != ExecutionStatus::Completed
            || submits != [("a".to_string(), 1), ("b".to_string(), 1)]
            || about != expected_about
        {
            panic!(
                "{label}: execution {id} {status:?}, submits {submits:?} (want a and b once), webhook \
                 messages about {about:?} (want {expected_about:?}), fired {:?}; jobs: {}",
                self.faults.fired(),
                self.jobs(&id).await
            );
        }
    }

    /// The execution's jobs in a line each, for a failure's message.
    async fn jobs(&self, id: &str) -> String {
        match self.plain.execution_with_jobs(id).await {
            Ok(Some((execution, jobs))) => {
                let lines: Vec<String> = jobs.iter().map(describe).collect();
                format!(
                    "execution {:?} open {} completed {}\n  {}",
                    execution.status,
                    execution.open_jobs,
                    execution.completed_jobs,
                    lines.join("\n  ")
                )
            }
            other => format!("{other:?}"),
        }
    }
}

fn describe(job: &Job) -> String {
    format!(
        "{}: {:?} attempts {} version {} released_by {:?} queued_at {:?} lease_until {:?} provider {} \
         output {} error {:?}",
        job.id(),
        job.status,
        job.attempts,
        job.version,
        job.released_by,
        job.queued_at,
        job.lease_until,
        job.provider.is_some(),
        job.output.is_some(),
        job.error
    )
}

/// Each rig has a table of its own: one tenant will do.
const TENANT: &str = "t";

/// Up to `n` indices spread over `0..total`, first and last included.
fn sample(total: u64, n: u64) -> Vec<u64> {
    let mut out: Vec<u64> = (0..n).map(|i| i * (total - 1) / (n - 1).max(1)).collect();
    out.dedup();
    out
}

/// Runs `run` on every case, `CONCURRENT` at a time. A failing run does not stop the others
/// (its panic is printed as it happens): the test fails at the end, naming every one.
async fn concurrently<C, F, Fut>(cases: Vec<(String, C)>, run: F)
where
    F: Fn(String, C) -> Fut,
    Fut: Future<Output = ()>,
{
    let failed: Vec<String> = futures::stream::iter(cases)
        .map(|(label, case)| {
            AssertUnwindSafe(run(label.clone(), case))
                .catch_unwind()
                .map(move |r| r.err().map(|_| label))
        })
        .buffer_unordered(CONCURRENT)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    assert!(failed.is_empty(), "{} runs failed: {failed:#?}", failed.len());
}

fn counted(target: Target, call: Call) -> bool {
    match target {
        Target::Call(t) => call == t,
        Target::StoreWrites => call.is_store_write(),
        Target::Any => true,
    }
}

/// Breaks the `index`-th call of `target` with each of `faults`, for every index a clean run
/// has, one fault per run; how many calls the clean run made.
async fn sweep(target: Target, faults: &[Fault]) -> u64 {
    let world = AwsWorld::start().await;
    let started = Instant::now();
    let clean = Rig::new(&world).await;
    clean.check("clean").await;
    let calls: Vec<Call> = clean.faults.log().into_iter().filter(|c| counted(target, *c)).collect();
    let n = calls.len() as u64;
    assert!(n > 0, "a clean run makes no {target:?}");
    let cases: Vec<(String, (u64, Fault))> = faults
        .iter()
        .flat_map(|fault| (0..n).map(move |index| (index, *fault)))
        .map(|(index, fault)| {
            let label = format!("{target:?} #{index} ({:?}) {fault:?}", calls[index as usize]);
            (label, (index, fault))
        })
        .collect();
    let runs = cases.len();
    let world = &world;
    concurrently(cases, |label, (index, fault)| async move {
        let rig = Rig::new(world).await;
        rig.faults.inject(target, index, fault);
        rig.check(&label).await;
        assert_eq!(rig.faults.fired().len(), 1, "{label}: never fired");
    })
    .await;
    eprintln!(
        "{target:?}: {n} calls × {faults:?} = {runs} runs, {CONCURRENT} at a time, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    n
}

#[tokio::test]
async fn every_dynamodb_write_failing_before_it_is_applied_is_recovered() {
    let n = sweep(Target::StoreWrites, &[Fault::Error]).await;
    assert!(n >= 10, "only {n} writes in a clean run");
}

#[tokio::test]
async fn every_dynamodb_write_applied_with_its_answer_lost_is_recovered() {
    sweep(Target::StoreWrites, &[Fault::ErrorAfter]).await;
}

/// `Stale` is left to the embedded sweep: the wrapper answers it without reaching DynamoDB, so
/// it would test the engine alone. A repeated write does reach it: its condition must refuse
/// the second, and a repeated edge release must not release twice.
#[tokio::test]
async fn every_dynamodb_write_repeated_is_recovered() {
    sweep(Target::StoreWrites, &[Fault::Duplicate]).await;
}

#[tokio::test]
async fn every_sqs_job_send_lost_failed_or_duplicated_is_recovered() {
    sweep(
        Target::Call(Call::Send),
        &[Fault::Drop, Fault::Error, Fault::ErrorAfter, Fault::Duplicate],
    )
    .await;
}

#[tokio::test]
async fn sqs_redelivers_every_message_whose_ack_was_lost() {
    sweep(Target::Call(Call::Ack), &[Fault::Drop]).await;
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_by_the_adapter_or_the_engine() {
    let world = AwsWorld::start().await;
    let started = Instant::now();
    let clean = Rig::new(&world).await;
    clean.check("clean").await;
    let requests = clean.throttler.state.lock().unwrap().attempts;
    // The idle loop's polls and sweeps add a varying number of requests at the end: the
    // sample is taken from the first half, which every run reaches.
    let indices = sample(requests / 2, 4);
    let cases: Vec<(String, (usize, u64, &str))> = indices
        .iter()
        .enumerate()
        .flat_map(|(k, index)| {
            ["ProvisionedThroughputExceededException", "ThrottlingException"]
                .map(|code| (format!("request #{index} {code}"), (k, *index, code)))
        })
        .collect();
    let runs = cases.len();
    let world = &world;
    concurrently(cases, |label, (k, index, code)| async move {
        let rig = Rig::new(world).await;
        {
            let mut state = rig.throttler.state.lock().unwrap();
            state.code = code;
            // Once (the SDK's retry absorbs it), or three times running (its retries are
            // used up: the adapter's error goes to the engine, and the queue retries).
            let burst = if k % 2 == 0 { 1 } else { 3 };
            state.throttle = (index..index + burst).collect();
        }
        rig.check(&label).await;
        assert!(
            rig.throttler.state.lock().unwrap().fired >= 1,
            "{label}: never throttled"
        );
    })
    .await;
    eprintln!(
        "dynamodb throttling: requests {indices:?} of {requests} × 2 codes = {runs} runs, {CONCURRENT} at \
         a time, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
