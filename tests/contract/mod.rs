//! The contract of the `Store`, `Queue` and `Blobs` ports: what every adapter (the embedded
//! SQLite/file one, the AWS one) must do, written once and run against each.
//!
//! # Shape
//!
//! * [`Backend`] is what a binding implements: fresh, isolated adapters of the three ports,
//!   plus the few things a test needs around them (moving the queue's clock, restarting,
//!   reading a blob URL, listing what the blob store holds).
//! * Every case is a `pub async fn case_name<B: Backend>(backend: B)`, independently callable,
//!   named for what it proves.
//! * [`contract_tests!`] stamps one `#[tokio::test]` per case for a binding:
//!
//!   ```ignore
//!   contract_tests!(sqlite, LocalBackend::new, [store, queue, queue_strict, blobs]);
//!   contract_tests!(aws, AwsBackend::from_env, [store, queue, blobs]);
//!   ```
//!
//!   `$make` is anything callable as `$make().await` that returns a fresh `Backend`: one
//!   per test, so cases never see each other's data. The groups: `store`, `queue`, `blobs`
//!   (what the engine relies on) and `queue_strict` (exact ordering and stale-receipt
//!   behaviour the SQLite queue promises but SQS standard queues only do best-effort).
//!
//! Every delay or visibility timeout the suite waits out is [`SHORT`] and it waits it out
//! with [`Backend::advance`], so a real-time backend (SQS) only sleeps a couple of seconds
//! per case; [`LONG`] is never waited out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use reelay_core::domain::{
    Completion, Execution, ExecutionStatus, Job, JobError, JobKey, JobOutput, JobStatus, Millis, ProviderCall,
    StoredWebhook,
};
use reelay_core::plan::{JobSpec, MediaKind, MediaRef, Operation, Params, ProviderParams};
use reelay_core::ports::{
    Admission, BlobError, Blobs, ByteStream, Delivery, EdgeRelease, Message, Queue, Store, StoreError, StoredBlob,
    Write,
};

/// What a binding provides. Each value is one isolated world: an empty store, an empty
/// queue and an empty blob store that no other test touches.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn store(&self) -> Arc<dyn Store>;
    fn queue(&self) -> Arc<dyn Queue>;
    fn blobs(&self) -> Arc<dyn Blobs>;
    /// Moves the queue's time on by `by` (a manual clock locally; a real sleep on SQS, with
    /// whatever slack its clock needs).
    async fn advance(&self, by: Duration);
    /// A restart: drops every client and connects again to the same state. The suite drops
    /// its own handles first.
    async fn reopen(&mut self);
    /// The bytes a blob URL serves, checking the URL is of the kind the adapter promises.
    async fn read_url(&self, url: &str) -> Vec<u8>;
    /// Everything the blob store holds, partial uploads and temporary files included, as
    /// keys relative to its root (`../x` for anything that escaped it).
    async fn blob_listing(&self) -> Vec<String>;
    /// How long a receive waits before the suite believes nothing is visible: nothing
    /// locally; about a second on SQS, whose short polls sample only some servers.
    fn empty_wait(&self) -> Duration {
        Duration::ZERO
    }
}

/// Stamps one `#[tokio::test]` per case of the chosen groups, in a module named `$binding`.
#[macro_export]
macro_rules! contract_tests {
    ($binding:ident, $make:expr, [$($group:ident),+ $(,)?]) => {
        mod $binding {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::contract_tests!(@group $group, $make); )+
        }
    };
    (@group store, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            store_create_then_read_back,
            store_create_twice_is_already_exists,
            store_update_job_is_conditional_on_version,
            store_concurrent_job_updates_one_wins_and_counts_once,
            store_counters_move_with_job_writes,
            store_release_edge_is_idempotent_per_edge,
            store_release_edge_queues_child_after_all_parents_in_any_order,
            store_release_edge_leaves_skipped_child_alone,
            store_concurrent_releases_queue_child_exactly_once,
            store_update_execution_is_conditional_on_version,
            store_update_execution_keeps_live_counters,
            store_due_polls_lists_due_provider_jobs_soonest_first,
            store_stale_queued_lists_only_queued_jobs_before_cutoff,
            store_survives_reopen,
        );
    };
    (@group queue, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            queue_send_receive_ack,
            queue_receive_returns_at_most_max,
            queue_unacked_message_returns_after_visibility_timeout,
            queue_retry_later_hides_message_for_delay,
            queue_send_with_delay_hides_message_until_due,
            queue_receive_wait_returns_message_sent_meanwhile,
            queue_receive_wait_sees_delayed_message_come_due,
            queue_concurrent_receivers_never_share_a_message,
            queue_survives_reopen,
        );
    };
    (@group queue_strict, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            queue_stale_receipt_neither_acks_nor_retries,
            queue_delivers_in_order_of_visibility,
        );
    };
    (@group blobs, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            blobs_put_multi_chunk_stream_roundtrips,
            blobs_put_overwrites_key,
            blobs_failed_stream_leaves_nothing_behind,
            blobs_refuse_keys_that_escape,
            blobs_get_missing_is_not_found,
            blobs_survive_reopen,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contract::$case(($make)().await).await;
            }
        )+
    };
}

/// A delay or visibility timeout the suite waits out (with `Backend::advance`).
pub const SHORT: Duration = Duration::from_secs(2);
/// A visibility timeout the suite never waits out.
pub const LONG: Duration = Duration::from_secs(600);
/// How long a receive that expects a message may wait for it.
const SOME_WAIT: Duration = Duration::from_secs(5);
/// A base time for the store cases (they pass time explicitly).
const T0: Millis = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn spec(id: &str, depends_on: &[&str]) -> JobSpec {
    JobSpec {
        id: id.to_string(),
        operation: Operation::Generate,
        params: Params::Provider(ProviderParams {
            provider: "fake".into(),
            model_id: "fake-video".into(),
            prompt: Some(format!("prompt of {id}")),
            duration: Some(5.0),
            resolution: None,
            aspect_ratio: None,
            seed: Some(7),
            inputs: depends_on
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("input{i}"), MediaRef::Job(p.to_string())))
                .collect(),
            unified: true,
            options: Default::default(),
            api_key: None,
        }),
        depends_on: depends_on.iter().map(|p| p.to_string()).collect(),
        send_job_webhook: false,
    }
}

/// An execution and its jobs as the engine creates them: roots queued, the rest waiting,
/// children wired, counters from the statuses.
fn plan(execution_id: &str, jobs: &[(&str, &[&str])]) -> (Execution, Vec<Job>) {
    let specs: Vec<_> = jobs.iter().map(|(id, deps)| spec(id, deps)).collect();
    let out = Job::for_plan(execution_id, &specs, T0);
    let execution = execution_of(execution_id, &out);
    (execution, out)
}

