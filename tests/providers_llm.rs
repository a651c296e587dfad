//! The code-writing providers (lib/providers/src/scene_code/) against fakes of OpenAI's Chat
//! Completions and Anthropic's Messages (tests/fakes/openai.rs, tests/fakes/anthropic.rs). First
//! the official `openai` and `anthropic` Python clients drive each fake, so that the fakes are
//! known to speak the real protocols; then reelay's providers meet the same fakes: the code
//! read out of a fenced answer, the prompt (the class named, LaTeX forbidden, each repair's
//! error and code), each API's headers, and every refusal or outage as the engine's error.

mod support;

#[path = "fakes/anthropic.rs"]
mod fake_anthropic;
#[path = "fakes/openai.rs"]
mod fake_openai;
#[path = "fakes/llm.rs"]
mod llm;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use llm::{Answer, FakeLlm};
use reelay_core::domain::JobKey;
use reelay_core::plan::{Operation, ProviderParams, Secret};
use reelay_core::ports::{Provider, ProviderError, ProviderRequest, ProviderStatus};
use reelay_core::scenes::{Repair, SceneBrief, SceneStep};
use reelay_providers::scene_code::{AnthropicProvider, ChatSettings, OpenAiProvider};

const SQUARE: &str = "from manim import *\n\nclass IntroScene(Scene):\n    def construct(self):\n        \
                      square = Square()\n        self.play(Create(square))\n        self.wait(1)";

/// Runs `tests/clients/<script>` against a fake; its JSON summary.
async fn official_client(script: &str, fake: &FakeLlm) -> Value {
    support::run_client(script, &[&fake.base_url, &fake.key]).await
}

#[tokio::test]
async fn the_official_openai_client_drives_the_fake() {
    let fake = fake_openai::start(vec![
        Answer::Code(SQUARE.into()),
        Answer::Status(500),
        Answer::RateLimited(7),
        Answer::CutOff("```python\nclass IntroScene(Sce".into()),
    ])
    .await;
    let summary = official_client("openai_client.py", &fake).await;
    assert!(
        summary["content"]
            .as_str()
            .unwrap()
            .contains("```python\nfrom manim import *\n"),
        "{summary}"
    );
    let error = |name: &str| (summary[name]["class"].clone(), summary[name]["status"].clone());
    assert_eq!(error("server_error"), (json!("InternalServerError"), json!(500)));
    assert_eq!(error("rate_limited"), (json!("RateLimitError"), json!(429)));
    assert_eq!(summary["rate_limited"]["retry_after"], "7");
    assert_eq!(summary["rate_limited"]["body"]["code"], "rate_limit_exceeded");
    assert_eq!(summary["cut_content"], "```python\nclass IntroScene(Sce");
    assert_eq!(error("unauthorized"), (json!("AuthenticationError"), json!(401)));
    let refused = summary["unauthorized"]["body"]["message"].as_str().unwrap();
    assert!(refused.starts_with("Incorrect API key provided: sk-w"), "{refused}");
    assert!(!refused.contains("wrong"), "the key is masked: {refused}");
    assert_eq!(error("no_messages"), (json!("BadRequestError"), json!(400)));
    assert_eq!(summary["no_messages"]["body"]["param"], "messages");
    assert_eq!(error("unknown_model"), (json!("NotFoundError"), json!(404)));

    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 500, 429, 200, 401, 400, 404]);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.headers["authorization"], format!("Bearer {}", fake_openai::KEY));
    assert_eq!(first.body["max_completion_tokens"], 2000);
    assert_eq!(first.system(), "You write Manim Community Edition scenes.");
    assert_eq!(first.user(), "A circle that becomes a square.");
    assert_eq!(fake.played().len(), 4);
}

