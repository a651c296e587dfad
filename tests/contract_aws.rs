//! The port contract (`contract/mod.rs`) run against the AWS adapters (`reelay-aws`: DynamoDB
//! store and key store, SQS queue, S3 blobs) on a moto server, plus what only the AWS adapters
//! do (multipart uploads, CDN URLs, batches over 10, unreadable bodies, TTL, plan size).
//!
//! Each case gets its own moto (`aws/moto.rs`, ~1 s to start, DynamoDB requests serialised so
//! races have one winner as on AWS) with a fresh table, queue and bucket. Every group runs but
//! `queue_strict`: SQS standard queues do not promise its ordering and stale receipts.

// `queue_strict`'s cases do not run here.
#[allow(dead_code)]
#[path = "contract/mod.rs"]
mod contract;

#[allow(dead_code)]
#[path = "aws/mod.rs"]
mod moto_aws;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures::StreamExt;

use contract::Backend;
use moto_aws::world::AwsWorld;
use reelay_aws::{DynamoStore, S3Blobs, SqsQueue, SqsSettings};
use reelay_core::domain::JobKey;
use reelay_core::ports::{BlobError, Blobs, ByteStream, KeyStore, Message, Queue, RateBudget, Store};

/// One isolated AWS world (its own moto) and the adapters on it.
struct AwsBackend {
    clients: Option<Clients>,
    world: AwsWorld,
}

struct Clients {
    store: Arc<DynamoStore>,
    queue: Arc<SqsQueue>,
    blobs: Arc<S3Blobs>,
}

impl AwsBackend {
    async fn new() -> AwsBackend {
        let mut backend = AwsBackend {
            clients: None,
            world: AwsWorld::start().await,
        };
        backend.connect();
        backend
    }

    fn connect(&mut self) {
        self.clients = Some(Clients {
            store: Arc::new(self.world.store()),
            queue: Arc::new(self.world.job_queue()),
            blobs: Arc::new(self.world.blobs()),
        });
    }

    fn clients(&self) -> &Clients {
        self.clients.as_ref().expect("clients")
    }
}

#[async_trait]
impl Backend for AwsBackend {
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
        self.clients().store.clone()
    }

    async fn advance(&self, by: Duration) {
        // SQS (and moto) run on real time; a little slack for its clock.
        tokio::time::sleep(by + Duration::from_millis(200)).await;
    }

    async fn reopen(&mut self) {
        self.clients = None;
        self.connect();
    }

    async fn read_url(&self, url: &str) -> Vec<u8> {
        let prefix = format!("{}/{}/", self.world.moto.url, self.world.bucket);
        assert!(url.starts_with(&prefix), "{url} is not a path-style URL into {prefix}");
        assert!(url.contains("X-Amz-Signature="), "{url} is not presigned");
        let response = reqwest::get(url).await.expect("GET the presigned URL");
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        response.bytes().await.expect("body").to_vec()
    }

    async fn blob_listing(&self) -> Vec<String> {
        let s3 = self.world.s3();
        let mut keys = Vec::new();
        let objects = s3
            .list_objects_v2()
            .bucket(&self.world.bucket)
            .send()
            .await
            .expect("list objects");
        keys.extend(objects.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        let uploads = s3
            .list_multipart_uploads()
            .bucket(&self.world.bucket)
            .send()
            .await
            .expect("list multipart uploads");
        for upload in uploads.uploads() {
            keys.push(format!(
                "{} (multipart upload {} in progress)",
                upload.key().unwrap_or_default(),
                upload.upload_id().unwrap_or_default()
            ));
        }
        keys.sort();
        keys
    }

    // moto's queue is one process: a short poll sees every visible message, so no wait is
    // needed (real SQS would want about a second here).
}

contract_tests!(
    aws,
    AwsBackend::new,
    [store, executions, watchers, deliveries, keys, rate, queue, blobs]
);

// ---------------------------------------------------------------------------------------
// AWS only
// ---------------------------------------------------------------------------------------

fn chunks_of(total: usize, chunk: usize) -> (Vec<Bytes>, Vec<u8>) {
    let all: Vec<u8> = (0..total).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect();
    (all.chunks(chunk).map(Bytes::copy_from_slice).collect(), all)
}

fn stream_of(chunks: Vec<Result<Bytes, std::io::Error>>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks))
}

