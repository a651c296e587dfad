//! Generated Manim (Community Edition) scenes, checked and rendered: the engine's
//! `SceneRunner` port.
//!
//! `check` reads the code with Python's `ast` (`check.py`; nothing is imported or run).
//! `render` runs it with `sandbox.py` in a jail (`jail.rs`): a fresh folder under the scratch
//! root, removed afterwards; no environment but a few harmless variables; rlimits on CPU,
//! address space and file size; its own process group; a user and network namespace where the
//! machine allows one; and, always, a Python audit hook that stops any network, process,
//! native-code or file access outside what rendering needs. How a render ended decides whose
//! fault a failure is (`outcome.rs`).

mod jail;
mod outcome;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::OnceCell;
use tokio_util::io::ReaderStream;

use reelay_core::ports::{Artifact, MediaInfo, SceneCode, SceneError, SceneFrame, SceneRunner};

use crate::WorkPool;

use jail::Limits;
use outcome::{outcome, Context, Report};

const CHECK_PY: &str = include_str!("check.py");
const SANDBOX_PY: &str = include_str!("sandbox.py");

/// Where a sandbox runs and what a render may use.
#[derive(Debug, Clone)]
pub struct ManimSettings {
    /// The Python that has Manim installed (the venv's).
    pub python: PathBuf,
    /// Where each render's folder is made (and removed after).
    pub scratch: PathBuf,
    /// Wall-clock time of one render.
    pub timeout: Duration,
    pub cpu_seconds: u64,
    /// Address space (RLIMIT_AS) of the renderer.
    pub memory_bytes: u64,
    /// The largest file the renderer may write (the movie included).
    pub max_output_bytes: u64,
    /// The largest code accepted.
    pub max_code_bytes: usize,
    /// Renders in a new user and network namespace when `unshare -rn` works here; `false`
    /// relies on the audit hook alone for the network.
    pub network_namespace: bool,
}

impl ManimSettings {
    pub fn new(python: impl Into<PathBuf>, scratch: impl Into<PathBuf>) -> Self {
        ManimSettings {
            python: python.into(),
            scratch: scratch.into(),
            timeout: Duration::from_secs(300),
            cpu_seconds: 300,
            memory_bytes: 4 << 30,
            max_output_bytes: 2 << 30,
            max_code_bytes: 64 * 1024,
            network_namespace: true,
        }
    }
}

/// The static checks' own limits: parsing is quick, whatever the code.
const CHECK_LIMITS: Limits = Limits {
    cpu_seconds: 20,
    memory_bytes: 1 << 30,
    file_bytes: 0,
    wall: Duration::from_secs(30),
};

pub struct ManimSandbox {
    settings: ManimSettings,
    /// `unshare`, once probed, if it works here.
    unshare: OnceCell<Option<PathBuf>>,
    /// Bounds the renders (and checks), with the node's other media work.
    pool: WorkPool,
}

impl ManimSandbox {
    pub fn new(mut settings: ManimSettings) -> Self {
        // The renderer runs in its own folder: a relative interpreter path would miss.
        if settings.python.components().count() > 1 {
            settings.python = std::path::absolute(&settings.python).unwrap_or(settings.python);
        }
        ManimSandbox {
            settings,
            unshare: OnceCell::new(),
            pool: WorkPool::per_core(),
        }
    }

    /// Renders in `pool`'s slots (shared with the node's other media work).
    pub fn with_pool(mut self, pool: WorkPool) -> Self {
        self.pool = pool;
        self
    }

    /// Whether renders run in a network namespace of their own (probed once).
    pub async fn isolates_network(&self) -> bool {
        self.unshare().await.is_some()
    }

    async fn unshare(&self) -> Option<&Path> {
        if !self.settings.network_namespace {
            return None;
        }
        self.unshare.get_or_init(jail::probe_unshare).await.as_deref()
    }

    fn check_shape(&self, code: &SceneCode) -> Result<(), SceneError> {
        let size = code.source.len();
        if size > self.settings.max_code_bytes {
            return Err(SceneError::Code(format!(
                "the code is {size} bytes; the limit is {} bytes: write a shorter scene",
                self.settings.max_code_bytes
            )));
        }
        let name = &code.class_name;
        let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(SceneError::Code(format!(
                "the scene class name `{name}` is not a Python identifier"
            )));
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            cpu_seconds: self.settings.cpu_seconds,
            memory_bytes: self.settings.memory_bytes,
            file_bytes: self.settings.max_output_bytes,
            wall: self.settings.timeout,
        }
    }

    async fn scratch_dir(&self, prefix: &str) -> Result<tempfile::TempDir, SceneError> {
        let machine = |e: std::io::Error| SceneError::Machine(format!("cannot make a render folder: {e}"));
        tokio::fs::create_dir_all(&self.settings.scratch)
            .await
            .map_err(machine)?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.settings.scratch)
            .map_err(machine)
    }
}

