//! The engine on the embedded SQLite store and queue, with instant provider and media, driven
//! message by message so that duplicates, crashes and time are under the test's control.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use reelay_core::domain::DeliveryState;
use reelay_core::domain::{ExecutionStatus, JobStatus, ProviderCall, ProviderOutcome};
use reelay_core::ports::{Clock, Message, Provider, ProviderRequest, Queue, Store, Write};
use reelay_core::webhooks::schedule::RetrySchedule;
use reelay_core::webhooks::transport::{HttpAnswer, OutboundRequest, TransportError, WebhookTransport};
use reelay_core::webhooks::{DispatchSettings, Dispatcher};
use reelay_core::worker::{MediaForwarding, MessageHandler};
use reelay_core::Handled;
use reelay_local::{FileBlobs, SqliteQueue};
use reelay_testkit::dag_shapes::standard;
use reelay_testkit::instant::INLINE_OUTPUT_BYTES;

#[path = "engine_harness.rs"]
mod engine_harness;
use engine_harness::{harness, harness_with, key, Delivery, Harness};

fn generate(id: &str, deps: &[&str]) -> Value {
    json!({"id": id, "type": "generate", "params": {"provider": "instant", "modelId": "done"}, "dependsOn": deps})
}

async fn run_every_shape(mode: Delivery) {
    // Shape, not scale, is tested here; `reelay bench` runs them full size.
    for shape in standard(300, 10, 20, 100) {
        let (name, jobs) = (shape.name.as_str(), &shape.jobs);
        let h = harness(&[]);
        let id = h.submit(shape.plan()).await;
        h.drain(mode).await;
        let (execution, records) = h.execution(&id).await;
        assert_eq!(execution.status, ExecutionStatus::Completed, "{name}");
        assert_eq!(execution.completed_jobs as usize, jobs.len(), "{name}");
        assert_eq!(execution.open_jobs, 0, "{name}");
        assert!(records.values().all(|j| j.status == JobStatus::Completed), "{name}");
        // Every job started only after all its parents completed.
        for (job, parents) in jobs {
            let started = records[job].started_at.expect("started");
            for p in parents {
                assert!(
                    records[p].completed_at.expect("done") <= started,
                    "{name}: {job} before {p}"
                );
            }
        }
        let last = &jobs.last().expect("jobs").0;
        assert_eq!(
            execution.result, records[last].output,
            "{name}: result is the final job's output"
        );
        let sinks: HashSet<&String> = jobs
            .iter()
            .map(|(id, _)| id)
            .filter(|id| !jobs.iter().any(|(_, deps)| deps.contains(id)))
            .collect();
        assert_eq!(
            execution.outputs.keys().collect::<HashSet<_>>(),
            sinks,
            "{name}: outputs are the sinks"
        );
        h.assert_each_submitted_once(&id, jobs.len());
    }
}

#[tokio::test]
async fn every_shape_completes_each_job_once() {
    run_every_shape(Delivery::Once).await;
}

#[tokio::test]
async fn every_message_delivered_twice_later_changes_nothing() {
    run_every_shape(Delivery::TwiceLater).await;
}

#[tokio::test]
async fn every_message_handled_twice_at_once_changes_nothing() {
    run_every_shape(Delivery::TwiceAtOnce).await;
}

#[tokio::test]
async fn a_failure_skips_the_whole_sub_dag_and_independent_branches_finish() {
    let h = harness(&["b"]);
    // a → b → c → d → e (b fails: c, d, e skipped, three levels and more), x → y independent,
    // and z depends on both branches.
    let plan = json!({"jobs": [
        generate("a", &[]), generate("b", &["a"]), generate("c", &["b"]), generate("d", &["c"]),
        generate("e", &["d"]), generate("x", &[]), generate("y", &["x"]), generate("z", &["y", "c"]),
    ]});
    let id = h.submit(plan).await;
    h.drain(Delivery::TwiceLater).await;
    let (execution, jobs) = h.execution(&id).await;
    let status = |j: &str| jobs[j].status;
    assert_eq!(status("a"), JobStatus::Completed);
    assert_eq!(status("b"), JobStatus::Failed);
    for skipped in ["c", "d", "e", "z"] {
        assert_eq!(status(skipped), JobStatus::Skipped, "{skipped}");
        assert!(jobs[skipped].error.as_ref().expect("reason").message.contains("`b`"));
    }
    assert_eq!(status("x"), JobStatus::Completed);
    assert_eq!(status("y"), JobStatus::Completed);
    assert_eq!(execution.status, ExecutionStatus::Failed);
    let error = execution.error.expect("error");
    assert_eq!(error.failed_jobs, vec!["b".to_string()]);
    assert!(error.message.contains("job `b` failed"), "{}", error.message);
    assert_eq!(execution.open_jobs, 0);
}