#[tokio::test]
async fn the_official_anthropic_client_drives_the_fake() {
    let fake = fake_anthropic::start(vec![
        Answer::Code(SQUARE.into()),
        Answer::Status(529),
        Answer::Status(500),
        Answer::RateLimited(7),
        Answer::CutOff("```python\nclass IntroScene(Sce".into()),
    ])
    .await;
    let summary = official_client("anthropic_client.py", &fake).await;
    assert!(
        summary["text"].as_str().unwrap().contains("class IntroScene(Scene):"),
        "{summary}"
    );
    let error = |name: &str| (summary[name]["class"].clone(), summary[name]["status"].clone());
    assert_eq!(error("overloaded"), (json!("OverloadedError"), json!(529)));
    assert_eq!(summary["overloaded"]["body"]["error"]["type"], "overloaded_error");
    assert_eq!(error("server_error"), (json!("InternalServerError"), json!(500)));
    assert_eq!(error("rate_limited"), (json!("RateLimitError"), json!(429)));
    assert_eq!(summary["rate_limited"]["retry_after"], "7");
    assert_eq!(summary["cut_text"], "```python\nclass IntroScene(Sce");
    assert_eq!(error("unauthorized"), (json!("AuthenticationError"), json!(401)));
    assert_eq!(summary["unauthorized"]["body"]["error"]["message"], "invalid x-api-key");
    assert_eq!(error("no_max_tokens"), (json!("BadRequestError"), json!(400)));
    assert_eq!(
        summary["no_max_tokens"]["body"]["error"]["message"],
        "max_tokens: Field required"
    );
    assert_eq!(error("unknown_model"), (json!("NotFoundError"), json!(404)));

    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 529, 500, 429, 200, 401, 400, 404]);
    let first = &requests[0];
    // This client sends the key as a bearer token, and a version of its own.
    assert_eq!(
        first.headers["authorization"],
        format!("Bearer {}", fake_anthropic::KEY)
    );
    assert!(first.headers.contains_key("anthropic-version"), "{:?}", first.headers);
    assert_eq!(first.body["max_tokens"], 2048);
    assert_eq!(first.body["metadata"], json!({"user_id": "reelay-test"}));
    assert_eq!(first.system(), "You write Manim Community Edition scenes.");

    // What the client always sends, the fake requires, as the API does.
    let http = reqwest::Client::new();
    let bare = http
        .post(format!("{}/v1/messages", fake.base_url))
        .header("x-api-key", fake_anthropic::KEY)
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        );
    let answer = bare.send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["error"],
        json!({"type": "invalid_request_error", "message": "anthropic-version: header is required"})
    );
}

/// The brief of a scene refused twice before.
fn brief() -> SceneBrief {
    SceneBrief {
        prompt: "Show the Pythagorean theorem with three squares".into(),
        scene_name: "Intro".into(),
        class_name: "IntroScene".into(),
        context: Some("A lesson for 12-year-olds".into()),
        duration: 8.0,
        width: 1920,
        height: 1080,
        repairs: vec![
            Repair {
                step: SceneStep::Validation,
                error: "line 1: import of `os` is not allowed".into(),
                code: "import os\nfrom manim import *\n\nclass IntroScene(Scene):\n    pass".into(),
            },
            Repair {
                step: SceneStep::Compilation,
                error: "RuntimeError: LaTeX is not installed (MathTex on line 6)".into(),
                code: "from manim import *\n\nclass IntroScene(Scene):\n    def construct(self):\n        \
                       self.add(MathTex('a^2+b^2=c^2'))"
                    .into(),
            },
        ],
    }
}

fn request(provider: &str, model: &str, brief: Option<&SceneBrief>, key: Option<&str>) -> ProviderRequest {
    let mut params = ProviderParams::prompt(provider, model, "");
    if let Some(brief) = brief {
        brief.put_into(&mut params);
    }
    ProviderRequest {
        job: JobKey {
            execution_id: "exec-1".into(),
            job_id: "intro-code".into(),
        },
        operation: Operation::GenerateSceneCode,
        params,
        token: "token-1".into(),
        api_key: key.map(Secret::new),
        callback_url: None,
    }
}

/// Submits `request`: the code the provider answered inline, read back through its `download`.
async fn written(provider: &dyn Provider, request: ProviderRequest) -> Result<String, ProviderError> {
    let submission = provider.submit(request).await?;
    assert_eq!(submission.provider_job_id, "token-1");
    let Some(ProviderStatus::Succeeded {
        output_url,
        content_type,
    }) = submission.finished
    else {
        panic!("not answered inline: {submission:?}");
    };
    assert!(output_url.starts_with("data:text/x-python;base64,"), "{output_url}");
    assert_eq!(content_type.as_deref(), Some("text/x-python"));
    let mut stream = provider.download(&output_url, None).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Ok(String::from_utf8(bytes).unwrap())
}

