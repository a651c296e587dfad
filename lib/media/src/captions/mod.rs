//! `addSubtitles`: timed words burned into a video as ASS captions by libass, in the one
//! ffmpeg pass that reads the video; the audio is copied as it is.
//!
//! Fonts come from fontconfig: the presets' families (Arial, Helvetica, Courier New, Times
//! New Roman) resolve to whatever the system aliases them to (DejaVu on Debian), and libass
//! falls back, glyph by glyph, to an installed font that has the script (CJK: WenQuanYi
//! Micro Hei), shaping Arabic and Hebrew with HarfBuzz and FriBidi.

mod ass;
mod style;

use std::path::Path;

use reelay_core::domain::TimedWord;
use reelay_core::plan::{CaptionStyle, Quality};
use reelay_core::transcript;

use crate::chain::{run_chain, ChainStart, ChainStep};
use crate::{probe, FfmpegError};

/// Burns `words` into `video` in `style`, writing `out` (H.264, the audio copied).
pub async fn burn_captions(
    video: &Path,
    words: &[TimedWord],
    style: &CaptionStyle,
    out: &Path,
    quality: Quality,
) -> Result<(), FfmpegError> {
    // One edit: a chain of one, on the file (which probes it for its size).
    let step = ChainStep::Captions {
        words: words.to_vec(),
        style: Box::new(style.clone()),
    };
    run_chain(&ChainStart::File(video.to_path_buf()), &[step], out, quality).await
}

/// Writes `words`' captions for a `width`x`height` picture as an ASS script at `script`,
/// and answers the filter that burns them in.
pub(crate) async fn caption_filter(
    words: &[TimedWord],
    style: &CaptionStyle,
    width: u32,
    height: u32,
    script: &Path,
) -> Result<String, FfmpegError> {
    if words.is_empty() {
        return Err(FfmpegError::Invalid("the transcript holds no words".into()));
    }
    let look = style::resolve(style, width, height);
    tokio::fs::write(script, ass::script(words, &look, width, height))
        .await
        .map_err(|e| FfmpegError::Invalid(format!("cannot write {}: {e}", script.display())))?;
    Ok(format!("ass=filename={}", filter_path(script)))
}

/// The words a file holds: a transcript (JSON, SRT, WebVTT), or speech whose `comment` tag
/// carries its word timings (ElevenLabs, Hume).
pub async fn words_in_file(path: &Path) -> Result<Vec<TimedWord>, FfmpegError> {
    let unreadable = |e: std::io::Error| FfmpegError::Invalid(format!("cannot read the transcript: {e}"));
    let size = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
    if size <= MAX_TRANSCRIPT_BYTES {
        let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let invalid = |e: &dyn std::fmt::Display| FfmpegError::Invalid(format!("cannot read the transcript: {e}"));
            let mut words = transcript::normalise(text.trim_start_matches('\u{feff}'))
                .map_err(|e| invalid(&e))?
                .words;
            words.retain(|w| !w.word.trim().is_empty());
            if words.is_empty() {
                return Err(invalid(&"it holds no words"));
            }
            words.sort_by(|a, b| a.start.total_cmp(&b.start));
            return Ok(words);
        }
    }
    let probed = probe(path)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("cannot read the transcript: {e}")))?;
    probed.words.ok_or_else(|| {
        FfmpegError::Invalid(
            "the transcript input is media without word timings: transcribe it with a `transcribe` job".into(),
        )
    })
}

/// Transcript text larger than this is no transcript.
const MAX_TRANSCRIPT_BYTES: u64 = 64 << 20;

/// A path as a filter option value inside a filtergraph: escaped once for the option
/// (`\ ' :`) and once for the graph (`\ ' [ ] , ;`).
fn filter_path(path: &Path) -> String {
    let escape = |s: &str, special: &[char]| {
        s.chars().fold(String::new(), |mut out, c| {
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    let option = escape(&path.to_string_lossy(), &['\\', '\'', ':']);
    escape(&option, &['\\', '\'', '[', ']', ',', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_video;

    #[test]
    fn filter_paths_are_escaped_twice() {
        assert_eq!(filter_path(Path::new("/a/b.ass")), "/a/b.ass");
        assert_eq!(filter_path(Path::new("/a:b/c,d.ass")), "/a\\\\:b/c\\,d.ass");
    }

    #[tokio::test]
    async fn corrupt_video_or_empty_transcript_is_invalid_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let words = [TimedWord {
            word: "hi".into(),
            start: 0.0,
            end: 0.5,
        }];
        let out = dir.path().join("out.mp4");
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, b"not a video").unwrap();
        let err = burn_captions(&junk, &words, &CaptionStyle::default(), &out, Quality::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FfmpegError::Invalid(m) if m.contains("cannot read the video")),
            "{err:?}"
        );
        let clip = dir.path().join("clip.mp4");
        render_video("x", 0.5, 64, 64, &clip).await.unwrap();
        let err = burn_captions(&clip, &[], &CaptionStyle::default(), &out, Quality::default())
            .await
            .unwrap_err();
        assert!(matches!(err, FfmpegError::Invalid(_)), "{err:?}");
        assert!(!out.exists());
    }
}