#[tokio::test]
async fn a_crash_between_completion_and_release_is_repaired_by_the_retry() {
    let h = harness(&[]);
    let id = h
        .submit(json!({"jobs": [generate("p", &[]), generate("c1", &["p"]), generate("c2", &["p"])]}))
        .await;
    let key = key(&id, "p");
    // The parent's work is recorded as done, then the process "dies" before releasing.
    let p = h.store.job(&key).await.unwrap().unwrap();
    let mut done = p.clone();
    done.status = JobStatus::Completed;
    assert!(matches!(
        h.store.update_job(&p, &done).await.unwrap(),
        Write::Applied(_)
    ));
    // The undeleted message comes back: the retry releases the children.
    h.drain(Delivery::Once).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(jobs["c1"].status, JobStatus::Completed);
    assert_eq!(jobs["c2"].status, JobStatus::Completed);
}

#[tokio::test]
async fn a_crash_between_release_and_send_is_repaired_by_the_retry_and_by_the_sweep() {
    for repair in ["retry", "sweep"] {
        let h = harness(&[]);
        let id = h
            .submit(json!({"jobs": [generate("p", &[]), generate("c", &["p"])]}))
            .await;
        let parent = key(&id, "p");
        let child = key(&id, "c");
        // Run the parent fully, then lose the child's message (as if the send never happened).
        let d = h.receive_one().await;
        assert_eq!(h.engine.handle(&d.message).await.unwrap(), Handled::Done);
        h.queue.ack(&d.receipt).await.unwrap();
        let lost = h.receive_one().await;
        assert_eq!(lost.message, Message::Job(child.clone()));
        h.queue.ack(&lost.receipt).await.unwrap();
        assert_eq!(h.store.job(&child).await.unwrap().unwrap().status, JobStatus::Queued);
        match repair {
            // The parent's message delivered again re-sends the child it released.
            "retry" => {
                h.clock.advance(h.settings.resend_after);
                h.queue.send(&[Message::Job(parent)], Duration::ZERO).await.unwrap()
            }
            // Or the timer finds the job queued too long and re-sends it.
            _ => {
                assert_eq!(h.engine.sweep_stale(100).await.unwrap(), 0, "not stale yet");
                h.clock.advance(h.settings.stale_queued_after + Duration::from_secs(1));
                assert_eq!(h.engine.sweep_stale(100).await.unwrap(), 1);
                // Re-sent once: the next ticks leave it alone until it is stale again.
                h.clock.advance(Duration::from_secs(5));
                assert_eq!(h.engine.sweep_stale(100).await.unwrap(), 0, "sent once per period");
            }
        }
        h.drain(Delivery::Once).await;
        let (execution, _) = h.execution(&id).await;
        assert_eq!(execution.status, ExecutionStatus::Completed, "{repair}");
        h.assert_each_submitted_once(&id, 2);
    }
}

