//! reelay's media toolbox: async wrappers around the `ffmpeg` and `ffprobe`
//! command-line tools.
//!
//! - [`probe`]: duration, size, codecs of a file;
//! - [`merge`]: concatenate videos and stills (stream copy when possible,
//!   otherwise one re-encode with optional xfade transitions) and mix audio
//!   tracks over them;
//! - [`reframe`]: crop or pad a video to an exact frame size;
//! - [`burn_captions`]: timed words burned in as styled, karaoke-highlighted captions;
//! - [`render_video`], [`render_image`], [`render_audio`]: cheap stand-in
//!   renders for the offline `local` AI provider;
//! - [`render_speech`], [`transcribe_speech`]: its offline voice (espeak-ng) and
//!   recogniser (pocketsphinx through Python);
//! - [`replace_background`]: key a background out (a colour, or the input's alpha) onto a
//!   colour or transparent;
//! - [`layer`]: composite videos and stills over a base (placed, chroma-keyed) in one pass;
//! - [`fast_start`]: an MP4 re-packed to stream, its index first;
//! - [`FfmpegMedia`]: the engine's `Media` port on top of them;
//! - [`WorkPool`]: the bound on how much of this media work runs at once;
//! - [`ManimSandbox`]: the engine's `SceneRunner` port: generated Manim scenes checked
//!   statically and rendered in a sandbox.
//!
//! The binaries are looked up on `PATH`, or taken from `REELAY_FFMPEG` /
//! `REELAY_FFPROBE` / `REELAY_ESPEAK`. Outputs are written to a hidden temporary file next to
//! the destination and renamed into place on success, so a failed or
//! interrupted call never leaves a partial file at the destination. Encoded
//! video is H.264 (yuv420p) with AAC audio.

mod captions;
mod chain;
mod encoding;
mod error;
mod faststart;
mod ffmpeg;
mod keying;
mod layer;
mod manim;
mod merge;
mod pool;
mod port;
mod probe;
mod reframe;
mod render;
mod speech;

pub use captions::{burn_captions, words_in_file};
pub use chain::{run_chain, ChainStart, ChainStep};
pub use error::FfmpegError;
pub use faststart::fast_start;
pub use keying::{replace_background, Replacement};
pub use layer::layer;
pub use manim::{ManimSandbox, ManimSettings};
pub use merge::{merge, ItemKind, MergeItem, MergeReport};
pub use pool::WorkPool;
pub use port::FfmpegMedia;
pub use probe::{probe, Probe};
pub use reframe::reframe;
pub use render::{render_audio, render_image, render_video, BACKDROP};
pub use speech::{render_speech, transcribe_speech};