fn openai(base_url: &str) -> OpenAiProvider {
    OpenAiProvider::new(ChatSettings {
        base_url: base_url.to_string(),
        ..ChatSettings::openai(Some(Secret::new(fake_openai::KEY)))
    })
    .unwrap()
}

fn anthropic(base_url: &str) -> AnthropicProvider {
    AnthropicProvider::new(ChatSettings {
        base_url: base_url.to_string(),
        ..ChatSettings::anthropic(Some(Secret::new(fake_anthropic::KEY)))
    })
    .unwrap()
}

/// What every request for `brief()` must carry to the model.
fn assert_prompt_carries_the_brief(recorded: &llm::Recorded) {
    let system = recorded.system();
    assert!(system.contains("named `IntroScene`, deriving from `Scene`"), "{system}");
    assert!(
        system.contains("LaTeX is NOT installed") && system.contains("`MathTex`"),
        "{system}"
    );
    assert!(
        system.contains("1920×1080") && system.contains("about 8 seconds"),
        "{system}"
    );
    let user = recorded.user();
    assert!(
        user.starts_with("Scene \"Intro\": Show the Pythagorean theorem"),
        "{user}"
    );
    assert!(user.contains("A lesson for 12-year-olds"), "{user}");
    for repair in &brief().repairs {
        assert!(user.contains(&repair.error), "{user}");
        assert!(user.contains(&format!("```python\n{}\n```", repair.code)), "{user}");
    }
    assert!(user.contains("Attempt 1 failed at validation") && user.contains("Attempt 2 failed at rendering"));
}

#[tokio::test]
async fn openai_writes_the_scene_of_a_fenced_answer_and_hears_the_repairs() {
    let fake = fake_openai::start(vec![Answer::Code(SQUARE.into())]).await;
    let provider = openai(&fake.base_url);
    let code = written(&provider, request("openai", "gpt-4.1", Some(&brief()), None))
        .await
        .unwrap();
    assert_eq!(code, format!("{SQUARE}\n"));
    let [recorded] = &fake.requests()[..] else {
        panic!("{:?}", fake.requests());
    };
    assert_eq!(
        recorded.headers["authorization"],
        format!("Bearer {}", fake_openai::KEY)
    );
    let roles: Vec<&Value> = recorded.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["role"])
        .collect();
    assert_eq!(roles, ["system", "user"]);
    assert_eq!(
        (recorded.body["model"].clone(), recorded.body["temperature"].clone()),
        (json!("gpt-4.1"), json!(0.2))
    );
    assert_prompt_carries_the_brief(recorded);
    assert_eq!(provider.models()[0].id, "gpt-4.1");
}

#[tokio::test]
async fn anthropic_writes_the_scene_with_its_headers_and_hears_the_repairs() {
    let fake = fake_anthropic::start(vec![Answer::Text(format!("```python\n{SQUARE}\n```"))]).await;
    let provider = anthropic(&fake.base_url);
    // A job's own key wins over the configured one.
    let key = Some(fake_anthropic::KEY);
    let code = written(
        &provider,
        request("anthropic", "claude-sonnet-4-5", Some(&brief()), key),
    )
    .await
    .unwrap();
    assert_eq!(code, format!("{SQUARE}\n"));
    let [recorded] = &fake.requests()[..] else {
        panic!("{:?}", fake.requests());
    };
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.headers["x-api-key"], fake_anthropic::KEY);
    assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
    assert_eq!(recorded.headers["content-type"], "application/json");
    assert!(!recorded.headers.contains_key("authorization"));
    assert_eq!(recorded.body["max_tokens"], 8192);
    // Sampling is left to the model: newer API versions take no `temperature`.
    assert!(recorded.body.get("temperature").is_none(), "{}", recorded.body);
    assert!(recorded.body["system"].is_string());
    assert_eq!(recorded.body["messages"].as_array().unwrap().len(), 1);
    assert_prompt_carries_the_brief(recorded);
}

