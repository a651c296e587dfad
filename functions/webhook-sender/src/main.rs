//! `webhook-sender`: the client-webhook queue's SQS batches through the dispatcher.

use lambda_runtime::{service_fn, Error};
use reelay_lambda::sqs::BatchHandler;
use reelay_lambda::AwsNode;

fn main() -> Result<(), Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        let sender = BatchHandler::new(node.dispatcher().clone(), node.webhook_queue().clone());
        lambda_runtime::run(service_fn(|event| sender.handle(event))).await
    })
}
