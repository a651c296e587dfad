//! The `Store` and `KeyStore` ports on one DynamoDB table.
//!
//! # Key design (single table: `pk`, `sk`)
//!
//! | item                | `pk`                | `sk`                               |
//! |---------------------|---------------------|------------------------------------|
//! | execution           | `EXEC#{id}`         | `#EXEC`                            |
//! | job                 | `EXEC#{id}`         | `JOB#{job id}`                     |
//! | watcher of a job    | `EXEC#{base id}`    | `WATCH#{len}:{base job}{len}:{execution}{job}` |
//! | delivery pointer    | `EXEC#{id}`         | `DELIVERY#{delivery id}`           |
//! | delivery            | `DELIVERY#{id}`     | `#DELIVERY`                        |
//! | tenant's admission  | `TENANT#{tenant}`   | `#ADMISSION`                       |
//! | API key, by hash    | `APIKEY#{sha256}`   | `#KEY`                             |
//! | API key, listed     | `APIKEYS`           | `KEY#{id}`                         |
//! | rate budget window  | `RATE#{scope}`      | `W#{window number}`                |
//!
//! Access patterns:
//! * an execution with all its jobs: one `Query` on `EXEC#{id}` (the status call);
//! * a tenant's executions, newest first: GSI `by_tenant` (`tenant_pk = TENANT#{tenant}`,
//!   `tenant_sk = {created_at, 20 digits}#{id}`), status filtered on the way;
//! * due polls, stale queued jobs and due webhook deliveries: the sparse GSI `schedule`
//!   (`sched_pk` = `POLL`, `QUEUED` or `DELIVERY`, `sched_at` = when, in ms). Only items that
//!   are due at some time carry its keys, so a tick reads O(due items), never a scan.
//!
//! What a write must change atomically lives in top-level attributes that conditional
//! updates move, laid over the JSON `record` when read: a job's `status`, `version`,
//! `released_by`, `queued_at` and its `pending` set of parents not yet released (the
//! dependency gate: `DELETE pending :parent` guarded by `contains`, once per edge); an
//! execution's `status`, `started_at`, `version` and its counters, which job writes move with
//! `ADD` in the same transaction. Every state change is conditional on `version`.
//!
//! Finished records carry `expires_at` (epoch seconds) and DynamoDB's TTL deletes them
//! `retention` after they end.
//!
//! Creating an execution: the tenant's admission record, the execution and up to
//! [`JOBS_WITH_EXECUTION`] jobs go in one transaction. A larger plan's other jobs are written
//! first, in transactions of [`MAX_TRANSACTION_ITEMS`]: until the execution exists nothing
//! reads them, and if its creation fails they are deleted, or, should the process die
//! half-way, found by the stale sweep (its roots are queued) and deleted an hour later. The
//! `schedule` index keeps each kind in one partition: past ~1,000 due writes a second it
//! would need sharding. GSI reads (listing, due items) are eventually consistent: a listing
//! may show a status a moment old, and a tick may see an item a moment late.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use reelay_core::domain::{
    CounterDelta, DeliveryState, Execution, ExecutionStatus, Job, JobKey, JobStatus, Millis, WebhookDelivery,
};
use reelay_core::ports::{
    Admission, ApiKeyRecord, EdgeRelease, KeyStore, PageCursor, RateBudget, Store, StoreError, Write,
};

use crate::sdk_message;

/// DynamoDB's most items in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The most jobs created in the execution's own transaction, which also writes the execution
/// and the tenant's admission record. A larger plan's other jobs are written first.
pub const JOBS_WITH_EXECUTION: usize = MAX_TRANSACTION_ITEMS - 2;
/// How long jobs without their execution are left alone before they count as the remains of
/// a creation that died half-way (creating even the largest plan takes seconds).
const ORPHAN_AFTER_MS: i64 = 60 * 60 * 1000;
/// How often a write that lost a race on a shared record (the tenant's admission) tries again.
const RACE_ATTEMPTS: usize = 20;

const EXEC_SK: &str = "#EXEC";
const DELIVERY_SK: &str = "#DELIVERY";
const ADMISSION_SK: &str = "#ADMISSION";
const KEY_SK: &str = "#KEY";
const KEYS_PK: &str = "APIKEYS";
const POLL: &str = "POLL";
const QUEUED: &str = "QUEUED";
const DELIVERY: &str = "DELIVERY";
const BY_TENANT: &str = "by_tenant";
const SCHEDULE: &str = "schedule";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    pub table: String,
    /// Another DynamoDB endpoint (moto); `None` for AWS's.
    pub endpoint_url: Option<String>,
    /// How long finished records are kept before TTL deletes them.
    pub retention: Duration,
}

/// The store on one DynamoDB table (see the module's key design).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Duration,
}

fn unavailable<E: std::error::Error>(err: E) -> StoreError {
    StoreError::Unavailable(sdk_message(&err))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn exec_pk(id: &str) -> String {
    format!("EXEC#{id}")
}

fn job_sk(job_id: &str) -> String {
    format!("JOB#{job_id}")
}

fn delivery_pk(id: &str) -> String {
    format!("DELIVERY#{id}")
}

fn tenant_sk(created_at: Millis, id: &str) -> String {
    format!("{:020}#{id}", created_at.max(0))
}

/// A watcher's sort key: length-prefixed parts, so no job id can make two watchers collide,
/// and `watch_prefix(base_job)` selects exactly one base job's watchers.
fn watch_sk(base_job: &str, watcher: &JobKey) -> String {
    format!(
        "{}{}:{}{}",
        watch_prefix(base_job),
        watcher.execution_id.len(),
        watcher.execution_id,
        watcher.job_id
    )
}

fn watch_prefix(base_job: &str) -> String {
    format!("WATCH#{}:{base_job}", base_job.len())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        message: e.to_string(),
    })
}

/// Reads an item's attributes; a missing or mistyped one is a corrupt record.
struct Item<'a> {
    attrs: &'a HashMap<String, AttributeValue>,
}

impl<'a> Item<'a> {
    fn new(attrs: &'a HashMap<String, AttributeValue>) -> Self {
        Item { attrs }
    }