/// A runner claimed job `a`, wrote its intent (as the engine does: a submit may be on its
/// way), submitted... and died before recording the answer. Its lease then lapses.
async fn crash_after_submitting(h: &Harness) -> String {
    let id = h.submit(json!({"jobs": [generate("a", &[])]})).await;
    let key = key(&id, "a");
    let queued = h.store.job(&key).await.unwrap().unwrap();
    let mut claimed = queued.clone();
    claimed.status = JobStatus::Running;
    claimed.lease_until = Some(h.clock.now() + 60_000);
    claimed.provider = Some(ProviderCall {
        provider: "instant".into(),
        model_id: "done".into(),
        token: "tok123".into(),
        provider_job_id: None,
        completion: reelay_core::domain::Completion::Polling,
        submitted_at: None,
        polls: 0,
        next_poll_at: None,
        outcome: None,
        uncertain_since: Some(h.clock.now()),
        cancel_sent_at: None,
    });
    let Write::Applied(claimed) = h.store.update_job(&queued, &claimed).await.unwrap() else {
        panic!("claim")
    };
    let reelay_core::plan::Params::Provider(params) = claimed.spec.params.clone() else {
        panic!("params")
    };
    h.provider
        .submit(ProviderRequest {
            job: key.clone(),
            operation: claimed.spec.operation,
            params,
            token: "tok123".into(),
            api_key: None,
            callback_url: None,
        })
        .await
        .unwrap();
    // While the dead runner's lease holds, the message is put back, not run.
    let d = h.receive_one().await;
    assert!(matches!(
        h.engine.handle(&d.message).await.unwrap(),
        Handled::RetryAfter(_)
    ));
    h.queue.retry_later(&d.receipt, Duration::ZERO).await.unwrap();
    h.clock.advance(Duration::from_secs(61));
    h.drain(Delivery::Once).await;
    id
}

#[tokio::test]
async fn a_submit_that_reached_the_provider_before_a_crash_is_adopted_not_repeated() {
    let h = harness(&[]);
    let id = crash_after_submitting(&h).await;
    // The status poll finishes the adopted prediction.
    h.clock.advance(Duration::from_secs(10));
    h.engine.poll_due(10).await.unwrap();
    h.drain(Delivery::Once).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(
        jobs["a"].provider.as_ref().unwrap().provider_job_id.as_deref(),
        Some(format!("{id}/a").as_str())
    );
    h.assert_each_submitted_once(&id, 1);
}

#[tokio::test]
async fn a_crash_mid_submit_to_a_provider_that_cannot_be_asked_is_not_paid_twice() {
    let h = harness(&[]);
    h.provider.blind();
    let id = crash_after_submitting(&h).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(jobs["a"].error.as_ref().unwrap().code, "submission_unknown");
    h.assert_each_submitted_once(&id, 1);
}

#[tokio::test]
async fn polling_models_complete_when_polled_and_not_before() {
    let h = harness(&[]);
    let plan = json!({"jobs": [
        {"id": "slow", "type": "generate", "params": {"provider": "instant", "modelId": "later"}},
        generate("after", &["slow"]),
    ]});
    let id = h.submit(plan).await;
    h.drain(Delivery::Once).await;
    let (_, jobs) = h.execution(&id).await;
    assert_eq!(jobs["slow"].status, JobStatus::AwaitingProvider);
    assert_eq!(
        h.engine.poll_due(10).await.unwrap(),
        0,
        "not due before its first poll time"
    );
    h.clock.advance(h.settings.poll_first + Duration::from_secs(1));
    assert_eq!(h.engine.poll_due(10).await.unwrap(), 1);
    // A second poll of the same answer (e.g. a webhook raced it) changes nothing.
    h.drain(Delivery::TwiceLater).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(jobs["after"].status, JobStatus::Completed);
}

#[tokio::test]
async fn a_large_inline_answer_is_stored_before_it_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(FileBlobs::new(dir.path()).expect("blobs"));
    let h = harness_with(&[], blobs.clone());
    let plan =
        json!({"jobs": [{"id": "speech", "type": "generate", "params": {"provider": "instant", "modelId": "inline"}}]});
    let id = h.submit(plan).await;
    h.drain(Delivery::TwiceLater).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    let job = &jobs["speech"];
    let output = job.output.as_ref().expect("output");
    // The record names the stored blob, not the answer's bytes: it fits a DynamoDB item.
    let recorded = serde_json::to_string(job).expect("json");
    assert!(!recorded.contains("data:"), "{recorded}");
    assert!(recorded.len() < 8 << 10);
    match &job.provider.as_ref().expect("provider call").outcome {
        Some(ProviderOutcome::Stored { key, size_bytes, .. }) => {
            assert_eq!(key, &output.key);
            assert_eq!(*size_bytes, INLINE_OUTPUT_BYTES as u64);
        }
        other => panic!("expected a stored outcome, got {other:?}"),
    }
    assert_eq!(output.content_type, "audio/mpeg");
    assert!(output.key.ends_with("/output.mp3"), "{}", output.key);
    assert_eq!(output.size_bytes, INLINE_OUTPUT_BYTES as u64);
    let bytes = std::fs::read(blobs.path(&output.key).expect("path")).expect("read");
    assert_eq!(bytes, "a".repeat(INLINE_OUTPUT_BYTES).into_bytes());
    h.assert_each_submitted_once(&id, 1);
}