/// The execution record matching `jobs` (counters from their statuses).
fn execution_of(execution_id: &str, jobs: &[Job]) -> Execution {
    Execution {
        id: execution_id.to_string(),
        tenant_id: "tenant-1".into(),
        status: ExecutionStatus::Pending,
        created_at: T0,
        started_at: None,
        completed_at: None,
        total_jobs: jobs.len() as u32,
        open_jobs: jobs.iter().filter(|j| !j.status.is_terminal()).count() as u32,
        completed_jobs: jobs.iter().filter(|j| j.status == JobStatus::Completed).count() as u32,
        final_job: jobs.last().map(|j| j.id().to_string()).unwrap_or_default(),
        result: None,
        outputs: BTreeMap::new(),
        error: None,
        webhook: Some(StoredWebhook {
            url: "https://example.com/hook".into(),
            secret: None,
        }),
        base_execution_id: None,
        provider_keys: BTreeMap::new(),
        cancel_requested_at: None,
        version: 0,
    }
}

fn output(key: &str) -> JobOutput {
    JobOutput {
        url: format!("https://blobs.example.com/{key}"),
        key: key.to_string(),
        kind: MediaKind::Video,
        content_type: "video/mp4".into(),
        size_bytes: 1234,
        duration: Some(5.0),
        width: Some(1080),
        height: Some(1920),
        aspect_ratio: Some("9:16".into()),
    }
}

fn provider_call(next_poll_at: Option<Millis>) -> ProviderCall {
    ProviderCall {
        provider: "fake".into(),
        model_id: "fake-video".into(),
        token: unique("token"),
        provider_job_id: Some(unique("pj")),
        completion: Completion::Polling,
        submitted_at: Some(T0),
        polls: 0,
        next_poll_at,
        outcome: None,
    }
}

fn key(execution_id: &str, job_id: &str) -> JobKey {
    JobKey {
        execution_id: execution_id.to_string(),
        job_id: job_id.to_string(),
    }
}

fn by_id(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
    jobs
}

fn key_set(keys: &[JobKey]) -> BTreeSet<(String, String)> {
    keys.iter()
        .map(|k| (k.execution_id.clone(), k.job_id.clone()))
        .collect()
}

fn applied<T>(write: Write<T>, what: &str) -> T {
    match write {
        Write::Applied(t) => t,
        Write::Stale => panic!("{what}: expected Applied, got Stale"),
    }
}

fn assert_stale<T: std::fmt::Debug>(write: Write<T>, what: &str) {
    assert!(matches!(write, Write::Stale), "{what}: expected Stale, got {write:?}");
}

async fn job_of(store: &dyn Store, k: &JobKey) -> Job {
    store
        .job(k)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {k:?} missing"))
}

async fn execution_of_store(store: &dyn Store, id: &str) -> Execution {
    store
        .execution(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("execution {id} missing"))
}

/// Reads the job, lets `change` edit a copy, writes it back; the write must apply.
async fn change(store: &dyn Store, k: &JobKey, change: impl FnOnce(&mut Job)) -> Job {
    let prev = job_of(store, k).await;
    let mut next = prev.clone();
    change(&mut next);
    let stored = applied(
        store.update_job(&prev, &next).await.unwrap(),
        &format!("update of {k:?}"),
    );
    assert_eq!(stored.version, prev.version + 1, "a job write bumps the version by one");
    stored
}

/// `(status, started_at, open_jobs, completed_jobs)`, checked against the jobs read in the
/// same call: the counters must always agree with the jobs.
async fn counters(store: &dyn Store, id: &str) -> (ExecutionStatus, Option<Millis>, u32, u32) {
    let (execution, jobs) = store.execution_with_jobs(id).await.unwrap().expect("execution");
    let open = jobs.iter().filter(|j| !j.status.is_terminal()).count() as u32;
    let completed = jobs.iter().filter(|j| j.status == JobStatus::Completed).count() as u32;
    assert_eq!(
        (execution.open_jobs, execution.completed_jobs),
        (open, completed),
        "counters drifted from the jobs"
    );
    (
        execution.status,
        execution.started_at,
        execution.open_jobs,
        execution.completed_jobs,
    )
}

/// A release report for a child that is not queued.
fn release(removed: bool, status: JobStatus, released_by: Option<&str>) -> EdgeRelease {
    release_at(removed, status, released_by, None)
}

fn release_at(removed: bool, status: JobStatus, released_by: Option<&str>, queued_at: Option<i64>) -> EdgeRelease {
    EdgeRelease {
        removed,
        status,
        released_by: released_by.map(str::to_string),
        queued_at,
    }
}

fn msg(job_id: &str) -> Message {
    Message::Job(key("ex-queue", job_id))
}

fn job_id_of(d: &Delivery) -> String {
    match &d.message {
        Message::Job(k) => k.job_id.clone(),
        other => panic!("the suite sends job messages only, got {other:?}"),
    }
}

fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(job_id_of).collect()
}

/// Receives exactly one message (it must be there).
async fn receive_one(queue: &dyn Queue, visibility: Duration) -> Delivery {
    let mut got = queue.receive(1, visibility, SOME_WAIT).await.unwrap();
    assert_eq!(got.len(), 1, "expected one message, got {:?}", ids(&got));
    got.pop().unwrap()
}

/// Nothing must be visible.
async fn receive_none(backend: &impl Backend, queue: &dyn Queue) {
    let got = queue.receive(10, LONG, backend.empty_wait()).await.unwrap();
    assert!(got.is_empty(), "expected no visible message, got {:?}", ids(&got));
}

/// Receives until `n` messages have arrived (each receive must respect `max`).
async fn receive_n(queue: &dyn Queue, n: usize, max: usize, visibility: Duration) -> Vec<Delivery> {
    let mut all = Vec::new();
    for _ in 0..(n * 4 + 4) {
        if all.len() >= n {
            break;
        }
        let got = queue.receive(max, visibility, SOME_WAIT).await.unwrap();
        assert!(got.len() <= max, "receive({max}) returned {} messages", got.len());
        assert!(!got.is_empty(), "expected more messages after {:?}", ids(&all));
        all.extend(got);
    }
    assert_eq!(all.len(), n, "received {:?}", ids(&all));
    all
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn read_all(body: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("blob stream chunk"));
    }
    out
}

fn stream_of(chunks: Vec<Result<Bytes, std::io::Error>>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks))
}