    fn corrupt(&self, message: String) -> StoreError {
        let pk = self
            .attrs
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let sk = self
            .attrs
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        StoreError::Corrupt {
            key: format!("{pk}/{sk}"),
            message,
        }
    }

    fn opt_s(&self, name: &str) -> Option<&'a str> {
        self.attrs.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
    }

    fn str(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name).ok_or_else(|| self.corrupt(format!("no {name}")))
    }

    fn opt_i64(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.attrs.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(format!("{name} is not an integer"))),
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
        }
    }

    fn i64(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_i64(name)?.ok_or_else(|| self.corrupt(format!("no {name}")))
    }

    fn record<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(self.str("record")?).map_err(|e| self.corrupt(e.to_string()))
    }

    /// The job, with the live attributes over its record.
    fn job(&self) -> Result<Job, StoreError> {
        let mut job: Job = self.record()?;
        let status = self.str("status")?;
        job.status = JobStatus::parse(status).ok_or_else(|| self.corrupt(format!("unknown status {status}")))?;
        job.version = self.i64("version")? as u64;
        job.released_by = self.opt_s("released_by").map(str::to_string);
        job.queued_at = self.opt_i64("queued_at")?;
        Ok(job)
    }

    /// The execution, with the live status and counters over its record.
    fn execution(&self) -> Result<Execution, StoreError> {
        let mut execution: Execution = self.record()?;
        let status = self.str("status")?;
        execution.status =
            ExecutionStatus::parse(status).ok_or_else(|| self.corrupt(format!("unknown status {status}")))?;
        execution.started_at = self.opt_i64("started_at")?;
        execution.version = self.i64("version")? as u64;
        execution.open_jobs = self.i64("open_jobs")? as u32;
        execution.completed_jobs = self.i64("completed_jobs")? as u32;
        Ok(execution)
    }

    fn has_pending(&self) -> bool {
        matches!(self.attrs.get("pending"), Some(AttributeValue::Ss(set)) if !set.is_empty())
    }

    fn api_key(&self) -> Result<ApiKeyRecord, StoreError> {
        Ok(ApiKeyRecord {
            id: self.str("id")?.to_string(),
            tenant_id: self.str("tenant_id")?.to_string(),
            name: self.str("name")?.to_string(),
            hash: self.str("hash")?.to_string(),
            prefix: self.str("prefix")?.to_string(),
            created_at: self.i64("created_at")?,
            revoked_at: self.opt_i64("revoked_at")?,
        })
    }
}

/// How a transaction's cancellation came about, from its per-item `CancellationReasons`.
#[derive(Debug)]
enum Cancelled {
    /// The item at this index failed its condition.
    Condition(usize),
    /// Another transaction touched the same items at once: try again.
    Conflict,
}

/// Sorts a failed `TransactWriteItems` into a condition failure (which item), a conflict, or
/// an error.
fn classify(err: SdkError<TransactWriteItemsError>) -> Result<Cancelled, StoreError> {
    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
        let codes: Vec<&str> = e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
            return Ok(Cancelled::Condition(i));
        }
        if codes.contains(&"TransactionConflict") {
            return Ok(Cancelled::Conflict);
        }
    }
    Err(unavailable(err))
}

/// A short randomised pause before retrying a lost race.
async fn backoff(attempt: usize) {
    // 5 ms doubling to about a second: enough for a few dozen racing writers to take turns.
    let cap = 5u64 << attempt.min(8);
    tokio::time::sleep(Duration::from_millis(1 + rand::random_range(0..cap))).await;
}

/// Now, for expiry times the record does not say (TTL is coarse: seconds do not matter).
fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where a job stands on the `schedule` index (`sched_pk`, `sched_at`), if anywhere.
fn schedule_of(job: &Job) -> Option<(&'static str, Millis)> {
    let poll = (job.status == JobStatus::AwaitingProvider)
        .then(|| job.provider.as_ref().and_then(|p| p.next_poll_at))
        .flatten();
    match (poll, job.status, job.queued_at) {
        (Some(at), _, _) => Some((POLL, at)),
        (None, JobStatus::Queued, Some(at)) => Some((QUEUED, at)),
        _ => None,
    }
}

impl DynamoStore {
    pub fn new(config: &aws_config::SdkConfig, settings: DynamoSettings) -> DynamoStore {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(endpoint) = &settings.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        DynamoStore::from_client(Client::from_conf(builder.build()), settings)
    }

    /// On a client built elsewhere (its endpoint wins over `settings.endpoint_url`).
    pub fn from_client(client: Client, settings: DynamoSettings) -> DynamoStore {
        DynamoStore {
            client,
            table: settings.table,
            retention: settings.retention,
        }
    }

