//! `scene-renderer`: the job runner's `SceneRunner` calls (`reelay_aws::LambdaScenes`), in the
//! sandbox the embedded node runs too.

use lambda_runtime::{service_fn, Error};
use reelay_lambda::scene_renderer::SceneRenderer;

fn main() -> Result<(), Error> {
    let settings = reelay_lambda::start_scene_renderer()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let renderer = SceneRenderer::load(&settings).await;
        lambda_runtime::run(service_fn(|event| renderer.handle(event))).await
    })
}
