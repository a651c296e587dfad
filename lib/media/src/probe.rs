//! `probe`: what ffprobe says about a file.

use std::path::Path;

use serde::Deserialize;

use crate::ffmpeg::{ffprobe, file_arg};
use crate::FfmpegError;
use reelay_core::domain::TimedWord;
use reelay_core::plan::AspectRatio;

/// The facts about a media file that the pipelines need.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// Seconds: the container's duration, else the longest stream's, else 0
    /// (a still image).
    pub duration: f64,
    /// Display size of the first video stream (rotation metadata applied,
    /// as ffmpeg applies it when decoding); `None` for audio-only files.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Reduced `"W:H"` of width:height, e.g. `"9:16"`; `None` without video.
    pub aspect_ratio: Option<String>,
    pub has_audio: bool,
    pub size_bytes: u64,
    /// ffprobe's `format_name`, e.g. `"mov,mp4,m4a,3gp,3g2,mj2"`.
    pub format: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub fps: Option<f64>,
    /// Word timings in the file's `comment` tag (`{"transcript": [{word, start, end}]}`), as
    /// the speech providers write them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TimedWord>>,
}

/// Probes `path` with `ffprobe -print_format json -show_format -show_streams`.
pub async fn probe(path: &Path) -> Result<Probe, FfmpegError> {
    Ok(probe_detailed(path).await?.probe)
}

/// `Probe` plus what merge needs to decide whether streams can be copied.
#[derive(Debug, Clone)]
pub(crate) struct Detailed {
    pub probe: Probe,
    pub pix_fmt: Option<String>,
    /// (channels, channel layout, sample rate) of the first audio stream.
    pub audio_layout: Option<(u32, Option<String>, Option<String>)>,
}

pub(crate) async fn probe_detailed(path: &Path) -> Result<Detailed, FfmpegError> {
    let out = ffprobe(vec![
        "-print_format".into(),
        "json".into(),
        "-show_format".into(),
        "-show_streams".into(),
        file_arg(path),
    ])
    .await?;
    parse(&out)
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    #[serde(default)]
    tags: RawFormatTags,
}

#[derive(Deserialize, Default)]
struct RawFormatTags {
    comment: Option<String>,
}

#[derive(Deserialize)]
struct TaggedTranscript {
    transcript: Vec<TimedWord>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    channels: Option<u32>,
    channel_layout: Option<String>,
    sample_rate: Option<String>,
    #[serde(default)]
    disposition: RawDisposition,
    #[serde(default)]
    side_data_list: Vec<RawSideData>,
    #[serde(default)]
    tags: RawTags,
}

#[derive(Deserialize, Default)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct RawSideData {
    rotation: Option<f64>,
}

#[derive(Deserialize, Default)]
struct RawTags {
    rotate: Option<String>,
}

fn parse(json: &[u8]) -> Result<Detailed, FfmpegError> {
    let raw: Raw = serde_json::from_slice(json).map_err(|e| FfmpegError::Probe(e.to_string()))?;
    let format = raw
        .format
        .ok_or_else(|| FfmpegError::Probe("no format section".into()))?;

    // Cover art in audio files shows up as a video stream; it is not video.
    let video = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0);
    let audio = raw.streams.iter().find(|s| s.codec_type.as_deref() == Some("audio"));

    let (width, height) = match video.and_then(|v| Some((v.width?, v.height?))) {
        Some((w, h)) if video.is_some_and(is_quarter_turn) => (Some(h), Some(w)),
        Some((w, h)) => (Some(w), Some(h)),
        None => (None, None),
    };
    let aspect_ratio = match (width, height) {
        (Some(w), Some(h)) => AspectRatio::of_frame(w, h).map(|r| r.to_string()),
        _ => None,
    };

    let stream_max = raw
        .streams
        .iter()
        .filter_map(|s| parse_f64(s.duration.as_deref()))
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
    let duration = parse_f64(format.duration.as_deref()).or(stream_max).unwrap_or(0.0);

    let fps =
        video.and_then(|v| parse_rate(v.avg_frame_rate.as_deref()).or_else(|| parse_rate(v.r_frame_rate.as_deref())));

    Ok(Detailed {
        pix_fmt: video.and_then(|v| v.pix_fmt.clone()),
        audio_layout: audio.map(|a| (a.channels.unwrap_or(0), a.channel_layout.clone(), a.sample_rate.clone())),
        probe: Probe {
            duration,
            width,
            height,
            aspect_ratio,
            has_audio: audio.is_some(),
            size_bytes: format.size.as_deref().and_then(|s| s.trim().parse().ok()).unwrap_or(0),
            format: format.format_name.unwrap_or_default(),
            video_codec: video.and_then(|v| v.codec_name.clone()),
            audio_codec: audio.and_then(|a| a.codec_name.clone()),
            fps,
            // Any other comment is someone else's: no words then.
            words: format
                .tags
                .comment
                .and_then(|c| serde_json::from_str::<TaggedTranscript>(&c).ok())
                .map(|t| t.transcript),
        },
    })
}

