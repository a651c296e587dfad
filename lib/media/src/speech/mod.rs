//! Offline speech for the `local` provider: a voice (espeak-ng) and a recogniser
//! (pocketsphinx, a Python package that ships its model), so that speech → transcript →
//! captions runs with no account and the tests can check the words come back.

use std::ffi::OsString;
use std::path::Path;

use crate::ffmpeg::{binary, container_args, ffmpeg, file_arg, run, secs, TempFile};
use crate::FfmpegError;

/// The recogniser, run by the Python the operator names (`REELAY_PYTHON`).
const TRANSCRIBE_PY: &str = include_str!("transcribe.py");

/// Speaks `text` (English) as stereo AAC at `out`, padded with silence to at least
/// `min_duration` seconds (a track laid under a slideshow keeps its length).
pub async fn render_speech(text: &str, min_duration: f64, out: &Path) -> Result<(), FfmpegError> {
    if text.trim().is_empty() {
        return Err(FfmpegError::Invalid("there is no text to speak".into()));
    }
    let script = TempFile::beside(out, ".txt")?;
    tokio::fs::write(script.path(), text)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("cannot write the text to speak: {e}")))?;
    let wav = TempFile::beside(out, ".wav")?;
    // The Klatt variant: offline recognisers follow it far better than the default voice.
    let voice: Vec<OsString> = vec![
        "-v".into(),
        "en-us+klatt".into(),
        "-s".into(),
        "150".into(),
        "-w".into(),
        wav.path().into(),
        "-f".into(),
        script.path().into(),
    ];
    run(&binary("REELAY_ESPEAK", "espeak-ng"), voice, false).await?;
    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec!["-i".into(), file_arg(wav.path())];
    if min_duration > 0.0 {
        args.extend(["-af".into(), format!("apad=whole_dur={}", secs(min_duration)).into()]);
    }
    args.extend(["-c:a", "aac", "-ac", "2", "-ar", "48000"].map(OsString::from));
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// Recognises the speech of `input` (audio, or a video's sound) into a transcript JSON at
/// `out`: `{language, text, words: [{word, start, end}], segments: [{start, end, text}]}`.
pub async fn transcribe_speech(python: &str, input: &Path, out: &Path) -> Result<(), FfmpegError> {
    let pcm = TempFile::beside(out, ".pcm")?;
    let decode: Vec<OsString> = vec![
        "-i".into(),
        file_arg(input),
        "-vn".into(),
        "-ac".into(),
        "1".into(),
        "-ar".into(),
        "16000".into(),
        "-f".into(),
        "s16le".into(),
        file_arg(pcm.path()),
    ];
    ffmpeg(decode).await?;
    let transcript = run(python, vec!["-c".into(), TRANSCRIBE_PY.into(), pcm.path().into()], true).await?;
    let tmp = TempFile::beside(out, "")?;
    tokio::fs::write(tmp.path(), transcript)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("cannot write the transcript: {e}")))?;
    tmp.persist(out).await
}
