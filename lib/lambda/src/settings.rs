//! The functions' settings, read once from their environment (`lookup`: the process's
//! environment, or a test's map): the AWS resources below, and what every node reads
//! (`reelay_node::settings`: limits, outbound addresses, webhook retries, public URL,
//! output URL expiry, providers). Each error names the variable at fault.
//!
//! | variable                        | meaning                                       | default     |
//! |---------------------------------|-----------------------------------------------|-------------|
//! | `REELAY_TABLE`                  | the DynamoDB table                            | required    |
//! | `REELAY_JOB_QUEUE_URL`          | the job queue                                 | required    |
//! | `REELAY_WEBHOOK_QUEUE_URL`      | the client-webhook queue                      | required    |
//! | `REELAY_MEDIA_QUEUE_URL`        | the media runner's queue (media jobs forwarded) | unset: one queue |
//! | `REELAY_BUCKET`                 | the S3 bucket of outputs                      | required    |
//! | `REELAY_SECRETS_ID`             | the Secrets Manager secret (server key, provider keys) | required |
//! | `REELAY_CDN_BASE_URL`           | outputs served from a CDN instead             | unset       |
//! | `REELAY_RETENTION_DAYS`         | finished records expire after                 | 30          |
//! | `REELAY_POLLER_RUN_FOR_SECS`    | how long one poller invocation keeps ticking  | 50          |
//! | `REELAY_POLLER_TICK_SECS`       | between the poller's ticks                    | 5           |
//! | `REELAY_FFMPEG_DIR`             | where the ffmpeg layer puts ffmpeg/ffprobe    | /opt/bin    |
//! | `REELAY_RENDER_FUNCTION`        | the scene-renderer function scenes render in  | unset: in process |
//! | `AWS_ENDPOINT_URL`              | another AWS endpoint for every client (moto)  | AWS's       |
//!
//! The providers' keys come from the secret (`AwsNode::connect`).
//!
//! The scene-renderer function reads only its own ([`SceneRendererSettings`]): no table,
//! queue or secret.
//!
//! | variable                        | meaning                                       | default     |
//! |---------------------------------|-----------------------------------------------|-------------|
//! | `REELAY_BUCKET`                 | the bucket renders are handed over in         | required    |
//! | `REELAY_PYTHON`                 | the Python with Manim                         | python3     |
//! | `REELAY_SCENE_TIMEOUT_SECS`     | wall-clock (and CPU) time of one render       | 300         |
//! | `REELAY_SCENE_MEMORY_MB`        | address space of one render                   | 4096        |
//! | `AWS_ENDPOINT_URL`              | another AWS endpoint (moto)                   | AWS's       |

use std::path::PathBuf;
use std::time::Duration;

use reelay_media::ManimSettings;
use reelay_node::{SceneLimits, Settings, SettingsError, Vars};

/// How long a runner's claim holds: the job and media runners' timeout (900 s) and a margin.
pub const JOB_RUNNER_LEASE: Duration = Duration::from_secs(960);

/// The longest a job runner waits for one scene-renderer call: that function's timeout
/// (600 s in template.yaml) and a margin, within the job runner's own 900 s.
pub const RENDER_INVOKE_TIMEOUT: Duration = Duration::from_secs(660);

/// How the poller function runs: EventBridge starts it at most once a minute, so one
/// invocation ticks `run_for`, every `tick` (once when `run_for` is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerSettings {
    pub run_for: Duration,
    pub tick: Duration,
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    pub job_queue_url: String,
    pub webhook_queue_url: String,
    /// The media runner's queue (`AwsNode::media_queue`); `None`: the job runner runs media
    /// jobs too.
    pub media_queue_url: Option<String>,
    pub bucket: String,
    /// The secret holding the server key and the provider keys.
    pub secrets_id: String,
    pub cdn_base_url: Option<String>,
    pub retention: Duration,
    /// Another endpoint for every AWS client (moto); `None` for AWS's.
    pub endpoint_url: Option<String>,
    pub ffmpeg_dir: PathBuf,
    /// The scene-renderer function (name or ARN); `None`: scenes render in this process.
    pub render_function: Option<String>,
    /// Where media work, downloads and the `local` provider's files go (Lambda: `/tmp`).
    pub scratch_dir: PathBuf,
    pub poller: PollerSettings,
    /// What every node reads, with the job runner's lease.
    pub node: Settings,
}

