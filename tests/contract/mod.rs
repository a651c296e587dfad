//! The contract of the `Store`, `KeyStore`, `Queue` and `Blobs` ports: what every adapter (the
//! embedded SQLite/file one, the AWS one) must do, written once and run against each.
//!
//! # Shape
//!
//! * [`Backend`] is what a binding implements: fresh, isolated adapters of the four ports,
//!   plus the few things a test needs around them (moving the queue's clock, restarting,
//!   reading a blob URL, listing what the blob store holds).
//! * Every case is a `pub async fn case_name<B: Backend>(backend: B)`, independently callable,
//!   named for what it proves.
//! * [`contract_tests!`] stamps one `#[tokio::test]` per case for a binding:
//!
//!   ```ignore
//!   contract_tests!(sqlite, LocalBackend::new,
//!       [store, executions, watchers, deliveries, keys, queue, queue_strict, blobs]);
//!   contract_tests!(aws, AwsBackend::new, [store, executions, watchers, deliveries, keys, queue, blobs]);
//!   ```
//!
//!   `$make` is anything callable as `$make().await` that returns a fresh `Backend`: one
//!   per test. The groups: `store` (executions and jobs: creation, conditional writes,
//!   counters, edges, the engine's scans), `executions` (tenant admission limits and
//!   listing), `watchers` (jobs waiting on a base execution's jobs), `deliveries` (client
//!   webhook messages), `keys` (API keys), `rate` (provider rate budgets), `queue`, `blobs`,
//!   and `queue_strict` (exact
//!   ordering and stale-receipt behaviour the SQLite queue promises but SQS standard queues
//!   only do best-effort).
//!
//! The `executions`, `watchers`, `deliveries` and `keys` cases let a binding share one table
//! between cases: their ids and tenants are unique (`unique`), they look only at their own
//! records in what a scan across tenants returns (`list_keys`), and `due_deliveries`' case
//! keeps its times below every other case's. (The `store` group's `due_polls` and
//! `stale_queued` cases still expect no other case's jobs.)
//!
//! Every delay or visibility timeout the suite waits out is [`SHORT`] and it waits it out
//! with [`Backend::advance`], so a real-time backend (SQS) only sleeps a couple of seconds
//! per case; [`LONG`] is never waited out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use reelay_core::domain::{
    Completion, DeliveryState, Execution, ExecutionStatus, Job, JobError, JobKey, JobOutput, JobStatus, Millis,
    ProviderCall, StoredWebhook, WebhookDelivery,
};
use reelay_core::plan::{JobSpec, MediaKind, MediaRef, Operation, Params, ProviderParams, Secret};
use reelay_core::ports::{
    Admission, ApiKeyRecord, BlobError, Blobs, ByteStream, Delivery, EdgeRelease, KeyStore, Message, PageCursor, Queue,
    RateBudget, Store, StoreError, StoredBlob, Write,
};
use reelay_core::secrets::Sealer;
use reelay_core::tenants::{hash_key, new_key};

/// What a binding provides. Each value is one isolated world: an empty queue and an empty
/// blob store that no other test touches, and a store and key store whose tables may be
/// shared with other cases as far as the module header says.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn store(&self) -> Arc<dyn Store>;
    fn keys(&self) -> Arc<dyn KeyStore>;
    fn queue(&self) -> Arc<dyn Queue>;
    fn blobs(&self) -> Arc<dyn Blobs>;
    /// The provider rate budget (per process locally, shared on AWS).
    fn budget(&self) -> Arc<dyn RateBudget>;
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
    (@group executions, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            store_admission_in_flight_counts_only_the_tenants_open_executions,
            store_admission_per_minute_counts_the_last_60_seconds_and_says_when_room_frees,
            store_list_executions_newest_first_by_live_status,
            store_list_executions_cursor_pages_cover_each_execution_once,
        );
    };
    (@group watchers, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            store_add_watcher_is_idempotent_and_scoped_to_its_base_job,
            store_watchers_of_an_execution_list_each_watcher_once,
            store_watchers_survive_reopen,
        );
    };
    (@group deliveries, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            store_create_delivery_stores_once_and_reads_back,
            store_update_delivery_is_conditional_on_version,
            store_due_deliveries_lists_only_due_pending_ones_soonest_first,
            store_concurrent_delivery_creates_and_updates_one_wins,
            store_deliveries_survive_reopen,
        );
    };
    (@group rate, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            rate_budget_admits_exactly_the_limit_to_racing_takers,
            rate_budget_says_how_long_and_admits_after_that,
        );
    };
    (@group keys, $make:expr) => {
        $crate::contract_tests!(@cases $make;
            keys_create_then_find_by_hash_and_list,
            keys_revoke_once_and_revoked_key_is_still_found,
            keys_survive_reopen,
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
pub const T0: Millis = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn spec(id: &str, depends_on: &[&str]) -> JobSpec {
    JobSpec {
        id: id.to_string(),
        operation: Operation::Generate,
        params: Params::Provider(ProviderParams {
            duration: Some(5.0),
            seed: Some(7),
            inputs: depends_on
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("input{i}"), MediaRef::Job(p.to_string())))
                .collect(),
            ..ProviderParams::prompt("fake", "fake-video", &format!("prompt of {id}"))
        }),
        depends_on: depends_on.iter().map(|p| p.to_string()).collect(),
        send_job_webhook: false,
        quality: Default::default(),
    }
}