async fn read_all(mut body: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

fn job(id: &str) -> Message {
    Message::Job(JobKey {
        execution_id: "ex".into(),
        job_id: id.into(),
    })
}

/// A body over one part goes up as a multipart upload of 8 MiB parts (the last smaller),
/// whatever the stream's chunking, and reads back whole with its content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_large_put_is_a_multipart_upload() {
    let backend = AwsBackend::new().await;
    let blobs = backend.blobs();
    let total = 2 * reelay_aws::blobs::PART_SIZE + 123_457;
    let (chunks, expected) = chunks_of(total, 1_000_003);
    let key = "executions/ex/jobs/a/output.mp4";
    let stored = blobs
        .put(key, "video/mp4", stream_of(chunks.into_iter().map(Ok).collect()))
        .await
        .unwrap();
    assert_eq!(stored.size, total as u64);
    assert!(read_all(blobs.get(key).await.unwrap()).await == expected);

    let head = backend
        .world
        .s3()
        .head_object()
        .bucket(&backend.world.bucket)
        .key(key)
        .part_number(1)
        .send()
        .await
        .expect("head part 1");
    assert_eq!(head.parts_count(), Some(3), "three parts");
    assert_eq!(head.content_length(), Some(reelay_aws::blobs::PART_SIZE as i64));
    let head = backend
        .world
        .s3()
        .head_object()
        .bucket(&backend.world.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(backend.blob_listing().await, [key]);
}

/// A stream failing after some parts went up aborts the upload: nothing is left, and the
/// object already under the key is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_failed_multipart_upload_is_aborted() {
    let backend = AwsBackend::new().await;
    let blobs = backend.blobs();
    let key = "outputs/big.mp4";
    blobs
        .put(key, "video/mp4", stream_of(vec![Ok(Bytes::from_static(b"old"))]))
        .await
        .unwrap();
    let (chunks, _) = chunks_of(2 * reelay_aws::blobs::PART_SIZE + 10, 1 << 20);
    let mut failing: Vec<Result<Bytes, std::io::Error>> = chunks.into_iter().map(Ok).collect();
    failing.push(Err(std::io::Error::other("the source hung up")));
    let err = blobs.put(key, "video/mp4", stream_of(failing)).await.unwrap_err();
    assert!(matches!(err, BlobError::Io(_)), "{err:?}");
    assert_eq!(read_all(blobs.get(key).await.unwrap()).await, b"old");
    assert_eq!(backend.blob_listing().await, [key], "the upload was aborted");
}

/// With a CDN configured, URLs are `{cdn}/{key}`, unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_cdn_urls() {
    let backend = AwsBackend::new().await;
    let mut settings = backend.world.s3_settings();
    settings.cdn_base = Some("https://cdn.example.com/media/".into());
    let blobs = S3Blobs::new(&backend.world.config, settings);
    assert_eq!(
        blobs.url("a/b.mp4").await.unwrap(),
        "https://cdn.example.com/media/a/b.mp4"
    );
    assert!(blobs.url("../b.mp4").await.is_err());
}

/// One send of more than 10 messages goes out in batches; every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_send_batches_beyond_ten() {
    let backend = AwsBackend::new().await;
    let queue = backend.queue();
    let sent: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    queue
        .send(&sent.iter().map(|id| job(id)).collect::<Vec<_>>(), Duration::ZERO)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = queue.receive(10, contract::LONG, Duration::from_secs(1)).await.unwrap();
        assert!(batch.len() <= 10);
        got.extend(batch.into_iter().map(|d| match d.message {
            Message::Job(key) => key.job_id,
            other => panic!("{other:?}"),
        }));
        if got.len() >= sent.len() {
            break;
        }
    }
    got.sort();
    assert_eq!(got, sent);
}

/// A body that is not a message is dropped (deleted) and the readable ones are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_unreadable_body_is_dropped() {
    let backend = AwsBackend::new().await;
    backend
        .world
        .sqs()
        .send_message()
        .queue_url(&backend.world.job_queue_url)
        .message_body("not json")
        .send()
        .await
        .unwrap();
    let queue = backend.queue();
    queue.send(&[job("ok")], Duration::ZERO).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(queue.receive(10, Duration::from_secs(1), Duration::ZERO).await.unwrap());
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.iter().map(|d| d.message.clone()).collect::<Vec<_>>(), [job("ok")]);
    // The unreadable one was deleted: nothing comes back once visibility timeouts end.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = queue.receive(10, contract::LONG, Duration::ZERO).await.unwrap();
    assert_eq!(again.iter().map(|d| d.message.clone()).collect::<Vec<_>>(), [job("ok")]);
}

