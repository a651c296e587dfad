//! `reframe`: change a video's frame size/aspect ratio by cropping or padding.

use std::path::Path;

use reelay_core::plan::{Quality, ReframeMode};

use crate::ffmpeg::filter_picture;
use crate::FfmpegError;

/// Re-frames `input` to exactly `width`x`height` (even numbers, at most
/// 8192). The video is re-encoded with H.264; audio streams are copied.
pub async fn reframe(
    input: &Path,
    width: u32,
    height: u32,
    mode: ReframeMode,
    out: &Path,
    quality: Quality,
) -> Result<(), FfmpegError> {
    checked_size(width, height)?;
    filter_picture(input, fit_filter(width, height, mode), out, quality).await
}

/// A reframe's size: even and within 2..=8192 on both sides.
pub(crate) fn checked_size(width: u32, height: u32) -> Result<(), FfmpegError> {
    let valid = |v: u32| (2..=8192).contains(&v) && v.is_multiple_of(2);
    if valid(width) && valid(height) {
        Ok(())
    } else {
        Err(FfmpegError::Invalid(format!(
            "reframe size {width}x{height} must be even and within 2..=8192"
        )))
    }
}

/// The filter chain that makes any picture exactly `w`x`h`, square pixels.
pub(crate) fn fit_filter(w: u32, h: u32, mode: ReframeMode) -> String {
    match mode {
        // force_divisible_by rounds up when covering, so the crop always fits.
        ReframeMode::Crop => format!(
            "scale={w}:{h}:force_original_aspect_ratio=increase:force_divisible_by=2,\
             crop={w}:{h},setsar=1"
        ),
        ReframeMode::Pad => format!(
            "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{probe, render_video};

    #[tokio::test]
    async fn reframes_landscape_to_portrait_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        render_video("landscape", 1.0, 320, 180, &src).await.unwrap();
        let src_duration = probe(&src).await.unwrap().duration;
        for (mode, name) in [(ReframeMode::Crop, "crop.mp4"), (ReframeMode::Pad, "pad.mp4")] {
            let out = dir.path().join(name);
            reframe(&src, 90, 160, mode, &out, Quality::default()).await.unwrap();
            let p = probe(&out).await.unwrap();
            assert_eq!((p.width, p.height), (Some(90), Some(160)), "{mode:?}");
            assert_eq!(p.aspect_ratio.as_deref(), Some("9:16"));
            assert!((p.duration - src_duration).abs() < 0.1, "{mode:?} {p:?}");
            assert!(p.has_audio);
            assert_eq!(p.audio_codec.as_deref(), Some("aac"));
        }
    }

    #[tokio::test]
    async fn odd_or_zero_size_is_invalid() {
        let p = Path::new("/nonexistent.mp4");
        for (w, h) in [(0, 160), (91, 160), (90, 0), (90, 9000)] {
            let r = reframe(p, w, h, ReframeMode::Pad, p, Quality::default()).await;
            assert!(matches!(r, Err(FfmpegError::Invalid(_))), "{w}x{h}: {r:?}");
        }
    }

    #[tokio::test]
    async fn failure_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("not-media.mp4");
        std::fs::write(&src, b"this is not a video").unwrap();
        let out = dir.path().join("out.mp4");
        let err = reframe(&src, 90, 160, ReframeMode::Crop, &out, Quality::default())
            .await
            .unwrap_err();
        assert!(matches!(err, FfmpegError::Ffmpeg(ref m) if !m.is_empty()), "{err:?}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("not-media.mp4")]);
    }
}
