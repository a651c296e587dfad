//! Faults on purpose: wrappers around the `Store`, `Queue`, `Blobs` and `Provider` ports that
//! fail, delay, duplicate or lose one chosen call, by a plan the test sets (`Faults`). Every
//! other call goes through untouched, so a test can first count the calls of a clean run and
//! then break each of them in turn. Only tests use them.
//!
//! A plan names a call by what it is (`Target`: one kind of call, every store write, or any
//! call a wrapper sees) and its index among the calls that target counts (0 = the first), and
//! says what goes wrong (`Fault`). Each rule fires once. One `Faults` may be shared by several
//! wrappers; calls are counted in the order they arrive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use reelay_core::domain::{Execution, ExecutionStatus, Job, JobKey, Millis, WebhookDelivery};
use reelay_core::plan::{ProviderParams, Secret};
use reelay_core::ports::{
    Admission, BlobError, BlobRead, Blobs, ByteRange, ByteStream, Callback, CallbackError, Delivery, EdgeRelease,
    Message, ModelInfo, PageCursor, Provider, ProviderError, ProviderRequest, ProviderStatus, PublicUrl, Queue,
    QueueError, Store, StoreError, StoredBlob, Submission, Write,
};

/// A call a wrapper can break. Reads of the store and the queue's `receive` are never broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    // Store writes.
    CreateExecution,
    UpdateJob,
    ReleaseEdge,
    UpdateExecution,
    AddWatcher,
    CreateDelivery,
    UpdateDelivery,
    // Queue.
    Send,
    Ack,
    RetryLater,
    // Blobs.
    Put,
    // Provider.
    Submit,
    Find,
    Status,
    Cancel,
    Download,
}

impl Call {
    pub fn is_store_write(self) -> bool {
        matches!(
            self,
            Call::CreateExecution
                | Call::UpdateJob
                | Call::ReleaseEdge
                | Call::UpdateExecution
                | Call::AddWatcher
                | Call::CreateDelivery
                | Call::UpdateDelivery
        )
    }
}

/// Which calls a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Call(Call),
    /// Every store write, whatever its kind.
    StoreWrites,
    /// Every call any wrapper on this plan sees.
    Any,
}

impl Target {
    fn counts(self, call: Call) -> bool {
        match self {
            Target::Call(c) => c == call,
            Target::StoreWrites => call.is_store_write(),
            Target::Any => true,
        }
    }
}

/// What goes wrong with the chosen call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It fails before taking effect. A blob `put` fails mid-way instead: its body breaks
    /// after the first chunk, so the store must leave nothing behind. A provider answers a
    /// 500 (`Retryable`) without having received it.
    Error,
    /// It takes effect, then the caller sees an error (a lost acknowledgement). A provider's
    /// submit is accepted and then answered with a 500.
    ErrorAfter,
    /// A conditional write (`update_job`, `update_execution`, `update_delivery`) reports
    /// `Stale` without writing, as if it lost a race; any other call fails as `Error`.
    Stale,
    /// It takes effect after this long (real time), widening any race around it.
    Delay(Duration),
    /// It takes effect twice: a message sent twice, a write repeated (the caller sees the
    /// first's answer).
    Duplicate,
    /// It reports success and does nothing: a lost queue send, ack or retry. A provider's
    /// submit is accepted and its answer lost (`Uncertain`). Elsewhere it fails as `Error`.
    Drop,
}

#[derive(Debug, Clone)]
struct Rule {
    target: Target,
    index: u64,
    fault: Fault,
    fired: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    counts: HashMap<Target, u64>,
    log: Vec<Call>,
    fired: Vec<(Call, Fault)>,
}

/// The plan a test sets, shared by the wrappers; it also records every call it saw.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// Breaks the call with this `index` (0 = the first) among those `target` counts, counted
    /// from when the plan was made.
    pub fn inject(&self, target: Target, index: u64, fault: Fault) {
        self.lock().rules.push(Rule {
            target,
            index,
            fault,
            fired: false,
        });
    }

    /// Every call seen so far, in order.
    pub fn log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// How many calls `target` has counted so far.
    pub fn count(&self, target: Target) -> u64 {
        self.lock().log.iter().filter(|c| target.counts(**c)).count() as u64
    }

    /// The faults that fired, in order.
    pub fn fired(&self) -> Vec<(Call, Fault)> {
        self.lock().fired.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `call` and says what goes wrong with it, if anything.
    fn on(&self, call: Call) -> Option<Fault> {
        let mut state = self.lock();
        state.log.push(call);
        let targets = [Target::Call(call), Target::StoreWrites, Target::Any];
        let mut seen = HashMap::new();
        for target in targets.into_iter().filter(|t| t.counts(call)) {
            let n = state.counts.entry(target).or_insert(0);
            seen.insert(target, *n);
            *n += 1;
        }
        let rule = state
            .rules
            .iter_mut()
            .find(|r| !r.fired && seen.get(&r.target) == Some(&r.index))?;
        rule.fired = true;
        let fault = rule.fault;
        state.fired.push((call, fault));
        Some(fault)
    }
}