/// Queue errors carry the SDK's message, typed as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_errors_are_unavailable() {
    let backend = AwsBackend::new().await;
    let queue = SqsQueue::new(
        &backend.world.config,
        SqsSettings {
            queue_url: format!("{}/123456789012/no-such-queue", backend.world.moto.url),
            endpoint_url: Some(backend.world.moto.url.clone()),
        },
    );
    let err = queue.send(&[job("x")], Duration::ZERO).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, reelay_core::ports::QueueError::Unavailable(_)), "{text}");
    assert!(!text.contains("testing"), "no credentials in errors: {text}");
}

// ---------------------------------------------------------------------------------------
// DynamoDB only
// ---------------------------------------------------------------------------------------

impl AwsBackend {
    /// One raw item of the table.
    async fn raw(&self, pk: &str, sk: &str) -> std::collections::HashMap<String, AttributeValue> {
        self.world
            .dynamodb()
            .get_item()
            .table_name(&self.world.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .expect("item exists")
    }
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .map(|v| v.as_n().expect("a number").parse().expect("an integer"))
}

/// Finished jobs and executions carry `expires_at` = their end + the retention, in epoch
/// seconds (DynamoDB's TTL deletes them then); live ones carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_finished_records_expire_after_the_retention() {
    use reelay_core::domain::{ExecutionStatus, JobStatus};
    let backend = AwsBackend::new().await;
    let store = backend.store();
    let (ex, jobs) = contract::plan(&contract::unique("ex"), &[("a", &[])]);
    store.create_execution(&ex, &jobs, Default::default()).await.unwrap();
    let pk = format!("EXEC#{}", ex.id);
    assert_eq!(number(&backend.raw(&pk, "JOB#a").await, "expires_at"), None);

    let ended = contract::T0 + 5_000;
    let mut done = jobs[0].clone();
    done.status = JobStatus::Completed;
    done.completed_at = Some(ended);
    assert!(matches!(
        store.update_job(&jobs[0], &done).await.unwrap(),
        reelay_core::ports::Write::Applied(_)
    ));
    let retention = 30 * 24 * 3600;
    assert_eq!(
        number(&backend.raw(&pk, "JOB#a").await, "expires_at"),
        Some(ended / 1000 + retention)
    );
    let live = store.execution(&ex.id).await.unwrap().unwrap();
    assert_eq!(number(&backend.raw(&pk, "#EXEC").await, "expires_at"), None);
    let mut finished = live.clone();
    finished.status = ExecutionStatus::Completed;
    finished.completed_at = Some(ended + 1_000);
    assert!(matches!(
        store.update_execution(&live, &finished).await.unwrap(),
        reelay_core::ports::Write::Applied(_)
    ));
    assert_eq!(
        number(&backend.raw(&pk, "#EXEC").await, "expires_at"),
        Some((ended + 1_000) / 1000 + retention)
    );
    // Ending it freed the tenant's place.
    let admission = backend.raw(&format!("TENANT#{}", ex.tenant_id), "#ADMISSION").await;
    assert_eq!(number(&admission, "in_flight"), Some(0));
}

/// A plan larger than one transaction (300 jobs) is created whole: its jobs read back, its
/// roots are queued, and a refusal by the tenant's limits writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_creates_a_plan_larger_than_one_transaction() {
    use reelay_core::ports::{Admission, StoreError};
    let backend = AwsBackend::new().await;
    let store = backend.store();
    // 150 roots, each with one child.
    let ids: Vec<(String, String)> = (0..150).map(|i| (format!("r{i:03}"), format!("c{i:03}"))).collect();
    let parents: Vec<[&str; 1]> = ids.iter().map(|(r, _)| [r.as_str()]).collect();
    let mut shape: Vec<(&str, &[&str])> = Vec::new();
    for ((root, child), parent) in ids.iter().zip(&parents) {
        shape.push((root, &[]));
        shape.push((child, &parent[..]));
    }
    let (ex, jobs) = contract::plan(&contract::unique("ex"), &shape);
    let one = Admission {
        max_in_flight: Some(1),
        max_per_minute: None,
    };
    store.create_execution(&ex, &jobs, one).await.unwrap();
    let (read, read_jobs) = store.execution_with_jobs(&ex.id).await.unwrap().unwrap();
    assert_eq!((read.total_jobs, read_jobs.len()), (300, 300));
    let child = contract::key(&ex.id, "c042");
    let release = store.release_edge(&child, "r042", contract::T0 + 1).await.unwrap();
    assert!(release.removed);

    // The tenant is now at its limit: another large plan is refused before anything is written.
    let (refused, jobs) = contract::plan(&contract::unique("ex"), &shape);
    let err = store.create_execution(&refused, &jobs, one).await.unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err}");
    let items = backend
        .world
        .dynamodb()
        .query()
        .table_name(&backend.world.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("EXEC#{}", refused.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0, "nothing of the refused plan is stored");
}