fn bytes_stream(data: &[u8]) -> ByteStream {
    stream_of(vec![Ok(Bytes::copy_from_slice(data))])
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

/// What `create_execution` wrote is what every read returns, per execution.
pub async fn store_create_then_read_back<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let (mut ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
    ex.base_execution_id = Some("base-1".into());
    // Another execution with a job of the same id, different content.
    let (other, mut other_jobs) = plan(&unique("ex"), &[("a", &[]), ("z", &["a"])]);
    other_jobs[0].attempts = 3;
    other_jobs[0].spec.params = spec("a", &["nope"]).params;
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    store
        .create_execution(&other, &other_jobs, Admission::default())
        .await
        .unwrap();

    assert_eq!(store.execution(&ex.id).await.unwrap().as_ref(), Some(&ex));
    assert_eq!(store.execution(&other.id).await.unwrap().as_ref(), Some(&other));
    let (got, got_jobs) = store
        .execution_with_jobs(&ex.id)
        .await
        .unwrap()
        .expect("execution_with_jobs");
    assert_eq!(got, ex);
    assert_eq!(by_id(got_jobs), by_id(jobs.clone()), "exactly this execution's jobs");
    let (_, got_other_jobs) = store.execution_with_jobs(&other.id).await.unwrap().unwrap();
    assert_eq!(by_id(got_other_jobs), by_id(other_jobs.clone()));

    for job in jobs.iter().chain(&other_jobs) {
        assert_eq!(store.job(&job.key()).await.unwrap().as_ref(), Some(job));
    }
    let wanted = ["c".to_string(), "missing".to_string(), "a".to_string()];
    let got = store.jobs(&ex.id, &wanted).await.unwrap();
    assert_eq!(
        by_id(got),
        vec![jobs[0].clone(), jobs[2].clone()],
        "jobs() skips missing ids"
    );
    assert!(
        store.jobs(&ex.id, &["z".to_string()]).await.unwrap().is_empty(),
        "jobs() must not reach into another execution"
    );
    assert!(store.jobs(&ex.id, &[]).await.unwrap().is_empty());

    assert!(store.execution("no-such-execution").await.unwrap().is_none());
    assert!(store.execution_with_jobs("no-such-execution").await.unwrap().is_none());
    assert!(store.job(&key(&ex.id, "missing")).await.unwrap().is_none());
    assert!(store.job(&key("no-such-execution", "a")).await.unwrap().is_none());
}

/// An id is created once; a second create fails and writes nothing.
pub async fn store_create_twice_is_already_exists<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &["a"])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();

    let (_, mut again_jobs) = plan(&ex.id, &[("x", &[]), ("a", &[])]);
    again_jobs[1].attempts = 9;
    let mut again = execution_of(&ex.id, &again_jobs);
    again.tenant_id = "tenant-2".into();
    match store.create_execution(&again, &again_jobs, Admission::default()).await {
        Err(StoreError::AlreadyExists(id)) => assert_eq!(id, ex.id),
        other => panic!("second create: expected AlreadyExists, got {other:?}"),
    }
    let (got, got_jobs) = store.execution_with_jobs(&ex.id).await.unwrap().unwrap();
    assert_eq!(got, ex, "the first execution is untouched");
    assert_eq!(by_id(got_jobs), by_id(jobs), "no job of the refused create was written");
}

/// `update_job` writes only over the version it read, and bumps it.
pub async fn store_update_job_is_conditional_on_version<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &["a"])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let k = key(&ex.id, "a");
    let v0 = job_of(store, &k).await;

    let mut next = v0.clone();
    next.status = JobStatus::Running;
    next.attempts = 1;
    next.started_at = Some(T0 + 10);
    next.lease_until = Some(T0 + 60_000);
    next.provider = Some(provider_call(None));
    let v1 = applied(store.update_job(&v0, &next).await.unwrap(), "first write");
    let mut expected = next.clone();
    expected.version = v0.version + 1;
    assert_eq!(v1, expected, "Applied returns the record as stored, version + 1");
    assert_eq!(job_of(store, &k).await, v1);

    // A writer still holding v0 loses, and changes nothing.
    let mut late = v0.clone();
    late.status = JobStatus::Failed;
    late.error = Some(JobError {
        code: "late".into(),
        message: "should not land".into(),
    });
    assert_stale(
        store.update_job(&v0, &late).await.unwrap(),
        "write from a stale version",
    );
    assert_eq!(job_of(store, &k).await, v1, "a stale write changes nothing");

    // From the current version it applies again.
    let mut next = v1.clone();
    next.status = JobStatus::Completed;
    next.output = Some(output("a.mp4"));
    let v2 = applied(store.update_job(&v1, &next).await.unwrap(), "second write");
    assert_eq!(v2.version, v1.version + 1);
    assert_eq!(job_of(store, &k).await, v2);
    assert_stale(
        store.update_job(&v1, &next).await.unwrap(),
        "replaying the second write",
    );
}

/// Two writers from the same version: exactly one applies, and only its counters move.
pub async fn store_concurrent_job_updates_one_wins_and_counts_once<B: Backend>(backend: B) {
    const ROUNDS: usize = 50;
    let store = backend.store();
    let ids: Vec<String> = (0..ROUNDS).map(|i| format!("j{i:02}")).collect();
    let specs: Vec<(&str, &[&str])> = ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    let (ex, mut jobs) = plan(&unique("ex"), &specs);
    for job in &mut jobs {
        job.status = JobStatus::Running;
        job.started_at = Some(T0);
    }
    let ex = execution_of(&ex.id, &jobs);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();

    let mut completed_wins = 0;
    for (round, id) in ids.iter().enumerate() {
        let prev = job_of(store.as_ref(), &key(&ex.id, id)).await;
        let writers: Vec<_> = [JobStatus::Completed, JobStatus::Failed]
            .into_iter()
            .map(|status| {
                let store = store.clone();
                let prev = prev.clone();
                let mut next = prev.clone();
                next.status = status;
                next.attempts = round as u32 + 1;
                next.completed_at = Some(T0 + round as i64);
                tokio::spawn(async move { store.update_job(&prev, &next).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for writer in writers {
            if let Write::Applied(job) = writer.await.unwrap() {
                winners.push(job);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of two racing writes applies"
        );
        let winner = winners.pop().unwrap();
        assert_eq!(winner.version, prev.version + 1);
        assert_eq!(job_of(store.as_ref(), &key(&ex.id, id)).await, winner, "round {round}");
        completed_wins += usize::from(winner.status == JobStatus::Completed);
    }
    let (_, _, open, completed) = counters(store.as_ref(), &ex.id).await;
    assert_eq!((open, completed), (0, completed_wins as u32), "each job counted once");
}

/// Counters move with each job write, by `CounterDelta::between(prev, next)`.
pub async fn store_counters_move_with_job_writes<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(
        &unique("ex"),
        &[("a", &[]), ("b", &[]), ("c", &[]), ("d", &["a"]), ("e", &["a"])],
    );
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let k = |id: &str| key(&ex.id, id);
    assert_eq!(counters(store, &ex.id).await, (ExecutionStatus::Pending, None, 5, 0));

    // The first job to run starts the execution.
    change(store, &k("a"), |j| {
        j.status = Running;
        j.started_at = Some(T0 + 100);
    })
    .await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 5, 0)
    );
    // Later starts keep the first start time.
    let b_queued = job_of(store, &k("b")).await;
    change(store, &k("b"), |j| {
        j.status = Running;
        j.started_at = Some(T0 + 200);
    })
    .await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 5, 0)
    );

    change(store, &k("a"), |j| {
        j.status = Completed;
        j.output = Some(output("a.mp4"));
    })
    .await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 4, 1)
    );

    // A stale write moves nothing.
    let mut late = b_queued.clone();
    late.status = Completed;
    assert_stale(store.update_job(&b_queued, &late).await.unwrap(), "stale completion");
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 4, 1)
    );
    assert_eq!(job_of(store, &k("b")).await.status, Running);

    // Failed, cancelled, skipped close a job without completing it.
    change(store, &k("b"), |j| j.status = Failed).await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 3, 1)
    );
    change(store, &k("c"), |j| j.status = Cancelled).await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 2, 1)
    );
    change(store, &k("d"), |j| j.status = Skipped).await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 1, 1)
    );

    // Terminal → terminal rewrites and open → open moves leave the counters alone.
    change(store, &k("a"), |j| j.output = Some(output("a2.mp4"))).await;
    change(store, &k("e"), |j| {
        j.status = Queued;
        j.queued_at = Some(T0 + 300);
    })
    .await;
    change(store, &k("e"), |j| {
        j.status = Running;
        j.started_at = Some(T0 + 400);
    })
    .await;
    assert_eq!(
        counters(store, &ex.id).await,
        (ExecutionStatus::Processing, Some(T0 + 100), 1, 1)
    );

    change(store, &k("e"), |j| j.status = Completed).await;
    let execution = execution_of_store(store, &ex.id).await;
    assert_eq!((execution.open_jobs, execution.completed_jobs), (0, 2));
    assert_eq!(execution.total_jobs, 5, "job writes never touch the total");
}

