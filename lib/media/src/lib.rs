//! reelay's media toolbox: async wrappers around the `ffmpeg` and `ffprobe`
//! command-line tools.
//!
//! - [`probe`]: duration, size, codecs of a file;
//! - [`merge`]: concatenate videos and stills (stream copy when possible,
//!   otherwise one re-encode with optional xfade transitions) and mix audio
//!   tracks over them;
//! - [`reframe`]: crop or pad a video to an exact frame size;
//! - [`render_video`], [`render_image`], [`render_audio`]: cheap stand-in
//!   renders for the offline `local` AI provider;
//! - [`render_speech`], [`transcribe_speech`]: its offline voice (espeak-ng) and
//!   recogniser (pocketsphinx through Python);
//! - [`FfmpegMedia`]: the engine's `Media` port on top of them.
//!
//! The binaries are looked up on `PATH`, or taken from `REELAY_FFMPEG` /
//! `REELAY_FFPROBE` / `REELAY_ESPEAK`. Outputs are written to a hidden temporary file next to
//! the destination and renamed into place on success, so a failed or
//! interrupted call never leaves a partial file at the destination. Encoded
//! video is H.264 (yuv420p) with AAC audio.

mod error;
mod ffmpeg;
mod merge;
mod port;
mod probe;
mod reframe;
mod render;
mod speech;

pub use error::FfmpegError;
pub use merge::{merge, ItemKind, MergeItem, MergeReport};
pub use port::FfmpegMedia;
pub use probe::{probe, Probe};
pub use reframe::reframe;
pub use render::{render_audio, render_image, render_video};
pub use speech::{render_speech, transcribe_speech};
