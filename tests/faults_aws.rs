//! Faults on purpose on the AWS adapters (DynamoDB, SQS, S3 on moto): the two-scene execution
//! of `tests/faults.rs`, on real time (SQS's visibility is moto's own clock), with short
//! leases and delays. Bounded: a sample of the store writes (not every one; the embedded
//! sweep covers each), DynamoDB throttling injected at the SDK's HTTP boundary on a sample of
//! requests, and every SQS message's ack lost once.

#[allow(dead_code)] // Each test binary uses part of it.
mod aws;

use std::collections::HashSet;
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
use serde_json::{json, Value};

use reelay_aws::{DynamoSettings, DynamoStore};
use reelay_core::clock::SystemClock;
use reelay_core::domain::ExecutionStatus;
use reelay_core::plan::{parse_value, PlanLimits};
use reelay_core::ports::{Clock, Queue, Store};
use reelay_core::secrets::Sealer;
use reelay_core::worker::process;
use reelay_core::{Engine, EngineSettings, Ports, Providers};
use reelay_testkit::faults::{Call, Fault, Faults, FaultyQueue, FaultyStore, Target};
use reelay_testkit::instant::{InstantMedia, InstantProvider, InstantScenes};

use aws::world::{AwsWorld, RETENTION};

const VISIBILITY: Duration = Duration::from_secs(2);

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
    fn new(world: &AwsWorld) -> Rig {
        let faults = Faults::new();
        let throttler = Throttler::default();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&world.config)
                .endpoint_url(&world.moto.url)
                .interceptor(SharedInterceptor::new(throttler.clone()))
                .build(),
        );
        let store = Arc::new(DynamoStore::from_client(
            dynamodb,
            DynamoSettings {
                table: world.table.clone(),
                endpoint_url: None,
                retention: RETENTION,
            },
        ));
        let raw_queue: Arc<dyn Queue> = Arc::new(world.job_queue());
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
                webhook_queue: Arc::new(world.webhook_queue()),
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
            plain: world.store(),
            queue,
            provider,
            throttler,
        }
    }

    async fn start(&self, tenant: &str) -> String {
        for _ in 0..5 {
            let request = parse_value(&plan(), self.engine.providers(), self.engine.settings().limits).expect("plan");
            match self.engine.start(tenant, request).await {
                Ok(execution) => return execution.id,
                Err(_) => {
                    let stored = self.plain.list_executions(tenant, None, None, 10).await.expect("list");
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
            "{label}: execution {id} never settled (fired {:?})",
            self.faults.fired()
        );
    }

    /// Runs one execution and checks its end: completed, each job submitted once, each
    /// webhook message made once.
    async fn check(&self, tenant: &str, label: &str) {
        let id = self.start(tenant).await;
        let status = self.run(&id, label).await;
        assert_eq!(status, ExecutionStatus::Completed, "{label}");
        let mut submits: Vec<(String, u32)> = self
            .provider
            .submits()
            .into_iter()
            .filter(|(k, _)| k.execution_id == id)
            .map(|(k, n)| (k.job_id, n))
            .collect();
        submits.sort();
        assert_eq!(submits, vec![("a".to_string(), 1), ("b".to_string(), 1)], "{label}");
        let mut about: Vec<Option<String>> = self
            .plain
            .deliveries(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.job_id)
            .collect();
        about.sort();
        assert_eq!(
            about,
            vec![None, Some("a".into()), Some("b".into()), Some("m".into())],
            "{label}"
        );
    }
}

/// Up to `n` indices spread over `0..total`, first and last included.
fn sample(total: u64, n: u64) -> Vec<u64> {
    let mut out: Vec<u64> = (0..n).map(|i| i * (total - 1) / (n - 1).max(1)).collect();
    out.dedup();
    out
}

#[tokio::test]
async fn a_sample_of_dynamodb_writes_failing_or_losing_their_answer_is_recovered() {
    let world = AwsWorld::start().await;
    let started = Instant::now();
    let clean = Rig::new(&world);
    clean.check("clean", "clean").await;
    let writes = clean.faults.count(Target::StoreWrites);
    let indices = sample(writes, 5);
    for (k, index) in indices.iter().enumerate() {
        for fault in [Fault::Error, Fault::ErrorAfter] {
            let rig = Rig::new(&world);
            rig.faults.inject(Target::StoreWrites, *index, fault);
            let tenant = format!("w{k}{fault:?}");
            rig.check(&tenant, &format!("write #{index} {fault:?}")).await;
            assert_eq!(rig.faults.fired().len(), 1, "write #{index} {fault:?} never fired");
        }
    }
    eprintln!(
        "dynamodb: writes {indices:?} of {writes} × [Error, ErrorAfter] in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_by_the_adapter_or_the_engine() {
    let world = AwsWorld::start().await;
    let started = Instant::now();
    let clean = Rig::new(&world);
    clean.check("clean", "clean").await;
    let requests = clean.throttler.state.lock().unwrap().attempts;
    // The idle loop's polls and sweeps add a varying number of requests at the end: the
    // sample is taken from the first half, which every run reaches.
    let indices = sample(requests / 2, 4);
    for (k, index) in indices.iter().enumerate() {
        for code in ["ProvisionedThroughputExceededException", "ThrottlingException"] {
            let rig = Rig::new(&world);
            {
                let mut state = rig.throttler.state.lock().unwrap();
                state.code = code;
                // Once (the SDK's retry absorbs it), or three times running (its retries are
                // used up: the adapter's error goes to the engine, and the queue retries).
                let burst = if k % 2 == 0 { 1 } else { 3 };
                state.throttle = (*index..*index + burst).collect();
            }
            rig.check(&format!("t{k}{code}"), &format!("request #{index} {code}"))
                .await;
            assert!(
                rig.throttler.state.lock().unwrap().fired >= 1,
                "request #{index}: never throttled"
            );
        }
    }
    eprintln!(
        "dynamodb throttling: requests {indices:?} of {requests} × 2 codes in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn sqs_redelivers_every_message_whose_ack_was_lost() {
    let world = AwsWorld::start().await;
    let started = Instant::now();
    let clean = Rig::new(&world);
    clean.check("clean", "clean").await;
    let acks = clean.faults.count(Target::Call(Call::Ack));
    for index in 0..acks {
        let rig = Rig::new(&world);
        rig.faults.inject(Target::Call(Call::Ack), index, Fault::Drop);
        rig.check(&format!("ack{index}"), &format!("ack #{index} lost")).await;
        assert_eq!(rig.faults.fired().len(), 1, "ack #{index} never lost");
    }
    eprintln!(
        "sqs: {acks} acks lost in turn in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