#[tokio::test]
async fn media_jobs_run_once_under_duplicate_delivery() {
    let h = harness(&[]);
    let plan = json!({"jobs": [
        generate("a", &[]), generate("b", &[]),
        {"id": "m", "type": "merge", "params": {"items": [{"url": "$a"}, {"url": "$b"}], "transition": "fade"}},
        {"id": "r", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["m"]},
    ]});
    let id = h.submit(plan).await;
    h.drain(Delivery::TwiceAtOnce).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(h.media.runs(), 1, "merge and reframe ran once, as one encode");
    let deferred = jobs["m"]
        .output
        .as_ref()
        .and_then(|o| o.deferred.clone())
        .expect("m deferred");
    assert_eq!((deferred.job, deferred.fused_into), (key(&id, "m"), "r".to_string()));
    assert_eq!(execution.result, jobs["r"].output);
    assert!(jobs["r"].output.as_ref().unwrap().key.ends_with("/r/output.mp4"));
}

/// An edit's output is made on its own (not fused into its reader) when anyone else needs
/// its file: a second reader, a per-job webhook, or a reader that waits on another job too.
#[tokio::test]
async fn an_edit_whose_file_is_needed_is_not_fused() {
    let merge = |webhook: bool| {
        json!({"id": "m", "type": "merge", "params": {"items": [{"url": "$a"}, {"url": "$b"}],
            "sendJobWebhook": webhook}, "dependsOn": ["a", "b"]})
    };
    let reframe = |id: &str, deps: &[&str]| json!({"id": id, "type": "reframe", "params": {"videoUrl": "$m", "aspectRatio": "9:16"}, "dependsOn": deps});
    let jobs = |rest: Vec<Value>| {
        let mut all = vec![generate("a", &[]), generate("b", &[])];
        all.extend(rest);
        json!({"jobs": all})
    };
    for (what, plan) in [
        (
            "two readers",
            jobs(vec![merge(false), reframe("r", &["m"]), reframe("s", &["m"])]),
        ),
        ("a job webhook", jobs(vec![merge(true), reframe("r", &["m"])])),
        (
            "a reader waiting on more",
            jobs(vec![merge(false), reframe("r", &["m", "a"])]),
        ),
        // Listed last, the merge is the execution's result, though the reframe reads it.
        ("the result", jobs(vec![reframe("r", &["m"]), merge(false)])),
    ] {
        let h = harness(&[]);
        let id = h.submit(plan).await;
        h.drain(Delivery::Once).await;
        let (execution, jobs) = h.execution(&id).await;
        assert_eq!(execution.status, ExecutionStatus::Completed, "{what}");
        let m = jobs["m"].output.as_ref().unwrap();
        assert!(
            m.deferred.is_none() && m.key.ends_with("/m/output.mp4"),
            "{what}: {m:?}"
        );
        assert_eq!(h.media.runs() as usize, jobs.len() - 2, "{what}: each edit ran alone");
    }
}

