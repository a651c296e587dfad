//! `execute-api`: the whole HTTP API, from API Gateway through `lambda_http`.

use reelay_lambda::{api, AwsNode};

fn main() -> Result<(), lambda_http::Error> {
    let settings = reelay_lambda::start()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let node = AwsNode::load(&settings).await?;
        lambda_http::run(api::router(node.api_state())).await
    })
}