impl AwsSettings {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<AwsSettings, SettingsError> {
        let vars = Vars::new(&lookup);
        let mut node = Settings::from_env(&lookup)?;
        // A claim outlives a runner's longest invocation (its 900 s timeout), so a duplicate
        // message never takes over a job whose runner is still at work.
        node.engine.lease = JOB_RUNNER_LEASE;
        Ok(AwsSettings {
            table: vars.required("REELAY_TABLE")?,
            job_queue_url: vars.required("REELAY_JOB_QUEUE_URL")?,
            webhook_queue_url: vars.required("REELAY_WEBHOOK_QUEUE_URL")?,
            media_queue_url: vars.get("REELAY_MEDIA_QUEUE_URL"),
            bucket: vars.required("REELAY_BUCKET")?,
            secrets_id: vars.required("REELAY_SECRETS_ID")?,
            cdn_base_url: vars.base_url("REELAY_CDN_BASE_URL")?,
            retention: Duration::from_secs(vars.number("REELAY_RETENTION_DAYS", 30, 1..=3650)? * 86_400),
            endpoint_url: vars.base_url("AWS_ENDPOINT_URL")?,
            ffmpeg_dir: PathBuf::from(vars.get("REELAY_FFMPEG_DIR").unwrap_or_else(|| "/opt/bin".into())),
            render_function: vars.get("REELAY_RENDER_FUNCTION"),
            scratch_dir: PathBuf::from("/tmp/reelay"),
            poller: PollerSettings {
                run_for: Duration::from_secs(vars.number("REELAY_POLLER_RUN_FOR_SECS", 50, 0..=900)?),
                tick: Duration::from_secs(vars.number("REELAY_POLLER_TICK_SECS", 5, 1..=900)?),
            },
            node,
        })
    }
}

/// The scene-renderer function's settings: the bucket it writes renders to, and its sandbox.
#[derive(Debug, Clone)]
pub struct SceneRendererSettings {
    pub bucket: String,
    /// Another endpoint for the S3 client (moto); `None` for AWS's.
    pub endpoint_url: Option<String>,
    /// The sandbox, with its renders' folders under Lambda's `/tmp`.
    pub manim: ManimSettings,
}