    /// Creates the table as `template.yaml` declares it (tests and local stacks; AWS gets it
    /// from the template).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(unavailable)
        };
        let key_schema = |hash: &str, range: &str| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(hash)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(unavailable)?,
                KeySchemaElement::builder()
                    .attribute_name(range)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(unavailable)?,
            ])
        };
        let index = |name: &str, hash: &str, range: &str, projection: ProjectionType| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(key_schema(hash, range)?))
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .map_err(unavailable)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(vec![
                attr("pk", ScalarAttributeType::S)?,
                attr("sk", ScalarAttributeType::S)?,
                attr("tenant_pk", ScalarAttributeType::S)?,
                attr("tenant_sk", ScalarAttributeType::S)?,
                attr("sched_pk", ScalarAttributeType::S)?,
                attr("sched_at", ScalarAttributeType::N)?,
            ]))
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .global_secondary_indexes(index(BY_TENANT, "tenant_pk", "tenant_sk", ProjectionType::All)?)
            .global_secondary_indexes(index(SCHEDULE, "sched_pk", "sched_at", ProjectionType::KeysOnly)?)
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// When a record that ended at `at` (ms) expires, in epoch seconds.
    fn expiry(&self, at: Millis) -> AttributeValue {
        n(at / 1000 + self.retention.as_secs() as i64)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Every item of a partition whose sort key starts with `prefix`, all pages.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The keys of `kind`'s schedule entries due at `now`, soonest first.
    async fn due(&self, kind: &str, now: Millis, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        while keys.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SCHEDULE)
                .key_condition_expression("sched_pk = :kind AND sched_at <= :now")
                .expression_attribute_values(":kind", s(kind))
                .expression_attribute_values(":now", n(now))
                .limit((limit - keys.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                let item = Item::new(&item);
                keys.push((item.str("pk")?.to_string(), item.str("sk")?.to_string()));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(keys)
    }

    fn job_put(&self, job: &Job) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(exec_pk(&job.execution_id), &job_sk(job.id()));
        item.insert("status".into(), s(job.status.name()));
        item.insert("version".into(), n(job.version));
        item.insert("record".into(), s(encode(job)?));
        if let Some(by) = &job.released_by {
            item.insert("released_by".into(), s(by.as_str()));
        }
        if let Some(at) = job.queued_at {
            item.insert("queued_at".into(), n(at));
        }
        if let Some((kind, at)) = schedule_of(job) {
            item.insert("sched_pk".into(), s(kind));
            item.insert("sched_at".into(), n(at));
        }
        // A set: each parent once, however often the plan names it.
        let pending: std::collections::BTreeSet<String> = job.spec.depends_on.iter().cloned().collect();
        if !pending.is_empty() {
            item.insert("pending".into(), AttributeValue::Ss(pending.into_iter().collect()));
        }
        self.new_item(item)
    }

    /// A transaction's put of an item that must not exist yet.
    fn new_item(&self, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The update that writes `stored` over the job item at `prev_version`.
    fn job_update(&self, stored: &Job, prev_version: u64) -> Result<Update, StoreError> {
        let mut set = vec!["#status = :status", "version = :version", "#record = :record"];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (":status".to_string(), s(stored.status.name())),
            (":version".to_string(), n(stored.version)),
            (":record".to_string(), s(encode(stored)?)),
            (":prev".to_string(), n(prev_version)),
        ]);
        match &stored.released_by {
            Some(by) => {
                set.push("released_by = :released_by");
                values.insert(":released_by".into(), s(by.as_str()));
            }
            None => remove.push("released_by"),
        }
        match stored.queued_at {
            Some(at) => {
                set.push("queued_at = :queued_at");
                values.insert(":queued_at".into(), n(at));
            }
            None => remove.push("queued_at"),
        }
        match schedule_of(stored) {
            Some((kind, at)) => {
                set.push("sched_pk = :sched_pk, sched_at = :sched_at");
                values.insert(":sched_pk".into(), s(kind));
                values.insert(":sched_at".into(), n(at));
            }
            None => remove.push("sched_pk, sched_at"),
        }
        if stored.status.is_terminal() {
            set.push("expires_at = :expires_at");
            values.insert(
                ":expires_at".into(),
                self.expiry(stored.completed_at.unwrap_or_else(now_ms)),
            );
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(exec_pk(&stored.execution_id), &job_sk(stored.id()))))
            .update_expression(expression)
            .condition_expression("version = :prev")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#record", "record")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(unavailable)
    }

    /// The update that moves an execution's counters by `delta`; with `start`, it also
    /// leaves `pending` (and is then conditional on still being pending).
    /// The update that moves an execution's counters by `delta`.
    fn counters_update(&self, execution_id: &str, delta: CounterDelta) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(exec_pk(execution_id), EXEC_SK)))
            .update_expression("ADD open_jobs :open, completed_jobs :completed")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":open", n(delta.open))
            .expression_attribute_values(":completed", n(delta.completed))
            .build()
            .map_err(unavailable)
    }

    /// The execution leaves `pending` when its first job starts. Not in the job's write: every
    /// later start would fail that condition and cancel the transaction. Monotonic and
    /// repeated by each start, so a crash between the two writes is repaired by the next
    /// (or made moot by the execution's end).
    async fn start_execution(&self, execution_id: &str, started_at: Option<Millis>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(exec_pk(execution_id), EXEC_SK)))
            .update_expression("SET #status = :processing, started_at = :started ADD version :one")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", s(ExecutionStatus::Processing.name()))
            .expression_attribute_values(":pending", s(ExecutionStatus::Pending.name()))
            .expression_attribute_values(":started", started_at.map_or(AttributeValue::Null(true), n))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Reads the tenant's admission record and refuses over a limit; returns the update that
    /// counts the new execution, conditional on nobody else having counted one meanwhile.
    async fn admission_update(&self, execution: &Execution, admission: Admission) -> Result<Update, StoreError> {
        let pk = format!("TENANT#{}", execution.tenant_id);
        let item = self.get(pk.clone(), ADMISSION_SK).await?.unwrap_or_default();
        let item = Item::new(&item);
        let version = item.opt_i64("version")?;
        let in_flight = item.opt_i64("in_flight")?.unwrap_or(0);
        if admission.max_per_minute.is_none() {
            // Only a count: conditional on its value, not on the record's version, so that
            // concurrent submissions do not race each other.
            if let Some(refusal) = admission.refusal(in_flight.max(0) as u64, 0, None, execution.created_at) {
                return Err(refusal);
            }
            let mut builder = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, ADMISSION_SK)))
                .update_expression("ADD in_flight :one")
                .expression_attribute_values(":one", n(1));
            if let Some(max) = admission.max_in_flight {
                builder = builder
                    .condition_expression("attribute_not_exists(in_flight) OR in_flight < :max")
                    .expression_attribute_values(":max", n(max));
            }
            return builder.build().map_err(unavailable);
        }
        // Submissions of the last minute, as (millisecond, entry), oldest first. A number set
        // holds each value once: same-millisecond submissions are told apart by a fraction.
        let mut recent: Vec<(i64, String)> = match item.attrs.get("recent") {
            Some(AttributeValue::Ns(values)) => values
                .iter()
                .filter_map(|v| Some((v.split('.').next()?.parse().ok()?, v.clone())))
                .collect(),
            _ => Vec::new(),
        };
        recent.retain(|(at, _)| *at > execution.created_at - 60_000);
        recent.sort_unstable();
        if let Some(refusal) = admission.refusal(
            in_flight.max(0) as u64,
            recent.len() as u64,
            recent.first().map(|(at, _)| *at),
            execution.created_at,
        ) {
            return Err(refusal);
        }
        let mut entries: Vec<String> = recent.into_iter().map(|(_, entry)| entry).collect();
        let mut mine = execution.created_at.to_string();
        let mut bump = 1;
        while entries.contains(&mine) {
            // Ends in 1: no trailing zero for DynamoDB to normalise into another's value.
            mine = format!("{}.{bump}1", execution.created_at);
            bump += 1;
        }
        entries.push(mine);
        let (condition, expected) = match version {
            Some(v) => ("version = :seen", n(v)),
            None => ("attribute_not_exists(version)", AttributeValue::Null(true)),
        };
        let mut builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, ADMISSION_SK)))
            .update_expression("SET recent = :recent ADD in_flight :one, version :one")
            .condition_expression(condition)
            .expression_attribute_values(":recent", AttributeValue::Ns(entries))
            .expression_attribute_values(":one", n(1));
        if version.is_some() {
            builder = builder.expression_attribute_values(":seen", expected);
        }
        builder.build().map_err(unavailable)
    }

    async fn read_job(&self, key: &JobKey) -> Result<Option<Job>, StoreError> {
        self.get(exec_pk(&key.execution_id), &job_sk(&key.job_id))
            .await?
            .map(|item| Item::new(&item).job())
            .transpose()
    }

    /// The items at `keys` (consistent reads, 100 keys a request, unprocessed keys retried);
    /// missing ones are left out, in no particular order.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(unavailable)?;
                let result = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                items.extend(
                    result
                        .responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default(),
                );
                if let Some(left) = result.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = left.keys;
                    if !pending.is_empty() {
                        backoff(1).await;
                    }
                }
            }
        }
        Ok(items)
    }

    /// Runs one conditional update alone; `None` if its condition failed, else the item as
    /// written. An update the SDK retried after its first try was applied (the answer was
    /// lost) fails its own version condition: the item already holding this update's
    /// `:version` and `:record` counts as applied.
    async fn apply(&self, update: &Update) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key.clone()))
            .update_expression(update.update_expression.clone())
            .set_condition_expression(update.condition_expression.clone())
            .set_expression_attribute_names(update.expression_attribute_names.clone())
            .set_expression_attribute_values(update.expression_attribute_values.clone())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) => match e.into_service_error() {
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                    let ours = |name: &str| {
                        let value = update.expression_attribute_values.as_ref().and_then(|v| v.get(name));
                        value.is_some() && f.item.as_ref().and_then(|i| i.get(&name[1..])) == value
                    };
                    Ok((ours(":version") && ours(":record")).then(|| f.item.clone().unwrap_or_default()))
                }
                other => Err(unavailable(other)),
            },
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Cancelled>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => classify(e).map(Err),
        }
    }
}

