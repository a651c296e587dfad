//! The `reelay` command as a newcomer uses it: real ffmpeg, the local provider, real files.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reelay_media::probe;

fn reelay(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelay"));
    cmd.arg("--data-dir").arg(data_dir).env("REELAY_LOG", "warn");
    cmd
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The value after `prefix` on the first line that starts with it.
fn line_value<'a>(stdout: &'a str, prefix: &str) -> Option<&'a str> {
    stdout.lines().find_map(|l| l.strip_prefix(prefix)).map(str::trim)
}

/// Runs an example to success; its stdout and the probe of the output it names.
async fn run_example(name: &str) -> (String, reelay_media::Probe) {
    let dir = tempfile::tempdir().unwrap();
    let out = reelay(dir.path())
        .args(["run", &example(name)])
        .env("REELAY_PROVIDER_DELAY_MS", "50")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = line_value(&stdout, "output:").expect("the output path is printed");
    let probed = probe(Path::new(path)).await.unwrap();
    (stdout, probed)
}

#[tokio::test]
async fn run_two_scenes_produces_a_9_16_mp4_of_the_merged_length() {
    let (stdout, probed) = run_example("two-scenes.json").await;
    // A live line per job state change, every job reaching `completed`.
    for job in ["job1", "job2", "job3", "job4"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(job) && l.contains("completed")),
            "{job}: {stdout}"
        );
    }
    assert_eq!((probed.width, probed.height), (Some(1080), Some(1920)));
    // Two 3 s scenes with a 0.5 s fade between them.
    assert!((probed.duration - 5.5).abs() < 0.2, "duration {}", probed.duration);
    assert!(probed.has_audio);
    assert!(stdout.contains("1080x1920 (9:16)"), "{stdout}");
}

#[tokio::test]
async fn run_slideshow_merges_images_and_mixes_audio() {
    let (_, probed) = run_example("slideshow.json").await;
    // 1.5 + 2 + 2 s of stills, two 0.4 s crossfades.
    assert!((probed.duration - 4.7).abs() < 0.2, "duration {}", probed.duration);
    assert_eq!((probed.width, probed.height), (Some(720), Some(720)));
    assert!(probed.has_audio);
}

#[tokio::test]
async fn run_voice_over_lays_the_local_voice_over_a_scene() {
    let (_, probed) = run_example("voice-over.json").await;
    assert!((probed.duration - 4.0).abs() < 0.2, "duration {}", probed.duration);
    assert_eq!((probed.width, probed.height), (Some(1280), Some(720)));
    assert!(probed.has_audio);
}

#[test]
fn an_invalid_plan_exits_2_naming_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.json");
    std::fs::write(
        &plan,
        r#"{"jobs":[{"id":"a","type":"generate","params":{"provider":"local","modelId":"nope","duration":-1}},
                    {"id":"b","type":"reframe","params":{"aspectRatio":"wide"},"dependsOn":["ghost"]}]}"#,
    )
    .unwrap();
    let out = reelay(&dir.path().join("data")).arg("run").arg(&plan).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in ["unknown_model", "unknown_dependency", "invalid_param", "job b", "job a"] {
        assert!(stderr.contains(expected), "{expected} missing from: {stderr}");
    }
}

#[test]
fn a_failed_provider_job_exits_non_zero_with_the_root_cause() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("fails.json");
    std::fs::write(
        &plan,
        r#"{"jobs":[{"id":"scene","type":"generate","params":{"provider":"local","modelId":"video-polling","prompt":"x","duration":1,"fail":"the model refused"}},
                    {"id":"vertical","type":"reframe","params":{"aspectRatio":"9:16"},"dependsOn":["scene"]}]}"#,
    )
    .unwrap();
    let out = reelay(&dir.path().join("data"))
        .env("REELAY_PROVIDER_DELAY_MS", "10")
        .arg("run")
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("job `scene` failed: the model refused"), "{stderr}");
    assert!(stderr.contains("1 dependent job(s) skipped"), "{stderr}");
}