impl SceneRendererSettings {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<SceneRendererSettings, SettingsError> {
        let vars = Vars::new(&lookup);
        let python = vars.get("REELAY_PYTHON").unwrap_or_else(|| "python3".into());
        let manim = SceneLimits::from_vars(&vars)?.sandbox(python, "/tmp/reelay/scenes");
        Ok(SceneRendererSettings {
            bucket: vars.required("REELAY_BUCKET")?,
            endpoint_url: vars.base_url("AWS_ENDPOINT_URL")?,
            manim,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use reelay_core::outbound::AddressPolicy;
    use reelay_core::ports::Admission;
    use reelay_core::webhooks::schedule::RetrySchedule;

    use super::*;

    const REQUIRED: [(&str, &str); 5] = [
        ("REELAY_TABLE", "reelay"),
        ("REELAY_JOB_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/jobs"),
        (
            "REELAY_WEBHOOK_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/webhooks",
        ),
        ("REELAY_BUCKET", "reelay-outputs"),
        ("REELAY_SECRETS_ID", "reelay/server"),
    ];

    fn read(extra: &[(&str, &str)]) -> Result<AwsSettings, SettingsError> {
        let env: HashMap<String, String> = REQUIRED
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsSettings::from_env(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_apply_to_what_is_not_set() {
        let s = read(&[]).unwrap();
        assert_eq!(s.table, "reelay");
        assert_eq!(s.job_queue_url, REQUIRED[1].1);
        assert_eq!(s.webhook_queue_url, REQUIRED[2].1);
        assert_eq!(
            (s.bucket.as_str(), s.secrets_id.as_str()),
            ("reelay-outputs", "reelay/server")
        );
        assert_eq!(s.node.output_url_expiry, Duration::from_secs(86_400));
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        assert_eq!((s.cdn_base_url, s.endpoint_url), (None, None));
        assert_eq!(s.ffmpeg_dir, PathBuf::from("/opt/bin"));
        assert_eq!(s.render_function, None);
        assert_eq!(
            s.media_queue_url, None,
            "no media runner: the job runner runs every job"
        );
        assert_eq!(
            s.poller,
            PollerSettings {
                run_for: Duration::from_secs(50),
                tick: Duration::from_secs(5)
            }
        );
        assert_eq!(
            s.node.engine.admission,
            Admission {
                max_in_flight: Some(100),
                max_per_minute: Some(120)
            }
        );
        assert_eq!(s.node.engine.outbound_addresses, AddressPolicy::strict());
        assert_eq!(s.node.engine.callback_base, None);
        assert_eq!(s.node.engine.lease, JOB_RUNNER_LEASE);
        assert_eq!(s.node.dispatch.schedule, RetrySchedule::default());
    }

    #[test]
    fn every_variable_is_read() {
        let s = read(&[
            ("REELAY_OUTPUT_URL_EXPIRY_SECS", "600"),
            ("REELAY_CDN_BASE_URL", "https://cdn.example.com/"),
            ("REELAY_RETENTION_DAYS", "7"),
            ("REELAY_PUBLIC_URL", "https://api.example.com/"),
            ("REELAY_MAX_IN_FLIGHT", "0"),
            ("REELAY_MAX_PER_MINUTE", "10"),
            ("REELAY_WEBHOOK_ALLOW", "127.0.0.0/8"),
            ("REELAY_WEBHOOK_RETRIES", "1s,2s"),
            ("REELAY_POLLER_RUN_FOR_SECS", "0"),
            ("REELAY_POLLER_TICK_SECS", "2"),
            ("REELAY_FFMPEG_DIR", "/opt/ffmpeg/bin"),
            ("REELAY_RENDER_FUNCTION", "reelay-SceneRenderer-1"),
            ("REELAY_MEDIA_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/media"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ])
        .unwrap();
        assert_eq!(
            s.media_queue_url.as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/1/media")
        );
        assert_eq!(s.render_function.as_deref(), Some("reelay-SceneRenderer-1"));
        assert_eq!(s.node.output_url_expiry, Duration::from_secs(600));
        assert_eq!(s.cdn_base_url.as_deref(), Some("https://cdn.example.com"));
        assert_eq!(s.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(s.node.engine.callback_base.as_deref(), Some("https://api.example.com"));
        assert_eq!(
            s.node.engine.admission,
            Admission {
                max_in_flight: None,
                max_per_minute: Some(10)
            }
        );
        assert!(s.node.engine.outbound_addresses.permits("127.0.0.1".parse().unwrap()));
        assert_eq!(
            s.node.dispatch.schedule.delays,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(s.poller.run_for, Duration::ZERO);
        assert_eq!(s.poller.tick, Duration::from_secs(2));
        assert_eq!(s.ffmpeg_dir, PathBuf::from("/opt/ffmpeg/bin"));
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, _) in REQUIRED {
            let env: HashMap<&str, &str> = REQUIRED.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = AwsSettings::from_env(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
            assert_eq!(err, SettingsError::Missing(name));
            assert_eq!(err.to_string(), format!("{name} is not set"));
        }
        // Blank counts as unset.
        assert_eq!(
            read(&[("REELAY_TABLE", "  ")]).unwrap_err(),
            SettingsError::Missing("REELAY_TABLE")
        );
        let bad = [
            ("REELAY_OUTPUT_URL_EXPIRY_SECS", "0"),
            ("REELAY_OUTPUT_URL_EXPIRY_SECS", "604801"),
            ("REELAY_RETENTION_DAYS", "a month"),
            ("REELAY_MAX_IN_FLIGHT", "-1"),
            ("REELAY_MAX_PER_MINUTE", "99999999999"),
            ("REELAY_POLLER_RUN_FOR_SECS", "1.5"),
            ("REELAY_POLLER_TICK_SECS", "0"),
            ("REELAY_PUBLIC_URL", "api.example.com"),
            ("REELAY_CDN_BASE_URL", "ftp://cdn.example.com"),
            ("AWS_ENDPOINT_URL", "localhost:5000"),
            ("REELAY_WEBHOOK_ALLOW", "not-a-cidr"),
            ("REELAY_WEBHOOK_RETRIES", "5 fortnights"),
        ];
        for (name, value) in bad {
            let err = read(&[(name, value)]).unwrap_err();
            assert!(
                matches!(&err, SettingsError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err:?}"
            );
            assert!(err.to_string().starts_with(&format!("{name} is invalid: ")), "{err}");
        }
    }

    #[test]
    fn the_scene_renderer_reads_its_own_few() {
        let read = |env: &[(&str, &str)]| {
            let env: HashMap<&str, &str> = env.iter().copied().collect();
            SceneRendererSettings::from_env(|k| env.get(k).map(|v| v.to_string()))
        };
        // No table, queue or secret is asked for.
        let s = read(&[("REELAY_BUCKET", "reelay-outputs")]).unwrap();
        assert_eq!((s.bucket.as_str(), s.endpoint_url), ("reelay-outputs", None));
        assert_eq!(s.manim.python, PathBuf::from("python3"));
        assert_eq!(s.manim.timeout, Duration::from_secs(300));
        assert_eq!(s.manim.memory_bytes, 4 << 30);
        assert!(s.manim.scratch.starts_with("/tmp"));
        let s = read(&[
            ("REELAY_BUCKET", "b"),
            ("REELAY_PYTHON", "/usr/local/bin/python3"),
            ("REELAY_SCENE_TIMEOUT_SECS", "120"),
            ("REELAY_SCENE_MEMORY_MB", "2048"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ])
        .unwrap();
        assert_eq!(s.manim.python, PathBuf::from("/usr/local/bin/python3"));
        assert_eq!((s.manim.timeout, s.manim.cpu_seconds), (Duration::from_secs(120), 120));
        assert_eq!(s.manim.memory_bytes, 2 << 30);
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(read(&[]).unwrap_err(), SettingsError::Missing("REELAY_BUCKET"));
        for (name, value) in [("REELAY_SCENE_TIMEOUT_SECS", "0"), ("REELAY_SCENE_MEMORY_MB", "lots")] {
            let err = read(&[("REELAY_BUCKET", "b"), (name, value)]).unwrap_err();
            assert!(
                matches!(err, SettingsError::Invalid { name: n, .. } if n == name),
                "{err}"
            );
        }
    }
}
