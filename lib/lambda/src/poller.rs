//! The scheduled function: EventBridge Scheduler starts it at most once a minute, so one
//! invocation plays the embedded timer for `run_for`: `reelay_core::worker::tick` (due
//! provider polls, `queued` jobs whose message was lost, due client webhooks) every `tick`.
//! The event's payload means nothing (any JSON is taken).
//!
//! An invocation stops early enough to finish within its Lambda deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};
use tokio::time::Instant;

use reelay_core::webhooks::Dispatcher;
use reelay_core::worker::tick;
use reelay_core::Engine;

use crate::settings::PollerSettings;

/// Left before the Lambda deadline when the last tick starts: room for that tick.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

pub struct Poller {
    engine: Arc<Engine>,
    dispatcher: Arc<Dispatcher>,
    settings: PollerSettings,
}

impl Poller {
    pub fn new(engine: Arc<Engine>, dispatcher: Arc<Dispatcher>, settings: PollerSettings) -> Poller {
        Poller {
            engine,
            dispatcher,
            settings,
        }
    }

    /// The Lambda handler; answers how many ticks ran.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let run_for = budget(self.settings.run_for, event.context.deadline, now_ms);
        let ticks = run_ticks(run_for, self.settings.tick, || tick(&self.engine, &self.dispatcher)).await;
        tracing::info!(ticks, "poller done");
        Ok(json!({ "ticks": ticks }))
    }
}

/// How long to keep starting ticks: `run_for`, less when the invocation's deadline (ms since
/// the epoch; 0 when unknown) comes sooner.
fn budget(run_for: Duration, deadline_ms: u64, now_ms: u64) -> Duration {
    if deadline_ms == 0 {
        return run_for;
    }
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(DEADLINE_MARGIN);
    if left < run_for {
        tracing::warn!(
            ?left,
            ?run_for,
            "the function's timeout is shorter than the poller's run: ticking less"
        );
    }
    run_for.min(left)
}

/// Runs `tick` at once, then every `every` while less than `run_for` has passed since the
/// start; a tick that overruns delays the next. Returns how many ran (at least one).
async fn run_ticks<F, Fut>(run_for: Duration, every: Duration, mut tick: F) -> u32
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let mut ticks = 0;
    let mut next = start;
    loop {
        tick().await;
        ticks += 1;
        next += every;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        if next.duration_since(start) >= run_for {
            return ticks;
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn count(run_for: u64, every: u64, tick_takes: u64) -> (u32, Duration) {
        let started = Instant::now();
        let n = AtomicU32::new(0);
        let ticks = run_ticks(Duration::from_secs(run_for), Duration::from_secs(every), || async {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(tick_takes)).await;
        })
        .await;
        assert_eq!(ticks, n.load(Ordering::SeqCst));
        (ticks, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_every_interval_until_run_for_has_passed() {
        // 0, 5, …, 45 s.
        let (ticks, took) = count(50, 5, 0).await;
        assert_eq!(ticks, 10);
        assert_eq!(took, Duration::from_secs(45));
        // Zero: exactly one tick, at once.
        assert_eq!(count(0, 5, 0).await, (1, Duration::ZERO));
        // Slow ticks (7 s) start back to back: 0, 7, … 49 s.
        let (ticks, took) = count(50, 5, 7).await;
        assert_eq!(ticks, 8);
        assert_eq!(took, Duration::from_secs(56));
    }

    #[test]
    fn the_deadline_shortens_the_run() {
        let run_for = Duration::from_secs(50);
        assert_eq!(budget(run_for, 0, 1_000), run_for);
        assert_eq!(budget(run_for, 1_000 + 120_000, 1_000), run_for);
        assert_eq!(budget(run_for, 1_000 + 30_000, 1_000), Duration::from_secs(20));
        assert_eq!(budget(run_for, 1_000 + 5_000, 1_000), Duration::ZERO);
        assert_eq!(budget(run_for, 500, 1_000), Duration::ZERO);
    }
}