fn store_error(call: Call, when: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {call:?} failed {when}"))
}

fn queue_error(call: Call, when: &str) -> QueueError {
    QueueError::Unavailable(format!("injected fault: {call:?} failed {when}"))
}

/// A store whose chosen writes go wrong.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }

    /// Runs write `op` under the plan; `stale` is what a lost race answers (conditional writes).
    async fn write<T, F, Fut>(&self, call: Call, op: F, stale: Option<T>) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        match self.faults.on(call) {
            None => op().await,
            Some(Fault::Error | Fault::Drop) => Err(store_error(call, "before it was applied")),
            Some(Fault::ErrorAfter) => {
                op().await?;
                Err(store_error(call, "after it was applied"))
            }
            Some(Fault::Stale) => stale.ok_or_else(|| store_error(call, "before it was applied")),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                op().await
            }
            Some(Fault::Duplicate) => {
                let first = op().await;
                let _ = op().await;
                first
            }
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create_execution(
        &self,
        execution: &Execution,
        jobs: &[Job],
        admission: Admission,
    ) -> Result<(), StoreError> {
        let op = || self.inner.create_execution(execution, jobs, admission);
        self.write(Call::CreateExecution, op, None).await
    }

    async fn list_executions(
        &self,
        tenant_id: &str,
        status: Option<ExecutionStatus>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        self.inner.list_executions(tenant_id, status, after, limit).await
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.inner.execution(id).await
    }

    async fn execution_with_jobs(&self, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError> {
        self.inner.execution_with_jobs(id).await
    }

    async fn job(&self, key: &JobKey) -> Result<Option<Job>, StoreError> {
        self.inner.job(key).await
    }

    async fn jobs(&self, execution_id: &str, job_ids: &[String]) -> Result<Vec<Job>, StoreError> {
        self.inner.jobs(execution_id, job_ids).await
    }

    async fn update_job(&self, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError> {
        let op = || self.inner.update_job(prev, next);
        self.write(Call::UpdateJob, op, Some(Write::Stale)).await
    }

    async fn release_edge(&self, child: &JobKey, parent: &str, now: Millis) -> Result<EdgeRelease, StoreError> {
        let op = || self.inner.release_edge(child, parent, now);
        self.write(Call::ReleaseEdge, op, None).await
    }

    async fn update_execution(&self, prev: &Execution, next: &Execution) -> Result<Write<Execution>, StoreError> {
        let op = || self.inner.update_execution(prev, next);
        self.write(Call::UpdateExecution, op, Some(Write::Stale)).await
    }

    async fn due_polls(&self, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        self.inner.due_polls(now, limit).await
    }

    async fn stale_queued(&self, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        self.inner.stale_queued(before, limit).await
    }

    async fn add_watcher(&self, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError> {
        let op = || self.inner.add_watcher(base, watcher);
        self.write(Call::AddWatcher, op, None).await
    }

    async fn watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<Vec<JobKey>, StoreError> {
        self.inner.watchers(execution_id, job_id).await
    }

    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let op = || self.inner.create_delivery(delivery);
        self.write(Call::CreateDelivery, op, None).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
        self.inner.delivery(id).await
    }

    async fn update_delivery(
        &self,
        prev: &WebhookDelivery,
        next: &WebhookDelivery,
    ) -> Result<Write<WebhookDelivery>, StoreError> {
        let op = || self.inner.update_delivery(prev, next);
        self.write(Call::UpdateDelivery, op, Some(Write::Stale)).await
    }

    async fn deliveries(&self, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
        self.inner.deliveries(execution_id).await
    }

    async fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.due_deliveries(now, limit).await
    }
}

/// A queue whose chosen sends, acks or retries go wrong (`receive` is never broken).
pub struct FaultyQueue {
    inner: Arc<dyn Queue>,
    faults: Arc<Faults>,
}

impl FaultyQueue {
    pub fn new(inner: Arc<dyn Queue>, faults: Arc<Faults>) -> Self {
        FaultyQueue { inner, faults }
    }

    async fn call<F, Fut>(&self, call: Call, op: F) -> Result<(), QueueError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), QueueError>>,
    {
        match self.faults.on(call) {
            None => op().await,
            Some(Fault::Error | Fault::Stale) => Err(queue_error(call, "before it was applied")),
            Some(Fault::ErrorAfter) => {
                op().await?;
                Err(queue_error(call, "after it was applied"))
            }
            Some(Fault::Drop) => Ok(()),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                op().await
            }
            Some(Fault::Duplicate) => {
                op().await?;
                op().await
            }
        }
    }
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn send(&self, messages: &[Message], delay: Duration) -> Result<(), QueueError> {
        // An empty send is no call at all (the engine sends what it has, often nothing).
        if messages.is_empty() {
            return self.inner.send(messages, delay).await;
        }
        self.call(Call::Send, || self.inner.send(messages, delay)).await
    }

    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(max, visibility, wait).await
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.call(Call::Ack, || self.inner.ack(receipt)).await
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.call(Call::RetryLater, || self.inner.retry_later(receipt, delay))
            .await
    }
}

