//! `reelay bench`: the engine on the durable SQLite store and queue, with an instant
//! provider, over the DAG shapes of the performance anchors. Prints jobs per second, the
//! engine's own time per job, and the release latency (last parent done → child running).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelay_core::clock::SystemClock;
use reelay_core::plan::{parse_value, PlanLimits};
use reelay_core::ports::Admission;
use reelay_core::ports::{Clock, Queue};
use reelay_core::secrets::Sealer;
use reelay_core::worker::{run_workers, WorkerSettings};
use reelay_core::{Engine, EngineSettings, Event, Ports, Providers};
use reelay_local::{Db, Durability, SqliteQueue, SqliteStore};
use reelay_testkit::dag_shapes::standard;
use reelay_testkit::instant::{InstantMedia, InstantProvider, InstantScenes, NullBlobs};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Job runner tasks.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Only the shapes whose name contains this (a, b, c, d, e or part of a name).
    #[arg(long)]
    only: Option<String>,
    /// fsync every commit (SQLite synchronous=FULL) instead of the default WAL NORMAL.
    #[arg(long)]
    fsync: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "reelay bench: SQLite store + queue on disk ({}), {} runner tasks, instant provider",
        if args.fsync {
            "synchronous=FULL"
        } else {
            "WAL, synchronous=NORMAL"
        },
        args.workers
    );
    println!(
        "{:<40} {:>6} {:>9} {:>9} {:>19} {:>21}",
        "shape", "jobs", "wall s", "jobs/s", "per-job p50/p99 ms", "release p50/p99 ms"
    );
    // The anchors' sizes: 10,000 independent, 1→5,000, 5,000→1, 20 × 100, a 2,000 chain.
    for shape in standard(5_000, 20, 100, 2_000) {
        let (name, jobs) = (shape.name.as_str(), &shape.jobs);
        if args.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let dir = tempfile::tempdir()?;
        let durability = if args.fsync {
            Durability::Power
        } else {
            Durability::Process
        };
        let db = Db::open(&dir.path().join("bench.db"), durability)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = Arc::new(SqliteQueue::new(db.clone(), clock.clone()));
        let db_for_webhooks = db.clone();
        let providers = Providers::new().with(Arc::new(InstantProvider::new([])));
        let limits = PlanLimits {
            max_jobs: 100_000,
            max_body_bytes: usize::MAX,
        };
        let request =
            parse_value(&shape.plan(), &providers, limits).map_err(|e| anyhow::anyhow!("bench plan invalid: {e:?}"))?;
        let engine = Arc::new(Engine::new(
            Ports {
                store: Arc::new(SqliteStore::new(db)),
                queue: queue.clone(),
                webhook_queue: Arc::new(SqliteQueue::webhooks(db_for_webhooks, clock.clone())),
                sealer: Sealer::from_base64(&Sealer::generate_key())?,
                blobs: Arc::new(NullBlobs),
                media: Arc::new(InstantMedia::default()),
                scenes: Arc::new(InstantScenes::default()),
                providers,
                clock,
            },
            EngineSettings {
                event_buffer: 1 << 20,
                limits,
                admission: Admission::default(),
                ..EngineSettings::default()
            },
        ));
        let mut events = engine.subscribe();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let settings = WorkerSettings {
            concurrency: args.workers,
            batch: 32,
            ..WorkerSettings::default()
        };
        let dyn_queue: Arc<dyn Queue> = queue;
        let runners = tokio::spawn(run_workers(engine.clone(), dyn_queue, settings, stopped));
        let started = Instant::now();
        let execution = engine.start("bench", request).await?;
        let mut running: HashMap<String, Instant> = HashMap::new();
        let mut completed: HashMap<String, Instant> = HashMap::new();
        let ended = loop {
            match tokio::time::timeout(Duration::from_secs(300), events.recv()).await {
                Ok(Ok(Event::Job { key, status, at })) if key.execution_id == execution.id => match status {
                    reelay_core::domain::JobStatus::Running => {
                        running.entry(key.job_id).or_insert(at);
                    }
                    reelay_core::domain::JobStatus::Completed => {
                        completed.insert(key.job_id, at);
                    }
                    _ => {}
                },
                Ok(Ok(Event::ExecutionEnded { id, status })) if id == execution.id => break status,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => anyhow::bail!("lost events: {e}"),
                Err(_) => anyhow::bail!("{name}: no progress for 300 s"),
            }
        };
        let wall = started.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let _ = runners.await;
        if ended != reelay_core::domain::ExecutionStatus::Completed || completed.len() != jobs.len() {
            anyhow::bail!(
                "{name}: ended {} with {}/{} jobs completed",
                ended.name(),
                completed.len(),
                jobs.len()
            );
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut per_job: Vec<f64> = completed
            .iter()
            .filter_map(|(id, done)| running.get(id).map(|r| ms(done.duration_since(*r))))
            .collect();
        let mut release: Vec<f64> = jobs
            .iter()
            .filter(|(_, parents)| !parents.is_empty())
            .filter_map(|(id, parents)| {
                let ready = parents.iter().filter_map(|p| completed.get(p)).max()?;
                Some(ms(running.get(id)?.saturating_duration_since(*ready)))
            })
            .collect();
        per_job.sort_by(f64::total_cmp);
        release.sort_by(f64::total_cmp);
        let release_text = if release.is_empty() {
            "—".to_string()
        } else {
            format!("{:.2} / {:.2}", percentile(&release, 0.5), percentile(&release, 0.99))
        };
        println!(
            "{:<40} {:>6} {:>9.2} {:>9.0} {:>19} {:>21}",
            name,
            jobs.len(),
            wall,
            jobs.len() as f64 / wall,
            format!("{:.2} / {:.2}", percentile(&per_job, 0.5), percentile(&per_job, 0.99)),
            release_text
        );
    }
    Ok(ExitCode::SUCCESS)
}
