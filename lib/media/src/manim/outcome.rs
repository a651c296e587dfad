//! What a sandboxed render's end means: the code's fault (`SceneError::Code`, handed back to
//! the code writer as feedback) or the machine's (`SceneError::Machine`, retried).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use reelay_core::ports::SceneError;

/// The result JSON `sandbox.py` writes.
#[derive(Debug, Deserialize)]
pub(super) struct Report {
    pub ok: bool,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub movie: Option<PathBuf>,
}

/// The limits a render ran under, to name them in messages.
pub(super) struct Context<'a> {
    pub work: &'a Path,
    pub wall: Duration,
    pub cpu_seconds: u64,
    pub file_bytes: u64,
    pub python: &'a Path,
}

/// The rendered movie, or why there is none. `status` is `None` when the wall clock ran out.
pub(super) fn outcome(
    report: Option<Report>,
    status: Option<std::process::ExitStatus>,
    stderr: &str,
    cx: &Context<'_>,
) -> Result<PathBuf, SceneError> {
    let Some(status) = status else {
        return Err(SceneError::Code(format!(
            "render timed out after {} s: an endless loop? (or too long a scene for this limit)",
            cx.wall.as_secs()
        )));
    };
    if let Some(signal) = status.signal() {
        return Err(match signal {
            libc::SIGXCPU => SceneError::Code(format!(
                "the scene used more than {} s of CPU time: an endless loop, or too much to draw?",
                cx.cpu_seconds
            )),
            libc::SIGXFSZ => SceneError::Code(format!(
                "the scene wrote a file larger than the {} bytes allowed",
                cx.file_bytes
            )),
            _ => SceneError::Machine(format!(
                "the renderer was killed by signal {signal} (not by its limits): {}",
                last_line(stderr)
            )),
        });
    }
    match report {
        Some(Report {
            ok: true,
            movie: Some(movie),
            ..
        }) if status.success() => {
            // The path came out of the sandbox: it must point into it.
            match movie.canonicalize() {
                Ok(real) if real.starts_with(cx.work) && real.is_file() => Ok(real),
                _ => Err(SceneError::Machine(format!(
                    "the renderer reported a movie outside its folder: {}",
                    movie.display()
                ))),
            }
        }
        Some(Report {
            ok: false,
            kind,
            message,
            ..
        }) => {
            let message = message.unwrap_or_else(|| "the render failed".into());
            Err(match kind.as_deref() {
                Some("machine") => SceneError::Machine(message),
                _ => SceneError::Code(message),
            })
        }
        _ => Err(silent_failure(status, stderr, cx)),
    }
}

/// The process ended without a result (or with a contradictory one): Python or Manim is
/// broken here, or the disk is full.
fn silent_failure(status: std::process::ExitStatus, stderr: &str, cx: &Context<'_>) -> SceneError {
    if stderr.contains("No module named") {
        return SceneError::Machine(format!(
            "Manim cannot be imported by {}: {}",
            cx.python.display(),
            last_line(stderr)
        ));
    }
    if stderr.contains("No space left on device") {
        return SceneError::Machine("the render ran out of disk space".into());
    }
    SceneError::Machine(format!(
        "the renderer exited with {status} and no result: {}",
        last_line(stderr)
    ))
}

fn last_line(stderr: &str) -> String {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn cx(work: &Path) -> Context<'_> {
        Context {
            work,
            wall: Duration::from_secs(7),
            cpu_seconds: 3,
            file_bytes: 1000,
            python: Path::new("/venv/bin/python"),
        }
    }

    fn killed(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn report(kind: &str, message: &str) -> Option<Report> {
        Some(Report {
            ok: false,
            kind: Some(kind.into()),
            message: Some(message.into()),
            movie: None,
        })
    }

    #[test]
    fn limits_and_reports_are_the_codes_fault_and_the_rest_the_machines() {
        let dir = tempfile::tempdir().unwrap();
        let cx = cx(dir.path());
        let code = |r: Result<PathBuf, SceneError>| match r {
            Err(SceneError::Code(m)) => m,
            other => panic!("{other:?}"),
        };
        let machine = |r: Result<PathBuf, SceneError>| match r {
            Err(SceneError::Machine(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(code(outcome(None, None, "", &cx)).contains("timed out after 7 s"));
        assert!(code(outcome(None, Some(killed(libc::SIGXCPU)), "", &cx)).contains("3 s of CPU"));
        assert!(code(outcome(None, Some(killed(libc::SIGXFSZ)), "", &cx)).contains("1000 bytes"));
        assert!(machine(outcome(None, Some(killed(libc::SIGKILL)), "", &cx)).contains("signal 9"));
        let blocked = report("blocked", "line 3: the scene tried to read /etc/passwd");
        assert!(code(outcome(blocked, Some(exited(86)), "", &cx)).contains("/etc/passwd"));
        let full = report("machine", "the render ran out of disk space");
        assert!(machine(outcome(full, Some(exited(4)), "", &cx)).contains("disk space"));
        let missing = "ModuleNotFoundError: No module named 'manim'\n";
        assert!(machine(outcome(None, Some(exited(1)), missing, &cx)).contains("/venv/bin/python"));
        assert!(machine(outcome(None, Some(exited(1)), "boom\n", &cx)).contains("boom"));
    }

    #[test]
    fn a_movie_must_lie_in_the_work_folder() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().canonicalize().unwrap();
        let movie = work.join("scene.mp4");
        std::fs::write(&movie, b"x").unwrap();
        let ok = |movie: PathBuf| {
            Some(Report {
                ok: true,
                kind: None,
                message: None,
                movie: Some(movie),
            })
        };
        assert_eq!(
            outcome(ok(movie), Some(exited(0)), "", &cx(&work)).unwrap(),
            work.join("scene.mp4")
        );
        let outside = ok(PathBuf::from("/etc/passwd"));
        assert!(matches!(
            outcome(outside, Some(exited(0)), "", &cx(&work)),
            Err(SceneError::Machine(_))
        ));
    }
}
