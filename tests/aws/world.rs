//! One isolated AWS world on its own moto: a table (as `template.yaml` declares it), the job
//! and webhook queues, and a bucket, with SDK clients that count their requests
//! (`counts.rs`). The adapters are built on those clients, so every request they make is
//! counted. `fresh_space` adds another table and pair of queues on the same moto, for tests
//! that run several engines at once (each scans its whole table and drains its whole queue).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

use reelay_aws::{DynamoSettings, DynamoStore, S3Blobs, S3Settings, SqsQueue};

use super::counts::RequestCounts;
use super::moto::Moto;

pub struct AwsWorld {
    pub config: SdkConfig,
    pub table: String,
    pub job_queue_url: String,
    pub webhook_queue_url: String,
    pub bucket: String,
    pub counts: RequestCounts,
    /// Last, so it is dropped (killed) after anything using it.
    pub moto: Moto,
}

/// A table and a job and a webhook queue of their own on a world's moto (the bucket stays
/// shared: blob keys are per execution).
pub struct Space {
    pub table: String,
    pub job_queue_url: String,
    pub webhook_queue_url: String,
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl AwsWorld {
    pub async fn start() -> AwsWorld {
        let moto = Moto::start();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await;
        let mut world = AwsWorld {
            config,
            table: String::new(),
            job_queue_url: String::new(),
            webhook_queue_url: String::new(),
            bucket: unique_name("reelay-blobs"),
            counts: RequestCounts::default(),
            moto,
        };
        let space = world.fresh_space().await;
        world.table = space.table;
        world.job_queue_url = space.job_queue_url;
        world.webhook_queue_url = space.webhook_queue_url;
        world
            .s3()
            .create_bucket()
            .bucket(&world.bucket)
            .send()
            .await
            .expect("create bucket");
        world.counts.reset();
        world
    }

    /// A new table (as `template.yaml` declares it) and a new job and webhook queue.
    pub async fn fresh_space(&self) -> Space {
        let space = Space {
            table: unique_name("reelay"),
            job_queue_url: self.create_queue("reelay-jobs").await,
            webhook_queue_url: self.create_queue("reelay-webhooks").await,
        };
        self.store_in(&space).create_table().await.expect("create table");
        space
    }

    /// A new queue named after `prefix`; its URL.
    pub async fn create_queue(&self, prefix: &str) -> String {
        self.sqs()
            .create_queue()
            .queue_name(unique_name(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url()
            .expect("queue url")
            .to_string()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.config)
                .endpoint_url(&self.moto.url)
                .interceptor(self.counts.interceptor())
                .build(),
        )
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&self.config)
                .endpoint_url(&self.moto.url)
                .interceptor(self.counts.interceptor())
                .build(),
        )
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .endpoint_url(&self.moto.url)
                .force_path_style(true)
                .interceptor(self.counts.interceptor())
                .build(),
        )
    }

    pub fn store(&self) -> DynamoStore {
        self.store_on(self.dynamodb(), &self.table)
    }

    /// The store on `space`'s table.
    pub fn store_in(&self, space: &Space) -> DynamoStore {
        self.store_on(self.dynamodb(), &space.table)
    }

    /// The store on `table` through `client` (one with interceptors of its own, say).
    pub fn store_on(&self, client: aws_sdk_dynamodb::Client, table: &str) -> DynamoStore {
        DynamoStore::from_client(
            client,
            DynamoSettings {
                table: table.to_string(),
                endpoint_url: None,
                retention: RETENTION,
            },
        )
    }

    pub fn job_queue(&self) -> SqsQueue {
        SqsQueue::from_client(self.sqs(), self.job_queue_url.clone())
    }

    pub fn webhook_queue(&self) -> SqsQueue {
        SqsQueue::from_client(self.sqs(), self.webhook_queue_url.clone())
    }

    /// `space`'s job queue.
    pub fn job_queue_in(&self, space: &Space) -> SqsQueue {
        SqsQueue::from_client(self.sqs(), space.job_queue_url.clone())
    }

    /// `space`'s webhook queue.
    pub fn webhook_queue_in(&self, space: &Space) -> SqsQueue {
        SqsQueue::from_client(self.sqs(), space.webhook_queue_url.clone())
    }

    pub fn s3_settings(&self) -> S3Settings {
        S3Settings {
            bucket: self.bucket.clone(),
            url_expiry: Duration::from_secs(600),
            cdn_base: None,
            endpoint_url: Some(self.moto.url.clone()),
        }
    }

    pub fn blobs(&self) -> S3Blobs {
        S3Blobs::from_client(self.s3(), self.s3_settings())
    }
}
