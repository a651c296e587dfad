//! The Lambda handlers wired as on AWS and driven by a harness that plays Lambda
//! (`lambda/harness.rs`): once on the embedded adapters with one job queue (the job runner
//! runs every job), once on the AWS adapters against moto (DynamoDB, SQS, S3, Secrets
//! Manager) with the media runner on a queue of its own, to which the job runner forwards
//! media jobs. The two-scene example runs to completion with the `local` provider, its video
//! is read back through its URL, and the client webhook arrives signed; on moto, a Replicate
//! job (against its fake) completes through the provider-webhook function too.

#[path = "fakes/replicate.rs"]
mod fake_replicate;
#[path = "lambda/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "aws/mod.rs"]
mod moto_aws;

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use fake_replicate::{FakeReplicate, Knobs};
use harness::{receiver, two_scenes, Functions, Hooks, SERVER_KEY};
use moto_aws::world::AwsWorld;
use reelay_aws::secrets::ServerSecrets;
use reelay_core::clock::SystemClock;
use reelay_core::ports::{Clock, KeyStore, Store};
use reelay_core::tenants::new_key;
use reelay_core::webhooks::signature::{body_signature, verify_standard};
use reelay_lambda::{Adapters, AwsNode};
use reelay_local::{Db, Durability, FileBlobs, SqliteQueue, SqliteStore};
use reelay_providers::InProcessBudget;

const HOOK_SECRET: &str = "whsec_dGVzdC1zZWNyZXQ=";

/// The one webhook: the ended execution's, signed both ways with our secret.
fn assert_signed_webhook(hooks: &Hooks, id: &str, status: &str) {
    let hooks = hooks.lock().unwrap();
    assert_eq!(hooks.len(), 1, "one webhook");
    let (headers, body) = &hooks[0];
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(header("x-webhook-signature"), body_signature(HOOK_SECRET, body));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    verify_standard(
        HOOK_SECRET,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body,
        now,
        300,
    )
    .expect("a valid Standard Webhooks signature");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["executionId"], id, "{body}");
    assert_eq!(body["status"], status, "{body}");
}

