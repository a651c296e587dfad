//! The client SDK's HTTP flow (`@synthome/sdk`'s `execute()`, as api-compat.md describes it),
//! reproduced call for call: one POST of the nested plan, then a status GET every second with
//! no backoff until `completed` (the result is read) or `failed` (the error is read), and on a
//! non-2xx answer the text the SDK throws, built from the body's `error` and `code`.

use std::time::Duration;

use serde_json::{json, Value};

/// What the SDK's progress callback is given on each poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total_jobs: u64,
    pub completed_jobs: u64,
    pub current_job: Option<String>,
}

pub struct Sdk {
    /// The SDK's `apiUrl`: `<server>/api/execute`.
    pub api_url: String,
    pub api_key: String,
    http: reqwest::Client,
}

impl Sdk {
    pub fn new(server: &str, api_key: &str) -> Sdk {
        Sdk {
            api_url: format!("{server}/api/execute"),
            api_key: api_key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// `compose(...).execute()` without a webhook: submits and waits, as the SDK's blocking
    /// mode does. `Err` is the message the SDK would throw.
    pub async fn execute(&self, jobs: Value, options: Value) -> Result<(Value, Vec<Progress>), String> {
        let id = self.submit(jobs, options).await?;
        self.wait(&id).await
    }

    /// The POST alone; `Ok` is the `executionId`, the only field the SDK reads from the 202.
    pub async fn submit(&self, jobs: Value, options: Value) -> Result<String, String> {
        let body = json!({"executionPlan": {"jobs": jobs}, "options": options});
        let answer = self
            .http
            .post(&self.api_url)
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Pipeline execution failed: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(thrown(&body));
        }
        Ok(body["executionId"]
            .as_str()
            .expect("a 202 carries executionId")
            .to_string())
    }

    /// Polls `<apiUrl>/<id>/status` once a second until the SDK would stop; the result (a
    /// completed status's `result`) and every progress report on the way.
    pub async fn wait(&self, id: &str) -> Result<(Value, Vec<Progress>), String> {
        let mut reports = Vec::new();
        // The SDK polls forever; a test gives up after two minutes.
        for _ in 0..120 {
            let answer = self
                .http
                .get(format!("{}/{id}/status", self.api_url))
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let ok = answer.status().is_success();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if !ok {
                return Err(thrown(&body));
            }
            reports.push(Progress {
                progress: body["progress"].as_f64().unwrap_or(0.0),
                total_jobs: body["totalJobs"].as_u64().unwrap_or(0),
                completed_jobs: body["completedJobs"].as_u64().unwrap_or(0),
                current_job: body["currentJob"].as_str().map(str::to_string),
            });
            match body["status"].as_str() {
                Some("completed") => return Ok((body["result"].clone(), reports)),
                Some("failed") => return Err(format!("Pipeline execution failed: {}", text(&body["error"]))),
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        panic!("execution {id} did not end within two minutes of polling");
    }
}

/// What the SDK throws for a non-2xx answer: the body's `error` as text, then its `code`.
fn thrown(body: &Value) -> String {
    format!(
        "Pipeline execution failed: {} ({})",
        text(&body["error"]),
        text(&body["code"])
    )
}

/// A JSON value as JavaScript's string conversion shows it (an object is `[object Object]`).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".into(),
        Value::Object(_) => "[object Object]".into(),
        other => other.to_string(),
    }
}