#[async_trait]
impl SceneRunner for ManimSandbox {
    async fn check(&self, code: &SceneCode) -> Result<(), SceneError> {
        self.check_shape(code)?;
        let dir = self.scratch_dir("check-").await?;
        let args = vec![
            "-I".into(),
            "-B".into(),
            "-c".into(),
            CHECK_PY.into(),
            code.class_name.clone().into(),
        ];
        let python = &self.settings.python;
        let stdin = Some(code.source.clone().into_bytes());
        let _slot = self.pool.slot().await;
        let ran = jail::run(python, args, dir.path(), None, CHECK_LIMITS, stdin)
            .await
            .map_err(|e| SceneError::Machine(format!("cannot start {}: {e}", python.display())))?;
        #[derive(serde::Deserialize)]
        struct Checked {
            problems: Vec<String>,
        }
        let checked: Checked = match ran.status {
            Some(status) if status.success() => serde_json::from_slice(&ran.stdout)
                .map_err(|e| SceneError::Machine(format!("the scene checker answered unreadably: {e}")))?,
            None => return Err(SceneError::Code("the code is too complex to check in time".into())),
            Some(status) => {
                return Err(SceneError::Machine(format!(
                    "the scene checker failed ({status}): {}",
                    ran.stderr_tail.trim()
                )))
            }
        };
        if checked.problems.is_empty() {
            Ok(())
        } else {
            Err(SceneError::Code(checked.problems.join("\n")))
        }
    }

    async fn render(&self, code: &SceneCode, frame: SceneFrame) -> Result<Artifact, SceneError> {
        self.check_shape(code)?;
        let SceneFrame { width, height, fps } = frame;
        // H.264 in 4:2:0 needs even sides; plans only ask for such frames.
        if width < 16 || height < 16 || width > 8192 || height > 8192 || width % 2 == 1 || height % 2 == 1 {
            return Err(SceneError::Machine(format!("cannot render a {width}x{height} frame")));
        }
        if !(1..=120).contains(&fps) {
            return Err(SceneError::Machine(format!("cannot render at {fps} frames per second")));
        }
        let dir = self.scratch_dir("render-").await?;
        // The folder's real path: the audit hook compares resolved paths.
        let work = dir
            .path()
            .canonicalize()
            .map_err(|e| SceneError::Machine(format!("cannot resolve the render folder: {e}")))?;
        let request = json!({
            "class_name": code.class_name,
            "width": width,
            "height": height,
            "fps": fps,
            "work": work,
            "result": work.join("result.json"),
            "limits": {
                "cpu_seconds": self.settings.cpu_seconds,
                "memory_bytes": self.settings.memory_bytes,
                "max_output_bytes": self.settings.max_output_bytes,
            },
        });
        let write = |name: &str, body: Vec<u8>| {
            std::fs::write(work.join(name), body)
                .map_err(|e| SceneError::Machine(format!("cannot write the render's {name}: {e}")))
        };
        write("scene.py", code.source.clone().into_bytes())?;
        write("request.json", request.to_string().into_bytes())?;

        let python = &self.settings.python;
        let args = vec![
            "-I".into(),
            "-B".into(),
            "-c".into(),
            SANDBOX_PY.into(),
            work.join("request.json").into(),
        ];
        let unshare = self.unshare().await;
        let slot = self.pool.slot().await;
        let started = std::time::Instant::now();
        let ran = jail::run(python, args, &work, unshare, self.limits(), None)
            .await
            .map_err(|e| SceneError::Machine(format!("cannot start {}: {e}", python.display())))?;
        let report: Option<Report> = std::fs::read(work.join("result.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let cx = Context {
            work: &work,
            wall: self.settings.timeout,
            cpu_seconds: self.settings.cpu_seconds,
            file_bytes: self.settings.max_output_bytes,
            python,
        };
        let movie = outcome(report, ran.status, &ran.stderr_tail, &cx);
        tracing::debug!(elapsed = ?started.elapsed(), ok = movie.is_ok(), "rendered a scene");
        drop(slot);
        let movie = movie?;

        // The movie moves out; the render's folder (and all it wrote) goes now.
        let out_dir = self.scratch_dir("scene-").await?;
        let out = out_dir.path().join("scene.mp4");
        tokio::fs::rename(&movie, &out)
            .await
            .map_err(|e| SceneError::Machine(format!("cannot keep the rendered movie: {e}")))?;
        drop(dir);
        let probed = crate::probe(&out)
            .await
            .map_err(|e| SceneError::Machine(format!("the rendered movie cannot be probed: {e}")))?;
        let info = MediaInfo {
            duration: (probed.duration > 0.0).then_some(probed.duration),
            width: probed.width,
            height: probed.height,
            size_bytes: probed.size_bytes,
            words: None,
        };
        let file = tokio::fs::File::open(&out)
            .await
            .map_err(|e| SceneError::Machine(format!("cannot read the rendered movie: {e}")))?;
        // The movie's folder lives exactly as long as the stream reading from it.
        let body = ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
            let _keep = &out_dir;
            chunk
        });
        Ok(Artifact {
            body: Box::pin(body),
            content_type: "video/mp4".into(),
            extension: "mp4".into(),
            info,
        })
    }
}
