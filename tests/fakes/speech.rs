//! What the text-to-speech tests (ElevenLabs, Hume) share: reading a job's stored audio with
//! ffprobe, and running a provider's official Python client against its fake.

#![allow(dead_code)] // Each test binary uses part of it.

use serde_json::Value;

/// What ffprobe finds in a stored output.
#[derive(Debug)]
pub struct Probed {
    pub codec_types: Vec<String>,
    pub sample_rate: Option<u32>,
    pub duration: f64,
    /// The `comment` tag, where word timings ride.
    pub comment: Option<Value>,
}

impl Probed {
    /// The words of the timings kept with the audio.
    pub fn words(&self) -> Vec<String> {
        self.comment
            .as_ref()
            .and_then(|c| c["transcript"].as_array())
            .map(|w| w.iter().map(|w| w["word"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// Probes the file a job's `result` points at (a `file://` URL on the embedded node).
pub async fn probe(result: &Value) -> Probed {
    let url = result["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no output URL: {result}"));
    let path = url
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("not a file URL: {url}"));
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("format=duration:format_tags=comment:stream=codec_type,sample_rate")
        .arg(path)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    Probed {
        codec_types: streams
            .iter()
            .map(|s| s["codec_type"].as_str().unwrap().to_string())
            .collect(),
        sample_rate: streams
            .first()
            .and_then(|s| s["sample_rate"].as_str())
            .and_then(|r| r.parse().ok()),
        duration: json["format"]["duration"].as_str().unwrap().parse().unwrap(),
        comment: json["format"]["tags"]["comment"]
            .as_str()
            .map(|c| serde_json::from_str(c).unwrap()),
    }
}

/// Runs `tests/clients/<script>` with the venv's Python and `args`; its JSON summary.
pub async fn run_client(script: &str, args: &[&str]) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = tokio::process::Command::new(crate::support::python())
        .arg(path)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