/// An execution and its jobs as the engine creates them: roots queued, the rest waiting,
/// children wired, counters from the statuses.
pub fn plan(execution_id: &str, jobs: &[(&str, &[&str])]) -> (Execution, Vec<Job>) {
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
        watched: false,
        workflow: None,
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
        transcript: None,
        background: None,
        deferred: None,
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
        uncertain_since: None,
        cancel_sent_at: None,
    }
}

pub fn key(execution_id: &str, job_id: &str) -> JobKey {
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
    // Within one DynamoDB transaction's worth of jobs (the AWS store's plan limit).
    const PARENTS: usize = 90;
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

    let winners: HashSet<&String> = results
        .iter()
        .filter(|(p, r)| r.removed && r.status == JobStatus::Queued && r.released_by.as_ref() == Some(p))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one parent's release queues the child: {winners:?}"
    );
    let winner = (*winners.iter().next().unwrap()).clone();
    // Every edge is removed by one call; only the winner's repeat, when it is the call that
    // queues the child (a store whose release takes two writes), reports the release too
    // (`EdgeRelease::removed`).
    let mut removals: HashMap<&String, usize> = HashMap::new();
    for (parent, _) in results.iter().filter(|(_, r)| r.removed) {
        *removals.entry(parent).or_default() += 1;
    }
    assert_eq!(removals.len(), PARENTS, "every edge is removed");
    for (parent, count) in &removals {
        let most = if **parent == winner { 2 } else { 1 };
        assert!(*count <= most, "{parent}'s edge was removed {count} times");
    }
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
// Executions: admission and listing
// ---------------------------------------------------------------------------------------

/// A one-job execution of `tenant`, created at `created_at`.
fn tenant_execution(tenant: &str, created_at: Millis) -> (Execution, Vec<Job>) {
    let (mut ex, jobs) = plan(&unique("ex"), &[("a", &[])]);
    ex.tenant_id = tenant.to_string();
    ex.created_at = created_at;
    (ex, jobs)
}

/// The create must be refused by a limit; returns its `retry_after` (never under a second).
fn limit_reached(result: Result<(), StoreError>, what: &str) -> Duration {
    match result {
        Err(StoreError::LimitReached { retry_after, .. }) => {
            assert!(
                retry_after >= Duration::from_secs(1),
                "{what}: retry_after {retry_after:?}"
            );
            retry_after
        }
        other => panic!("{what}: expected LimitReached, got {other:?}"),
    }
}

/// A refused create wrote neither the execution nor its jobs.
async fn assert_not_written(store: &dyn Store, ex: &Execution, jobs: &[Job]) {
    assert!(
        store.execution(&ex.id).await.unwrap().is_none(),
        "refused {} was written",
        ex.id
    );
    for job in jobs {
        assert!(
            store.job(&job.key()).await.unwrap().is_none(),
            "job of refused {} was written",
            ex.id
        );
    }
}

/// Moves an execution to `status` with `update_execution`, as the engine ends one.
async fn set_status(store: &dyn Store, id: &str, status: ExecutionStatus) -> Execution {
    let prev = execution_of_store(store, id).await;
    let mut next = prev.clone();
    next.status = status;
    next.completed_at = status.is_terminal().then_some(T0 + 1_000_000);
    applied(store.update_execution(&prev, &next).await.unwrap(), "status change")
}

/// The in-flight limit counts the tenant's pending and processing executions (their live
/// status), not its ended ones nor another tenant's; a refusal writes nothing.
pub async fn store_admission_in_flight_counts_only_the_tenants_open_executions<B: Backend>(backend: B) {
    use ExecutionStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let tenant = unique("tenant");
    let two = Admission {
        max_in_flight: Some(2),
        max_per_minute: None,
    };
    // Three open executions of another tenant leave this one's limit of two untouched.
    let other = unique("tenant");
    for i in 0..3 {
        let (ex, jobs) = tenant_execution(&other, T0 + i);
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    }
    let (e1, j1) = tenant_execution(&tenant, T0 + 10);
    let (e2, j2) = tenant_execution(&tenant, T0 + 20);
    store.create_execution(&e1, &j1, two).await.unwrap();
    store.create_execution(&e2, &j2, two).await.unwrap();

    let (e3, j3) = tenant_execution(&tenant, T0 + 30);
    limit_reached(store.create_execution(&e3, &j3, two).await, "a third open execution");
    assert_not_written(store, &e3, &j3).await;
    // Nor does this tenant's count reach the other's.
    let (o, oj) = tenant_execution(&other, T0 + 30);
    let four = Admission {
        max_in_flight: Some(4),
        max_per_minute: None,
    };
    store.create_execution(&o, &oj, four).await.unwrap();

    // A job write that starts e1 keeps it in flight (processing).
    change(store, &key(&e1.id, "a"), |j| {
        j.status = JobStatus::Running;
        j.started_at = Some(T0 + 40);
    })
    .await;
    assert_eq!(execution_of_store(store, &e1.id).await.status, Processing);
    limit_reached(store.create_execution(&e3, &j3, two).await, "pending + processing");

    // Each way of ending frees a place.
    set_status(store, &e2.id, Completed).await;
    store.create_execution(&e3, &j3, two).await.unwrap();
    let (e4, j4) = tenant_execution(&tenant, T0 + 50);
    limit_reached(
        store.create_execution(&e4, &j4, two).await,
        "processing e1 + pending e3",
    );
    set_status(store, &e1.id, Failed).await;
    store.create_execution(&e4, &j4, two).await.unwrap();
    let (e5, j5) = tenant_execution(&tenant, T0 + 60);
    limit_reached(store.create_execution(&e5, &j5, two).await, "pending e3 + e4");
    set_status(store, &e3.id, Cancelled).await;
    store.create_execution(&e5, &j5, two).await.unwrap();

    let open: Vec<String> = store
        .list_executions(&tenant, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.status.is_terminal())
        .map(|e| e.id)
        .collect();
    assert_eq!(open, [e5.id.clone(), e4.id.clone()], "never more than two open at once");
}