#[tokio::test]
async fn a_runner_without_media_forwards_media_jobs_unclaimed_and_runs_the_rest() {
    let h = harness(&[]);
    let media_queue = h.another_queue();
    let provider_runner = MediaForwarding::new(h.engine.clone(), media_queue.clone());
    let merge = json!({"id": "m", "type": "merge", "params": {"items": [
        {"url": "https://example.com/a.mp4"}, {"url": "https://example.com/b.mp4"}]}});
    let id = h.submit(json!({"jobs": [generate("p", &[]), merge]})).await;
    let roots = h
        .queue
        .receive(16, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(roots.len(), 2);
    // Each root's message delivered twice, as at-least-once delivery may.
    for d in &roots {
        for _ in 0..2 {
            assert_eq!(provider_runner.handle(&d.message).await.unwrap(), Handled::Done);
        }
        h.queue.ack(&d.receipt).await.unwrap();
    }
    // The provider job ran here; the merge was claimed by nobody and ran nowhere.
    h.assert_each_submitted_once(&id, 1);
    let m = h.store.job(&key(&id, "m")).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.attempts, m.lease_until),
        (JobStatus::Queued, 0, None),
        "forwarded unclaimed"
    );
    assert_eq!(h.media.runs(), 0);
    // Each delivery forwarded once, as it came: the media runner meets the duplicate.
    let forwarded = media_queue
        .receive(16, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    let messages: Vec<&Message> = forwarded.iter().map(|d| &d.message).collect();
    assert_eq!(messages, [&Message::Job(key(&id, "m")), &Message::Job(key(&id, "m"))]);
    for d in &forwarded {
        assert_eq!(h.engine.handle(&d.message).await.unwrap(), Handled::Done);
        media_queue.ack(&d.receipt).await.unwrap();
    }
    let m = h.store.job(&key(&id, "m")).await.unwrap().unwrap();
    assert_eq!((m.status, m.attempts), (JobStatus::Completed, 1), "ran once");
    assert_eq!(h.media.runs(), 1);
    h.run_split(&media_queue, h.engine.as_ref(), Delivery::Once).await;
    let (execution, _) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    h.assert_each_submitted_once(&id, 1);
    assert_eq!(h.media.runs(), 1);
}

#[tokio::test]
async fn a_provider_runner_and_a_media_runner_complete_a_plan_together() {
    let plan = json!({"jobs": [
        generate("a", &[]), generate("b", &[]),
        {"id": "m", "type": "merge", "params": {"items": [{"url": "$a"}, {"url": "$b"}], "transition": "fade"}},
        {"id": "r", "type": "reframe", "params": {"aspectRatio": "9:16"}, "dependsOn": ["m"]},
    ]});
    // The work one runner does for the plan: the split must do the same.
    let whole = harness(&[]);
    whole.submit(plan.clone()).await;
    whole.drain(Delivery::Once).await;
    for mode in [Delivery::Once, Delivery::TwiceLater, Delivery::TwiceAtOnce] {
        let h = harness(&[]);
        let media_queue = h.another_queue();
        let id = h.submit(plan.clone()).await;
        let on_media = h.run_split(&media_queue, h.engine.as_ref(), mode).await;
        let (execution, jobs) = h.execution(&id).await;
        assert_eq!(execution.status, ExecutionStatus::Completed, "{mode:?}");
        assert!(
            on_media >= 2,
            "{mode:?}: the merge and the reframe hopped to the media runner"
        );
        assert_eq!(
            h.media.runs(),
            whole.media.runs(),
            "{mode:?}: the same media work, once"
        );
        assert_eq!((jobs["m"].attempts, jobs["r"].attempts), (1, 1), "{mode:?}");
        h.assert_each_submitted_once(&id, 2);
        assert_eq!(execution.result, jobs["r"].output, "{mode:?}");
    }
}

#[tokio::test]
async fn provider_keys_reach_the_provider_sealed_at_rest() {
    let h = harness(&[]);
    let mut own = generate("own", &[]);
    own["params"]["apiKey"] = json!("job-key-1");
    let plan = json!({
        "executionPlan": {"jobs": [own, generate("shared", &[])]},
        "options": {"providerApiKeys": {"instant": "request-key-2"}}
    });
    let id = h.submit(plan).await;
    h.drain(Delivery::Once).await;
    // A job's own key first, else the request's key for its provider.
    assert_eq!(h.provider.api_key(&key(&id, "own")), Some(Some("job-key-1".into())));
    assert_eq!(
        h.provider.api_key(&key(&id, "shared")),
        Some(Some("request-key-2".into()))
    );
    let (execution, jobs) = h.execution(&id).await;
    let records = format!(
        "{}{}",
        serde_json::to_string(&execution).unwrap(),
        serde_json::to_string(&jobs.values().collect::<Vec<_>>()).unwrap()
    );
    assert!(
        !records.contains("job-key-1") && !records.contains("request-key-2"),
        "{records}"
    );
    let sealed = jobs["own"].api_key.as_ref().expect("the job's key is kept, sealed");
    assert_eq!(h.sealer.open(sealed).unwrap().expose(), "job-key-1");
}

