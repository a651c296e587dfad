//! `media-runner`: the media queue's SQS batches through the engine: the jobs that need
//! ffmpeg's memory and CPUs, which the job runner forwards here.

use lambda_runtime::{service_fn, Error};
use reelay_lambda::sqs::BatchHandler;
use reelay_lambda::AwsNode;

fn main() -> Result<(), Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        let runner = BatchHandler::new(node.engine().clone(), node.media_queue()?.clone());
        lambda_runtime::run(service_fn(|event| runner.handle(event))).await
    })
}
