//! `provider-webhook`: providers' callbacks (`POST /api/webhooks/job/{record}`) only.

use reelay_lambda::{api, AwsNode};

fn main() -> Result<(), lambda_http::Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        lambda_http::run(api::callback_router(node.api_state())).await
    })
}