/// Messages waiting on a queue (the test's clock does not move, so all are visible).
async fn waiting(queue: &SqliteQueue) -> Vec<Message> {
    let batch = queue
        .receive(1000, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    for d in &batch {
        queue.retry_later(&d.receipt, Duration::ZERO).await.expect("release");
    }
    batch.into_iter().map(|d| d.message).collect()
}

#[tokio::test]
async fn webhook_messages_are_made_once_under_duplicate_delivery() {
    for mode in [Delivery::TwiceLater, Delivery::TwiceAtOnce] {
        let h = harness(&["b"]);
        let mut a = generate("a", &[]);
        a["params"]["sendJobWebhook"] = json!(true);
        let mut b = generate("b", &["a"]);
        b["params"]["sendJobWebhook"] = json!(true);
        let mut c = generate("c", &["b"]);
        c["params"]["sendJobWebhook"] = json!(true);
        let plan = json!({"jobs": [a, b, c], "webhook": {"url": "https://hooks.example.com/x", "secret": "s"}});
        let id = h.submit(plan).await;
        h.drain(mode).await;
        let deliveries = h.store.deliveries(&id).await.unwrap();
        let mut about: Vec<Option<String>> = deliveries.iter().map(|d| d.job_id.clone()).collect();
        about.sort();
        // The execution's end, a's success, b's failure and c's skip: one message each.
        assert_eq!(about, vec![None, Some("a".into()), Some("b".into()), Some("c".into())]);
        let sent = waiting(&h.webhook_queue).await;
        assert_eq!(sent.len(), 4, "{sent:?}");
        let end = deliveries.iter().find(|d| d.job_id.is_none()).unwrap();
        let body: Value = serde_json::from_str(&end.body).unwrap();
        assert_eq!(body["status"], "failed");
        assert_eq!(body["failedJobs"], json!(["b"]));
        let skipped = deliveries.iter().find(|d| d.job_id.as_deref() == Some("c")).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&skipped.body).unwrap()["status"],
            "skipped"
        );
    }
}

/// A webhook receiver scripted in process: answers in turn (200 once the script is used up),
/// each after `delay`, so two concurrent attempts would overlap.
struct ScriptedTransport {
    answers: std::sync::Mutex<std::collections::VecDeque<Result<HttpAnswer, TransportError>>>,
    calls: std::sync::Mutex<Vec<OutboundRequest>>,
}

#[async_trait::async_trait]
impl WebhookTransport for ScriptedTransport {
    async fn post(&self, request: OutboundRequest) -> Result<HttpAnswer, TransportError> {
        self.calls.lock().unwrap().push(request);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(HttpAnswer {
            status: 200,
            retry_after: None,
        }))
    }
}