/// Jobs written ahead of an execution that was never created (the process died half-way)
/// are left alone for an hour, then the stale sweep deletes them, never reporting them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_the_remains_of_a_creation_that_died_are_swept() {
    let backend = AwsBackend::new().await;
    let store = backend.store();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let live = contract::plan(&contract::unique("ex"), &[("a", &[])]);
    store
        .create_execution(&live.0, &live.1, Default::default())
        .await
        .unwrap();
    // The remains: a root and its child, as written ahead, with no execution.
    let orphan = contract::unique("ex");
    let put = |job: &str, queued_at: Option<i64>| {
        let mut request = backend
            .world
            .dynamodb()
            .put_item()
            .table_name(&backend.world.table)
            .item("pk", AttributeValue::S(format!("EXEC#{orphan}")))
            .item("sk", AttributeValue::S(format!("JOB#{job}")));
        if let Some(at) = queued_at {
            request = request
                .item("sched_pk", AttributeValue::S("QUEUED".into()))
                .item("sched_at", AttributeValue::N(at.to_string()))
                .item("queued_at", AttributeValue::N(at.to_string()));
        }
        request
    };
    let (_, template) = contract::plan(&orphan, &[("a", &[]), ("b", &["a"])]);
    let record = |i: usize| AttributeValue::S(serde_json::to_string(&template[i]).unwrap());
    let recent = now - 10 * 60 * 1000;
    for (i, (job, queued)) in [("a", Some(recent)), ("b", None)].into_iter().enumerate() {
        put(job, queued)
            .item(
                "status",
                AttributeValue::S(if queued.is_some() { "queued" } else { "waiting" }.into()),
            )
            .item("version", AttributeValue::N("0".into()))
            .item("record", record(i))
            .send()
            .await
            .unwrap();
    }
    let stale = store.stale_queued(now, 10).await.unwrap();
    assert_eq!(stale, [contract::key(&live.0.id, "a")], "remains are never reported");
    assert_eq!(
        store
            .job(&contract::key(&orphan, "b"))
            .await
            .unwrap()
            .map(|j| j.id().to_string())
            .as_deref(),
        Some("b"),
        "an hour's grace"
    );

    // An hour later (its root queued long ago), the sweep deletes every job of it.
    let long_ago = now - 2 * 60 * 60 * 1000;
    put("a", Some(long_ago))
        .item("status", AttributeValue::S("queued".into()))
        .item("version", AttributeValue::N("0".into()))
        .item("record", record(0))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.stale_queued(now, 10).await.unwrap(),
        [contract::key(&live.0.id, "a")]
    );
    assert!(store.job(&contract::key(&orphan, "a")).await.unwrap().is_none());
    assert!(store.job(&contract::key(&orphan, "b")).await.unwrap().is_none());
}