/// Blobs whose chosen `put` goes wrong (reads pass through).
pub struct FaultyBlobs {
    inner: Arc<dyn Blobs>,
    faults: Arc<Faults>,
}

impl FaultyBlobs {
    pub fn new(inner: Arc<dyn Blobs>, faults: Arc<Faults>) -> Self {
        FaultyBlobs { inner, faults }
    }
}

/// `body` with an I/O error after its first chunk.
fn broken_midway(body: ByteStream) -> ByteStream {
    let broken = futures::stream::once(async {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: the body broke mid-way",
        ))
    });
    Box::pin(body.take(1).chain(broken))
}

#[async_trait]
impl Blobs for FaultyBlobs {
    async fn put(&self, key: &str, content_type: &str, body: ByteStream) -> Result<StoredBlob, BlobError> {
        match self.faults.on(Call::Put) {
            None => self.inner.put(key, content_type, body).await,
            Some(Fault::Error | Fault::Stale | Fault::Drop) => {
                self.inner.put(key, content_type, broken_midway(body)).await?;
                Err(BlobError::Io(
                    "injected fault: a put whose body broke was stored".into(),
                ))
            }
            Some(Fault::ErrorAfter) => {
                self.inner.put(key, content_type, body).await?;
                Err(BlobError::Io("injected fault: put failed after it was stored".into()))
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.inner.put(key, content_type, body).await
            }
            // A stream cannot be read twice: the first put is repeated from what it stored.
            Some(Fault::Duplicate) => {
                let first = self.inner.put(key, content_type, body).await?;
                let again = self.inner.get(key).await?;
                self.inner.put(key, content_type, again).await?;
                Ok(first)
            }
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        self.inner.get(key).await
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        self.inner.read(key, range).await
    }

    async fn url(&self, key: &str) -> Result<String, BlobError> {
        self.inner.url(key).await
    }

    async fn public_url(&self, key: &str) -> Result<Option<PublicUrl>, BlobError> {
        self.inner.public_url(key).await
    }
}

/// A provider whose chosen calls go wrong: a 500 (`Retryable`) before or after the call took
/// effect, or (`Drop`) a submit accepted whose answer is lost (`Uncertain`).
pub struct FaultyProvider {
    inner: Arc<dyn Provider>,
    faults: Arc<Faults>,
}

impl FaultyProvider {
    pub fn new(inner: Arc<dyn Provider>, faults: Arc<Faults>) -> Self {
        FaultyProvider { inner, faults }
    }

    async fn call<T, F, Fut>(&self, call: Call, op: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let server_error = |when: &str| ProviderError::Retryable {
            message: format!("injected fault: 500 Internal Server Error {when} {call:?}"),
            retry_after: None,
        };
        match self.faults.on(call) {
            None => op().await,
            Some(Fault::Error | Fault::Stale) => Err(server_error("before")),
            Some(Fault::ErrorAfter) => {
                op().await?;
                Err(server_error("after"))
            }
            Some(Fault::Drop) => {
                op().await?;
                Err(ProviderError::Uncertain(format!(
                    "injected fault: the answer to {call:?} was lost"
                )))
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                op().await
            }
            Some(Fault::Duplicate) => {
                let first = op().await;
                let _ = op().await;
                first
            }
        }
    }
}

#[async_trait]
impl Provider for FaultyProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn models(&self) -> &[ModelInfo] {
        self.inner.models()
    }

    fn model(&self, model_id: &str) -> Option<&ModelInfo> {
        self.inner.model(model_id)
    }

    fn check_params(&self, params: &ProviderParams) -> Vec<(String, String)> {
        self.inner.check_params(params)
    }

    async fn submit(&self, request: ProviderRequest) -> Result<Submission, ProviderError> {
        self.call(Call::Submit, || self.inner.submit(request.clone())).await
    }

    async fn find(&self, request: &ProviderRequest) -> Result<Option<Submission>, ProviderError> {
        self.call(Call::Find, || self.inner.find(request)).await
    }

    fn reconciles(&self) -> bool {
        self.inner.reconciles()
    }

    fn reads_files(&self) -> bool {
        self.inner.reads_files()
    }

    async fn status(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<ProviderStatus, ProviderError> {
        self.call(Call::Status, || self.inner.status(provider_job_id, key))
            .await
    }

    async fn cancel(&self, provider_job_id: &str, key: Option<&Secret>) -> Result<(), ProviderError> {
        self.call(Call::Cancel, || self.inner.cancel(provider_job_id, key))
            .await
    }

    async fn download(&self, output_url: &str, key: Option<&Secret>) -> Result<ByteStream, ProviderError> {
        self.call(Call::Download, || self.inner.download(output_url, key)).await
    }

    async fn verify_callback(&self, headers: &[(String, String)], body: &[u8]) -> Result<Callback, CallbackError> {
        self.inner.verify_callback(headers, body).await
    }

    fn is_same_job(&self, provider_job_id: &str, callback_job_id: &str) -> bool {
        self.inner.is_same_job(provider_job_id, callback_job_id)
    }
}
