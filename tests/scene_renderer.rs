//! Scenes on AWS, without AWS: the scene-renderer function's handler in process on moto's S3,
//! rendering a real scene with the venv's Manim in the sandbox the embedded node runs; and
//! the job runner's adapter (`reelay_aws::LambdaScenes`) driven unchanged through
//! aws-sdk-lambda against a fake Invoke endpoint (`lambda/invoke.rs`) that calls that handler,
//! so the whole AWS path runs: check, refusal, render read back from S3, function errors.

#[path = "lambda/invoke.rs"]
mod fake_lambda;
#[allow(dead_code)]
#[path = "aws/mod.rs"]
mod moto_aws;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

use fake_lambda::{Failure, FakeLambda, Handler};
use moto_aws::world::AwsWorld;
use reelay_aws::scenes::RENDER_PREFIX;
use reelay_aws::{LambdaScenes, LambdaScenesSettings};
use reelay_core::ports::{SceneCode, SceneError, SceneFrame, SceneRunner};
use reelay_lambda::scene_renderer::SceneRenderer;
use reelay_media::{probe, ManimSandbox, ManimSettings};

const CIRCLE: &str = "from manim import *\n\n\
class Intro(Scene):\n    def construct(self):\n        circle = Circle(color=BLUE)\n        \
self.play(Create(circle), run_time=1)\n        self.wait(0.5)\n";
/// Refused by the checks (and by the sandbox, which renders without them).
const IMPORTS_OS: &str = "import os\nfrom manim import *\n\n\
class Intro(Scene):\n    def construct(self):\n        os.system('true')\n";
/// Passes the checks, fails while rendering.
const RAISES: &str = "from manim import *\n\n\
class Intro(Scene):\n    def construct(self):\n        raise ValueError('no circle today')\n";

const FRAME: SceneFrame = SceneFrame {
    width: 854,
    height: 480,
    fps: 15,
};

fn code(source: &str) -> SceneCode {
    SceneCode {
        source: source.into(),
        class_name: "Intro".into(),
    }
}

/// The function's handler as on Lambda: the sandbox on the venv's Python, renders into the
/// world's bucket.
fn renderer(world: &AwsWorld, scratch: &Path) -> Arc<SceneRenderer> {
    let sandbox = ManimSandbox::new(ManimSettings::new(support::python(), scratch));
    Arc::new(SceneRenderer::new(Arc::new(sandbox), Arc::new(world.blobs())))
}