/// A release removes the edge, then queues the child: a crash between the two steps leaves
/// the edge gone and the child waiting. The parent's retried release finishes the job and
/// reports it as done now, so the engine sends the child's message at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_retried_release_repairs_a_crash_between_its_steps() {
    use reelay_core::domain::JobStatus;
    let backend = AwsBackend::new().await;
    let store = backend.store();
    let (ex, jobs) = contract::plan(&contract::unique("ex"), &[("a", &[]), ("b", &["a"])]);
    store.create_execution(&ex, &jobs, Default::default()).await.unwrap();
    // The first step alone, as a crashed release would leave it.
    backend
        .world
        .dynamodb()
        .update_item()
        .table_name(&backend.world.table)
        .key("pk", AttributeValue::S(format!("EXEC#{}", ex.id)))
        .key("sk", AttributeValue::S("JOB#b".into()))
        .update_expression("SET last_released = :parent DELETE pending :a")
        .expression_attribute_values(":a", AttributeValue::Ss(vec!["a".into()]))
        .expression_attribute_values(":parent", AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    let child = contract::key(&ex.id, "b");
    assert_eq!(store.job(&child).await.unwrap().unwrap().status, JobStatus::Waiting);

    let other = store.release_edge(&child, "x", contract::T0 + 5).await.unwrap();
    assert_eq!(
        other.status,
        JobStatus::Waiting,
        "only the parent that removed the last edge queues"
    );
    let release = store.release_edge(&child, "a", contract::T0 + 10).await.unwrap();
    assert!(
        release.removed,
        "the repair reports the release as its own, so its message is sent"
    );
    assert_eq!(release.status, JobStatus::Queued);
    assert_eq!(release.released_by.as_deref(), Some("a"));
    let queued = store.job(&child).await.unwrap().unwrap();
    assert_eq!(
        (queued.status, queued.queued_at),
        (JobStatus::Queued, Some(contract::T0 + 10))
    );
    assert_eq!(
        store.stale_queued(contract::T0 + 11, 10).await.unwrap(),
        [contract::key(&ex.id, "a"), child],
        "the queued child is on the stale sweep's index"
    );
}

/// Two functions (two clients of the table) share one provider budget: racing together, they
/// are admitted the limit between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_rate_budget_is_shared_by_every_process() {
    use reelay_core::ports::RateBudget;
    const LIMIT: u32 = 6;
    let backend = AwsBackend::new().await;
    let (one, two): (Arc<dyn RateBudget>, Arc<dyn RateBudget>) =
        (Arc::new(backend.world.store()), Arc::new(backend.world.store()));
    let scope = contract::unique("replicate/creates");
    let takers: Vec<_> = (0..3 * LIMIT)
        .map(|i| {
            let budget = if i % 2 == 0 { one.clone() } else { two.clone() };
            let scope = scope.clone();
            tokio::spawn(async move { budget.take(&scope, LIMIT, Duration::from_secs(60)).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for taker in takers {
        admitted += u32::from(taker.await.unwrap().is_ok());
    }
    assert_eq!(admitted, LIMIT);
}

/// A conditional write whose answer was lost is retried by the SDK, and then fails its own
/// version condition: the store tells that apart from a lost race and reports it applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_a_write_that_landed_unanswered_is_applied_not_stale() {
    use reelay_core::domain::JobStatus;
    use reelay_core::ports::Write;
    let backend = AwsBackend::new().await;
    let store = backend.store();
    let (ex, jobs) = contract::plan(&contract::unique("ex"), &[("a", &[])]);
    store.create_execution(&ex, &jobs, Default::default()).await.unwrap();
    let mut running = jobs[0].clone();
    running.status = JobStatus::Running;
    running.lease_until = Some(contract::T0 + 60_000);
    // The first try lands...
    let Write::Applied(landed) = store.update_job(&jobs[0], &running).await.unwrap() else {
        panic!("the first write applies");
    };
    // ...and its retry (same update) sees its own result: applied, as the engine must think.
    let Write::Applied(again) = store.update_job(&jobs[0], &running).await.unwrap() else {
        panic!("a retry of a landed write is not a lost race");
    };
    assert_eq!(again, landed);
    // Someone else's write at the same version is still a lost race.
    let mut other = jobs[0].clone();
    other.status = JobStatus::Cancelled;
    assert!(matches!(
        store.update_job(&jobs[0], &other).await.unwrap(),
        Write::Stale
    ));
}

/// Without a per-minute limit, a tenant's concurrent submissions do not race each other:
/// all are admitted up to the in-flight limit, and exactly that many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_concurrent_submissions_are_admitted_up_to_the_in_flight_limit() {
    use reelay_core::ports::{Admission, StoreError};
    let backend = AwsBackend::new().await;
    let store = backend.store();
    let admission = Admission {
        max_in_flight: Some(12),
        max_per_minute: None,
    };
    let creates: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (ex, jobs) = contract::plan(&contract::unique("ex"), &[("a", &[])]);
                store.create_execution(&ex, &jobs, admission).await
            })
        })
        .collect();
    let (mut admitted, mut limited) = (0, 0);
    for create in creates {
        match create.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(StoreError::LimitReached { .. }) => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((admitted, limited), (12, 18));
}
