//! `make bench-load`: status reads under load on a served embedded node. 200 executions of
//! five `local` jobs each (small renders: polling and webhook models, a chain and a fan-out)
//! run while clients read their status at 1,000 requests/s over HTTP. Prints the status
//! latency (p50, p99), the rate achieved, errors, the process's peak RSS and most child
//! processes (ffmpeg) at once, and how long until every execution ended.
//! The clients run in the server's process (one runtime), so their cost is counted against it.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Executions run at once (`BENCH_EXECUTIONS` for a smaller trial).
fn executions() -> usize {
    std::env::var("BENCH_EXECUTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}
const RATE: u64 = 1_000;

fn plan(n: usize) -> Value {
    let job = |id: &str, model: &str, deps: &[&str]| {
        let kind = if model.starts_with("image") {
            "generateImage"
        } else {
            "generate"
        };
        json!({"id": id, "type": kind, "dependsOn": deps, "params": {
            "provider": "local", "modelId": model, "duration": 1, "resolution": "144p",
            "prompt": format!("load {n} {id}")}})
    };
    json!({"jobs": [
        job("a", "video", &[]),
        job("b", "video-polling", &["a"]),
        job("c", "image", &["a"]),
        job("d", "image-polling", &["b"]),
        job("e", "video", &["c", "d"]),
    ]})
}

/// Children of this process right now (ffmpeg, espeak…).
fn children() -> usize {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid …: the comm may hold spaces, so split after its ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                .unwrap_or(false)
        })
        .count()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a load benchmark: make bench-load"]
async fn status_reads_under_load() {
    let (app, base) = support::spawn_served_app_with(|s, _| {
        s.node.engine.admission.max_in_flight = None;
        s.node.engine.admission.max_per_minute = None;
        s.node.providers.local_delay = Duration::from_millis(50);
    })
    .await;
    let key = app.key(support::ACME).to_string();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let executions = executions();
    let mut ids = Vec::with_capacity(executions);
    for n in 0..executions {
        ids.push(app.submit(support::ACME, &plan(n)).await);
    }
    let ids = Arc::new(ids);
    let done = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let ended: Arc<Mutex<std::collections::HashSet<String>>> = Default::default();
    // Open loop: a request every millisecond, whether or not earlier ones have answered.
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(children());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            most
        })
    };
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("BENCH_DEADLINE_SECS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(600),
        );
    let mut sent = 0u64;
    let load_started = Instant::now();
    let mut last_report = Instant::now();
    while ended.lock().unwrap().len() < executions && Instant::now() < deadline {
        // Latency counts from when the request was due, not from when this loop got to it:
        // a stalled process must not hide its stall from the figures (coordinated omission).
        let due = ticker.tick().await.into_std();
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let mut seen = latencies.lock().unwrap().clone();
            seen.sort();
            eprintln!(
                "[{:.0} s] ended {}, answered {}, errors {}, p50 {:.1} ms, p99 {:.1} ms, children {}",
                started.elapsed().as_secs_f64(),
                ended.lock().unwrap().len(),
                seen.len(),
                errors.load(Ordering::Relaxed),
                percentile(&seen, 0.5).as_secs_f64() * 1e3,
                percentile(&seen, 0.99).as_secs_f64() * 1e3,
                children()
            );
        }
        let id = ids[sent as usize % ids.len()].clone();
        sent += 1;
        let (client, key, base) = (client.clone(), key.clone(), base.clone());
        let (latencies, errors, ended) = (latencies.clone(), errors.clone(), ended.clone());
        tokio::spawn(async move {
            let answer = client
                .get(format!("{base}/api/execute/{id}/status"))
                .bearer_auth(&key)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let body: Option<Value> = match answer {
                Ok(r) if r.status().is_success() => r.json().await.ok(),
                _ => None,
            };
            let elapsed = due.elapsed();
            match body {
                Some(body) => {
                    latencies.lock().unwrap().push(elapsed);
                    let status = body["status"].as_str().unwrap_or_default();
                    if ["completed", "failed", "cancelled"].contains(&status) {
                        ended.lock().unwrap().insert(id);
                    }
                }
                None => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let all_ended = started.elapsed();
    let load_secs = load_started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let most_children = sampler.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut sorted = latencies.lock().unwrap().clone();
    sorted.sort();
    let ended_count = ended.lock().unwrap().len();
    let mut completed = 0;
    for id in ids.iter() {
        let status = app.status(support::ACME, id).await;
        if status["status"] == "completed" {
            completed += 1;
        } else {
            // Where an unfinished execution stands, job by job.
            let jobs: Vec<String> = status["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|j| {
                    let (id, state) = (j["id"].as_str().unwrap_or("?"), j["status"].as_str().unwrap_or("?"));
                    match j["error"].as_str() {
                        Some(error) => format!("{id}={state} ({error})"),
                        None => format!("{id}={state}"),
                    }
                })
                .collect();
            println!("not completed: {id} {} [{}]", status["status"], jobs.join(", "));
        }
    }
    println!("executions: {executions} x 5 jobs; ended {ended_count}, completed {completed}");
    println!("all ended after {:.1} s", all_ended.as_secs_f64());
    println!(
        "status GETs: {} answered, {} errors, {:.0}/s achieved (target {RATE}/s)",
        sorted.len(),
        errors.load(Ordering::Relaxed),
        sorted.len() as f64 / load_secs
    );
    println!(
        "status latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        percentile(&sorted, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "server: peak RSS {:.0} MB, at most {most_children} child processes at once",
        peak_rss_mb()
    );
    assert_eq!(completed, executions, "every execution completed");
    app.stop().await;
}