impl DynamoStore {
    /// The execution's own transaction: the tenant's admission (counted again if another
    /// submission of the tenant counted first), the execution, and `jobs`.
    async fn create_with_admission(
        &self,
        execution: &Execution,
        admission: Admission,
        execution_put: &TransactWriteItem,
        jobs: &[TransactWriteItem],
    ) -> Result<(), StoreError> {
        for attempt in 0..RACE_ATTEMPTS {
            let admission_update = self.admission_update(execution, admission).await?;
            let mut items = vec![
                TransactWriteItem::builder().update(admission_update).build(),
                execution_put.clone(),
            ];
            items.extend(jobs.iter().cloned());
            match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(Cancelled::Condition(0)) | Err(Cancelled::Conflict) => backoff(attempt).await,
                Err(Cancelled::Condition(_)) => return Err(StoreError::AlreadyExists(execution.id.clone())),
            }
        }
        Err(StoreError::Unavailable(format!(
            "tenant {}'s submissions kept racing; try again",
            execution.tenant_id
        )))
    }

    /// Writes a large plan's first `jobs` (their `puts`) ahead of its execution, a
    /// transaction at a time. On a failure, deletes those written and fails.
    async fn write_jobs_ahead(&self, jobs: &[Job], puts: &[TransactWriteItem]) -> Result<(), StoreError> {
        let mut written = 0;
        for chunk in puts.chunks(MAX_TRANSACTION_ITEMS) {
            let outcome = match self.transact_patiently(chunk.to_vec()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(StoreError::AlreadyExists("a job of this execution".into())),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                self.delete_jobs(&jobs[..written]).await;
                return Err(e);
            }
            written += chunk.len();
        }
        Ok(())
    }

    /// Deletes the first jobs of a plan whose execution was not created (best effort: what
    /// is left, the stale sweep finds).
    async fn delete_jobs(&self, jobs: &[Job]) {
        let keys = jobs
            .iter()
            .map(|j| key(exec_pk(&j.execution_id), &job_sk(j.id())))
            .collect();
        self.delete_keys(keys).await;
    }

    async fn delete_keys(&self, keys: Vec<HashMap<String, AttributeValue>>) {
        for chunk in keys.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .filter_map(|k| {
                    let delete = DeleteRequest::builder().set_key(Some(k.clone())).build().ok()?;
                    Some(WriteRequest::builder().delete_request(delete).build())
                })
                .collect();
            let mut pending = Some(requests);
            for attempt in 0..RACE_ATTEMPTS {
                let Some(requests) = pending.take().filter(|r| !r.is_empty()) else {
                    break;
                };
                match self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                {
                    Ok(out) => {
                        pending = out.unprocessed_items.and_then(|mut u| u.remove(&self.table));
                        if pending.as_ref().is_some_and(|p| !p.is_empty()) {
                            backoff(attempt).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %sdk_message(&e), "could not delete the jobs of an execution not created");
                        break;
                    }
                }
            }
        }
    }

    /// Whether `execution_id`'s queued job at `queued_at` is the remains of a creation that
    /// died half-way: no execution, long after. Such remains are deleted here, all of them.
    async fn is_orphan(&self, execution_id: &str, queued_at: Millis) -> Result<bool, StoreError> {
        if self.get(exec_pk(execution_id), EXEC_SK).await?.is_some() {
            return Ok(false);
        }
        if queued_at > now_ms() - ORPHAN_AFTER_MS {
            // Perhaps still being created: its stale jobs wait.
            return Ok(true);
        }
        let items = self.query_prefix(exec_pk(execution_id), "JOB#").await?;
        tracing::warn!(execution = %execution_id, jobs = items.len(), "deleting the jobs of an execution never created");
        let keys = items
            .iter()
            .filter_map(|i| Some(key(i.get("pk")?.as_s().ok()?.clone(), i.get("sk")?.as_s().ok()?)))
            .collect();
        self.delete_keys(keys).await;
        Ok(true)
    }

    /// `transact`, tried again while it only conflicts with other transactions; the index of
    /// the item whose condition failed, if one did.
    async fn transact_patiently(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), usize>, StoreError> {
        for attempt in 0..RACE_ATTEMPTS {
            match self.transact(items.clone()).await? {
                Ok(()) => return Ok(Ok(())),
                Err(Cancelled::Condition(i)) => return Ok(Err(i)),
                Err(Cancelled::Conflict) => backoff(attempt).await,
            }
        }
        Err(StoreError::Unavailable(
            "a write kept conflicting with others; try again".into(),
        ))
    }
}

