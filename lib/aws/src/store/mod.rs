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
//!
//! Each record kind has its module here, holding its keys, its item and its operations:
//! `executions`, `admission`, `jobs`, `edges` (dependency gates and watchers), `deliveries`,
//! `keys`, `rate` and `schedule` (the due-item index and its sweeps). `item` reads and builds
//! attributes; `transactions` and `batch` hold the multi-item writes and reads.

mod admission;
mod batch;
mod deliveries;
mod edges;
mod executions;
mod item;
mod jobs;
mod keys;
mod rate;
mod schedule;
mod table;
mod transactions;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use reelay_core::domain::{Execution, ExecutionStatus, Job, JobKey, Millis, WebhookDelivery};
use reelay_core::ports::{Admission, EdgeRelease, PageCursor, Store, StoreError, Write};

use crate::sdk_message;
use item::{key, n, s, Attrs};

/// DynamoDB's most items in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The most jobs created in the execution's own transaction, which also writes the execution
/// and the tenant's admission record. A larger plan's other jobs are written first.
pub const JOBS_WITH_EXECUTION: usize = MAX_TRANSACTION_ITEMS - 2;
/// How often a write that lost a race on a shared record (the tenant's admission) tries again.
const RACE_ATTEMPTS: usize = 20;

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

/// Now, for expiry times the record does not say (TTL is coarse: seconds do not matter).
fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How much of a query [`DynamoStore::query`] reads.
#[derive(Debug, Clone, Copy)]
enum Pages {
    /// Every item, in DynamoDB's pages of up to 1 MB.
    All,
    /// Until `wanted` items have come back (a page may bring more: the caller truncates),
    /// each page asking for `limit(items still wanted)` items.
    Upto { wanted: usize, limit: fn(usize) -> i32 },
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

    /// When a record that ended at `at` (ms) expires, in epoch seconds.
    fn expiry(&self, at: Millis) -> AttributeValue {
        n(at / 1000 + self.retention.as_secs() as i64)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Attrs>, StoreError> {
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

    /// A query on the table, for the caller to narrow and hand to [`DynamoStore::query`].
    fn query_builder(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// The items `query` finds, page after page from its own start key (if it has one), as
    /// far as `pages` says. Every paginated read of the store goes through here.
    async fn query(&self, mut query: QueryFluentBuilder, pages: Pages) -> Result<Vec<Attrs>, StoreError> {
        let mut items = Vec::new();
        loop {
            if let Pages::Upto { wanted, limit } = pages {
                if items.len() >= wanted {
                    return Ok(items);
                }
                query = query.limit(limit(wanted - items.len()));
            }
            let out = query.clone().send().await.map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => query = query.set_exclusive_start_key(Some(k)),
                _ => return Ok(items),
            }
        }
    }

    /// Every item of a partition whose sort key starts with `prefix`, all pages.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Attrs>, StoreError> {
        let query = self
            .query_builder()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        self.query(query, Pages::All).await
    }

    /// A transaction's put of an item that must not exist yet.
    fn new_item(&self, item: Attrs) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// The port, operation by operation, in the module of the record kind each one concerns.
#[async_trait]
impl Store for DynamoStore {
    async fn create_execution(
        &self,
        execution: &Execution,
        jobs: &[Job],
        admission: Admission,
    ) -> Result<(), StoreError> {
        executions::create(self, execution, jobs, admission).await
    }

    async fn list_executions(
        &self,
        tenant_id: &str,
        status: Option<ExecutionStatus>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        executions::list(self, tenant_id, status, after, limit).await
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        executions::get(self, id).await
    }

    async fn execution_with_jobs(&self, id: &str) -> Result<Option<(Execution, Vec<Job>)>, StoreError> {
        executions::with_jobs(self, id).await
    }

    async fn job(&self, key: &JobKey) -> Result<Option<Job>, StoreError> {
        jobs::get(self, key).await
    }

    async fn jobs(&self, execution_id: &str, job_ids: &[String]) -> Result<Vec<Job>, StoreError> {
        jobs::get_many(self, execution_id, job_ids).await
    }

    async fn update_job(&self, prev: &Job, next: &Job) -> Result<Write<Job>, StoreError> {
        jobs::update(self, prev, next).await
    }

    async fn release_edge(&self, child: &JobKey, parent: &str, now: Millis) -> Result<EdgeRelease, StoreError> {
        edges::release(self, child, parent, now).await
    }

    async fn update_execution(&self, prev: &Execution, next: &Execution) -> Result<Write<Execution>, StoreError> {
        executions::update(self, prev, next).await
    }

    async fn due_polls(&self, now: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        schedule::due_polls(self, now, limit).await
    }

    async fn stale_queued(&self, before: Millis, limit: usize) -> Result<Vec<JobKey>, StoreError> {
        schedule::stale_queued(self, before, limit).await
    }

    async fn add_watcher(&self, base: &JobKey, watcher: &JobKey) -> Result<(), StoreError> {
        edges::add_watcher(self, base, watcher).await
    }

    async fn watchers(&self, execution_id: &str, job_id: Option<&str>) -> Result<Vec<JobKey>, StoreError> {
        edges::watchers(self, execution_id, job_id).await
    }

    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        deliveries::create(self, delivery).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<WebhookDelivery>, StoreError> {
        deliveries::get(self, id).await
    }

    async fn update_delivery(
        &self,
        prev: &WebhookDelivery,
        next: &WebhookDelivery,
    ) -> Result<Write<WebhookDelivery>, StoreError> {
        deliveries::update(self, prev, next).await
    }

    async fn deliveries(&self, execution_id: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
        deliveries::of_execution(self, execution_id).await
    }

    async fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<String>, StoreError> {
        deliveries::due(self, now, limit).await
    }
}
