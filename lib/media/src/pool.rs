//! The bound on a node's media work: ffmpeg tasks, Manim renders and the `local` provider's
//! renders each take a slot for as long as their processes run. They are CPU-bound, so more
//! of them at once than there are cores only makes each slower (and, unbounded, a busy node
//! ran a hundred ffmpegs at once and starved its API). Waits (for a provider, a download's
//! peer) hold no slot.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct WorkPool {
    slots: Arc<Semaphore>,
    size: usize,
}

impl WorkPool {
    /// `size` slots (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        WorkPool {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// One slot per core: the default.
    pub fn per_core() -> Self {
        Self::new(default_size())
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a slot; the work holds it until the permit is dropped.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the pool is never closed")
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

/// How much lower than the node's own the CPU priority of media processes is (`nice` 10):
/// with every core encoding, the API's answers and the engine's writes still come first
/// (`make bench-load`: status p99 14 ms with both cores encoding).
const MEDIA_NICENESS: libc::c_int = 10;

/// Starts `command`'s process at the media work's lower CPU priority (ffmpeg, ffprobe, the
/// Manim sandbox).
pub(crate) fn at_media_priority(command: &mut tokio::process::Command) {
    // SAFETY: runs between fork and exec and calls only setpriority, which is
    // async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            // Lowering one's own priority needs no privilege; were it refused all the same,
            // the work would run at the node's priority, which is no reason to fail it.
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, MEDIA_NICENESS);
            Ok(())
        });
    }
}

/// The number of cores this process may use.
pub fn default_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn media_processes_run_at_a_lower_priority() {
        let mut command = tokio::process::Command::new("sh");
        // Field 19 of /proc/<pid>/stat is the niceness (the command has no spaces in it).
        command.args(["-c", "cut -d' ' -f19 /proc/$$/stat"]);
        at_media_priority(&mut command);
        let out = command.output().await.unwrap();
        let nice: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, (own + MEDIA_NICENESS).min(19));
    }

    #[tokio::test]
    async fn no_more_than_its_size_run_at_once() {
        let pool = WorkPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let _slot = pool.slot().await;
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.free(), 2);
    }
}