#[tokio::test]
async fn a_due_delivery_is_attempted_once_even_when_handled_twice_at_once() {
    let h = harness(&[]);
    let plan = json!({"jobs": [generate("a", &[])], "webhook": {"url": "https://hooks.example.com/x", "secret": "s"}});
    let id = h.submit(plan).await;
    h.drain(Delivery::Once).await;
    let transport = Arc::new(ScriptedTransport {
        answers: std::sync::Mutex::new(
            [Ok(HttpAnswer {
                status: 503,
                retry_after: None,
            })]
            .into(),
        ),
        calls: Default::default(),
    });
    let clock: Arc<dyn Clock> = h.clock.clone();
    let dispatcher = Dispatcher::new(
        h.store.clone(),
        h.webhook_queue.clone(),
        transport.clone(),
        h.sealer.clone(),
        clock,
        DispatchSettings {
            schedule: RetrySchedule {
                delays: vec![Duration::from_secs(10)],
                jitter: 0.0,
                ..RetrySchedule::default()
            },
            ..DispatchSettings::default()
        },
    );
    let first = waiting(&h.webhook_queue).await;
    assert_eq!(first.len(), 1);
    let (a, b) = tokio::join!(dispatcher.handle(&first[0]), dispatcher.handle(&first[0]));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        transport.calls.lock().unwrap().len(),
        1,
        "two handlers posted the same attempt"
    );
    let delivery = h.store.deliveries(&id).await.unwrap().remove(0);
    assert_eq!((delivery.state, delivery.attempts), (DeliveryState::Pending, 1));
    assert_eq!(delivery.last_status_code, Some(503));
    assert_eq!(delivery.next_attempt_at, Some(h.clock.now() + 10_000));

    // Its retry message comes early (no time has passed): it waits, nothing is sent.
    assert_eq!(
        dispatcher.handle(&first[0]).await.unwrap(),
        Handled::RetryAfter(Duration::from_secs(10))
    );
    assert_eq!(transport.calls.lock().unwrap().len(), 1);
    h.clock.advance(Duration::from_secs(10));
    dispatcher.handle(&first[0]).await.unwrap();
    dispatcher.handle(&first[0]).await.unwrap();
    let calls = transport.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "delivered, then sent again");
    let delivery = h.store.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!((delivery.state, delivery.attempts), (DeliveryState::Delivered, 2));
    let header = |call: &OutboundRequest, name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    assert_eq!(header(&calls[0], "webhook-id"), header(&calls[1], "webhook-id"));
    assert_eq!(header(&calls[1], "webhook-id"), delivery.id);
    assert_eq!(calls[1].body, delivery.body.as_bytes());
    assert_eq!(
        header(&calls[1], "x-webhook-signature"),
        reelay_core::webhooks::signature::body_signature("s", &calls[1].body)
    );
}

