//! Follows one execution to its end, a line per job state change, then the final video.

use std::process::ExitCode;
use std::time::Instant;

use tokio::sync::broadcast;

use reelay_core::domain::{ExecutionStatus, JobStatus};
use reelay_core::{Engine, Event};

/// The tenant of everything run from the command line.
pub const LOCAL_TENANT: &str = "local";

pub async fn follow(
    engine: &Engine,
    execution_id: &str,
    mut events: broadcast::Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let Some((execution, jobs)) = engine.store().execution_with_jobs(execution_id).await? else {
        anyhow::bail!("no execution {execution_id} in this data folder");
    };
    println!("execution {} ({} jobs)", execution.id, execution.total_jobs);
    let width = jobs.iter().map(|j| j.id().len()).max().unwrap_or(4).max(4);
    let operations: std::collections::HashMap<String, &'static str> = jobs
        .iter()
        .map(|j| (j.id().to_string(), j.spec.operation.name()))
        .collect();
    let mut ended = execution.status.is_terminal();
    while !ended {
        // Events drive the lines; a timed re-read of the store is the backstop should an
        // event be missed (a slow reader, or the end reached before we subscribed).
        match tokio::time::timeout(std::time::Duration::from_secs(1), events.recv()).await {
            Ok(Ok(Event::Job { key, status, .. })) if key.execution_id == execution_id => {
                let op = operations.get(&key.job_id).copied().unwrap_or("?");
                println!(
                    "  {:<width$}  {:<14} {:<17} {:>6.1}s",
                    key.job_id,
                    op,
                    status.name(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Ok(Event::ExecutionEnded { id, .. })) if id == execution_id => ended = true,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                ended = engine
                    .store()
                    .execution(execution_id)
                    .await?
                    .is_some_and(|e| e.status.is_terminal());
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => anyhow::bail!("the engine stopped"),
        }
    }
    let Some((execution, jobs)) = engine.store().execution_with_jobs(execution_id).await? else {
        anyhow::bail!("execution {execution_id} vanished");
    };
    let elapsed = started.elapsed().as_secs_f64();
    match execution.status {
        ExecutionStatus::Completed => {
            println!("completed in {elapsed:.1}s");
            if let Some(result) = &execution.result {
                let path = result.url.strip_prefix("file://").unwrap_or(&result.url);
                println!("output: {path}");
                println!(
                    "probe: duration {:.2}s, {}x{} ({}), {} bytes",
                    result.duration.unwrap_or(0.0),
                    result.width.unwrap_or(0),
                    result.height.unwrap_or(0),
                    result.aspect_ratio.as_deref().unwrap_or("?"),
                    result.size_bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        status => {
            println!("{} in {elapsed:.1}s", status.name());
            if let Some(error) = &execution.error {
                eprintln!("root cause: {}", error.message);
            }
            let skipped = jobs.iter().filter(|j| j.status == JobStatus::Skipped).count();
            if skipped > 0 {
                eprintln!("{skipped} dependent job(s) skipped");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Follows the execution on a started node to its end, lets its webhooks leave, then stops
/// the node.
pub async fn to_end(
    node: reelay_local::LocalNode,
    execution_id: &str,
    events: broadcast::Receiver<Event>,
) -> anyhow::Result<ExitCode> {
    let code = follow(node.engine(), execution_id, events).await;
    let_webhooks_leave(node.engine(), execution_id).await;
    node.stop().await;
    code
}

/// Waits (a while) for the first attempt of each webhook the execution made, so `run` does
/// not exit with its end message unsent; later retries wait for the next start.
async fn let_webhooks_leave(engine: &Engine, execution_id: &str) {
    use reelay_core::domain::DeliveryState;
    for _ in 0..300 {
        match engine.store().deliveries(execution_id).await {
            Ok(deliveries)
                if deliveries
                    .iter()
                    .any(|d| d.state == DeliveryState::Pending && d.attempts == 0) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => return,
        }
    }
}