/// The per-minute limit counts the tenant's executions created in the 60 s before the new
/// one (any status; exactly 60 s ago no longer counts) and names when the oldest leaves.
pub async fn store_admission_per_minute_counts_the_last_60_seconds_and_says_when_room_frees<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let tenant = unique("tenant");
    let three = Admission {
        max_in_flight: None,
        max_per_minute: Some(3),
    };
    // Another tenant's burst in the same minute does not count.
    let other = unique("tenant");
    for i in 0..5 {
        let (ex, jobs) = tenant_execution(&other, T0 + i);
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    }
    let mut admitted = Vec::new();
    for at in [T0, T0 + 10_000, T0 + 20_000] {
        let (ex, jobs) = tenant_execution(&tenant, at);
        store.create_execution(&ex, &jobs, three).await.unwrap();
        admitted.push(ex);
    }

    let (ex, jobs) = tenant_execution(&tenant, T0 + 30_000);
    assert_eq!(
        limit_reached(
            store.create_execution(&ex, &jobs, three).await,
            "a fourth in the minute"
        ),
        Duration::from_secs(30),
        "room frees when the one of T0 leaves the window, at T0 + 60 s"
    );
    assert_not_written(store, &ex, &jobs).await;
    let (ex, jobs) = tenant_execution(&tenant, T0 + 59_999);
    assert_eq!(
        limit_reached(store.create_execution(&ex, &jobs, three).await, "1 ms before room"),
        Duration::from_secs(1),
        "retry_after is at least a second"
    );
    assert_not_written(store, &ex, &jobs).await;

    // Exactly 60 s on, the first no longer counts.
    let (ex, jobs) = tenant_execution(&tenant, T0 + 60_000);
    store.create_execution(&ex, &jobs, three).await.unwrap();
    // Ending one does not take it out of the minute (unlike the in-flight limit).
    set_status(store, &admitted[1].id, ExecutionStatus::Completed).await;
    let (ex, jobs) = tenant_execution(&tenant, T0 + 65_000);
    assert_eq!(
        limit_reached(
            store.create_execution(&ex, &jobs, three).await,
            "T0+10s, +20s, +60s in the window"
        ),
        Duration::from_secs(5)
    );
    assert_not_written(store, &ex, &jobs).await;

    // Had any refused attempt been written, the window (T0+10 s, T0+70 s] would be full.
    let (ex, jobs) = tenant_execution(&tenant, T0 + 70_000);
    store.create_execution(&ex, &jobs, three).await.unwrap();
    assert_eq!(store.list_executions(&tenant, None, None, 100).await.unwrap().len(), 5);
}

/// Newest first: `created_at` descending, then id descending.
fn newest_first(executions: &[Execution]) -> Vec<String> {
    let mut order: Vec<&Execution> = executions.iter().collect();
    order.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    order.into_iter().map(|e| e.id.clone()).collect()
}

fn ids_of(executions: &[Execution]) -> Vec<String> {
    executions.iter().map(|e| e.id.clone()).collect()
}

/// `list_executions`: only the tenant's executions, newest first (ties by id, descending),
/// each as `execution` reads it, filtered by live status, at most `limit`.
pub async fn store_list_executions_newest_first_by_live_status<B: Backend>(backend: B) {
    use ExecutionStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let tenant = unique("tenant");
    let other = unique("tenant");
    let mut created = Vec::new();
    for at in [T0 + 300, T0 + 100, T0 + 200, T0 + 200, T0 + 400, T0 + 200] {
        let (ex, jobs) = tenant_execution(&tenant, at);
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
        created.push(ex);
    }
    for at in [T0 + 250, T0 + 200, T0 + 500] {
        let (ex, jobs) = tenant_execution(&other, at);
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    }
    let order = newest_first(&created);
    let listed = store.list_executions(&tenant, None, None, 100).await.unwrap();
    assert_eq!(ids_of(&listed), order, "the tenant's executions, newest first");
    assert_eq!(
        ids_of(&store.list_executions(&tenant, None, None, 2).await.unwrap()),
        order[..2],
        "at most limit, from the newest"
    );

    // A job write starts one; execution writes end two.
    let started = created[0].id.clone();
    change(store, &key(&started, "a"), |j| {
        j.status = JobStatus::Running;
        j.started_at = Some(T0 + 600);
    })
    .await;
    let completed = created[2].id.clone();
    let cancelled = created[3].id.clone();
    set_status(store, &completed, Completed).await;
    set_status(store, &cancelled, Cancelled).await;

    let listed = store.list_executions(&tenant, None, None, 100).await.unwrap();
    assert_eq!(ids_of(&listed), order, "status changes do not move an execution");
    for ex in &listed {
        assert_eq!(
            ex,
            &execution_of_store(store, &ex.id).await,
            "listed as read, live status included"
        );
    }
    // What each status filter must return: the executions now in it, still newest first.
    let with = |status: ExecutionStatus| {
        let mut ids = order.clone();
        ids.retain(|id| {
            let now = match id {
                id if *id == started => Processing,
                id if *id == completed => Completed,
                id if *id == cancelled => Cancelled,
                _ => Pending,
            };
            now == status
        });
        ids
    };
    assert_eq!(with(Pending).len(), 3);
    for status in [Pending, Processing, Completed, Cancelled, Failed] {
        assert_eq!(
            ids_of(&store.list_executions(&tenant, Some(status), None, 100).await.unwrap()),
            with(status),
            "filtered by {status:?}"
        );
    }
    assert!(store
        .list_executions(&unique("tenant"), None, None, 100)
        .await
        .unwrap()
        .is_empty());
}

