//! Running ffmpeg/ffprobe, and writing outputs atomically.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::process::Command;

use reelay_core::plan::Quality;

use crate::encoding::video_args;
use crate::pool::at_media_priority;
use crate::FfmpegError;

/// How many stderr lines an [`FfmpegError::Ffmpeg`] keeps.
const STDERR_TAIL_LINES: usize = 20;

/// Arguments every ffmpeg invocation starts with: never read the terminal,
/// only report errors, overwrite (our outputs are fresh temp names anyway).
const FFMPEG_PRELUDE: [&str; 5] = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"];

pub(crate) fn binary(env: &str, default: &str) -> String {
    std::env::var(env)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Runs ffmpeg with `args` (after the common prelude); stdout is discarded.
pub(crate) async fn ffmpeg(args: Vec<OsString>) -> Result<(), FfmpegError> {
    let mut all: Vec<OsString> = FFMPEG_PRELUDE.iter().map(OsString::from).collect();
    all.extend(args);
    run(&binary("REELAY_FFMPEG", "ffmpeg"), all, false).await?;
    Ok(())
}

/// Re-encodes `input`'s picture through the filter chain `vf` (H.264) into `out`, its audio
/// copied untouched: the one pass of an edit that changes pixels only.
pub(crate) async fn filter_picture(
    input: &Path,
    vf: impl Into<OsString>,
    out: &Path,
    quality: Quality,
) -> Result<(), FfmpegError> {
    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec![
        "-i".into(),
        file_arg(input),
        "-map".into(),
        "0:v:0".into(),
        "-map".into(),
        "0:a?".into(),
        "-vf".into(),
        vf.into(),
    ];
    args.extend(video_args(quality));
    args.extend(["-c:a".into(), "copy".into()]);
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// Runs ffprobe with `args` and returns its stdout.
pub(crate) async fn ffprobe(args: Vec<OsString>) -> Result<Vec<u8>, FfmpegError> {
    let mut all: Vec<OsString> = ["-v", "error", "-hide_banner"].iter().map(OsString::from).collect();
    all.extend(args);
    run(&binary("REELAY_FFPROBE", "ffprobe"), all, true).await
}

pub(crate) async fn run(binary: &str, args: Vec<OsString>, capture_stdout: bool) -> Result<Vec<u8>, FfmpegError> {
    tracing::debug!(binary, args = ?args, "running");
    let mut command = Command::new(binary);
    at_media_priority(&mut command);
    let output = command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(if capture_stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::piped())
        // A dropped (cancelled) future must not leave an encoder running.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| FfmpegError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = stderr_tail(&stderr);
        Err(FfmpegError::Ffmpeg(if tail.is_empty() {
            format!("{binary} exited with {}", output.status)
        } else {
            tail
        }))
    }
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join("\n")
}

/// A path as an ffmpeg input/output argument: the `file:` protocol prefix
/// stops ffmpeg from reading a name such as `http:x` or `a:b.mp4` as a URL.
pub(crate) fn file_arg(path: &Path) -> OsString {
    let mut s = OsString::from("file:");
    s.push(path.as_os_str());
    s
}

/// Extra output options for containers of the MP4 family: the index goes
/// first so the file can be streamed before it is fully downloaded.
pub(crate) fn container_args(out: &Path) -> Vec<OsString> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("mp4" | "m4v" | "m4a" | "mov") => vec!["-movflags".into(), "+faststart".into()],
        _ => Vec::new(),
    }
}

/// A file next to the final output that ffmpeg writes into; it is renamed
/// over the output on success and removed if dropped before that, so a
/// failure or a crash never leaves a half-written file at the output path.
pub(crate) struct TempFile {
    path: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempFile {
    /// A fresh hidden name in `out`'s directory that ends with `out`'s file
    /// name (so ffmpeg still picks the muxer from the extension), with
    /// `suffix` appended when given.
    pub(crate) fn beside(out: &Path, suffix: &str) -> Result<TempFile, FfmpegError> {
        let name = out
            .file_name()
            .ok_or_else(|| FfmpegError::Invalid(format!("output path {} has no file name", out.display())))?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = OsString::from(format!(".reelay-tmp-{}-{n}-", std::process::id()));
        tmp_name.push(name);
        tmp_name.push(suffix);
        Ok(TempFile {
            path: out.with_file_name(tmp_name),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the finished file to `out`.
    pub(crate) async fn persist(self, out: &Path) -> Result<(), FfmpegError> {
        tokio::fs::rename(&self.path, out)
            .await
            .map_err(|e| FfmpegError::Invalid(format!("could not move output into {}: {e}", out.display())))
        // On error `self` drops here and removes the temp file.
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a successful persist the file is gone; NotFound is expected.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Formats seconds for filter arguments: fixed precision, never exponent form.
pub(crate) fn secs(s: f64) -> String {
    format!("{s:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_last_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n\n")).collect();
        let tail = stderr_tail(&text);
        assert_eq!(tail.lines().count(), STDERR_TAIL_LINES);
        assert!(tail.starts_with("line 10"));
        assert!(tail.ends_with("line 29"));
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let err = run("/nonexistent/reelay-ffmpeg", Vec::new(), false).await.unwrap_err();
        assert!(matches!(err, FfmpegError::Spawn { .. }), "{err:?}");
    }

    #[test]
    fn temp_file_keeps_extension_and_directory() {
        let t = TempFile::beside(Path::new("/a/b/out.mp4"), "").unwrap();
        assert_eq!(t.path().parent(), Some(Path::new("/a/b")));
        assert_eq!(t.path().extension().unwrap(), "mp4");
        assert!(TempFile::beside(Path::new("/"), "").is_err());
    }
}
