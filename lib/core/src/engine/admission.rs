//! Stage 1, admission: starting an execution. Validation (against the base execution when
//! there is one), the tenant's limits, secrets sealed before anything is stored, then the
//! roots sent. Next: each message is taken up by dispatch (`dispatch.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::base_jobs::{with_base_jobs, Base};
use super::{Engine, EngineError};
use crate::domain::{Execution, ExecutionStatus, Job, JobStatus, StoredWebhook, WorkflowRun};
use crate::plan::{
    parse_value_on, read_body, requested_base, BaseJobs, ExecutionRequest, Params, PlanError, Secret, WebhookTarget,
};
use crate::ports::{Message, QueueError, StoreError};
use crate::scenes::WorkflowRequest;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the plan is invalid ({} problems)", .0.len())]
    Invalid(Vec<PlanError>),
    /// The `baseExecutionId` names no execution of this tenant.
    #[error("no execution {0} to build on")]
    BaseNotFound(String),
    #[error("{reason}")]
    Limited { reason: String, retry_after: Duration },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitReached { reason, retry_after } => SubmitError::Limited { reason, retry_after },
            e => SubmitError::Engine(e.into()),
        }
    }
}

impl From<QueueError> for SubmitError {
    fn from(e: QueueError) -> Self {
        SubmitError::Engine(e.into())
    }
}

impl Engine {
    /// Validates a request body and starts the execution it describes.
    pub async fn submit(&self, tenant_id: &str, body: &[u8]) -> Result<Execution, SubmitError> {
        let limits = self.settings.limits;
        let root = read_body(body, limits).map_err(SubmitError::Invalid)?;
        let base = match requested_base(&root) {
            Some(id) => Some(self.base_for(tenant_id, &id).await?),
            None => None,
        };
        let base_jobs = base.as_ref().map(|(execution, jobs)| BaseJobs {
            kinds: jobs
                .iter()
                .map(|j| (j.id().to_string(), j.spec.operation.output_kind()))
                .collect(),
            final_job: execution.final_job.clone(),
        });
        let request =
            parse_value_on(&root, &self.providers, limits, base_jobs.as_ref()).map_err(SubmitError::Invalid)?;
        self.start_on(tenant_id, request, base, None).await
    }

    /// Starts a code-to-video workflow run: an execution of the request's plan, its code
    /// written by the configured writer (`EngineSettings::scene_writer`).
    pub async fn start_workflow(&self, tenant_id: &str, request: &WorkflowRequest) -> Result<Execution, SubmitError> {
        let (provider, model) = &self.settings.scene_writer;
        let run = ExecutionRequest {
            plan: request.plan((provider, model)),
            base_execution_id: None,
            webhook: request.webhook.as_ref().map(|url| WebhookTarget {
                url: url.clone(),
                secret: request.webhook_secret.clone().map(Secret::new),
            }),
            provider_api_keys: Default::default(),
        };
        let workflow = WorkflowRun {
            mode: request.mode,
            title: request.title.clone(),
        };
        self.start_on(tenant_id, run, None, Some(workflow)).await
    }

    /// Starts a parsed request (reading its base execution, if it names one).
    pub async fn start(&self, tenant_id: &str, request: ExecutionRequest) -> Result<Execution, SubmitError> {
        let base = match &request.base_execution_id {
            Some(id) => Some(self.base_for(tenant_id, id).await?),
            None => None,
        };
        self.start_on(tenant_id, request, base, None).await
    }

    /// The base execution, if it exists and is the tenant's (another tenant's reads as missing).
    async fn base_for(&self, tenant_id: &str, id: &str) -> Result<Base, SubmitError> {
        match self.store.execution_with_jobs(id).await? {
            Some((execution, jobs)) if execution.tenant_id == tenant_id => Ok((execution, jobs)),
            _ => Err(SubmitError::BaseNotFound(id.to_string())),
        }
    }

    async fn start_on(
        &self,
        tenant_id: &str,
        request: ExecutionRequest,
        base: Option<Base>,
        workflow: Option<WorkflowRun>,
    ) -> Result<Execution, SubmitError> {
        let webhook = match &request.webhook {
            Some(target) => {
                self.settings.outbound_addresses.check_url(&target.url).map_err(|e| {
                    SubmitError::Invalid(vec![
                        PlanError::new("webhook_url_refused", e.to_string()).field("webhook.url")
                    ])
                })?;
                Some(StoredWebhook {
                    url: target.url.clone(),
                    secret: target.secret.as_ref().map(|s| self.sealer.seal(s)),
                })
            }
            None => None,
        };
        let now = self.now();
        let id = uuid::Uuid::now_v7().to_string();
        let final_job = request.plan.final_job().map(|s| s.id.clone()).unwrap_or_default();
        let specs = match &base {
            Some(base) => with_base_jobs(request.plan.jobs.clone(), base),
            None => request.plan.jobs.clone(),
        };
        let mut jobs = Job::for_plan(&id, &specs, now);
        for job in &mut jobs {
            if let Params::Provider(p) = &job.spec.params {
                job.api_key = p.api_key.as_ref().map(|k| self.sealer.seal(k));
            }
        }
        let execution = Execution {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            status: ExecutionStatus::Pending,
            created_at: now,
            started_at: None,
            completed_at: None,
            total_jobs: jobs.len() as u32,
            open_jobs: jobs.len() as u32,
            completed_jobs: 0,
            final_job,
            result: None,
            outputs: Default::default(),
            error: None,
            webhook,
            base_execution_id: base.as_ref().map(|(b, _)| b.id.clone()),
            provider_keys: request
                .provider_api_keys
                .iter()
                .map(|(provider, key)| (provider.clone(), self.sealer.seal(key)))
                .collect::<BTreeMap<_, _>>(),
            cancel_requested_at: None,
            watched: false,
            workflow,
            version: 0,
        };
        self.store
            .create_execution(&execution, &jobs, self.settings.admission)
            .await?;
        let roots: Vec<Message> = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| Message::Job(j.key()))
            .collect();
        // A crash before this send leaves the roots `queued`: the stale sweep re-sends them.
        self.queue.send(&roots, Duration::ZERO).await?;
        Ok(execution)
    }
}