fn job_key_of(pk: &str, sk: &str) -> Option<JobKey> {
    Some(JobKey {
        execution_id: pk.strip_prefix("EXEC#")?.to_string(),
        job_id: sk.strip_prefix("JOB#")?.to_string(),
    })
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_execution(
        &self,
        execution: &Execution,
        jobs: &[Job],
        admission: Admission,
    ) -> Result<(), StoreError> {
        let mut item = key(exec_pk(&execution.id), EXEC_SK);
        item.insert("status".into(), s(execution.status.name()));
        item.insert("version".into(), n(execution.version));
        item.insert("open_jobs".into(), n(execution.open_jobs));
        item.insert("completed_jobs".into(), n(execution.completed_jobs));
        if let Some(at) = execution.started_at {
            item.insert("started_at".into(), n(at));
        }
        item.insert("record".into(), s(encode(execution)?));
        item.insert("tenant_pk".into(), s(format!("TENANT#{}", execution.tenant_id)));
        item.insert("tenant_sk".into(), s(tenant_sk(execution.created_at, &execution.id)));
        let execution_put = self.new_item(item)?;
        let job_puts = jobs
            .iter()
            .map(|job| self.job_put(job))
            .collect::<Result<Vec<_>, _>>()?;
        let (before, with_execution) = job_puts.split_at(job_puts.len().saturating_sub(JOBS_WITH_EXECUTION));
        let ahead = &jobs[..before.len()];
        if !ahead.is_empty() {
            // Refused now rather than after writing the jobs.
            self.admission_update(execution, admission).await?;
            self.write_jobs_ahead(ahead, before).await?;
        }
        let result = self
            .create_with_admission(execution, admission, &execution_put, with_execution)
            .await;
        if result.is_err() && !ahead.is_empty() {
            self.delete_jobs(ahead).await;
        }
        result
    }

    async fn list_executions(
        &self,
        tenant_id: &str,
        status: Option<ExecutionStatus>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let tenant_pk = format!("TENANT#{tenant_id}");
        let mut start = after.map(|c| {
            let mut k = key(exec_pk(&c.id), EXEC_SK);
            k.insert("tenant_pk".into(), s(tenant_pk.clone()));
            k.insert("tenant_sk".into(), s(tenant_sk(c.created_at, &c.id)));
            k
        });
        let mut found = Vec::new();
        while found.len() < limit {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_TENANT)
                .key_condition_expression("tenant_pk = :tenant")
                .expression_attribute_values(":tenant", s(tenant_pk.clone()))
                .scan_index_forward(false)
                // DynamoDB limits before it filters: a filtered listing reads large pages (the
                // cursor is rebuilt from the last execution returned, so the rest is not lost).
                .limit(if status.is_some() {
                    500
                } else {
                    (limit - found.len()).clamp(1, 100) as i32
                })
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.name()));
            }
            let out = query.send().await.map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                found.push(Item::new(&item).execution()?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        self.get(exec_pk(id), EXEC_SK)
            .await?
            .map(|item| Item::new(&item).execution())
            .transpose()
    }

    async fn execution_with_jobs(&self, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError> {
        // `#EXEC` sorts before `JOB#`: one query from the partition's start reads both.
        let mut execution = None;
        let mut jobs = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk < :end")
                .expression_attribute_values(":pk", s(exec_pk(id)))
                .expression_attribute_values(":end", s("JOB$"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                let item = Item::new(&item);
                match item.str("sk")? {
                    EXEC_SK => execution = Some(item.execution()?),
                    sk if sk.starts_with("JOB#") => jobs.push(item.job()?),
                    _ => {}
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // A write landing between two pages could make counters and jobs disagree; pages
        // only occur past 1 MB, and the next read is whole again.
        Ok(execution.map(|e| (e, jobs)))
    }

    async fn job(&self, key: &JobKey) -> Result<Option<Job>, StoreError> {
        self.read_job(key).await
    }

    async fn jobs(&self, execution_id: &str, job_ids: &[String]) -> Result<Vec<Job>, StoreError> {
        let mut unique: Vec<&String> = Vec::new();
        for id in job_ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let keys = unique
            .iter()
            .map(|id| key(exec_pk(execution_id), &job_sk(id)))
            .collect();
        let mut found: HashMap<String, Job> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let job = Item::new(&item).job()?;
            found.insert(job.id().to_string(), job);
        }
        // In the order asked.
        Ok(unique.iter().filter_map(|id| found.remove(id.as_str())).collect())
    }

    async fn update_job(&self, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let update = self.job_update(&stored, prev.version)?;
        let delta = CounterDelta::between(prev.status, stored.status);
        let applied = if delta.open == 0 && delta.completed == 0 {
            self.apply(&update).await?.is_some()
        } else {
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder()
                    .update(self.counters_update(&stored.execution_id, delta)?)
                    .build(),
            ];
            match self.transact_patiently(items).await? {
                Ok(()) => true,
                Err(0) => false,
                Err(_) => {
                    return Err(StoreError::Corrupt {
                        key: stored.execution_id.clone(),
                        message: "a job of an execution that does not exist".into(),
                    })
                }
            }
        };
        if !applied {
            return Ok(Write::Stale);
        }
        if delta.start {
            self.start_execution(&stored.execution_id, stored.started_at).await?;
        }
        Ok(Write::Applied(stored))
    }

    async fn release_edge(&self, child: &JobKey, parent: &str, now: Millis) -> Result<EdgeRelease, StoreError> {
        let item_key = key(exec_pk(&child.execution_id), &job_sk(&child.job_id));
        // Step 1, the gate: removes the edge once (a repeat fails the condition) and notes who
        // removed last.
        let removed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key.clone()))
            .update_expression("SET last_released = :p DELETE pending :parent")
            .condition_expression("attribute_exists(pk) AND contains(pending, :p)")
            .expression_attribute_values(":parent", AttributeValue::Ss(vec![parent.to_string()]))
            .expression_attribute_values(":p", s(parent))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let (removed, item) = match removed {
            Ok(out) => (true, out.attributes.unwrap_or_default()),
            Err(e) => match e.into_service_error() {
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                    match f.item {
                        Some(item) => (false, item),
                        None => {
                            return Err(StoreError::Corrupt {
                                key: child.job_id.clone(),
                                message: "edge to a job that does not exist".into(),
                            })
                        }
                    }
                }
                other => return Err(unavailable(other)),
            },
        };
        let job = Item::new(&item);
        let status = job.job()?;
        // Step 2: the last edge gone and the child still waiting, the parent that removed it
        // queues the child. Its repeat may too, so a crash between the steps is repaired by
        // that parent's retry; nobody else's release does it. A repeat that queues the child
        // reports the release as its own (`removed`), so that the engine sends its message.
        let last = job.opt_s("last_released") == Some(parent);
        if job.has_pending() || status.status != JobStatus::Waiting || !last {
            return Ok(EdgeRelease {
                removed,
                status: status.status,
                released_by: status.released_by,
                queued_at: status.queued_at,
            });
        }
        let queued = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression(
                "SET #status = :queued, queued_at = :now, released_by = :parent, sched_pk = :kind, sched_at = :now ADD version :one",
            )
            .condition_expression("attribute_not_exists(pending) AND #status = :waiting AND last_released = :parent")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(JobStatus::Queued.name()))
            .expression_attribute_values(":waiting", s(JobStatus::Waiting.name()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":parent", s(parent))
            .expression_attribute_values(":kind", s(QUEUED))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let (queued_here, item) = match queued {
            Ok(out) => (true, out.attributes.unwrap_or_default()),
            Err(e) => match e.into_service_error() {
                // Another release queued it (or the job moved on) meanwhile: report it as it is.
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                    (false, f.item.unwrap_or_default())
                }
                other => return Err(unavailable(other)),
            },
        };
        let job = Item::new(&item).job()?;
        Ok(EdgeRelease {
            removed: removed || queued_here,
            status: job.status,
            released_by: job.released_by,
            queued_at: job.queued_at,
        })
    }

    async fn update_execution(&self, prev: &Execution, next: &Execution) -> Result<Write<Execution>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let mut builder = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(exec_pk(&stored.id), EXEC_SK)))
            .condition_expression("version = :prev")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":status", s(stored.status.name()))
            .expression_attribute_values(":version", n(stored.version))
            .expression_attribute_values(":record", s(encode(&stored)?))
            .expression_attribute_values(":prev", n(prev.version));
        let mut set = vec!["#status = :status", "version = :version", "#record = :record"];
        let mut remove = None;
        match stored.started_at {
            Some(at) => {
                set.push("started_at = :started");
                builder = builder.expression_attribute_values(":started", n(at));
            }
            None => remove = Some(" REMOVE started_at"),
        }
        if stored.status.is_terminal() {
            set.push("expires_at = :expires");
            builder = builder
                .expression_attribute_values(":expires", self.expiry(stored.completed_at.unwrap_or_else(now_ms)));
        }
        let expression = format!("SET {}{}", set.join(", "), remove.unwrap_or_default());
        let update = builder.update_expression(expression).build().map_err(unavailable)?;
        // Leaving flight frees a place in the tenant's admission count, in the same write.
        let leaves_flight = !prev.status.is_terminal() && stored.status.is_terminal();
        if leaves_flight {
            // Unconditional: a tenant without an admission record (a table older than them)
            // must still end its executions.
            let admission = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(format!("TENANT#{}", stored.tenant_id), ADMISSION_SK)))
                .update_expression("ADD in_flight :minus")
                .expression_attribute_values(":minus", n(-1))
                .build()
                .map_err(unavailable)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().update(admission).build(),
            ];
            if self.transact_patiently(items).await?.is_err() {
                return Ok(Write::Stale);
            }
            // The counters job writes moved are what the stored record shows.
            let live = self.execution(&stored.id).await?.ok_or_else(|| StoreError::Corrupt {
                key: stored.id.clone(),
                message: "vanished after an update".into(),
            })?;
            stored.open_jobs = live.open_jobs;
            stored.completed_jobs = live.completed_jobs;
            return Ok(Write::Applied(stored));
        }
        let Some(attrs) = self.apply(&update).await? else {
            return Ok(Write::Stale);
        };
        let live = Item::new(&attrs);
        stored.open_jobs = live.i64("open_jobs")? as u32;
        stored.completed_jobs = live.i64("completed_jobs")? as u32;
        Ok(Write::Applied(stored))
    }

    async fn due_polls(&self, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        let keys = self.due(POLL, now, limit).await?;
        Ok(keys.iter().filter_map(|(pk, sk)| job_key_of(pk, sk)).collect())
    }

    async fn stale_queued(&self, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        // The index's condition is inclusive; the port's cutoff is not.
        let keys = self.due(QUEUED, before - 1, limit).await?;
        let mut stale = Vec::with_capacity(keys.len());
        let (mut live, mut orphans) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        for key in keys.iter().filter_map(|(pk, sk)| job_key_of(pk, sk)) {
            // Stale jobs are rare: checking that their execution exists costs little.
            if !live.contains(&key.execution_id) && !orphans.contains(&key.execution_id) {
                let Some(job) = self.read_job(&key).await? else {
                    continue;
                };
                if self
                    .is_orphan(&key.execution_id, job.queued_at.unwrap_or(before))
                    .await?
                {
                    orphans.insert(key.execution_id.clone());
                } else {
                    live.insert(key.execution_id.clone());
                }
            }
            if live.contains(&key.execution_id) {
                stale.push(key);
            }
        }
        Ok(stale)
    }

    async fn add_watcher(&self, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError> {
        let mut item = key(exec_pk(&base.execution_id), &watch_sk(&base.job_id, watcher));
        item.insert("base_job".into(), s(base.job_id.as_str()));
        item.insert("watcher_execution".into(), s(watcher.execution_id.as_str()));
        item.insert("watcher_job".into(), s(watcher.job_id.as_str()));
        // Watching outlives neither execution's retention by much: both end within it.
        item.insert("expires_at".into(), self.expiry(now_ms() + 7 * 24 * 3600 * 1000));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<Vec<JobKey>, StoreError> {
        let prefix = job_id.map_or_else(|| "WATCH#".to_string(), watch_prefix);
        let items = self.query_prefix(exec_pk(execution_id), &prefix).await?;
        let mut out: Vec<JobKey> = Vec::new();
        for item in &items {
            let item = Item::new(item);
            let watcher = JobKey {
                execution_id: item.str("watcher_execution")?.to_string(),
                job_id: item.str("watcher_job")?.to_string(),
            };
            // A job watching several jobs of the execution is one watcher of it.
            if !out.contains(&watcher) {
                out.push(watcher);
            }
        }
        Ok(out)
    }

    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let mut record = key(delivery_pk(&delivery.id), DELIVERY_SK);
        record.insert("version".into(), n(delivery.version));
        record.insert("record".into(), s(encode(delivery)?));
        if let (DeliveryState::Pending, Some(at)) = (delivery.state, delivery.next_attempt_at) {
            record.insert("sched_pk".into(), s(DELIVERY));
            record.insert("sched_at".into(), n(at));
        }
        let mut pointer = key(exec_pk(&delivery.execution_id), &format!("DELIVERY#{}", delivery.id));
        // Deliveries end within about a day of being made.
        pointer.insert(
            "expires_at".into(),
            self.expiry(delivery.created_at + 2 * 24 * 3600 * 1000),
        );
        let items = vec![self.new_item(record)?, self.new_item(pointer)?];
        Ok(self.transact_patiently(items).await?.is_ok())
    }

    async fn delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
        self.get(delivery_pk(id), DELIVERY_SK)
            .await?
            .map(|item| delivery_of(&item))
            .transpose()
    }

    async fn update_delivery(
        &self,
        prev: &WebhookDelivery,
        next: &WebhookDelivery,
    ) -> Result<Write<WebhookDelivery>, StoreError> {
        let mut stored = next.clone();
        stored.version = prev.version + 1;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(delivery_pk(&stored.id), DELIVERY_SK)))
            .condition_expression("version = :prev")
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":prev", n(prev.version))
            .expression_attribute_values(":version", n(stored.version))
            .expression_attribute_values(":record", s(encode(&stored)?));
        let expression = match (stored.state, stored.next_attempt_at) {
            (DeliveryState::Pending, Some(at)) => {
                update = update
                    .expression_attribute_values(":kind", s(DELIVERY))
                    .expression_attribute_values(":at", n(at));
                "SET version = :version, #record = :record, sched_pk = :kind, sched_at = :at"
            }
            (DeliveryState::Pending, None) => "SET version = :version, #record = :record REMOVE sched_pk, sched_at",
            _ => {
                let ended = stored.delivered_at.unwrap_or_else(now_ms);
                update = update.expression_attribute_values(":expires", self.expiry(ended));
                "SET version = :version, #record = :record, expires_at = :expires REMOVE sched_pk, sched_at"
            }
        };
        match update.update_expression(expression).send().await {
            Ok(_) => Ok(Write::Applied(stored)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Write::Stale)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn deliveries(&self, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
        let pointers = self.query_prefix(exec_pk(execution_id), "DELIVERY#").await?;
        let ids: Vec<String> = pointers
            .iter()
            .filter_map(|p| Item::new(p).opt_s("sk")?.strip_prefix("DELIVERY#").map(str::to_string))
            .collect();
        let keys = ids.iter().map(|id| key(delivery_pk(id), DELIVERY_SK)).collect();
        let mut out = self
            .batch_get(keys)
            .await?
            .iter()
            .map(delivery_of)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        let keys = self.due(DELIVERY, now, limit).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(pk, _)| pk.strip_prefix("DELIVERY#").map(str::to_string))
            .collect())
    }
}

