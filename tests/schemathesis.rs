//! Schemathesis (tests/requirements.txt, in `.venv`) against the real `reelay serve`: it reads
//! `/api/openapi.json` from the server, generates requests from it (its examples, boundary and
//! negative cases, random ones, and chains along the document's links), and checks every
//! answer: no server error, a documented status, the documented content type and schema. A
//! bounded number of cases per operation and deterministic generation keep it short and
//! repeatable.
//!
//! `POST /api/workflows/generate-video` is left out: each run it accepts starts Manim renders
//! (up to 20 scenes of up to 60 s at 1080p60) that nothing here can bound; its answers are
//! checked against the document by tests/workflows.rs, and its examples by tests/edges.rs.
//! The local provider is told to think for ten minutes before rendering, so the plans it
//! accepts on `POST /api/execute` wait instead of rendering while the run goes on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long schemathesis may take before it is stopped and the test fails (it takes about 40 s
/// alone; within nextest's 3 minutes).
const BUDGET: Duration = Duration::from_secs(150);

fn venv_bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `make deps`", path.display());
    path
}

/// `reelay serve` on a free loopback port, on its own data folder; its base URL and the
/// development key it prints on first start.
struct Server {
    child: Child,
    base: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reelay"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--provider-delay-ms", "600000", "serve", "--addr", "127.0.0.1:0"])
            .env("REELAY_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("reelay serve starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, read) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut base, mut key) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while base.is_none() || key.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = read
                .recv_timeout(left)
                .expect("reelay serve prints its key and address");
            if let Some(url) = line.strip_prefix("listening on ") {
                base = Some(url.trim().to_string());
            } else if let Some(k) = line.strip_prefix("development API key (shown once): ") {
                key = Some(k.trim().to_string());
            }
        }
        Server {
            child,
            base: base.unwrap(),
            key: key.unwrap(),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Ctrl-C first (serve stops its node), then for sure.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_departure_from_the_document() {
    let schemathesis = venv_bin("schemathesis");
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let log_path = work.path().join("schemathesis.log");
    let log = File::create(&log_path).unwrap();
    let mut run = Command::new(schemathesis)
        .arg("run")
        .arg(format!("{}/api/openapi.json", server.base))
        .args(["--url", &server.base])
        .args(["--header", &format!("Authorization: Bearer {}", server.key)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "20", "--generation-deterministic"])
        // Why: see the top of this file.
        .args(["--exclude-operation-id", "startWorkflow"])
        .args(["--request-timeout", "40", "--workers", "1", "--no-color"])
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("schemathesis starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BUDGET {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut output = String::new();
    File::open(&log_path).unwrap().read_to_string(&mut output).unwrap();
    let status = status.unwrap_or_else(|| panic!("schemathesis took over {BUDGET:?}:\n{output}"));
    assert!(
        status.success(),
        "schemathesis found departures from lib/api/openapi.json ({status}):\n{output}"
    );
    // It did test: every operation selected.
    let count = |label: &str| -> usize {
        let line = output.lines().find_map(|l| l.trim().strip_prefix(label));
        let number = line.and_then(|l| l.trim().split('/').next()?.trim().parse().ok());
        number.unwrap_or_else(|| panic!("no `{label}` in:\n{output}"))
    };
    let (selected, tested) = (count("Selected:"), count("Tested:"));
    assert!(
        selected >= 8 && tested == selected,
        "{tested} of {selected} operations tested:\n{output}"
    );
    println!("{output}");
}
