//! `poller`: EventBridge Scheduler's tick, played for about a minute per invocation.

use lambda_runtime::{service_fn, Error};
use reelay_lambda::poller::Poller;
use reelay_lambda::AwsNode;

fn main() -> Result<(), Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        let poller = Poller::new(node.engine().clone(), node.dispatcher().clone(), node.poller_settings());
        lambda_runtime::run(service_fn(|event| poller.handle(event))).await
    })
}