fn delivery_of(item: &HashMap<String, AttributeValue>) -> Result<WebhookDelivery, StoreError> {
    let item = Item::new(item);
    let mut delivery: WebhookDelivery = item.record()?;
    delivery.version = item.i64("version")? as u64;
    Ok(delivery)
}

fn key_item(record: &ApiKeyRecord, pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    let mut item = key(pk, sk);
    item.insert("id".into(), s(record.id.as_str()));
    item.insert("tenant_id".into(), s(record.tenant_id.as_str()));
    item.insert("name".into(), s(record.name.as_str()));
    item.insert("hash".into(), s(record.hash.as_str()));
    item.insert("prefix".into(), s(record.prefix.as_str()));
    item.insert("created_at".into(), n(record.created_at));
    if let Some(at) = record.revoked_at {
        item.insert("revoked_at".into(), n(at));
    }
    item
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let items = vec![
            self.new_item(key_item(record, format!("APIKEY#{}", record.hash), KEY_SK))?,
            self.new_item(key_item(record, KEYS_PK.to_string(), &format!("KEY#{}", record.id)))?,
        ];
        match self.transact_patiently(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists(record.id.clone())),
        }
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get(format!("APIKEY#{hash}"), KEY_SK)
            .await?
            .map(|item| Item::new(&item).api_key())
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let items = self.query_prefix(KEYS_PK.to_string(), "KEY#").await?;
        let mut keys = items
            .iter()
            .map(|i| Item::new(i).api_key())
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        let listed_sk = format!("KEY#{id}");
        let Some(item) = self.get(KEYS_PK.to_string(), &listed_sk).await? else {
            return Ok(false);
        };
        let record = Item::new(&item).api_key()?;
        let revoke = |pk: String, sk: &str| {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression("SET revoked_at = :now")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(unavailable)
        };
        let items = vec![
            TransactWriteItem::builder()
                .update(revoke(KEYS_PK.to_string(), &listed_sk)?)
                .build(),
            TransactWriteItem::builder()
                .update(revoke(format!("APIKEY#{}", record.hash), KEY_SK)?)
                .build(),
        ];
        Ok(self.transact_patiently(items).await?.is_ok())
    }
}

