//! The runners, split by the kind of work (issue 15): provider work does not pay for ffmpeg's
//! memory, and media work gets it.
//!
//! - the job runner names the media queue in `REELAY_MEDIA_QUEUE_URL` and may send to it (it
//!   forwards media jobs there); the media runner names the same queue (its retries go there)
//!   and reads it, and no other function reads it; the job runner reads another;
//! - the job runner's memory is at most 1 GB, the media runner's at least 2 GB whatever its
//!   parameter is given, and the media runner has a layer (ffmpeg);
//! - a claim's lease (`JOB_RUNNER_LEASE`) outlasts both runners' timeouts.

use reelay_lambda::settings::JOB_RUNNER_LEASE;

use super::{
    event_queue, function_running, inline_statements, intrinsic, is_arn_of, show, sqs_events, statement_resources,
    strings, variable, Problems, Template, Value,
};

/// The job runner's memory at most (MB): enough for provider calls and streamed copies.
const PROVIDER_MEMORY_MAX: i64 = 1024;
/// The media runner's memory at least (MB): ffmpeg's encodes, and the CPUs that come with it.
const MEDIA_MEMORY_MIN: i64 = 2048;

/// The queue a variable names: `!Ref <queue>` of a queue of this template.
fn queue_named<'a>(t: &Template, value: Option<&'a Value>) -> Option<&'a str> {
    match intrinsic(value?)? {
        ("Ref", Value::String(q)) if t.kind(q) == Some("AWS::SQS::Queue") => Some(q.as_str()),
        _ => None,
    }
}

/// A function's memory in MB, every value it may take (Lambda's default is 128).
fn memory(t: &Template, function: &Value) -> Result<Vec<i64>, String> {
    t.property(function, "MemorySize")
        .map_or(Ok(vec![128]), |m| t.possible_numbers(m))
}

