//! The crate's own error: what went wrong running ffmpeg/ffprobe. The engine's port turns it
//! into the port's `MediaError`.

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    /// ffmpeg/ffprobe ran and exited non-zero; carries the tail of its stderr.
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    /// The binary could not be started (missing, not executable...).
    #[error("could not run {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad argument (no items, ratio 0, odd frame size...) or an output
    /// location that cannot be written.
    #[error("invalid media input: {0}")]
    Invalid(String),
    /// ffprobe succeeded but its JSON was not what we expected.
    #[error("could not read probe output: {0}")]
    Probe(String),
}