/// Reads `bytes` as a movie: its probe.
async fn probed(bytes: &[u8]) -> reelay_media::Probe {
    assert!(
        bytes.len() > 1000 && &bytes[4..8] == b"ftyp",
        "not an MP4 ({} bytes)",
        bytes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.mp4");
    std::fs::write(&path, bytes).unwrap();
    probe(&path).await.unwrap()
}

async fn renders_left(world: &AwsWorld) -> Vec<String> {
    let listed = world
        .s3()
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix(RENDER_PREFIX)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_renders_into_the_bucket_and_refuses_bad_code() {
    let world = AwsWorld::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let renderer = renderer(&world, scratch.path());
    let answer = |request: Value| {
        let renderer = renderer.clone();
        async move { serde_json::to_value(renderer.answer(request).await).unwrap() }
    };
    let check = |source: &str| json!({"action": "check", "code": source, "className": "Intro"});
    let render = |source: &str, key: &str| {
        json!({"action": "render", "code": source, "className": "Intro", "width": FRAME.width,
               "height": FRAME.height, "fps": FRAME.fps, "outputKey": key})
    };

    assert_eq!(answer(check(CIRCLE)).await, json!({"ok": true}));
    let refused = answer(check(IMPORTS_OS)).await;
    assert_eq!(
        (refused["ok"].clone(), refused["fault"].clone()),
        (json!(false), json!("code")),
        "{refused}"
    );
    assert!(refused["message"].as_str().unwrap().contains("`os`"), "{refused}");

    let key = format!("{RENDER_PREFIX}handler-test.mp4");
    let rendered = answer(render(CIRCLE, &key)).await;
    assert_eq!(rendered["ok"], true, "{rendered}");
    assert_eq!(rendered["key"], key.as_str());
    assert_eq!(
        (rendered["width"].clone(), rendered["height"].clone()),
        (json!(854), json!(480))
    );
    let duration = rendered["duration"].as_f64().unwrap();
    assert!((1.2..=2.0).contains(&duration), "{rendered}");

    let object = world
        .s3()
        .get_object()
        .bucket(&world.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("video/mp4"));
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(rendered["sizeBytes"], bytes.len());
    let movie = probed(&bytes).await;
    assert_eq!((movie.width, movie.height), (Some(854), Some(480)));
    assert!((movie.duration - duration).abs() < 0.1, "{movie:?}");

    // The code's fault while rendering: an answer, and nothing stored.
    let failed_key = format!("{RENDER_PREFIX}handler-raises.mp4");
    let failed = answer(render(RAISES, &failed_key)).await;
    assert_eq!(failed["fault"], "code", "{failed}");
    assert!(
        failed["message"].as_str().unwrap().contains("no circle today"),
        "{failed}"
    );
    assert_eq!(renders_left(&world).await, [key]);
    // Every render folder is gone.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

/// The fake's functions: the renderer's handler, one that crashes, one that times out.
fn functions(renderer: Arc<SceneRenderer>) -> HashMap<String, Handler> {
    let render: Handler = Arc::new(move |payload| {
        let renderer = renderer.clone();
        async move { Ok(serde_json::to_value(renderer.answer(payload).await).unwrap()) }.boxed()
    });
    let crash: Handler = Arc::new(|_| {
        let failure = Failure {
            error_type: "Runtime.ExitError".into(),
            message: "RequestId: 1 Error: Runtime exited with error: signal: killed".into(),
        };
        async move { Err(failure) }.boxed()
    });
    let timeout: Handler = Arc::new(|_| {
        let failure = Failure {
            error_type: "Sandbox.Timedout".into(),
            message: "RequestId: 2 Error: Task timed out after 600.00 seconds".into(),
        };
        async move { Err(failure) }.boxed()
    });
    HashMap::from([
        ("reelay-scene-renderer".to_string(), render),
        ("reelay-crashes".to_string(), crash),
        ("reelay-times-out".to_string(), timeout),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_scenes_check_and_render_through_the_invoke_api() {
    let world = AwsWorld::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let lambda = FakeLambda::start(functions(renderer(&world, scratch.path()))).await;
    let scenes = |function: &str| {
        let settings = LambdaScenesSettings {
            function_name: function.into(),
            endpoint_url: Some(lambda.url.clone()),
            invoke_timeout: Duration::from_secs(120),
        };
        LambdaScenes::new(&world.config, settings, world.blobs())
    };
    let runner = scenes("reelay-scene-renderer");

    runner.check(&code(CIRCLE)).await.unwrap();
    match runner.check(&code(IMPORTS_OS)).await {
        Err(SceneError::Code(message)) => assert!(message.contains("`os`"), "{message}"),
        other => panic!("expected the code's fault, got {other:?}"),
    }
    let calls = lambda.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function, "reelay-scene-renderer");
    assert_eq!(calls[0].invocation_type.as_deref(), Some("RequestResponse"));
    assert_eq!(calls[0].payload["action"], "check");

    // A render: written by the function under the prefix, read back, then deleted.
    let artifact = runner.render(&code(CIRCLE), FRAME).await.unwrap();
    let key = lambda.calls()[2].payload["outputKey"].as_str().unwrap().to_string();
    assert!(key.starts_with(RENDER_PREFIX), "{key}");
    assert_eq!(renders_left(&world).await, std::slice::from_ref(&key));
    assert_eq!(
        (artifact.content_type.as_str(), artifact.extension.as_str()),
        ("video/mp4", "mp4")
    );
    assert_eq!((artifact.info.width, artifact.info.height), (Some(854), Some(480)));
    let mut body = artifact.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(artifact.info.size_bytes, bytes.len() as u64);
    let movie = probed(&bytes).await;
    assert_eq!((movie.width, movie.height), (Some(854), Some(480)));
    assert_eq!(movie.video_codec.as_deref(), Some("h264"));
    let duration = artifact.info.duration.unwrap();
    assert!(
        (movie.duration - duration).abs() < 0.1 && (1.2..=2.0).contains(&duration),
        "{movie:?}"
    );
    assert_eq!(
        renders_left(&world).await,
        Vec::<String>::new(),
        "the render is deleted once read"
    );

    match runner.render(&code(RAISES), FRAME).await {
        Err(SceneError::Code(message)) => assert!(message.contains("no circle today"), "{message}"),
        Err(other) => panic!("expected the code's fault, got {other:?}"),
        Ok(_) => panic!("a scene that raises rendered"),
    }

    // Lambda's own failures are the machine's: retried, never handed to the code writer.
    for (function, words) in [
        ("reelay-crashes", ["Unhandled", "Runtime.ExitError"]),
        ("reelay-times-out", ["Unhandled", "Task timed out"]),
        ("reelay-missing", ["reelay-missing", "ResourceNotFoundException"]),
    ] {
        match scenes(function).check(&code(CIRCLE)).await {
            Err(SceneError::Machine(message)) => {
                assert!(words.iter().all(|w| message.contains(w)), "{function}: {message}")
            }
            other => panic!("{function}: expected the machine's fault, got {other:?}"),
        }
    }
    let crashed = scenes("reelay-crashes").render(&code(CIRCLE), FRAME).await;
    assert!(matches!(crashed, Err(SceneError::Machine(_))));
    assert_eq!(renders_left(&world).await, Vec::<String>::new());
}