/// Releasing an edge twice counts once.
pub async fn store_release_edge_is_idempotent_per_edge<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let c = key(&ex.id, "c");
    let waiting = job_of(store, &c).await;

    assert_eq!(
        store.release_edge(&c, "a", T0 + 10).await.unwrap(),
        release(true, Waiting, None)
    );
    assert_eq!(
        store.release_edge(&c, "a", T0 + 20).await.unwrap(),
        release(false, Waiting, None),
        "a repeat removes nothing"
    );
    let still = job_of(store, &c).await;
    assert_eq!(still.status, Waiting, "a released twice must not count for b");
    assert_eq!(still.queued_at, None);

    assert_eq!(
        store.release_edge(&c, "b", T0 + 30).await.unwrap(),
        release_at(true, Queued, Some("b"), Some(T0 + 30))
    );
    let queued = job_of(store, &c).await;
    assert_eq!(queued.status, Queued);
    assert_eq!(queued.released_by.as_deref(), Some("b"));
    assert_eq!(queued.queued_at, Some(T0 + 30));
    assert!(queued.version > waiting.version, "queueing the child bumps its version");
    let mut late = waiting.clone();
    late.status = Skipped;
    assert_stale(
        store.update_job(&waiting, &late).await.unwrap(),
        "a write from the child's pre-release version",
    );

    // Repeats report the child as it stands and change nothing.
    assert_eq!(
        store.release_edge(&c, "b", T0 + 40).await.unwrap(),
        release_at(false, Queued, Some("b"), Some(T0 + 30))
    );
    assert_eq!(
        store.release_edge(&c, "a", T0 + 50).await.unwrap(),
        release_at(false, Queued, Some("b"), Some(T0 + 30))
    );
    assert_eq!(job_of(store, &c).await, queued);
    assert_eq!(counters(store, &ex.id).await.2, 3, "releases move no counter");
}

/// A child of three parents is queued by whichever parent releases last, in any order.
pub async fn store_release_edge_queues_child_after_all_parents_in_any_order<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let orders = [
        ["p1", "p2", "p3"],
        ["p1", "p3", "p2"],
        ["p2", "p1", "p3"],
        ["p2", "p3", "p1"],
        ["p3", "p1", "p2"],
        ["p3", "p2", "p1"],
    ];
    for order in orders {
        let (ex, jobs) = plan(
            &unique("ex"),
            &[("p1", &[]), ("p2", &[]), ("p3", &[]), ("child", &["p1", "p2", "p3"])],
        );
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
        let child = key(&ex.id, "child");
        for (i, parent) in order.iter().enumerate() {
            let now = T0 + 100 * (i as i64 + 1);
            let got = store.release_edge(&child, parent, now).await.unwrap();
            if i < 2 {
                assert_eq!(got, release(true, Waiting, None), "order {order:?}, release {i}");
                assert_eq!(job_of(store, &child).await.status, Waiting, "order {order:?}");
            } else {
                assert_eq!(
                    got,
                    release_at(true, Queued, Some(parent), Some(now)),
                    "order {order:?}"
                );
            }
        }
        let last = order[2];
        let job = job_of(store, &child).await;
        assert_eq!(job.status, Queued, "order {order:?}");
        assert_eq!(job.released_by.as_deref(), Some(last));
        assert_eq!(job.queued_at, Some(T0 + 300));
        // The last parent's retry learns it released the child (and re-sends its message);
        // the others learn someone else did.
        assert_eq!(
            store.release_edge(&child, last, T0 + 900).await.unwrap(),
            release_at(false, Queued, Some(last), Some(T0 + 300))
        );
        assert_eq!(
            store.release_edge(&child, order[0], T0 + 900).await.unwrap(),
            release_at(false, Queued, Some(last), Some(T0 + 300))
        );
        assert_eq!(job_of(store, &child).await, job, "repeats change nothing");
    }
}

/// A child already skipped (its sub-DAG was cut) is never queued by its parents' releases.
pub async fn store_release_edge_leaves_skipped_child_alone<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let c = key(&ex.id, "c");
    let skipped = change(store, &c, |j| j.status = Skipped).await;
    let before = counters(store, &ex.id).await;

    assert_eq!(
        store.release_edge(&c, "a", T0 + 10).await.unwrap(),
        release(true, Skipped, None)
    );
    assert_eq!(
        store.release_edge(&c, "b", T0 + 20).await.unwrap(),
        release(true, Skipped, None)
    );
    assert_eq!(
        store.release_edge(&c, "b", T0 + 30).await.unwrap(),
        release(false, Skipped, None)
    );
    assert_eq!(job_of(store, &c).await, skipped, "the skipped child is untouched");
    assert_eq!(counters(store, &ex.id).await, before);
    assert!(store
        .stale_queued(T0 + 1_000_000, 100)
        .await
        .unwrap()
        .iter()
        .all(|k| k.job_id != "c"));
}