/// A provider's rate budget shared by every function: a counter per scope and fixed window,
/// moved by a conditional `ADD`, and the previous window's count carried in proportion to
/// how much of it still lies within one window of now (the sliding-window estimate). A take
/// costs one read and one conditional write; racing takers never pass the limit together.
#[async_trait]
impl RateBudget for DynamoStore {
    async fn take(&self, scope: &str, limit: u32, window: Duration) -> Result<Result<(), Duration>, StoreError> {
        let width = (window.as_millis() as i64).max(1);
        let pk = format!("RATE#{scope}");
        let count = |item: Option<&HashMap<String, AttributeValue>>| -> Result<i64, StoreError> {
            Ok(item
                .map(|i| Item::new(i).opt_i64("calls"))
                .transpose()?
                .flatten()
                .unwrap_or(0))
        };
        for attempt in 0..RACE_ATTEMPTS {
            let now = now_ms();
            let number = now / width;
            let into = (now - number * width) as f64 / width as f64;
            let previous = count(self.get(pk.clone(), &format!("W#{}", number - 1)).await?.as_ref())?;
            // Rounded up: the estimate never lets a burst at a window's turn through twice.
            let carried = (previous as f64 * (1.0 - into)).ceil() as i64;
            let allowed = i64::from(limit) - carried;
            let refused = |current: i64| Ok(Err(rate_wait(previous, current, i64::from(limit), into, width)));
            if allowed <= 0 {
                return refused(0);
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), &format!("W#{number}"))))
                .update_expression("ADD calls :one SET expires_at = :expires")
                .condition_expression("attribute_not_exists(calls) OR calls < :allowed")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":allowed", n(allowed))
                // Kept while it can still be the previous window, then deleted by TTL.
                .expression_attribute_values(":expires", n((number + 2) * width / 1000 + 1))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => match e.into_service_error() {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                        return refused(count(f.item.as_ref())?)
                    }
                    other if attempt + 1 < RACE_ATTEMPTS && other.is_transaction_conflict_exception() => {
                        backoff(attempt).await
                    }
                    other => return Err(unavailable(other)),
                },
            }
        }
        Err(StoreError::Unavailable(format!("rate budget {scope} kept racing")))
    }
}

