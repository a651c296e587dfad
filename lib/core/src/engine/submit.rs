//! Starting an execution: validation (against the base execution when there is one), the
//! tenant's limits, secrets sealed before anything is stored, then the roots sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::{Engine, SubmitError};
use crate::domain::{Execution, ExecutionStatus, Job, JobStatus, StoredWebhook};
use crate::plan::{
    parse_value_on, read_body, requested_base, BaseJobs, BaseRef, ExecutionRequest, JobSpec, Params, PlanError,
};
use crate::ports::Message;

/// A base execution as read for a submission.
type Base = (Execution, Vec<Job>);

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
        self.start_on(tenant_id, request, base).await
    }

    /// Starts a parsed request (reading its base execution, if it names one).
    pub async fn start(&self, tenant_id: &str, request: ExecutionRequest) -> Result<Execution, SubmitError> {
        let base = match &request.base_execution_id {
            Some(id) => Some(self.base_for(tenant_id, id).await?),
            None => None,
        };
        self.start_on(tenant_id, request, base).await
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

/// The plan's jobs with the base execution's jobs it reuses or needs made into references
/// (`Params::Base`): a job whose id is a base job that completed, or may still complete, is
/// not run again; a base job depended on but not in the plan is added. A job whose base
/// twin ended without completing runs anew.
fn with_base_jobs(specs: Vec<JobSpec>, (base, base_jobs): &Base) -> Vec<JobSpec> {
    let by_id: HashMap<&str, &Job> = base_jobs.iter().map(|j| (j.id(), j)).collect();
    let reference = |job: &Job, send_job_webhook: bool| JobSpec {
        id: job.id().to_string(),
        operation: job.spec.operation,
        params: Params::Base(BaseRef {
            execution_id: base.id.clone(),
            job_id: job.id().to_string(),
        }),
        depends_on: Vec::new(),
        send_job_webhook,
    };
    let reusable = |job: &&Job| !job.status.is_terminal() || job.status == JobStatus::Completed;
    let mut out: Vec<JobSpec> = specs
        .into_iter()
        .map(|spec| match by_id.get(spec.id.as_str()).copied().filter(reusable) {
            Some(job) => reference(job, spec.send_job_webhook),
            None => spec,
        })
        .collect();
    let ids: HashSet<String> = out.iter().map(|s| s.id.clone()).collect();
    let mut added = HashSet::new();
    let needed: Vec<String> = out
        .iter()
        .flat_map(|s| s.depends_on.iter())
        .filter(|d| !ids.contains(*d))
        .cloned()
        .collect();
    // Added before the plan's jobs, so the plan's last job stays last.
    let mut referenced = Vec::new();
    for id in needed {
        if let Some(job) = by_id.get(id.as_str()) {
            if added.insert(id.clone()) {
                referenced.push(reference(job, false));
            }
        }
    }
    referenced.append(&mut out);
    referenced
}