/// Many parents released at once (each twice): the child is queued exactly once.
pub async fn store_concurrent_releases_queue_child_exactly_once<B: Backend>(backend: B) {
    const PARENTS: usize = 200;
    let store = backend.store();
    let parents: Vec<String> = (0..PARENTS).map(|i| format!("p{i:03}")).collect();
    let parent_refs: Vec<&str> = parents.iter().map(String::as_str).collect();
    let mut specs: Vec<(&str, &[&str])> = parent_refs.iter().map(|p| (*p, &[][..])).collect();
    specs.push(("child", &parent_refs));
    let (ex, jobs) = plan(&unique("ex"), &specs);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let child = key(&ex.id, "child");

    let tasks: Vec<_> = parents
        .iter()
        .chain(&parents)
        .enumerate()
        .map(|(i, parent)| {
            let store = store.clone();
            let child = child.clone();
            let parent = parent.clone();
            tokio::spawn(async move {
                let got = store.release_edge(&child, &parent, T0 + i as i64).await.unwrap();
                (parent, got)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }

    let removed: Vec<&String> = results.iter().filter(|(_, r)| r.removed).map(|(p, _)| p).collect();
    assert_eq!(removed.len(), PARENTS, "each edge is removed exactly once");
    assert_eq!(removed.iter().collect::<HashSet<_>>().len(), PARENTS);
    let winners: Vec<&String> = results
        .iter()
        .filter(|(p, r)| r.removed && r.status == JobStatus::Queued && r.released_by.as_ref() == Some(p))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one release queues the child: {winners:?}");
    let winner = winners[0].clone();
    for (parent, r) in &results {
        if r.removed && parent != &winner {
            assert_eq!(r.status, JobStatus::Waiting, "{parent} removed an edge before the last");
        }
        if r.status == JobStatus::Queued {
            assert_eq!(r.released_by.as_ref(), Some(&winner));
        }
    }
    let job = job_of(store.as_ref(), &child).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.released_by, Some(winner));
}

/// `update_execution` writes only over the version it read.
pub async fn store_update_execution_is_conditional_on_version<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    let v0 = execution_of_store(store, &ex.id).await;

    let mut next = v0.clone();
    next.status = ExecutionStatus::Cancelled;
    next.completed_at = Some(T0 + 500);
    next.outputs.insert("a".into(), output("a.mp4"));
    next.result = Some(output("a.mp4"));
    let v1 = applied(store.update_execution(&v0, &next).await.unwrap(), "first write");
    let mut expected = next.clone();
    expected.version = v0.version + 1;
    assert_eq!(v1, expected, "Applied returns the record as stored, version + 1");
    assert_eq!(execution_of_store(store, &ex.id).await, v1);

    let mut late = v0.clone();
    late.status = ExecutionStatus::Failed;
    assert_stale(
        store.update_execution(&v0, &late).await.unwrap(),
        "write from a stale version",
    );
    assert_eq!(
        execution_of_store(store, &ex.id).await,
        v1,
        "a stale write changes nothing"
    );
}

/// Counters moved by job writes survive an execution write made from an older copy.
pub async fn store_update_execution_keeps_live_counters<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &["a"]), ("c", &["a"])]);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    change(store, &key(&ex.id, "a"), |j| {
        j.status = Running;
        j.started_at = Some(T0 + 1);
    })
    .await;
    let read = execution_of_store(store, &ex.id).await;
    assert_eq!((read.open_jobs, read.completed_jobs), (3, 0));

    // Job writes after the read: only counters move.
    change(store, &key(&ex.id, "a"), |j| j.status = Completed).await;
    change(store, &key(&ex.id, "c"), |j| j.status = Skipped).await;

    let mut next = read.clone();
    next.outputs.insert("a".into(), output("a.mp4"));
    let written = applied(
        store.update_execution(&read, &next).await.unwrap(),
        "an execution write after counter moves (they do not bump its version)",
    );
    let live = execution_of_store(store, &ex.id).await;
    assert_eq!(
        (live.open_jobs, live.completed_jobs),
        (1, 1),
        "the write kept the live counters"
    );
    assert_eq!(live.outputs, next.outputs, "and applied its own change");
    assert_eq!(live.status, ExecutionStatus::Processing);
    assert_eq!(live.started_at, Some(T0 + 1));
    assert_eq!(
        written, live,
        "Applied returns the record as stored, live counters included"
    );
    assert_eq!(counters(store, &ex.id).await.2, 1);
}

/// `due_polls`: jobs awaiting a provider whose poll is due, soonest first, at most `limit`.
pub async fn store_due_polls_lists_due_provider_jobs_soonest_first<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, mut jobs) = plan(
        &unique("ex"),
        &[
            ("p1", &[]),
            ("p2", &[]),
            ("p3", &[]),
            ("p4", &[]),
            ("r", &[]),
            ("n", &[]),
            ("w", &[]),
        ],
    );
    let setup = [
        ("p1", AwaitingProvider, Some(T0 + 300)),
        ("p2", AwaitingProvider, Some(T0 + 100)),
        ("p3", AwaitingProvider, Some(T0 + 200)),
        ("p4", AwaitingProvider, Some(T0 + 1000)),
        ("r", Running, Some(T0 + 50)),
        ("n", AwaitingProvider, None),
    ];
    for (id, status, next_poll_at) in setup {
        let job = jobs.iter_mut().find(|j| j.id() == id).unwrap();
        job.status = status;
        job.started_at = Some(T0);
        job.provider = Some(provider_call(next_poll_at));
    }
    store
        .create_execution(&execution_of(&ex.id, &jobs), &jobs, Admission::default())
        .await
        .unwrap();
    // Another execution's due job sorts among them.
    let (other, mut other_jobs) = plan(&unique("ex"), &[("o", &[])]);
    other_jobs[0].status = AwaitingProvider;
    other_jobs[0].provider = Some(provider_call(Some(T0 + 150)));
    store
        .create_execution(&other, &other_jobs, Admission::default())
        .await
        .unwrap();

    let k = |id: &str| key(&ex.id, id);
    let o = key(&other.id, "o");
    assert_eq!(
        store.due_polls(T0 + 500, 10).await.unwrap(),
        vec![k("p2"), o.clone(), k("p3"), k("p1")],
        "due jobs, soonest first"
    );
    assert_eq!(
        store.due_polls(T0 + 500, 2).await.unwrap(),
        vec![k("p2"), o.clone()],
        "at most limit"
    );
    assert_eq!(
        store.due_polls(T0 + 100, 10).await.unwrap(),
        vec![k("p2")],
        "due at exactly now"
    );
    assert!(store.due_polls(T0 + 99, 10).await.unwrap().is_empty());

    // Leaving awaiting_provider drops a job even though its call still names a poll time.
    change(store, &k("p2"), |j| j.status = Running).await;
    assert_eq!(
        store.due_polls(T0 + 500, 10).await.unwrap(),
        vec![o.clone(), k("p3"), k("p1")]
    );
    // A rescheduled poll moves.
    change(store, &k("p3"), |j| {
        j.provider.as_mut().unwrap().next_poll_at = Some(T0 + 900)
    })
    .await;
    assert_eq!(store.due_polls(T0 + 500, 10).await.unwrap(), vec![o.clone(), k("p1")]);
    assert_eq!(
        store.due_polls(T0 + 950, 10).await.unwrap(),
        vec![o.clone(), k("p1"), k("p3")]
    );
    // Entering awaiting_provider through a write adds one.
    change(store, &k("r"), |j| j.status = AwaitingProvider).await;
    assert_eq!(
        store.due_polls(T0 + 500, 10).await.unwrap(),
        vec![k("r"), o.clone(), k("p1")]
    );
    // Finishing removes it.
    change(store, &k("p1"), |j| j.status = Completed).await;
    change(store, &o, |j| {
        j.status = Failed;
        j.provider.as_mut().unwrap().next_poll_at = None;
    })
    .await;
    assert_eq!(
        store.due_polls(T0 + 5000, 10).await.unwrap(),
        vec![k("r"), k("p3"), k("p4")]
    );
}