/// How long until one more call fits: until the carried share of the previous window
/// (`previous` calls) and this window's `current` calls are below `limit`, `into` of the way
/// through a window of `width` ms.
fn rate_wait(previous: i64, current: i64, limit: i64, into: f64, width: i64) -> Duration {
    // Within this window: the carried share must fall to `limit - current - 1` or less.
    let room = limit - current - 1;
    let fraction = if room >= 0 && previous > 0 {
        (1.0 - room as f64 / previous as f64).max(into) - into
    } else if room >= 0 {
        0.0
    } else {
        // This window alone is full: in the next one, it is the previous window.
        let next_room = limit - 1;
        (1.0 - into) + (1.0 - next_room as f64 / current.max(1) as f64).max(0.0)
    };
    Duration::from_millis(((fraction * width as f64).ceil() as u64).clamp(1, 2 * width as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_waits_last_until_one_more_call_fits() {
        let w = 60_000;
        // 10 carried in full at the window's start, limit 10: wait a tenth of the window.
        assert_eq!(rate_wait(10, 0, 10, 0.0, w), Duration::from_millis(6_000));
        // The window itself full halfway through: its rest, then a tenth of the next.
        assert_eq!(rate_wait(0, 10, 10, 0.5, w), Duration::from_millis(36_000));
        // Room already (a race lost to a write that came and went): the shortest wait.
        assert_eq!(rate_wait(0, 3, 10, 0.2, w), Duration::from_millis(1));
    }

    #[test]
    fn watcher_keys_never_collide_and_prefixes_select_one_base_job() {
        let w = |e: &str, j: &str| JobKey {
            execution_id: e.into(),
            job_id: j.into(),
        };
        // Without lengths, ("a", "b1" + "c") and ("a", "b" + "1c") would read the same.
        assert_ne!(watch_sk("a", &w("b1", "c")), watch_sk("a", &w("b", "1c")));
        assert_ne!(watch_sk("a#1", &w("x", "y")), watch_sk("a", &w("#1x", "y")));
        assert!(watch_sk("job", &w("e", "j")).starts_with(&watch_prefix("job")));
        assert!(!watch_sk("job2", &w("e", "j")).starts_with(&watch_prefix("job")));
    }

    #[test]
    fn tenant_sort_keys_order_by_time_then_id() {
        assert!(tenant_sk(999, "z") < tenant_sk(1000, "a"));
        assert!(tenant_sk(1000, "a") < tenant_sk(1000, "b"));
    }

    #[test]
    fn job_keys_come_back_from_table_keys() {
        assert_eq!(
            job_key_of("EXEC#e1", "JOB#a#b"),
            Some(JobKey {
                execution_id: "e1".into(),
                job_id: "a#b".into()
            })
        );
        assert_eq!(job_key_of("DELIVERY#x", "#DELIVERY"), None);
    }
}