pub(super) fn check_runners(t: &Template) -> Problems {
    let mut problems = Vec::new();
    let (Some((jobs, job_runner)), Some((media, media_runner))) =
        (function_running(t, "job-runner"), function_running(t, "media-runner"))
    else {
        return vec!["no function runs job-runner, or none media-runner".into()];
    };
    let Some(media_queue) = queue_named(t, variable(t, job_runner, "REELAY_MEDIA_QUEUE_URL")) else {
        return vec![format!(
            "{jobs}: REELAY_MEDIA_QUEUE_URL must be !Ref of the queue it forwards media jobs to"
        )];
    };
    if queue_named(t, variable(t, media_runner, "REELAY_MEDIA_QUEUE_URL")) != Some(media_queue) {
        problems.push(format!(
            "{media}: REELAY_MEDIA_QUEUE_URL must be !Ref {media_queue}, the queue it reads"
        ));
    }
    // Who reads what.
    let mut media_reads = false;
    for (function, _, event, props) in sqs_events(t) {
        let Ok((queue, _)) = event_queue(t, props) else {
            continue; // check_queues names it
        };
        if function == media {
            media_reads |= queue == media_queue;
            if queue != media_queue {
                problems.push(format!("{media}: SQS event {event} reads {queue}, not {media_queue}"));
            }
        } else if queue == media_queue {
            problems.push(format!(
                "{function}: SQS event {event} reads {media_queue}, which only {media} may read"
            ));
        }
    }
    if !media_reads {
        problems.push(format!("{media}: needs an SQS event reading {media_queue}"));
    }
    let forwards = inline_statements(job_runner).into_iter().any(|s| {
        strings(s.get("Action")).contains(&"sqs:SendMessage")
            && statement_resources(s).any(|r| is_arn_of(r, media_queue))
    });
    if !forwards {
        problems.push(format!(
            "{jobs}: needs sqs:SendMessage on {media_queue} to forward media jobs"
        ));
    }
    // Sizes.
    match memory(t, job_runner) {
        Ok(sizes) if sizes.iter().all(|m| *m <= PROVIDER_MEMORY_MAX) => {}
        Ok(sizes) => problems.push(format!(
            "{jobs}: MemorySize may be {sizes:?} MB; provider work needs at most {PROVIDER_MEMORY_MAX}"
        )),
        Err(e) => problems.push(format!("{jobs}: MemorySize {e}")),
    }
    match memory(t, media_runner) {
        Ok(sizes) if sizes.iter().all(|m| *m >= MEDIA_MEMORY_MIN) => {}
        Ok(sizes) => problems.push(format!(
            "{media}: MemorySize may be {sizes:?} MB; ffmpeg needs at least {MEDIA_MEMORY_MIN}"
        )),
        Err(e) => problems.push(format!("{media}: MemorySize {e}")),
    }
    if t.property(media_runner, "Layers")
        .and_then(Value::as_sequence)
        .is_none_or(|layers| layers.is_empty())
    {
        problems.push(format!("{media}: needs the ffmpeg layer"));
    }
    // A claim outlasts the invocation that holds it.
    let lease = JOB_RUNNER_LEASE.as_secs() as i64;
    for (name, function) in [(jobs, job_runner), (media, media_runner)] {
        let timeout = t.property(function, "Timeout").and_then(|v| t.number(v));
        if timeout.is_none_or(|timeout| timeout >= lease) {
            problems.push(format!(
                "{name}: Timeout {} must be under a claim's lease ({lease} s)",
                t.property(function, "Timeout").map_or("unset".into(), show)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::{assert_named, changed_template};
    use super::*;

    /// The runners' problems after one change to template.yaml.
    fn problems_with(replace: &str, with: &str) -> Problems {
        check_runners(&changed_template(replace, with))
    }

    fn assert_finds(replace: &str, with: &str, words: &[&str]) {
        assert_named(&problems_with(replace, with), (replace, with), words);
    }

    #[test]
    fn media_jobs_go_to_the_media_runner_alone() {
        assert_eq!(problems_with("", ""), Problems::new());
        let forward =
            "          # Where media jobs' messages go on to.\n          REELAY_MEDIA_QUEUE_URL: !Ref MediaQueue\n";
        assert_finds(forward, "", &["JobRunnerFunction", "REELAY_MEDIA_QUEUE_URL"]);
        assert_finds(
            "where its retries go.\n          REELAY_MEDIA_QUEUE_URL: !Ref MediaQueue",
            "where its retries go.\n          REELAY_MEDIA_QUEUE_URL: !Ref JobQueue",
            &["MediaRunnerFunction", "!Ref MediaQueue"],
        );
        assert_finds(
            "            Queue: !GetAtt MediaQueue.Arn",
            "            Queue: !GetAtt JobQueue.Arn",
            &["MediaRunnerFunction", "reads JobQueue"],
        );
        assert_finds(
            "            Queue: !GetAtt JobQueue.Arn",
            "            Queue: !GetAtt MediaQueue.Arn",
            &["JobRunnerFunction", "only MediaRunnerFunction"],
        );
        let sends = "                - !GetAtt JobQueue.Arn\n                - !GetAtt MediaQueue.Arn\n                - !GetAtt WebhookQueue.Arn\n            # Backoff";
        assert_finds(
            sends,
            &sends.replace("                - !GetAtt MediaQueue.Arn\n", ""),
            &["JobRunnerFunction", "sqs:SendMessage on MediaQueue"],
        );
    }

    #[test]
    fn provider_work_is_small_and_media_work_is_big() {
        assert_finds(
            "      MemorySize: 512\n",
            "      MemorySize: 3008\n",
            &["JobRunnerFunction", "3008"],
        );
        // Without its own size the job runner takes the global 512 MB: fine.
        assert_eq!(problems_with("      MemorySize: 512\n", ""), Problems::new());
        assert_finds(
            "    MinValue: 2048\n",
            "    MinValue: 512\n",
            &["MediaRunnerFunction", "512"],
        );
        assert_finds(
            "      MemorySize: !Ref MediaRunnerMemorySize\n",
            "",
            &["MediaRunnerFunction", "at least 2048"],
        );
        let layer = "      Layers:\n        - !Ref FfmpegLayerArn\n      LoggingConfig:\n        LogFormat: JSON\n        LogGroup: !Ref MediaRunnerLogs";
        assert_finds(
            layer,
            &layer.replace("      Layers:\n        - !Ref FfmpegLayerArn\n", ""),
            &["MediaRunnerFunction", "ffmpeg layer"],
        );
        assert_finds(
            "      Timeout: 900\n      # A retry or a wait",
            "      Timeout: 960\n      # A retry or a wait",
            &["MediaRunnerFunction", "lease"],
        );
    }
}