/// `stale_queued`: jobs queued before the cutoff and still queued.
pub async fn store_stale_queued_lists_only_queued_jobs_before_cutoff<B: Backend>(backend: B) {
    use JobStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let (ex, mut jobs) = plan(
        &unique("ex"),
        &[
            ("q1", &[]),
            ("q2", &[]),
            ("q3", &[]),
            ("r", &[]),
            ("w", &["r"]),
            ("c", &["r"]),
        ],
    );
    for (id, queued_at) in [("q1", T0 + 100), ("q2", T0 + 300), ("q3", T0 + 500), ("r", T0 + 50)] {
        jobs.iter_mut().find(|j| j.id() == id).unwrap().queued_at = Some(queued_at);
    }
    let r = jobs.iter_mut().find(|j| j.id() == "r").unwrap();
    r.status = Running;
    r.started_at = Some(T0 + 60);
    store
        .create_execution(&execution_of(&ex.id, &jobs), &jobs, Admission::default())
        .await
        .unwrap();
    let k = |id: &str| key(&ex.id, id);
    let stale = |keys: Vec<JobKey>| key_set(&keys);

    assert_eq!(
        stale(store.stale_queued(T0 + 500, 10).await.unwrap()),
        key_set(&[k("q1"), k("q2")]),
        "queued strictly before the cutoff; running and waiting jobs never"
    );
    let one = store.stale_queued(T0 + 500, 1).await.unwrap();
    assert_eq!(one.len(), 1, "at most limit");
    assert!(one[0] == k("q1") || one[0] == k("q2"));
    assert!(store.stale_queued(T0 + 100, 10).await.unwrap().is_empty());

    // A child queued by a release is found by its release time.
    store.release_edge(&k("c"), "r", T0 + 200).await.unwrap();
    assert_eq!(
        stale(store.stale_queued(T0 + 500, 10).await.unwrap()),
        key_set(&[k("q1"), k("c"), k("q2")])
    );
    assert_eq!(
        stale(store.stale_queued(T0 + 250, 10).await.unwrap()),
        key_set(&[k("q1"), k("c")])
    );
    // Claimed jobs leave.
    change(store, &k("q1"), |j| j.status = Running).await;
    assert_eq!(
        stale(store.stale_queued(T0 + 500, 10).await.unwrap()),
        key_set(&[k("c"), k("q2")])
    );
}

