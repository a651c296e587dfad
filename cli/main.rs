//! `reelay`: run a plan or a code-to-video workflow on the embedded stack, serve the local
//! API, or benchmark the engine.

mod bench;
mod follow;
mod keys;
mod serve;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use reelay_local::{LocalNode, LocalSettings};
use reelay_node::{Settings, SettingsError};

#[derive(Parser)]
#[command(
    name = "reelay",
    version,
    about = "Composable AI media pipelines, run locally or on AWS"
)]
struct Cli {
    /// Where the embedded stack keeps its state (database, blobs, provider work).
    #[arg(long, global = true, env = "REELAY_DATA_DIR", default_value = ".reelay")]
    data_dir: PathBuf,
    /// How long the `local` provider's models take before rendering, in milliseconds
    /// [REELAY_PROVIDER_DELAY_MS; default 300].
    #[arg(long, global = true)]
    provider_delay_ms: Option<String>,
    /// Non-public addresses outbound requests (client webhooks, media downloads) may reach,
    /// CIDRs comma-separated, for local receivers: e.g. `127.0.0.0/8,::1`. Public addresses
    /// are always allowed [REELAY_WEBHOOK_ALLOW].
    #[arg(long, global = true)]
    webhook_allow: Option<String>,
    /// Client webhook retry delays after the first attempt, e.g. `5s,30s,2m,10m,1h`
    /// [REELAY_WEBHOOK_RETRIES].
    #[arg(long, global = true)]
    webhook_retries: Option<String>,
    /// This server's public base URL, where providers call back (`{url}/api/webhooks/job/…`)
    /// and fetch earlier outputs. Unset: provider jobs are polled only [REELAY_PUBLIC_URL].
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// Executions one tenant may have in flight at once, 0 for no limit
    /// [REELAY_MAX_IN_FLIGHT; default 100].
    #[arg(long, global = true)]
    max_in_flight: Option<String>,
    /// Executions one tenant may submit per minute, 0 for no limit
    /// [REELAY_MAX_PER_MINUTE; default 120].
    #[arg(long, global = true)]
    max_per_minute: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an execution plan (a JSON file) to the end, showing each job as it moves.
    Run { plan: PathBuf },
    /// Turn a prompt into a video: Manim code written, checked, rendered and uploaded per
    /// scene (then merged), showing each step as it moves.
    Workflow(workflow::WorkflowArgs),
    /// Follow an execution already in the store (e.g. after a restart) to its end.
    Resume { execution_id: String },
    /// Serve the HTTP API with the job runners and the poll timer in one process.
    Serve {
        #[arg(long, env = "REELAY_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
    },
    /// Measure the engine on the persistent store over standard DAG shapes.
    Bench(bench::BenchArgs),
    /// Manage API keys (each acts for one tenant).
    Keys(keys::KeysArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    /// The flags that stand in front of the environment, by the variable each overrides.
    fn overrides(&self) -> [(&'static str, &'static str, &Option<String>); 6] {
        [
            (
                "REELAY_PROVIDER_DELAY_MS",
                "--provider-delay-ms",
                &self.provider_delay_ms,
            ),
            ("REELAY_WEBHOOK_ALLOW", "--webhook-allow", &self.webhook_allow),
            ("REELAY_WEBHOOK_RETRIES", "--webhook-retries", &self.webhook_retries),
            ("REELAY_PUBLIC_URL", "--public-url", &self.public_url),
            ("REELAY_MAX_IN_FLIGHT", "--max-in-flight", &self.max_in_flight),
            ("REELAY_MAX_PER_MINUTE", "--max-per-minute", &self.max_per_minute),
        ]
    }

    /// The node's settings: read and checked by `reelay_node::settings` like the Lambda
    /// functions' own, from the flags where given and the environment otherwise.
    fn settings(&self) -> anyhow::Result<LocalSettings> {
        let overrides = self.overrides();
        let flag = |name: &str| overrides.iter().find(|(var, _, _)| *var == name);
        let node = Settings::from_env(|name| match flag(name) {
            Some((_, _, Some(value))) => Some(value.clone()),
            _ => std::env::var(name).ok(),
        })
        .map_err(|e| {
            let named = match &e {
                SettingsError::Missing(name) | SettingsError::Invalid { name, .. } => flag(name),
            };
            match named {
                Some((_, flag, Some(_))) => anyhow::anyhow!("{flag}: {e}"),
                _ => anyhow::anyhow!(e),
            }
        })?;
        let mut settings = LocalSettings::new(&self.data_dir, node);
        // Only from the environment: a flag would land in shell history and process lists.
        settings.secret_key = std::env::var("REELAY_SECRET_KEY").ok().filter(|k| !k.is_empty());
        Ok(settings)
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings()?;
    match cli.command {
        Command::Run { plan } => {
            let body = std::fs::read(&plan).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", plan.display()))?;
            let mut node = LocalNode::open(settings)?;
            let events = node.engine().subscribe();
            node.start();
            let submitted = node.engine().submit(follow::LOCAL_TENANT, &body).await;
            let execution = match submitted {
                Ok(execution) => execution,
                Err(reelay_core::SubmitError::Invalid(errors)) => {
                    eprintln!("the plan is invalid:");
                    for e in errors {
                        let at = [
                            e.job_id.map(|j| format!("job {j}")),
                            e.field.map(|f| format!("field {f}")),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", ");
                        eprintln!(
                            "  [{}] {}{}",
                            e.code,
                            e.message,
                            if at.is_empty() {
                                String::new()
                            } else {
                                format!(" ({at})")
                            }
                        );
                    }
                    node.stop().await;
                    return Ok(ExitCode::from(2));
                }
                Err(e) => return Err(e.into()),
            };
            follow::to_end(node, &execution.id, events).await
        }
        Command::Workflow(args) => {
            let request = args.request()?;
            let mut node = LocalNode::open(settings)?;
            let events = node.engine().subscribe();
            node.start();
            let execution = node.engine().start_workflow(follow::LOCAL_TENANT, &request).await?;
            follow::to_end(node, &execution.id, events).await
        }
        Command::Resume { execution_id } => {
            let mut node = LocalNode::open(settings)?;
            let events = node.engine().subscribe();
            node.start();
            follow::to_end(node, &execution_id, events).await
        }
        Command::Serve { addr } => serve::serve(settings, &addr).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Keys(args) => keys::run(&cli.data_dir, args).await,
    }
}