/// The same script of troubles, each answer as the engine must see it.
async fn troubles_become_the_engines_errors(name: &str, model: &str, fake: FakeLlm, provider: &dyn Provider) {
    let job = |key: Option<&str>| request(name, model, Some(&brief()), key);
    let fatal = |result: Result<String, ProviderError>| match result {
        Err(ProviderError::Fatal(message)) => message,
        other => panic!("not fatal: {other:?}"),
    };
    let refused = fatal(written(provider, job(Some("sk-not-the-key-0000"))).await);
    assert!(
        refused.starts_with(&format!("{name} refused the key (401): ")),
        "{refused}"
    );
    assert!(
        refused.contains("Incorrect API key") || refused.contains("invalid x-api-key"),
        "{refused}"
    );
    for expected in ["500", "overloaded"] {
        match written(provider, job(None)).await {
            Err(ProviderError::Retryable { message, .. }) => assert!(message.contains(name), "{expected}: {message}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
    match written(provider, job(None)).await {
        Err(ProviderError::RateLimited { retry_after }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    let cut = fatal(written(provider, job(None)).await);
    assert!(cut.contains("cut off") && cut.contains("IntroScene"), "{cut}");
    let empty = fatal(written(provider, job(None)).await);
    assert!(empty.contains(name) && empty.contains("empty"), "{empty}");
    // A stalled call times out (see `ChatSettings::timeout`); asking again is the only way on.
    match written(provider, job(None)).await {
        Err(ProviderError::Retryable { message, .. }) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(written(provider, job(None)).await.unwrap(), format!("{SQUARE}\n"));
    // The stalled request was never answered, so never recorded.
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    let overloaded = if name == "anthropic" { 529 } else { 503 };
    assert_eq!(statuses, [401, 500, overloaded, 429, 200, 200, 200]);
    assert_eq!(fake.played().len(), 6);

    // Refused before any call: a model not configured, a job without its brief.
    let unknown = fatal(written(provider, request(name, "nope", Some(&brief()), None)).await);
    assert!(unknown.contains("no model `nope`"), "{unknown}");
    let briefless = fatal(written(provider, request(name, model, None, None)).await);
    assert!(briefless.contains("`scene`"), "{briefless}");
    assert_eq!(fake.requests().len(), 7);
}

fn troubles(overloaded: u16) -> Vec<Answer> {
    vec![
        Answer::Status(500),
        Answer::Status(overloaded),
        Answer::RateLimited(7),
        Answer::CutOff("```python\nclass IntroScene(Scene):\n    def construct(se".into()),
        Answer::Text(" \n".into()),
        Answer::Stall,
        Answer::Code(SQUARE.into()),
    ]
}

#[tokio::test]
async fn openai_troubles_become_the_engines_errors() {
    let fake = fake_openai::start(troubles(503)).await;
    let provider = OpenAiProvider::new(ChatSettings {
        base_url: fake.base_url.clone(),
        timeout: Duration::from_secs(1),
        ..ChatSettings::openai(Some(Secret::new(fake_openai::KEY)))
    })
    .unwrap();
    troubles_become_the_engines_errors("openai", "gpt-4.1", fake, &provider).await;
}

#[tokio::test]
async fn anthropic_troubles_become_the_engines_errors() {
    let fake = fake_anthropic::start(troubles(529)).await;
    let provider = AnthropicProvider::new(ChatSettings {
        base_url: fake.base_url.clone(),
        timeout: Duration::from_secs(1),
        ..ChatSettings::anthropic(Some(Secret::new(fake_anthropic::KEY)))
    })
    .unwrap();
    troubles_become_the_engines_errors("anthropic", "claude-sonnet-4-5", fake, &provider).await;
}

#[tokio::test]
async fn an_unreachable_api_is_retried() {
    // A port nothing listens on: bound, then let go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for provider in [
        Box::new(openai(&format!("{base}/v1"))) as Box<dyn Provider>,
        Box::new(anthropic(&base)),
    ] {
        let model = provider.models()[0].id.clone();
        match written(
            provider.as_ref(),
            request(provider.name(), &model, Some(&brief()), None),
        )
        .await
        {
            Err(ProviderError::Retryable { .. }) => {}
            other => panic!("{}: {other:?}", provider.name()),
        }
    }
}