/// Everything written is still there after a restart, edges included.
pub async fn store_survives_reopen<B: Backend>(mut backend: B) {
    use JobStatus::*;
    let (ex, jobs) = plan(&unique("ex"), &[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
    let before = {
        let store = backend.store();
        let store = store.as_ref();
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
        change(store, &key(&ex.id, "a"), |j| {
            j.status = Running;
            j.started_at = Some(T0 + 1);
        })
        .await;
        change(store, &key(&ex.id, "a"), |j| j.status = Completed).await;
        assert_eq!(
            store.release_edge(&key(&ex.id, "c"), "a", T0 + 2).await.unwrap().status,
            Waiting
        );
        let read = execution_of_store(store, &ex.id).await;
        let mut next = read.clone();
        next.outputs.insert("a".into(), output("a.mp4"));
        applied(store.update_execution(&read, &next).await.unwrap(), "execution write");
        store.execution_with_jobs(&ex.id).await.unwrap().unwrap()
    };

    backend.reopen().await;

    let store = backend.store();
    let store = store.as_ref();
    let (after, after_jobs) = store
        .execution_with_jobs(&ex.id)
        .await
        .unwrap()
        .expect("survived the restart");
    assert_eq!(after, before.0);
    assert_eq!(by_id(after_jobs), by_id(before.1));
    assert_eq!((after.open_jobs, after.completed_jobs), (2, 1));
    // The pending edges survived too.
    let c = key(&ex.id, "c");
    assert_eq!(
        store.release_edge(&c, "a", T0 + 3).await.unwrap(),
        release(false, Waiting, None)
    );
    assert_eq!(
        store.release_edge(&c, "b", T0 + 4).await.unwrap(),
        release_at(true, Queued, Some("b"), Some(T0 + 4))
    );
    assert!(matches!(
        store.create_execution(&ex, &jobs, Admission::default()).await,
        Err(StoreError::AlreadyExists(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------

/// Sent messages are received once each, and an acked one never comes back.
pub async fn queue_send_receive_ack<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    receive_none(&backend, queue).await;
    queue.send(&[], Duration::ZERO).await.unwrap();
    queue.send(&[msg("m1"), msg("m2")], Duration::ZERO).await.unwrap();

    let got = receive_n(queue, 2, 10, SHORT).await;
    assert_eq!(sorted(ids(&got)), ["m1", "m2"]);
    assert!(got.iter().all(|d| d.receive_count == 1), "first receive counts 1");
    assert_ne!(got[0].receipt, got[1].receipt);
    assert_eq!(got.iter().find(|d| job_id_of(d) == "m1").unwrap().message, msg("m1"));
    receive_none(&backend, queue).await;

    for d in &got {
        queue.ack(&d.receipt).await.unwrap();
    }
    backend.advance(SHORT).await;
    receive_none(&backend, queue).await;
    backend.advance(SHORT * 2).await;
    receive_none(&backend, queue).await;
}

/// A receive returns at most `max` messages.
pub async fn queue_receive_returns_at_most_max<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    let sent: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    queue
        .send(&sent.iter().map(|id| msg(id)).collect::<Vec<_>>(), Duration::ZERO)
        .await
        .unwrap();
    let got = receive_n(queue, 5, 2, LONG).await;
    assert_eq!(sorted(ids(&got)), sent, "each message once");
    queue.send(&[msg("x"), msg("y")], Duration::ZERO).await.unwrap();
    let one = queue.receive(1, LONG, SOME_WAIT).await.unwrap();
    assert_eq!(one.len(), 1, "receive(1) returns one of the two visible");
}

/// An unacked message comes back after its visibility timeout, counted, with a new receipt.
pub async fn queue_unacked_message_returns_after_visibility_timeout<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    queue.send(&[msg("m")], Duration::ZERO).await.unwrap();
    let first = receive_one(queue, SHORT).await;
    assert_eq!((job_id_of(&first).as_str(), first.receive_count), ("m", 1));
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;

    let second = receive_one(queue, SHORT).await;
    assert_eq!(second.message, msg("m"));
    assert_eq!(second.receive_count, 2, "redelivery counts");
    assert_ne!(second.receipt, first.receipt, "a redelivery has a new receipt");
    queue.ack(&second.receipt).await.unwrap();
    backend.advance(SHORT).await;
    receive_none(&backend, queue).await;
}

/// A receipt from before a redelivery neither deletes nor moves the message.
pub async fn queue_stale_receipt_neither_acks_nor_retries<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    queue.send(&[msg("m")], Duration::ZERO).await.unwrap();
    let first = receive_one(queue, SHORT).await;
    backend.advance(SHORT).await;
    let second = receive_one(queue, LONG).await;
    assert_eq!(second.receive_count, 2);

    // The first holder's late calls must not touch the redelivered message.
    queue.retry_later(&first.receipt, Duration::ZERO).await.ok();
    receive_none(&backend, queue).await;
    queue.ack(&first.receipt).await.ok();

    // Still there: the current holder can hand it back, and it is received again.
    queue.retry_later(&second.receipt, Duration::ZERO).await.unwrap();
    let third = receive_one(queue, LONG).await;
    assert_eq!((third.message.clone(), third.receive_count), (msg("m"), 3));
    queue.ack(&third.receipt).await.unwrap();
}

/// `retry_later(delay)` hides the message for exactly that delay.
pub async fn queue_retry_later_hides_message_for_delay<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    queue.send(&[msg("m")], Duration::ZERO).await.unwrap();
    let first = receive_one(queue, LONG).await;
    queue.retry_later(&first.receipt, SHORT).await.unwrap();
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;

    let second = receive_one(queue, LONG).await;
    assert_eq!((second.message.clone(), second.receive_count), (msg("m"), 2));
    // No delay: visible again at once (far before the LONG visibility ends).
    queue.retry_later(&second.receipt, Duration::ZERO).await.unwrap();
    let third = receive_one(queue, LONG).await;
    assert_eq!(third.receive_count, 3);
    queue.ack(&third.receipt).await.unwrap();
    receive_none(&backend, queue).await;
}

/// A message sent with a delay is invisible until the delay has passed.
pub async fn queue_send_with_delay_hides_message_until_due<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    queue.send(&[msg("later")], SHORT).await.unwrap();
    queue.send(&[msg("now")], Duration::ZERO).await.unwrap();
    let now = receive_one(queue, LONG).await;
    assert_eq!(job_id_of(&now), "now");
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;
    receive_none(&backend, queue).await;
    backend.advance(SHORT / 2).await;
    let later = receive_one(queue, LONG).await;
    assert_eq!((job_id_of(&later).as_str(), later.receive_count), ("later", 1));
}

/// A waiting receive picks up a message another task sends during the wait.
pub async fn queue_receive_wait_returns_message_sent_meanwhile<B: Backend>(backend: B) {
    let queue = backend.queue();
    let sender = {
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            queue.send(&[msg("m")], Duration::ZERO).await.unwrap();
        })
    };
    let got = queue.receive(10, LONG, Duration::from_secs(10)).await.unwrap();
    sender.await.unwrap();
    assert_eq!(ids(&got), ["m"], "the wait ended with the sent message");
}

/// A waiting receive picks up a delayed message once it comes due.
pub async fn queue_receive_wait_sees_delayed_message_come_due<B: Backend>(backend: B) {
    let backend = Arc::new(backend);
    let queue = backend.queue();
    queue.send(&[msg("m")], SHORT).await.unwrap();
    let clock = {
        let backend = backend.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            backend.advance(SHORT).await;
        })
    };
    let got = queue.receive(10, LONG, Duration::from_secs(10)).await.unwrap();
    clock.await.unwrap();
    assert_eq!(ids(&got), ["m"]);
}

/// Concurrent receivers never hold the same message at once.
pub async fn queue_concurrent_receivers_never_share_a_message<B: Backend>(backend: B) {
    const MESSAGES: usize = 40;
    let queue = backend.queue();
    let sent: Vec<String> = (0..MESSAGES).map(|i| format!("m{i:02}")).collect();
    for batch in sent.chunks(10) {
        let batch: Vec<Message> = batch.iter().map(|id| msg(id)).collect();
        queue.send(&batch, Duration::ZERO).await.unwrap();
    }
    let received = Arc::new(AtomicUsize::new(0));
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            let received = received.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..200 {
                    if received.load(Ordering::SeqCst) >= MESSAGES {
                        break;
                    }
                    let got = queue.receive(3, LONG, Duration::from_millis(200)).await.unwrap();
                    assert!(got.len() <= 3);
                    received.fetch_add(got.len(), Ordering::SeqCst);
                    mine.extend(got);
                    tokio::task::yield_now().await;
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for receiver in receivers {
        all.extend(receiver.await.unwrap());
    }
    assert_eq!(sorted(ids(&all)), sent, "every message exactly once across receivers");
    assert_eq!(
        all.iter().map(|d| d.receipt.clone()).collect::<HashSet<_>>().len(),
        MESSAGES
    );
    receive_none(&backend, queue.as_ref()).await;
}

/// Messages come out in the order they became visible (ties: the order sent).
pub async fn queue_delivers_in_order_of_visibility<B: Backend>(backend: B) {
    let queue = backend.queue();
    let queue = queue.as_ref();
    queue.send(&[msg("a"), msg("b")], Duration::ZERO).await.unwrap();
    queue.send(&[msg("c")], Duration::ZERO).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(job_id_of(&receive_one(queue, LONG).await));
    }
    assert_eq!(order, ["a", "b", "c"]);

    queue.send(&[msg("x")], SHORT * 2).await.unwrap();
    queue.send(&[msg("y")], SHORT).await.unwrap();
    queue.send(&[msg("z")], Duration::ZERO).await.unwrap();
    backend.advance(SHORT * 2).await;
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(job_id_of(&receive_one(queue, LONG).await));
    }
    assert_eq!(order, ["z", "y", "x"], "earliest visible first");
}