/// Kill -9 mid-execution, start again: the execution finishes, and no job done before the
/// kill is done again (no second render at the provider, the first scene's file untouched).
#[test]
fn a_killed_run_resumes_without_redoing_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = reelay(&data)
        .args(["run", &example("two-scenes.json")])
        .env("REELAY_PROVIDER_DELAY_MS", "50")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let execution = first
        .strip_prefix("execution ")
        .and_then(|r| r.split_whitespace().next())
        .expect("first line names the execution")
        .to_string();
    // Wait until the merge has started: both scenes are done, two jobs are left.
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("job4") && line.contains("running") {
            break;
        }
        assert!(Instant::now() < deadline, "the merge never started");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let scene = |job: &str| {
        let path = data.join(format!("blobs/executions/{execution}/{job}/output.mp4"));
        std::fs::metadata(&path).unwrap().modified().unwrap()
    };
    let scene_before = scene("job2");
    let renders_before = std::fs::read_dir(data.join("provider/jobs")).unwrap().count();
    assert_eq!(renders_before, 2);

    let out = reelay(&data).args(["resume", &execution]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("completed in"), "{stdout}");
    assert!(stdout.contains("1080x1920"), "{stdout}");
    assert_eq!(scene("job2"), scene_before, "a finished scene was redone");
    assert_eq!(
        std::fs::read_dir(data.join("provider/jobs")).unwrap().count(),
        2,
        "a scene was rendered again"
    );
}

/// One HTTP/1.1 exchange over a plain socket, with a bearer key if given: (status code, body).
fn http(addr: &str, key: Option<&str>, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = response.split("\r\n\r\n").nth(1).unwrap_or("");
    (code, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

/// `reelay serve` on a free port: it prints a development key on first start; a call
/// without a key is refused; a submitted plan runs to the end, awaited with `?wait=`; keys
/// made and revoked with `reelay keys` work and stop working at once.
#[test]
fn serve_runs_a_submitted_plan_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = reelay(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("REELAY_PROVIDER_DELAY_MS", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().unwrap().unwrap();
    let key_line = next_line();
    let dev_key = key_line
        .strip_prefix("development API key (shown once): ")
        .expect("a development key is printed on first start")
        .to_string();
    let addr = next_line()
        .strip_prefix("listening on http://")
        .expect("the address is printed")
        .to_string();
    let plan = std::fs::read_to_string(example("one-scene.json"))
        .unwrap()
        .replace("720p", "240p");
    let (code, refused) = http(&addr, None, "POST", "/api/execute", &plan);
    assert_eq!(code, 401, "{refused}");
    let (code, accepted) = http(&addr, Some(&dev_key), "POST", "/api/execute", &plan);
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["executionId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let path = format!("/api/execute/{id}/status?wait=20");
        let (code, status) = http(&addr, Some(&dev_key), "GET", &path, "");
        assert_eq!(code, 200);
        if status["status"] == "completed" || Instant::now() > deadline {
            break status;
        }
    };
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["aspectRatio"], "16:9");
    assert!(
        (status["result"]["duration"].as_f64().unwrap() - 4.0).abs() < 0.2,
        "{status}"
    );

    // `reelay keys` beside the running server.
    let made = reelay(dir.path())
        .args(["keys", "create", "--name", "ci", "--tenant", "local"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let ci_key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(ci_key.starts_with("rl_live_"), "{ci_key}");
    let path = format!("/api/status/{id}");
    assert_eq!(http(&addr, Some(&ci_key), "GET", &path, "").0, 200);
    let listed = reelay(dir.path()).args(["keys", "list"]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        !listed.contains(&ci_key) && !listed.contains(&dev_key),
        "a key was printed again: {listed}"
    );
    let ci_line = listed
        .lines()
        .find(|l| l.contains("name=ci"))
        .expect("the new key is listed");
    let ci_id = ci_line.split_whitespace().next().unwrap();
    let revoked = reelay(dir.path()).args(["keys", "revoke", ci_id]).output().unwrap();
    assert!(revoked.status.success());
    assert_eq!(http(&addr, Some(&ci_key), "GET", &path, "").0, 401);
    assert_eq!(http(&addr, Some(&dev_key), "GET", &path, "").0, 200);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `reelay run` with a webhook in the plan: the end message leaves before the command exits.
#[test]
fn run_sends_the_webhook_before_it_exits() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = receiver.local_addr().unwrap();
    let got = std::thread::spawn(move || {
        let (mut stream, _) = receiver.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then as many body bytes as Content-Length says.
        loop {
            let n = stream.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8(request).unwrap()
    });
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("one-scene.json")).unwrap()).unwrap();
    plan["webhook"] = serde_json::json!({"url": format!("http://{addr}/done"), "secret": "s3cret"});
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string().replace("720p", "240p")).unwrap();
    let out = reelay(&dir.path().join("data"))
        .args(["--webhook-allow", "127.0.0.1/32", "run", plan_path.to_str().unwrap()])
        .env("REELAY_PROVIDER_DELAY_MS", "10")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let request = got.join().unwrap();
    assert!(request.starts_with("POST /done HTTP/1.1"), "{request}");
    let lower = request.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nwebhook-signature: v1,") && lower.contains("\r\nx-webhook-signature: "),
        "{request}"
    );
    assert!(request.contains("\"status\":\"completed\""), "{request}");
}