/// Phone videos store portrait footage as landscape plus a 90° rotation.
fn is_quarter_turn(s: &RawStream) -> bool {
    let rotation = s
        .side_data_list
        .iter()
        .find_map(|d| d.rotation)
        .or_else(|| parse_f64(s.tags.rotate.as_deref()));
    rotation.is_some_and(|r| (r.round() as i64).rem_euclid(180) == 90)
}

fn parse_f64(s: Option<&str>) -> Option<f64> {
    s?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// "30000/1001" -> 29.97; "0/0" (unknown) -> None.
fn parse_rate(s: Option<&str>) -> Option<f64> {
    let (n, d) = s?.split_once('/')?;
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rotated_video_with_cover_art_audio() {
        let json = br#"{
          "streams": [
            {"codec_type":"video","codec_name":"mjpeg","width":600,"height":600,
             "disposition":{"attached_pic":1}},
            {"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
             "pix_fmt":"yuv420p","avg_frame_rate":"30000/1001","r_frame_rate":"30/1",
             "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
            {"codec_type":"audio","codec_name":"aac","channels":2,
             "channel_layout":"stereo","sample_rate":"48000","duration":"2.5"}
          ],
          "format": {"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"2.500000","size":"1234"}
        }"#;
        let d = parse(json).unwrap();
        let p = d.probe;
        assert_eq!((p.width, p.height), (Some(1080), Some(1920)));
        assert_eq!(p.aspect_ratio.as_deref(), Some("9:16"));
        assert_eq!(p.video_codec.as_deref(), Some("h264"));
        assert!((p.fps.unwrap() - 29.97).abs() < 0.01);
        assert!(p.has_audio);
        assert_eq!(p.size_bytes, 1234);
        assert_eq!(p.duration, 2.5);
        assert_eq!(d.pix_fmt.as_deref(), Some("yuv420p"));
        assert_eq!(d.audio_layout, Some((2, Some("stereo".into()), Some("48000".into()))));
    }

    #[test]
    fn audio_only_has_no_video_fields() {
        let json = br#"{"streams":[{"codec_type":"audio","codec_name":"aac","duration":"1.0"}],
                        "format":{"format_name":"ipod"}}"#;
        let p = parse(json).unwrap().probe;
        assert_eq!(p.duration, 1.0);
        assert_eq!((p.width, p.height, p.aspect_ratio, p.fps), (None, None, None, None));
        assert_eq!(p.size_bytes, 0);
    }

    #[tokio::test]
    async fn probing_a_non_media_file_is_an_ffmpeg_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.mp4");
        std::fs::write(&path, b"just some text").unwrap();
        let err = probe(&path).await.unwrap_err();
        assert!(matches!(err, FfmpegError::Ffmpeg(ref m) if !m.is_empty()), "{err:?}");
        let missing = probe(&dir.path().join("missing.mp4")).await.unwrap_err();
        assert!(matches!(missing, FfmpegError::Ffmpeg(_)), "{missing:?}");
    }

    #[test]
    fn garbage_is_a_probe_error() {
        assert!(matches!(parse(b"not json"), Err(FfmpegError::Probe(_))));
        assert!(matches!(parse(b"{}"), Err(FfmpegError::Probe(_))));
    }
}
