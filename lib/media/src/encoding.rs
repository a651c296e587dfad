//! How reelay encodes a picture, on purpose. Every edit's output is H.264 (libx264) in
//! yuv420p, which every browser and phone plays, in an MP4 whose index comes first
//! (`ffmpeg::container_args`: it streams before it has all arrived), with AAC audio where the
//! audio is encoded (ffmpeg's default 128 kb/s stereo) and copied where an edit leaves it
//! alone. A plan's `quality` trades time for fidelity:
//!
//! | quality    | x264 preset | CRF | for |
//! |------------|-------------|-----|-----|
//! | `draft`    | ultrafast   | 28  | previews: the fastest, softer (and its files are not smaller) |
//! | `standard` | veryfast    | 23  | the default: x264's default quality, quickly |
//! | `high`     | medium      | 18  | near transparent to the eye, about twice standard's time |
//!
//! A keyframe comes at least every two seconds whatever the frame rate, so players seek
//! quickly and a long edit can be cut into pieces there. Threads are x264's own choice (about
//! one per core): the media pool already runs no more encodes at once than there are cores.

use std::ffi::OsString;

use reelay_core::plan::Quality;

/// Seconds between forced keyframes.
const KEYFRAME_SECONDS: u32 = 2;

/// The output options that encode the picture at `quality`.
pub(crate) fn video_args(quality: Quality) -> Vec<OsString> {
    let (preset, crf) = match quality {
        Quality::Draft => ("ultrafast", "28"),
        Quality::Standard => ("veryfast", "23"),
        Quality::High => ("medium", "18"),
    };
    let keyframes = format!("expr:gte(t,n_forced*{KEYFRAME_SECONDS})");
    ["-c:v", "libx264", "-preset", preset, "-crf", crf, "-pix_fmt", "yuv420p"]
        .into_iter()
        .map(OsString::from)
        .chain(["-force_key_frames".into(), keyframes.into()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{reframe, render_video};
    use reelay_core::plan::ReframeMode;

    /// Seconds at which `path`'s keyframes fall.
    fn keyframes(path: &std::path::Path) -> Vec<f64> {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey"])
            .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
            .collect()
    }

    /// The settings x264 wrote into `path`'s stream (its "encoding settings" SEI).
    fn x264_settings(path: &std::path::Path) -> String {
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let start = text
            .find("x264 - core")
            .unwrap_or_else(|| panic!("{} holds no x264 settings", path.display()));
        text[start..].split('\0').next().unwrap().to_string()
    }

    /// The same edit at each quality: encoded with that quality's preset and CRF (as x264
    /// recorded them in the stream), and with a keyframe at least every two seconds.
    #[tokio::test]
    async fn each_quality_encodes_as_documented_and_keeps_keyframes_close() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        render_video("qualities", 7.0, 640, 360, &src).await.unwrap();
        // The CRF, and a setting each preset sets its own way (ultrafast: no CABAC, no
        // motion refinement; veryfast: subme 2; medium: subme 7).
        for (quality, written) in [
            (Quality::Draft, ["crf=28.0", "cabac=0", "subme=0"]),
            (Quality::Standard, ["crf=23.0", "cabac=1", "subme=2"]),
            (Quality::High, ["crf=18.0", "cabac=1", "subme=7"]),
        ] {
            let out = dir.path().join(format!("{}.mp4", quality.name()));
            reframe(&src, 360, 640, ReframeMode::Crop, &out, quality).await.unwrap();
            let settings = x264_settings(&out);
            for setting in written {
                assert!(settings.contains(setting), "{quality:?}: no {setting} in {settings}");
            }
            let keys = keyframes(&out);
            assert!(keys.len() >= 4, "{quality:?}: keyframes at {keys:?}");
            let widest = keys.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
            assert!(widest <= 2.05, "{quality:?}: keyframes at {keys:?}");
        }
    }
}
