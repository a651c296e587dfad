//! One sandboxed Python process: its own folder (cwd, HOME, TMPDIR), a cleared environment,
//! its own process group (killed whole on timeout, on drop and after it ends), rlimits set
//! between fork and exec, and, where the machine allows it, a new user and network namespace
//! (`unshare -rn`: no interface but a loopback that is down).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::pool::at_media_priority;

/// What the process may use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub file_bytes: u64,
    pub wall: Duration,
}

/// How the process ended.
#[derive(Debug)]
pub(super) struct Ran {
    /// `None`: it outlived `Limits::wall` and was killed.
    pub status: Option<ExitStatus>,
    /// The start of its stdout (up to `KEEP_STDOUT` bytes).
    pub stdout: Vec<u8>,
    /// The end of its stderr, as text.
    pub stderr_tail: String,
}

const KEEP_STDOUT: usize = 256 * 1024;
const KEEP_STDERR: usize = 8 * 1024;
/// Only these reach the process: no credentials, no proxies, no provider keys.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Past the soft CPU limit (SIGXCPU, reported as the code's fault), the kernel's SIGKILL.
const CPU_GRACE_SECONDS: u64 = 5;

/// Whether `unshare -rn` works here (user namespaces allowed, the tool installed): probed
/// once per sandbox, since containers often forbid it.
pub(super) async fn probe_unshare() -> Option<PathBuf> {
    let unshare = PathBuf::from("unshare");
    let probe = Command::new(&unshare)
        .args(["-rn", "true"])
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(status)) if status.success() => Some(unshare),
        outcome => {
            tracing::warn!(
                ?outcome,
                "unshare -rn is not available: scenes render without a network namespace"
            );
            None
        }
    }
}

/// Runs `python args…` in `work` under `limits`, inside `unshare` when given, with `stdin`
/// as its standard input.
pub(super) async fn run(
    python: &Path,
    args: Vec<OsString>,
    work: &Path,
    unshare: Option<&Path>,
    limits: Limits,
    stdin: Option<Vec<u8>>,
) -> io::Result<Ran> {
    let mut command = match unshare {
        Some(unshare) => {
            let mut c = Command::new(unshare);
            c.arg("-rn").arg(python);
            c
        }
        None => Command::new(python),
    };
    command
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", work)
        .env("TMPDIR", work)
        .env("XDG_CACHE_HOME", work.join(".cache"))
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1")
        // One thread per numeric library: threads each reserve address space under RLIMIT_AS.
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and calls only setrlimit, which is
    // async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || set_limits(limits));
    }
    at_media_priority(&mut command);
    let mut child = command.spawn()?;
    // The group is killed however this ends: timeout, error, or the future being dropped.
    let group = child.id().map(|pid| Group(pid as libc::pid_t));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written concurrently with the wait: a full pipe must not block the timeout.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let stdout = tokio::spawn(keep_head(child.stdout.take(), KEEP_STDOUT));
    let stderr = tokio::spawn(keep_tail(child.stderr.take(), KEEP_STDERR));
    let status = match tokio::time::timeout(limits.wall, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            if let Some(group) = &group {
                group.kill();
            }
            // Already dead by the group kill, most likely: this reaps it.
            let _ = child.kill().await;
            None
        }
    };
    // Anything the process left in its group dies before the pipes are read to their end.
    if let Some(group) = &group {
        group.kill();
    }
    // A process that left the group (it cannot start one, but still) must not hold us up.
    let drained = Duration::from_secs(5);
    let stdout = tokio::time::timeout(drained, stdout).await.ok().and_then(Result::ok);
    let stderr = tokio::time::timeout(drained, stderr).await.ok().and_then(Result::ok);
    let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
    Ok(Ran {
        status,
        stdout,
        stderr_tail: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn set_limits(limits: Limits) -> io::Result<()> {
    let cpu = limits.cpu_seconds;
    set_limit(libc::RLIMIT_CPU, cpu, cpu.saturating_add(CPU_GRACE_SECONDS))?;
    set_limit(libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)?;
    set_limit(libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes)?;
    set_limit(libc::RLIMIT_CORE, 0, 0)
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a plain syscall on a valid struct.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A process group, sent SIGKILL when dropped.
struct Group(libc::pid_t);

impl Group {
    fn kill(&self) {
        // SAFETY: a plain syscall; the group id is the child's pid, which stays reserved
        // while any member of the group lives.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn keep_head(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buf = vec![0u8; 16 * 1024];
    // Read to the end (a writer blocked on a full pipe would never finish), keep the start.
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn keep_tail(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * max {
            kept.drain(..kept.len() - max);
        }
    }
    let start = kept.len().saturating_sub(max);
    kept.split_off(start)
}