async fn submit(functions: &Functions, key: &str, hook_url: &str) -> String {
    let (status, body) = functions
        .call(
            Method::POST,
            "/api/execute",
            key,
            Some(two_scenes(hook_url, HOOK_SECRET)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["executionId"].as_str().unwrap().to_string()
}

/// The final video's URL from a status answer.
fn result_url(status: &Value) -> String {
    status["result"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no result url: {status}"))
        .to_string()
}

/// An MP4: `ftyp` at offset 4.
fn assert_mp4(bytes: &[u8]) {
    assert!(
        bytes.len() > 1000 && &bytes[4..8] == b"ftyp",
        "not an MP4 ({} bytes)",
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scenes_run_through_the_handlers_on_the_embedded_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let env = harness::env(&[]);
    let settings = harness::settings(&env, &dir.path().join("scratch"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = Db::open(&dir.path().join("reelay.db"), Durability::Process).unwrap();
    let store = Arc::new(SqliteStore::new(db.clone()));
    let adapters = Adapters {
        store: store.clone(),
        keys: store.clone(),
        job_queue: Arc::new(SqliteQueue::new(db.clone(), clock.clone())),
        webhook_queue: Arc::new(SqliteQueue::webhooks(db, clock)),
        media_queue: None,
        blobs: Arc::new(FileBlobs::new(dir.path().join("blobs")).unwrap()),
        budget: Arc::new(InProcessBudget::default()),
        scenes: None,
    };
    let secrets = ServerSecrets::parse(&format!(r#"{{"serverKey":"{SERVER_KEY}"}}"#)).unwrap();
    // What a runtime killed mid-task left in the environment's `/tmp` goes at the next start.
    let left = reelay_node::scratch::scratch_dir(&settings.scratch_dir).join("task-killed");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("partial.mp4"), b"half a movie").unwrap();
    let node = AwsNode::new(adapters, &settings, secrets.sealer().clone()).unwrap();
    assert!(!left.exists(), "the scratch folder was not emptied at start");
    let functions = Functions::new(&node);
    assert!(
        functions.media_runner.is_none(),
        "one queue: the job runner runs every job"
    );
    let (key, record) = new_key("acme", "test", 1);
    store.create_key(&record).await.unwrap();

    let (hook_url, hooks) = receiver().await;
    let id = submit(&functions, &key, &hook_url).await;
    // The schedule's payload means nothing: an EventBridge event works as well as Scheduler's `{}`.
    functions
        .tick(harness::fixture("eventbridge-scheduled-event.json"))
        .await;
    let status = functions.run_to_end(&id, &key, &hooks).await;
    assert_eq!(status["status"], "completed", "{status}");
    let url = result_url(&status);
    let path = url.strip_prefix("file://").unwrap_or_else(|| panic!("{url}"));
    assert_mp4(&std::fs::read(path).unwrap());
    assert_signed_webhook(&hooks, &id, "completed");
}

/// `reelay keys --aws-table <world's table> <args>` with AWS's usual environment pointed at
/// moto; its standard output.
async fn reelay_keys(world: &AwsWorld, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelay"))
        .args(["keys", "--aws-table", &world.table])
        .args(args)
        .env("AWS_ENDPOINT_URL", &world.moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .expect("run reelay keys");
    assert!(
        out.status.success(),
        "reelay keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The functions on `world`, started as on Lambda: the secret (`secret`, stored in Secrets
/// Manager), the adapters (with a media queue made for the media runner) and the providers
/// all from the environment (`extra` added to the harness's). Also a first API key, made with
/// `reelay keys --aws-table`, and the scratch folder (kept while the functions run).
async fn functions_on(
    world: &AwsWorld,
    secret: &str,
    extra: &[(&str, &str)],
) -> (AwsNode, Functions, String, tempfile::TempDir) {
    let secret_id = "reelay-test";
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&world.config)
            .endpoint_url(&world.moto.url)
            .build(),
    )
    .create_secret()
    .name(secret_id)
    .secret_string(secret)
    .send()
    .await
    .expect("create the secret");
    let dir = tempfile::tempdir().unwrap();
    let media_queue_url = world.create_queue("reelay-media").await;
    let mut vars = vec![
        ("REELAY_TABLE", world.table.as_str()),
        ("REELAY_JOB_QUEUE_URL", &world.job_queue_url),
        ("REELAY_WEBHOOK_QUEUE_URL", &world.webhook_queue_url),
        ("REELAY_MEDIA_QUEUE_URL", &media_queue_url),
        ("REELAY_BUCKET", &world.bucket),
        ("REELAY_SECRETS_ID", secret_id),
        ("AWS_ENDPOINT_URL", &world.moto.url),
    ];
    vars.extend_from_slice(extra);
    let env = harness::env(&vars);
    let settings = harness::settings(&env, &dir.path().join("scratch"));
    let node = AwsNode::connect(&world.config, &settings)
        .await
        .expect("a node on moto");
    let functions = Functions::new(&node);
    let key = reelay_keys(world, &["create", "--name", "e2e", "--tenant", "acme"]).await;
    (node, functions, key, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scenes_run_through_the_handlers_on_aws() {
    let world = AwsWorld::start().await;
    // The secret as an operator makes it: the server key alone.
    let secret = format!(r#"{{"serverKey":"{SERVER_KEY}"}}"#);
    let (_node, functions, key, _scratch) = functions_on(&world, &secret, &[]).await;
    // The deployment's first key was made as an operator would: `reelay keys --aws-table`.
    let listed = reelay_keys(&world, &["list"]).await;
    assert!(
        listed.contains("tenant=acme") && listed.contains(&key[..12]),
        "{listed}"
    );

    let (hook_url, hooks) = receiver().await;
    let id = submit(&functions, &key, &hook_url).await;
    let status = functions.run_to_end(&id, &key, &hooks).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_signed_webhook(&hooks, &id, "completed");
    // The scenes ran on the job runner, the merge and the reframe on the media runner.
    assert!(
        functions.media_deliveries() >= 2,
        "{} messages reached the media runner",
        functions.media_deliveries()
    );

    // The video is in the bucket, and its URL (presigned, path-style on moto) serves it.
    let url = result_url(&status);
    assert!(
        url.starts_with(&format!("{}/{}/", world.moto.url, world.bucket)) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let video = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_mp4(&video);
    // Each read signs its URLs anew (a stored signature would lapse with its credentials).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, again) = functions
        .call(Method::GET, &format!("/api/status/{id}"), &key, None)
        .await;
    let fresh = result_url(&again);
    assert_ne!(fresh, url, "signed at read time");
    assert_eq!(fresh.split('?').next(), url.split('?').next(), "the same object");
    let objects = world.s3().list_objects_v2().bucket(&world.bucket).send().await.unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    // Every record of the execution is in DynamoDB: one query reads it with its jobs.
    let (execution, jobs) = world.store().execution_with_jobs(&id).await.unwrap().unwrap();
    assert_eq!((execution.completed_jobs, jobs.len()), (4, 4));
    // Every job's output is stored, but the merge's: fused into the reframe, it was never made.
    let made: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.output.as_ref())
        .filter(|o| o.deferred.is_none())
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(made.len(), 3, "{jobs:?}");
    assert!(made.iter().all(|k| keys.contains(k)), "{made:?} not all in {keys:?}");
}

/// A Replicate job (its fake, `fakes/replicate.rs`) completes through the provider-webhook
/// function: the fake posts its signed webhook to the function's route, which records it and
/// leaves the download to the job runner. The key comes from the secret, not the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicate_job_completes_through_the_provider_webhook_function_on_aws() {
    let world = AwsWorld::start().await;
    let fake = FakeReplicate::start(Knobs::default()).await;
    // Where API Gateway would route the callbacks: the provider-webhook function's router.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", listener.local_addr().unwrap());
    let secret = format!(r#"{{"serverKey":"{SERVER_KEY}","REPLICATE_API_TOKEN":"r8_configured"}}"#);
    let (node, functions, key, _scratch) = functions_on(
        &world,
        &secret,
        &[
            ("REELAY_PROVIDERS", "replicate"),
            ("REELAY_REPLICATE_BASE_URL", &fake.base_url),
            ("REELAY_PUBLIC_URL", &public_url),
        ],
    )
    .await;
    let callbacks = reelay_lambda::api::callback_router(node.api_state());
    tokio::spawn(async move { axum::serve(listener, callbacks).await.unwrap() });

    let (hook_url, hooks) = receiver().await;
    let plan = serde_json::json!({
        "jobs": [{"id": "clip", "type": "generate", "params": {"provider": "replicate",
            "modelId": "bytedance/seedance-1-pro", "prompt": "a red fox", "duration": 5,
            "aspectRatio": "16:9", "resolution": "480p"}}],
        "webhook": {"url": hook_url, "secret": HOOK_SECRET}
    });
    let (status, body) = functions.call(Method::POST, "/api/execute", &key, Some(plan)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["executionId"].as_str().unwrap().to_string();
    let status = functions.run_to_end(&id, &key, &hooks).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_signed_webhook(&hooks, &id, "completed");
    // Completed by its webhook (polling waits a minute for one), which our route took.
    assert!(
        fake.webhook_attempts().iter().any(|a| a.answer == Ok(200)),
        "{:?}",
        fake.webhook_attempts()
    );
    assert_eq!(fake.predictions().len(), 1, "one prediction, paid once");
    let video = reqwest::get(result_url(&status)).await.unwrap().bytes().await.unwrap();
    assert_mp4(&video);
}

/// The media operations of the captions/layers issue run on the media runner as on the
/// embedded node: a clip's background removed (on the job runner: the `local` stand-in keys
/// its backdrop to green, which needs no ffmpeg pass of ours), laid over a scene with a
/// chroma key, then captioned from inline words. Every input is read from S3 by its presigned
/// URL and every output goes back to S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_layer_and_captions_run_through_the_handlers_on_aws() {
    let world = AwsWorld::start().await;
    let secret = format!(r#"{{"serverKey":"{SERVER_KEY}"}}"#);
    let (_node, functions, key, _scratch) = functions_on(&world, &secret, &[]).await;
    let clip = |id: &str| {
        serde_json::json!({"id": id, "type": "generate", "params": {"provider": "local", "modelId": "video",
            "prompt": id, "duration": 2, "aspectRatio": "16:9", "resolution": "240p"}})
    };
    let words = serde_json::json!([{"word": "over", "start": 0.2, "end": 0.8}, {"word": "the", "start": 0.8, "end": 1.1},
        {"word": "valley", "start": 1.1, "end": 1.8}]);
    let (hook_url, hooks) = receiver().await;
    let plan = serde_json::json!({"webhook": {"url": hook_url, "secret": HOOK_SECRET}, "jobs": [
        clip("scene"),
        clip("presenter"),
        {"id": "cutout", "type": "removeBackground", "params": {"provider": "local", "modelId": "remove-background",
            "video": "$presenter", "outputType": "green-screen"}},
        {"id": "composite", "type": "layer", "params": {"layers": [
            {"media": "$scene", "main": true},
            {"media": "$cutout", "placement": "w-1/2 bottom-right", "chromaKey": true}]}},
        {"id": "captioned", "type": "addSubtitles", "params": {"videoUrl": "$composite", "transcript": words,
            "style": "youtube"}},
    ]});
    let (status, body) = functions.call(Method::POST, "/api/execute", &key, Some(plan)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["executionId"].as_str().unwrap().to_string();
    let status = functions.run_to_end(&id, &key, &hooks).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(functions.media_deliveries() >= 2, "the layer and the captions hopped");
    let url = result_url(&status);
    assert!(url.contains("X-Amz-Signature="), "an S3 output: {url}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("captioned.mp4");
    std::fs::write(&file, reqwest::get(&url).await.unwrap().bytes().await.unwrap()).unwrap();
    let probed = reelay_media::probe(&file).await.unwrap();
    assert_eq!(probed.height, Some(240), "the scene's size: {probed:?}");
    assert!(
        probed.has_audio,
        "the main layer's sound, kept through the captions: {probed:?}"
    );
    assert!((probed.duration - 2.0).abs() < 0.2, "{probed:?}");
    let objects = world.s3().list_objects_v2().bucket(&world.bucket).send().await.unwrap();
    assert!(objects.contents().len() >= 5, "every job's output is in the bucket");
}