#[tokio::test]
async fn a_variant_waits_for_its_running_base_and_wakes_under_duplicate_delivery() {
    for mode in [Delivery::Once, Delivery::TwiceLater, Delivery::TwiceAtOnce] {
        let h = harness(&[]);
        let slow = json!({"id": "scene", "type": "generate", "params": {"provider": "instant", "modelId": "later"}});
        let base = h.submit(json!({"jobs": [slow]})).await;
        h.drain(mode).await;
        let body = json!({"baseExecutionId": base, "jobs": [generate("after", &["scene"])]});
        let variant = h
            .engine
            .submit("t", body.to_string().as_bytes())
            .await
            .expect("submit")
            .id;
        h.drain(mode).await;
        let (_, jobs) = h.execution(&variant).await;
        assert_eq!(jobs["scene"].status, JobStatus::Waiting, "the reference parks");
        assert_eq!(jobs["after"].status, JobStatus::Waiting);

        // The base's provider answers at its next poll; the variant follows without polling.
        h.clock.advance(Duration::from_secs(600));
        h.engine.poll_due(100).await.expect("poll");
        h.drain(mode).await;
        let (variant_execution, jobs) = h.execution(&variant).await;
        assert_eq!(variant_execution.status, ExecutionStatus::Completed);
        let (_, base_jobs) = h.execution(&base).await;
        assert_eq!(jobs["scene"].output, base_jobs["scene"].output);
        h.assert_each_submitted_once(&base, 1);
        h.assert_each_submitted_once(&variant, 1);
        // Another tenant cannot build on it.
        match h.engine.submit("someone-else", body.to_string().as_bytes()).await {
            Err(reelay_core::SubmitError::BaseNotFound(id)) => assert_eq!(id, base),
            other => panic!("a foreign base was accepted: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rate_limited_submits_wait_without_using_up_attempts() {
    let h = harness(&[]);
    // More refusals than the job has attempts: waiting must not count as failing.
    h.provider.throttle(h.settings.max_attempts * 3);
    let id = h.submit(json!({"jobs": [generate("a", &[])]})).await;
    h.drain(Delivery::Once).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    assert_eq!(jobs["a"].attempts, 1, "a throttled try was counted");
    h.assert_each_submitted_once(&id, 1);
}

#[tokio::test]
async fn a_provider_job_past_its_deadline_fails_and_is_cancelled_there() {
    let h = harness(&[]);
    let plan =
        json!({"jobs": [{"id": "slow", "type": "generate", "params": {"provider": "instant", "modelId": "never"}}]});
    let id = h.submit(plan).await;
    h.drain(Delivery::Once).await;
    // Polled for an hour: still pending, still waiting.
    for _ in 0..20 {
        h.clock.advance(Duration::from_secs(170));
        h.engine.poll_due(100).await.expect("poll");
    }
    let (_, jobs) = h.execution(&id).await;
    assert_eq!(jobs["slow"].status, JobStatus::AwaitingProvider);
    assert!(h.provider.cancels().is_empty());
    // Past the model's deadline (an hour), the next poll gives up on it.
    h.clock.advance(Duration::from_secs(600));
    h.engine.poll_due(100).await.expect("poll");
    h.drain(Delivery::Once).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    let error = jobs["slow"].error.as_ref().expect("an error").message.clone();
    assert!(error.contains("did not finish within 3600 s"), "{error}");
    let provider_job = jobs["slow"].provider.as_ref().unwrap().provider_job_id.clone().unwrap();
    assert_eq!(h.provider.cancels(), vec![provider_job]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cancels_reach_the_provider_once_per_job() {
    let h = harness(&[]);
    let never = |id: &str| json!({"id": id, "type": "generate", "params": {"provider": "instant", "modelId": "never"}});
    let id = h.submit(json!({"jobs": [never("a"), never("b")]})).await;
    h.drain(Delivery::Once).await;
    // Two clients cancel at once, and every cancel message is handled twice at once.
    let (first, second) = tokio::join!(h.engine.cancel("t", &id), h.engine.cancel("t", &id));
    first.expect("cancel");
    second.expect("cancel");
    h.drain(Delivery::TwiceAtOnce).await;
    h.engine.cancel("t", &id).await.expect("a repeat answers as the first");
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Cancelled);
    let mut asked = h.provider.cancels();
    asked.sort();
    let mut expected: Vec<String> = ["a", "b"]
        .iter()
        .map(|j| jobs[*j].provider.as_ref().unwrap().provider_job_id.clone().unwrap())
        .collect();
    expected.sort();
    assert_eq!(asked, expected, "each provider job is cancelled exactly once");
    assert!(jobs
        .values()
        .all(|j| j.provider.as_ref().unwrap().cancel_sent_at.is_some()));
}

#[tokio::test]
async fn an_unanswered_submit_is_found_not_repeated() {
    let h = harness(&[]);
    h.provider.lose_answers(1);
    let id = h.submit(json!({"jobs": [generate("a", &[])]})).await;
    h.drain(Delivery::Once).await;
    // Adopted by `find` on the retry; its answer comes at the next poll.
    let (_, jobs) = h.execution(&id).await;
    assert_eq!(jobs["a"].status, JobStatus::AwaitingProvider);
    h.clock.advance(Duration::from_secs(60));
    h.engine.poll_due(10).await.expect("poll");
    h.drain(Delivery::Once).await;
    let (execution, _) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Completed);
    h.assert_each_submitted_once(&id, 1);
}

#[tokio::test]
async fn an_unanswered_submit_to_a_provider_that_cannot_be_asked_fails_rather_than_pay_twice() {
    let h = harness(&[]);
    h.provider.blind();
    h.provider.lose_answers(1);
    let id = h.submit(json!({"jobs": [generate("a", &[])]})).await;
    h.drain(Delivery::Once).await;
    let (execution, jobs) = h.execution(&id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    let error = jobs["a"].error.as_ref().unwrap();
    assert_eq!(error.code, "submission_unknown");
    assert!(error.message.contains("not paid twice"), "{}", error.message);
    h.assert_each_submitted_once(&id, 1);
    // A submit that never reached the provider is simply tried again.
    let h = harness(&[]);
    h.provider.blind();
    h.provider.throttle(1);
    let id = h.submit(json!({"jobs": [generate("b", &[])]})).await;
    h.drain(Delivery::Once).await;
    assert_eq!(h.execution(&id).await.0.status, ExecutionStatus::Completed);
}