/// Messages (waiting, delayed, in flight) survive a restart; acked ones stay gone.
pub async fn queue_survives_reopen<B: Backend>(mut backend: B) {
    let in_flight = {
        let queue = backend.queue();
        let queue = queue.as_ref();
        queue.send(&[msg("acked")], Duration::ZERO).await.unwrap();
        let acked = receive_one(queue, LONG).await;
        queue.ack(&acked.receipt).await.unwrap();
        queue.send(&[msg("flying")], Duration::ZERO).await.unwrap();
        let in_flight = receive_one(queue, SHORT).await;
        queue.send(&[msg("waiting")], Duration::ZERO).await.unwrap();
        queue.send(&[msg("delayed")], SHORT).await.unwrap();
        in_flight
    };

    backend.reopen().await;

    let queue = backend.queue();
    let queue = queue.as_ref();
    let waiting = receive_one(queue, LONG).await;
    assert_eq!(job_id_of(&waiting), "waiting");
    receive_none(&backend, queue).await;
    backend.advance(SHORT).await;
    let mut got = receive_n(queue, 2, 10, LONG).await;
    got.sort_by_key(job_id_of);
    assert_eq!(ids(&got), ["delayed", "flying"]);
    assert_eq!(got[1].receive_count, 2);
    assert_ne!(got[1].receipt, in_flight.receipt);
    receive_none(&backend, queue).await;
}

// ---------------------------------------------------------------------------------------
// Blobs
// ---------------------------------------------------------------------------------------

/// A body streamed in many chunks reads back identical, by `get` and by its URL.
pub async fn blobs_put_multi_chunk_stream_roundtrips<B: Backend>(backend: B) {
    const CHUNKS: usize = 64;
    const CHUNK: usize = 64 * 1024;
    let blobs = backend.blobs();
    let chunks: Vec<Bytes> = (0..CHUNKS)
        .map(|i| Bytes::from((0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect::<Vec<u8>>()))
        .collect();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let key = "executions/ex-1/jobs/a/output.mp4";

    let stored = blobs
        .put(key, "video/mp4", stream_of(chunks.into_iter().map(Ok).collect()))
        .await
        .unwrap();
    assert_eq!(
        stored,
        StoredBlob {
            key: key.into(),
            size: (CHUNKS * CHUNK) as u64,
            content_type: "video/mp4".into(),
        }
    );
    let got = read_all(blobs.get(key).await.unwrap()).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "get returns the bytes put, in order");
    let url = blobs.url(key).await.unwrap();
    let via_url = backend.read_url(&url).await;
    assert!(via_url == expected, "the URL serves the same bytes");
    assert_eq!(backend.blob_listing().await, [key], "no temporary left behind");
}

/// A second put replaces the first entirely (shorter content included).
pub async fn blobs_put_overwrites_key<B: Backend>(backend: B) {
    let blobs = backend.blobs();
    let key = "outputs/x.txt";
    blobs
        .put(key, "text/plain", bytes_stream(b"the first, longer version"))
        .await
        .unwrap();
    let stored = blobs.put(key, "text/plain", bytes_stream(b"second")).await.unwrap();
    assert_eq!(stored.size, 6);
    assert_eq!(read_all(blobs.get(key).await.unwrap()).await, b"second");
    assert_eq!(backend.read_url(&blobs.url(key).await.unwrap()).await, b"second");
    assert_eq!(backend.blob_listing().await, [key]);
}

/// A body that fails midway stores nothing: no blob, no partial file, the old blob intact.
pub async fn blobs_failed_stream_leaves_nothing_behind<B: Backend>(backend: B) {
    let blobs = backend.blobs();
    let failing = || {
        let mut chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..3).map(|_| Ok(Bytes::from(vec![7u8; 64 * 1024]))).collect();
        chunks.push(Err(std::io::Error::other("the source hung up")));
        chunks.push(Ok(Bytes::from_static(b"never read")));
        stream_of(chunks)
    };

    let fresh = "outputs/fresh.mp4";
    assert!(
        blobs.put(fresh, "video/mp4", failing()).await.is_err(),
        "the failure is reported"
    );
    assert!(
        matches!(blobs.get(fresh).await, Err(BlobError::NotFound(_))),
        "no blob at the key"
    );
    assert!(
        backend.blob_listing().await.is_empty(),
        "no partial upload left: {:?}",
        backend.blob_listing().await
    );

    let existing = "outputs/existing.mp4";
    blobs.put(existing, "video/mp4", bytes_stream(b"old")).await.unwrap();
    assert!(blobs.put(existing, "video/mp4", failing()).await.is_err());
    assert_eq!(
        read_all(blobs.get(existing).await.unwrap()).await,
        b"old",
        "the old blob survives"
    );
    assert_eq!(backend.blob_listing().await, [existing]);
}

/// Keys that could climb out of the store (`..`, absolute, empty) are refused everywhere.
pub async fn blobs_refuse_keys_that_escape<B: Backend>(backend: B) {
    let blobs = backend.blobs();
    let absolute = format!("/tmp/reelay-contract-{:016x}", rand::random::<u64>());
    for key in ["../escape", "a/../../escape", "a/../b", "..", absolute.as_str(), ""] {
        assert!(
            blobs.put(key, "text/plain", bytes_stream(b"x")).await.is_err(),
            "put {key:?} must be refused"
        );
        assert!(blobs.get(key).await.is_err(), "get {key:?} must be refused");
        assert!(blobs.url(key).await.is_err(), "url {key:?} must be refused");
    }
    assert!(
        !std::path::Path::new(&absolute).exists(),
        "nothing written at an absolute path"
    );
    assert!(
        backend.blob_listing().await.is_empty(),
        "{:?}",
        backend.blob_listing().await
    );
}

/// Getting a key nothing was put under is `NotFound`, even next to or under existing keys.
pub async fn blobs_get_missing_is_not_found<B: Backend>(backend: B) {
    let blobs = backend.blobs();
    blobs
        .put("dir/file.bin", "application/octet-stream", bytes_stream(b"x"))
        .await
        .unwrap();
    for key in [
        "never/written.bin",
        "missing",
        "dir",
        "dir/other.bin",
        "dir/file.bin/deeper",
    ] {
        match blobs.get(key).await {
            Err(BlobError::NotFound(k)) => assert_eq!(k, key),
            Err(e) => panic!("get {key:?}: expected NotFound, got {e:?}"),
            Ok(_) => panic!("get {key:?}: expected NotFound, got a body"),
        }
    }
}

/// Blobs are still there after a restart.
pub async fn blobs_survive_reopen<B: Backend>(mut backend: B) {
    {
        let blobs = backend.blobs();
        blobs
            .put("keep/me.bin", "application/octet-stream", bytes_stream(b"kept"))
            .await
            .unwrap();
    }
    backend.reopen().await;
    let blobs = backend.blobs();
    assert_eq!(read_all(blobs.get("keep/me.bin").await.unwrap()).await, b"kept");
}
