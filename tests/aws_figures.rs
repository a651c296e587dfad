//! Figures of the AWS adapters on moto, printed by `make aws-figures` (ignored in the default
//! run: they measure, they do not pass or fail on numbers):
//!
//! * AWS requests per execution, by service and operation, for a one-job plan and for the
//!   two-scene example, with the DynamoDB capacity moto reports (`aws/counts.rs`);
//! * the peak memory of uploading a generated stream to S3 through the blob port, for 64 MiB
//!   and 1 GiB: it must not grow with the size.

#[allow(dead_code)]
#[path = "lambda/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "aws/mod.rs"]
mod moto_aws;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};

use harness::{receiver, Functions, SERVER_KEY};
use moto_aws::world::AwsWorld;
use reelay_aws::secrets::ServerSecrets;
use reelay_core::ports::{Blobs, ByteStream, KeyStore};
use reelay_core::tenants::new_key;
use reelay_lambda::{Adapters, AwsNode};

/// Runs `plan` through the handlers on `world`'s counted clients and prints its requests:
/// the execution's own, but for the poller's schedule queries (`Query(schedule)`, three per tick), a fixed cost
/// per tick, not per job.
async fn count_requests(world: &AwsWorld, functions: &Functions, key: &str, label: &str, mut plan: Value) {
    let (hook_url, hooks) = receiver().await;
    plan["webhook"] = json!({ "url": hook_url });
    world.counts.reset();
    let (status, body) = functions.call(Method::POST, "/api/execute", key, Some(plan)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ticks = functions.run_until_webhook(&hooks).await;
    let counts = world.counts.snapshot();
    println!("\n{label}: AWS requests from submission to the client webhook ({ticks} poller ticks)");
    println!(
        "  {:<10} {:<28} {:>6} {:>10}",
        "service", "operation", "calls", "capacity"
    );
    let mut by_service: std::collections::BTreeMap<&str, u64> = Default::default();
    for ((service, operation), count) in &counts {
        let capacity = if service == "DynamoDB" {
            format!("{:.1}", count.capacity)
        } else {
            String::new()
        };
        println!("  {service:<10} {operation:<28} {:>6} {capacity:>10}", count.calls);
        *by_service.entry(service).or_default() += count.calls;
    }
    let schedule = counts
        .get(&("DynamoDB".to_string(), "Query(schedule)".to_string()))
        .map_or(0, |c| c.calls);
    let totals: Vec<String> = by_service.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "  total: {} (DynamoDB without the schedule's queries: {})",
        totals.join(", "),
        by_service.get("DynamoDB").copied().unwrap_or(0) - schedule
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure: run by `make aws-figures`"]
async fn figure_aws_requests_per_execution() {
    let world = AwsWorld::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = harness::env(&[]);
    let settings = harness::settings(&env, dir.path());
    let store = Arc::new(world.store());
    let adapters = Adapters {
        store: store.clone(),
        keys: store.clone(),
        job_queue: Arc::new(world.job_queue()),
        webhook_queue: Arc::new(world.webhook_queue()),
        media_queue: None,
        blobs: Arc::new(world.blobs()),
        budget: store.clone(),
        scenes: None,
    };
    let secrets = ServerSecrets::parse(&format!(r#"{{"serverKey":"{SERVER_KEY}"}}"#)).unwrap();
    let node = AwsNode::new(adapters, &settings, secrets.sealer().clone()).unwrap();
    let functions = Functions::new(&node);
    let (key, record) = new_key("acme", "figures", 1);
    store.create_key(&record).await.unwrap();

    let example = |name: &str| -> Value {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut one_job = example("two-scenes.json");
    let first = one_job["executionPlan"]["jobs"][0].clone();
    one_job["executionPlan"]["jobs"] = json!([first]);
    count_requests(&world, &functions, &key, "one-job plan (one local video)", one_job).await;
    count_requests(
        &world,
        &functions,
        &key,
        "two-scene example (4 jobs)",
        example("two-scenes.json"),
    )
    .await;
}

/// The process's peak resident memory since the last reset, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Starts a new peak from the current resident size (`clear_refs` 5, Linux ≥ 4.0).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

/// `size` bytes in 1 MiB chunks that share one buffer: the source itself costs nothing.
fn generated(size: u64) -> ByteStream {
    let chunk = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = size.div_ceil(chunk.len() as u64);
    let last = size - (chunks - 1) * chunk.len() as u64;
    Box::pin(futures::stream::iter((0..chunks).map(move |i| {
        Ok(if i + 1 == chunks {
            chunk.slice(..last as usize)
        } else {
            chunk.clone()
        })
    })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure: run by `make aws-figures`"]
async fn figure_s3_upload_peak_memory() {
    let world = AwsWorld::start().await;
    let blobs = world.blobs();
    // Warm the client (TLS-free here, but the SDK's first call sets up its runtime).
    blobs.put("warm", "video/mp4", generated(1024)).await.unwrap();
    println!("\nS3 upload through the blob port (8 MiB parts), peak resident memory of this process:");
    for (label, size) in [("64 MiB", 64u64 << 20), ("1 GiB", 1u64 << 30)] {
        reset_peak_rss();
        let before = peak_rss_kib();
        let started = std::time::Instant::now();
        let stored = blobs.put("big.mp4", "video/mp4", generated(size)).await.unwrap();
        assert_eq!(stored.size, size);
        let peak = peak_rss_kib();
        println!(
            "  {label:>7}: peak {:>4} MiB ({:+} MiB over the {} MiB before), {:.1} s",
            peak / 1024,
            (peak as i64 - before as i64) / 1024,
            before / 1024,
            started.elapsed().as_secs_f64()
        );
    }
}
