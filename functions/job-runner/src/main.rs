//! `job-runner`: the job queue's SQS batches through the engine; media jobs go on to the
//! media runner when there is one (`AwsNode::job_runner`).

use lambda_runtime::{service_fn, Error};
use reelay_lambda::sqs::BatchHandler;
use reelay_lambda::AwsNode;

fn main() -> Result<(), Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        let runner = BatchHandler::new(node.job_runner(), node.job_queue().clone());
        lambda_runtime::run(service_fn(|event| runner.handle(event))).await
    })
}