/// Every page of `list_executions`, each starting after the cursor of the previous one's last.
async fn walk_pages(store: &dyn Store, tenant: &str, status: Option<ExecutionStatus>, page: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut after: Option<PageCursor> = None;
    loop {
        let got = store
            .list_executions(tenant, status, after.as_ref(), page)
            .await
            .unwrap();
        assert!(got.len() <= page, "page of {page} returned {}", got.len());
        all.extend(ids_of(&got));
        assert!(all.len() <= 100, "paging does not end: {all:?}");
        match got.last() {
            Some(last) if got.len() == page => {
                after = Some(PageCursor {
                    created_at: last.created_at,
                    id: last.id.clone(),
                })
            }
            _ => return all,
        }
    }
}

/// Paging by the cursor `(created_at, id)` of each page's last execution visits every
/// execution exactly once, in order, whatever the page size, through runs of equal
/// `created_at` and with a status filter.
pub async fn store_list_executions_cursor_pages_cover_each_execution_once<B: Backend>(backend: B) {
    use ExecutionStatus::*;
    let store = backend.store();
    let store = store.as_ref();
    let tenant = unique("tenant");
    let mut created = Vec::new();
    for (i, at) in [1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 4, 4].into_iter().enumerate() {
        let (ex, jobs) = tenant_execution(&tenant, T0 + at);
        store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
        if i % 3 == 0 {
            set_status(store, &ex.id, Completed).await;
        }
        created.push(ex);
    }
    let (other, other_jobs) = tenant_execution(&unique("tenant"), T0 + 3);
    store
        .create_execution(&other, &other_jobs, Admission::default())
        .await
        .unwrap();
    let order = newest_first(&created);

    for page in 1..=5 {
        assert_eq!(walk_pages(store, &tenant, None, page).await, order, "pages of {page}");
    }
    let pending = ids_of(&store.list_executions(&tenant, Some(Pending), None, 100).await.unwrap());
    assert_eq!(pending.len(), 8);
    for page in 1..=3 {
        assert_eq!(
            walk_pages(store, &tenant, Some(Pending), page).await,
            pending,
            "pending, pages of {page}"
        );
    }
    // The cursor is exclusive: after the k-th execution come exactly those after it.
    for (k, id) in order.iter().enumerate() {
        let ex = created.iter().find(|e| &e.id == id).unwrap();
        let cursor = PageCursor {
            created_at: ex.created_at,
            id: ex.id.clone(),
        };
        assert_eq!(
            ids_of(&store.list_executions(&tenant, None, Some(&cursor), 100).await.unwrap()),
            order[k + 1..],
            "after {k}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Watchers
// ---------------------------------------------------------------------------------------

/// Creates one execution with jobs of these ids (no edges) and returns its id.
async fn execution_with(store: &dyn Store, job_ids: &[&str]) -> String {
    let specs: Vec<(&str, &[&str])> = job_ids.iter().map(|id| (*id, &[][..])).collect();
    let (ex, jobs) = plan(&unique("ex"), &specs);
    store.create_execution(&ex, &jobs, Admission::default()).await.unwrap();
    ex.id
}

/// Sorted but not deduplicated, so a duplicate shows.
fn sorted_keys(keys: Vec<JobKey>) -> Vec<(String, String)> {
    let mut keys: Vec<_> = keys.into_iter().map(|k| (k.execution_id, k.job_id)).collect();
    keys.sort();
    keys
}

/// Registering a watcher twice keeps one; a job's watchers are its own, not those of a job of
/// the same id in another execution, nor of its siblings.
pub async fn store_add_watcher_is_idempotent_and_scoped_to_its_base_job<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let base = execution_with(store, &["a", "b", "c"]).await;
    let elsewhere = execution_with(store, &["a"]).await;
    let w1 = execution_with(store, &["x"]).await;
    let w2 = execution_with(store, &["y"]).await;
    let (x, y) = (key(&w1, "x"), key(&w2, "y"));

    store.add_watcher(&key(&base, "a"), &x).await.unwrap();
    store.add_watcher(&key(&base, "a"), &x).await.unwrap();
    store.add_watcher(&key(&base, "a"), &y).await.unwrap();
    store.add_watcher(&key(&base, "a"), &x).await.unwrap();
    store.add_watcher(&key(&elsewhere, "a"), &y).await.unwrap();

    let k = |k: &JobKey| (k.execution_id.clone(), k.job_id.clone());
    assert_eq!(
        sorted_keys(store.watchers(&base, Some("a")).await.unwrap()),
        sorted_keys(vec![x.clone(), y.clone()]),
        "each watcher once, however often it registered"
    );
    assert!(store.watchers(&base, Some("b")).await.unwrap().is_empty());
    assert_eq!(
        sorted_keys(store.watchers(&elsewhere, Some("a")).await.unwrap()),
        [k(&y)]
    );
    assert_eq!(sorted_keys(store.watchers(&elsewhere, None).await.unwrap()), [k(&y)]);
    assert!(
        store.watchers(&w1, None).await.unwrap().is_empty(),
        "watching is one-way"
    );
    assert!(store.watchers("no-such-execution", None).await.unwrap().is_empty());
}

/// The watchers of a whole execution are those of all its jobs, each once even if it
/// registered on several.
pub async fn store_watchers_of_an_execution_list_each_watcher_once<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let base = execution_with(store, &["a", "b", "c"]).await;
    let w1 = execution_with(store, &["x", "z"]).await;
    let w2 = execution_with(store, &["y"]).await;
    let (x, y, z) = (key(&w1, "x"), key(&w2, "y"), key(&w1, "z"));
    store.add_watcher(&key(&base, "a"), &x).await.unwrap();
    store.add_watcher(&key(&base, "a"), &y).await.unwrap();
    store.add_watcher(&key(&base, "b"), &z).await.unwrap();
    store.add_watcher(&key(&base, "b"), &x).await.unwrap();

    assert_eq!(
        sorted_keys(store.watchers(&base, Some("b")).await.unwrap()),
        sorted_keys(vec![x.clone(), z.clone()])
    );
    assert_eq!(
        sorted_keys(store.watchers(&base, None).await.unwrap()),
        sorted_keys(vec![x, y, z]),
        "x watches a and b, and is listed once"
    );
}

/// Registered watchers are still there after a restart.
pub async fn store_watchers_survive_reopen<B: Backend>(mut backend: B) {
    let (base, watcher) = {
        let store = backend.store();
        let store = store.as_ref();
        let base = execution_with(store, &["a"]).await;
        let watcher = key(&execution_with(store, &["x"]).await, "x");
        store.add_watcher(&key(&base, "a"), &watcher).await.unwrap();
        (base, watcher)
    };
    backend.reopen().await;
    let store = backend.store();
    assert_eq!(
        store.watchers(&base, Some("a")).await.unwrap(),
        std::slice::from_ref(&watcher)
    );
    store.add_watcher(&key(&base, "a"), &watcher).await.unwrap();
    assert_eq!(store.watchers(&base, None).await.unwrap(), [watcher], "still once");
}

// ---------------------------------------------------------------------------------------
// Webhook deliveries
// ---------------------------------------------------------------------------------------

/// A pending delivery of an execution's webhook (a job's with `job_id`), first due at `due`.
fn webhook_delivery(execution_id: &str, job_id: Option<&str>, due: Millis) -> WebhookDelivery {
    let id = unique("msg");
    let sealer = Sealer::from_bytes(&[7; 32]).expect("a 32-byte key");
    WebhookDelivery {
        body: format!(r#"{{"type":"execution.completed","executionId":"{execution_id}","id":"{id}"}}"#),
        id,
        execution_id: execution_id.to_string(),
        job_id: job_id.map(str::to_string),
        url: "https://example.com/hook".into(),
        secret: Some(sealer.seal(&Secret::new("whsec_contract"))),
        state: DeliveryState::Pending,
        attempts: 0,
        last_status_code: None,
        last_error: None,
        next_attempt_at: Some(due),
        created_at: T0,
        delivered_at: None,
        version: 0,
    }
}

fn by_delivery_id(mut deliveries: Vec<WebhookDelivery>) -> Vec<WebhookDelivery> {
    deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    deliveries
}

async fn delivery_of(store: &dyn Store, id: &str) -> WebhookDelivery {
    store
        .delivery(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("delivery {id} missing"))
}

/// Reads the delivery, lets `change` edit a copy, writes it back; the write must apply.
async fn change_delivery(store: &dyn Store, id: &str, change: impl FnOnce(&mut WebhookDelivery)) -> WebhookDelivery {
    let prev = delivery_of(store, id).await;
    let mut next = prev.clone();
    change(&mut next);
    let stored = applied(store.update_delivery(&prev, &next).await.unwrap(), "delivery write");
    assert_eq!(
        stored.version,
        prev.version + 1,
        "a delivery write bumps the version by one"
    );
    stored
}

/// A delivery is stored by its first create only (a repeat with other fields changes
/// nothing) and read back whole, alone or among its execution's.
pub async fn store_create_delivery_stores_once_and_reads_back<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let ex = execution_with(store, &["a"]).await;
    let other = execution_with(store, &["a"]).await;
    let own = webhook_delivery(&ex, None, T0 + 100);
    let of_job = webhook_delivery(&ex, Some("a"), T0 + 200);
    let elsewhere = webhook_delivery(&other, Some("a"), T0 + 300);
    for d in [&own, &of_job, &elsewhere] {
        assert!(
            store.create_delivery(d).await.unwrap(),
            "the first create stores {}",
            d.id
        );
        assert_eq!(store.delivery(&d.id).await.unwrap().as_ref(), Some(d));
    }

    let mut again = own.clone();
    again.body = "a different body".into();
    again.state = DeliveryState::Delivered;
    again.attempts = 3;
    again.next_attempt_at = None;
    again.version = 7;
    assert!(!store.create_delivery(&again).await.unwrap(), "a repeat stores nothing");
    assert!(!store.create_delivery(&own).await.unwrap());
    assert_eq!(
        delivery_of(store, &own.id).await,
        own,
        "the first create's record stands"
    );

    assert_eq!(
        by_delivery_id(store.deliveries(&ex).await.unwrap()),
        by_delivery_id(vec![own.clone(), of_job.clone()]),
        "the execution's own and its jobs', no other's"
    );
    assert_eq!(store.deliveries(&other).await.unwrap(), [elsewhere]);
    assert!(store.delivery("no-such-delivery").await.unwrap().is_none());
    assert!(store.deliveries("no-such-execution").await.unwrap().is_empty());
}

/// `update_delivery` writes only over the version it read, and bumps it.
pub async fn store_update_delivery_is_conditional_on_version<B: Backend>(backend: B) {
    let store = backend.store();
    let store = store.as_ref();
    let ex = execution_with(store, &["a"]).await;
    let v0 = webhook_delivery(&ex, None, T0 + 100);
    assert!(store.create_delivery(&v0).await.unwrap());

    let mut next = v0.clone();
    next.attempts = 1;
    next.last_status_code = Some(503);
    next.last_error = Some("503 Service Unavailable".into());
    next.next_attempt_at = Some(T0 + 5_000);
    let v1 = applied(store.update_delivery(&v0, &next).await.unwrap(), "first write");
    let mut expected = next.clone();
    expected.version = v0.version + 1;
    assert_eq!(v1, expected, "Applied returns the record as stored, version + 1");
    assert_eq!(delivery_of(store, &v0.id).await, v1);

    let mut late = v0.clone();
    late.state = DeliveryState::Dead;
    assert_stale(
        store.update_delivery(&v0, &late).await.unwrap(),
        "write from a stale version",
    );
    assert_eq!(delivery_of(store, &v0.id).await, v1, "a stale write changes nothing");

    let mut next = v1.clone();
    next.state = DeliveryState::Delivered;
    next.attempts = 2;
    next.last_status_code = Some(200);
    next.next_attempt_at = None;
    next.delivered_at = Some(T0 + 5_100);
    let v2 = applied(store.update_delivery(&v1, &next).await.unwrap(), "second write");
    assert_eq!(v2.version, v1.version + 1);
    assert_eq!(delivery_of(store, &v0.id).await, v2);
    assert_stale(
        store.update_delivery(&v1, &next).await.unwrap(),
        "replaying the second write",
    );
}

/// `due_deliveries`: pending deliveries due at `now`, soonest first, at most `limit`; never
/// delivered, failed or dead ones, whatever their `next_attempt_at`.
pub async fn store_due_deliveries_lists_only_due_pending_ones_soonest_first<B: Backend>(backend: B) {
    use DeliveryState::*;
    // `due_deliveries` scans every execution: these times sit a day below every other
    // case's (which start at T0), so on a shared table the answers are this case's alone.
    const BASE: Millis = T0 - 86_400_000;
    let store = backend.store();
    let store = store.as_ref();
    let ex = execution_with(store, &["a", "b"]).await;
    let other = execution_with(store, &["a"]).await;
    let make = |execution: &str, due: Millis| webhook_delivery(execution, None, BASE + due);
    let (p1, p2, p3, p4) = (make(&ex, 300), make(&ex, 100), make(&ex, 200), make(&ex, 1_000));
    let (o, undated) = (make(&other, 150), make(&ex, 0));
    let (delivered, failed, dead) = (make(&ex, 50), make(&ex, 60), make(&ex, 70));
    for d in [&p1, &p2, &p3, &p4, &o, &undated, &delivered, &failed, &dead] {
        assert!(store.create_delivery(d).await.unwrap());
    }
    change_delivery(store, &undated.id, |d| d.next_attempt_at = None).await;
    // Ended with their last schedule left in place: still never due.
    for (d, state) in [(&delivered, Delivered), (&failed, Failed), (&dead, Dead)] {
        change_delivery(store, &d.id, |d| {
            d.state = state;
            d.attempts = 1;
        })
        .await;
    }
    let due = |now: Millis, limit: usize| async move { store.due_deliveries(BASE + now, limit).await.unwrap() };
    let ids = |ds: &[&WebhookDelivery]| ds.iter().map(|d| d.id.clone()).collect::<Vec<_>>();

    assert_eq!(
        due(500, 10).await,
        ids(&[&p2, &o, &p3, &p1]),
        "due pending ones, soonest first"
    );
    assert_eq!(due(500, 2).await, ids(&[&p2, &o]), "at most limit");
    assert_eq!(due(100, 10).await, ids(&[&p2]), "due at exactly now");
    assert!(due(99, 10).await.is_empty());

    // Delivering one removes it; a rescheduled one moves; a schedule given later adds one.
    change_delivery(store, &p2.id, |d| {
        d.state = Delivered;
        d.delivered_at = Some(BASE + 120);
    })
    .await;
    change_delivery(store, &p3.id, |d| d.next_attempt_at = Some(BASE + 900)).await;
    assert_eq!(due(500, 10).await, ids(&[&o, &p1]));
    change_delivery(store, &undated.id, |d| d.next_attempt_at = Some(BASE + 400)).await;
    assert_eq!(due(950, 10).await, ids(&[&o, &p1, &undated, &p3]));
    change_delivery(store, &p1.id, |d| d.state = Dead).await;
    change_delivery(store, &o.id, |d| d.state = Failed).await;
    assert_eq!(due(5_000, 10).await, ids(&[&undated, &p3, &p4]));
}

/// Racing creates of one id: exactly one stores its record. Two updates racing from the
/// same version: exactly one applies, and it is what is stored.
pub async fn store_concurrent_delivery_creates_and_updates_one_wins<B: Backend>(backend: B) {
    const CREATORS: usize = 8;
    const ROUNDS: usize = 50;
    let store = backend.store();
    let ex = execution_with(store.as_ref(), &["a"]).await;
    let first = webhook_delivery(&ex, None, T0 + 100);
    let creators: Vec<_> = (0..CREATORS)
        .map(|i| {
            let store = store.clone();
            let mut mine = first.clone();
            mine.body = format!("creator {i}");
            tokio::spawn(async move { (store.create_delivery(&mine).await.unwrap(), mine) })
        })
        .collect();
    let mut stored = Vec::new();
    for creator in creators {
        let (created, mine) = creator.await.unwrap();
        if created {
            stored.push(mine);
        }
    }
    assert_eq!(stored.len(), 1, "exactly one racing create stores");
    assert_eq!(
        delivery_of(store.as_ref(), &first.id).await,
        stored[0],
        "the winner's record"
    );

    for round in 0..ROUNDS {
        let prev = delivery_of(store.as_ref(), &first.id).await;
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let store = store.clone();
                let prev = prev.clone();
                let mut next = prev.clone();
                next.attempts = prev.attempts + 1;
                next.last_error = Some(format!("round {round}, writer {writer}"));
                next.next_attempt_at = Some(T0 + 1_000 * (round as i64 + 1));
                tokio::spawn(async move { store.update_delivery(&prev, &next).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for writer in writers {
            if let Write::Applied(d) = writer.await.unwrap() {
                winners.push(d);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of two racing writes applies"
        );
        assert_eq!(winners[0].version, prev.version + 1);
        assert_eq!(
            delivery_of(store.as_ref(), &first.id).await,
            winners[0],
            "round {round}"
        );
    }
    assert_eq!(delivery_of(store.as_ref(), &first.id).await.attempts, ROUNDS as u32);
}

/// Deliveries, and their versions, are still there after a restart.
pub async fn store_deliveries_survive_reopen<B: Backend>(mut backend: B) {
    let (ex, pending, delivered_v0, before) = {
        let store = backend.store();
        let store = store.as_ref();
        let ex = execution_with(store, &["a"]).await;
        let pending = webhook_delivery(&ex, None, T0 + 100);
        let delivered = webhook_delivery(&ex, Some("a"), T0 + 200);
        assert!(store.create_delivery(&pending).await.unwrap());
        assert!(store.create_delivery(&delivered).await.unwrap());
        change_delivery(store, &delivered.id, |d| {
            d.state = DeliveryState::Delivered;
            d.attempts = 1;
            d.last_status_code = Some(204);
            d.delivered_at = Some(T0 + 250);
            d.next_attempt_at = None;
        })
        .await;
        let before = by_delivery_id(store.deliveries(&ex).await.unwrap());
        (ex, pending, delivered, before)
    };

    backend.reopen().await;

    let store = backend.store();
    let store = store.as_ref();
    assert_eq!(by_delivery_id(store.deliveries(&ex).await.unwrap()), before);
    assert_eq!(delivery_of(store, &pending.id).await, pending);
    assert!(!store.create_delivery(&pending).await.unwrap(), "still known by its id");
    assert_stale(
        store.update_delivery(&delivered_v0, &delivered_v0).await.unwrap(),
        "the version survived too",
    );
    assert!(
        store
            .due_deliveries(T0 + 100, 1_000)
            .await
            .unwrap()
            .contains(&pending.id),
        "still due"
    );
    change_delivery(store, &pending.id, |d| d.attempts = 1).await;
}

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

/// This case's keys in `list_keys` (it lists every tenant's), by id.
async fn listed_keys(keys: &dyn KeyStore, tenants: &[&str]) -> Vec<ApiKeyRecord> {
    let mut listed: Vec<ApiKeyRecord> = keys
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| tenants.contains(&k.tenant_id.as_str()))
        .collect();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    listed
}

fn by_key_id(mut records: Vec<ApiKeyRecord>) -> Vec<ApiKeyRecord> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

/// A key is found by the hash of its secret, whole, and listed with every tenant's keys.
pub async fn keys_create_then_find_by_hash_and_list<B: Backend>(backend: B) {
    let keys = backend.keys();
    let keys = keys.as_ref();
    let (tenant, other) = (unique("tenant"), unique("tenant"));
    let made = [
        new_key(&tenant, "ci", T0),
        new_key(&tenant, "laptop", T0 + 1),
        new_key(&other, "ci", T0 + 2),
    ];
    for (_, record) in &made {
        keys.create_key(record).await.unwrap();
    }
    for (secret, record) in &made {
        assert_eq!(
            keys.key_by_hash(&hash_key(secret)).await.unwrap().as_ref(),
            Some(record)
        );
    }
    assert!(keys.key_by_hash(&hash_key("rl_live_unknown")).await.unwrap().is_none());
    assert_eq!(
        listed_keys(keys, &[&tenant, &other]).await,
        by_key_id(made.iter().map(|(_, r)| r.clone()).collect())
    );
}

/// `revoke_key` is true once; the revoked key keeps its record, found by hash with the
/// first revocation's time, and no other key changes.
pub async fn keys_revoke_once_and_revoked_key_is_still_found<B: Backend>(backend: B) {
    let keys = backend.keys();
    let keys = keys.as_ref();
    let tenant = unique("tenant");
    let (_, revoked) = new_key(&tenant, "leaked", T0);
    let (_, kept) = new_key(&tenant, "ci", T0 + 1);
    keys.create_key(&revoked).await.unwrap();
    keys.create_key(&kept).await.unwrap();

    assert!(
        keys.revoke_key(&revoked.id, T0 + 500).await.unwrap(),
        "the first revocation"
    );
    assert!(!keys.revoke_key(&revoked.id, T0 + 600).await.unwrap(), "a second one");
    assert!(
        !keys.revoke_key(&unique("key"), T0 + 600).await.unwrap(),
        "an unknown id"
    );

    let mut expected = revoked.clone();
    expected.revoked_at = Some(T0 + 500);
    assert_eq!(keys.key_by_hash(&revoked.hash).await.unwrap(), Some(expected.clone()));
    assert_eq!(keys.key_by_hash(&kept.hash).await.unwrap(), Some(kept.clone()));
    assert_eq!(listed_keys(keys, &[&tenant]).await, by_key_id(vec![expected, kept]));
}

/// Keys and revocations are still there after a restart.
pub async fn keys_survive_reopen<B: Backend>(mut backend: B) {
    let tenant = unique("tenant");
    let (_, live) = new_key(&tenant, "ci", T0);
    let (_, revoked) = new_key(&tenant, "old", T0 + 1);
    {
        let keys = backend.keys();
        keys.create_key(&live).await.unwrap();
        keys.create_key(&revoked).await.unwrap();
        assert!(keys.revoke_key(&revoked.id, T0 + 10).await.unwrap());
    }
    backend.reopen().await;
    let keys = backend.keys();
    let keys = keys.as_ref();
    assert_eq!(keys.key_by_hash(&live.hash).await.unwrap(), Some(live.clone()));
    let mut expected = revoked.clone();
    expected.revoked_at = Some(T0 + 10);
    assert_eq!(keys.key_by_hash(&revoked.hash).await.unwrap(), Some(expected.clone()));
    assert_eq!(
        listed_keys(keys, &[&tenant]).await,
        by_key_id(vec![live.clone(), expected])
    );
    assert!(!keys.revoke_key(&revoked.id, T0 + 20).await.unwrap(), "still revoked");
    assert!(keys.revoke_key(&live.id, T0 + 20).await.unwrap());
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

// ---------------------------------------------------------------------------------------
// Rate budgets
// ---------------------------------------------------------------------------------------

/// Twice the limit asked for at once (well within one window): exactly the limit is admitted,
/// and another scope has its own budget.
pub async fn rate_budget_admits_exactly_the_limit_to_racing_takers<B: Backend>(backend: B) {
    const LIMIT: u32 = 8;
    let window = Duration::from_secs(60);
    let budget = backend.budget();
    let scope = unique("replicate/creates");
    let takers: Vec<_> = (0..2 * LIMIT)
        .map(|_| {
            let (budget, scope) = (budget.clone(), scope.clone());
            tokio::spawn(async move { budget.take(&scope, LIMIT, window).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for taker in takers {
        match taker.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(wait) => assert!(wait > Duration::ZERO && wait <= 2 * window, "{wait:?}"),
        }
    }
    assert_eq!(admitted, LIMIT, "racing takers share one budget");
    let other = unique("replicate/creates");
    assert_eq!(budget.take(&other, LIMIT, window).await.unwrap(), Ok(()));
}

/// A spent budget names a wait no longer than two windows, and a call fits once it has passed.
pub async fn rate_budget_says_how_long_and_admits_after_that<B: Backend>(backend: B) {
    let window = Duration::from_millis(1500);
    let budget = backend.budget();
    let scope = unique("fal/submits");
    let mut wait = None;
    for _ in 0..10 {
        if let Err(w) = budget.take(&scope, 3, window).await.unwrap() {
            wait = Some(w);
            break;
        }
    }
    let wait = wait.expect("a budget of 3 is spent within 10 calls");
    assert!(wait > Duration::ZERO && wait <= 2 * window, "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(budget.take(&scope, 3, window).await.unwrap(), Ok(()), "after {wait:?}");
}
