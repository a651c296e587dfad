//! `merge`: concatenate clips and stills, optionally with transitions, and
//! mix audio tracks over the result.
//!
//! Output audio: the result has exactly one audio stream (AAC stereo 48 kHz
//! when re-encoded) if any visual item has audio or any audio item is given;
//! otherwise it is video-only. Visual items without audio get silence so
//! their segment keeps its length.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use reelay_core::plan::{Quality, ReframeMode, Transition, TransitionKind};

use crate::chain::{Graph, GraphAudio};
use crate::ffmpeg::{container_args, ffmpeg, file_arg, secs, TempFile};
use crate::probe::{probe_detailed, Detailed};
use crate::reframe::fit_filter;
use crate::FfmpegError;

/// Frame rate of every re-encoded merge.
const FPS: u32 = 30;
/// How long an image is shown when its item gives no duration.
const DEFAULT_IMAGE_SECONDS: f64 = 1.0;
/// Audio format everything is converted to before concatenating/mixing.
const AUDIO_FORMAT: &str = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Video,
    Image,
    Audio,
}

/// One input of [`merge`].
#[derive(Debug, Clone)]
pub struct MergeItem {
    pub path: PathBuf,
    pub kind: ItemKind,
    /// Images: seconds shown (default 1.0). Videos: trimmed to this if set.
    pub duration: Option<f64>,
    /// Audio: start time in the output, seconds (default 0).
    pub offset: Option<f64>,
    /// Audio: gain, 1.0 = unchanged (default 1.0).
    pub volume: Option<f64>,
}

/// The xfade transition that draws `kind`.
fn xfade_name(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Fade => "fadeblack",
        // xfade's `fade` is a dissolve.
        TransitionKind::Crossfade | TransitionKind::Dissolve => "fade",
        TransitionKind::WipeLeft => "wipeleft",
        TransitionKind::WipeRight => "wiperight",
        TransitionKind::SlideLeft => "slideleft",
        TransitionKind::SlideRight => "slideright",
    }
}

/// How [`merge`] produced its output.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// True when the inputs were joined without re-encoding.
    pub stream_copied: bool,
}

/// Concatenates the visual items (videos and images, in order) and mixes the
/// audio items over the result.
///
/// Visual items are scaled to fit the first one's size (rounded down to even
/// numbers) and padded with black, at 30 fps. The output lasts as long as the
/// visual track: the sum of the visual durations minus one transition per
/// join. When nothing needs re-encoding (no transition, no image, no trim, no
/// audio item, all videos alike) the files are joined with stream copy.
///
/// A transition's duration must be > 0; it is clamped to half the shortest
/// visual item so that two transitions never overlap.
pub async fn merge(
    items: &[MergeItem],
    transition: Option<Transition>,
    out: &Path,
    quality: Quality,
) -> Result<MergeReport, FfmpegError> {
    let plan = Plan::new(items, transition).await?;
    if plan.copyable() {
        match concat_copy(&plan.visuals, out).await {
            Ok(()) => return Ok(MergeReport { stream_copied: true }),
            // e.g. a codec the output container cannot hold: encoding still works.
            Err(e) => tracing::warn!(error = %e, "stream-copy merge failed, re-encoding"),
        }
    }
    graph(&plan).encode(out, quality).await?;
    Ok(MergeReport { stream_copied: false })
}

struct Visual {
    path: PathBuf,
    kind: ItemKind,
    /// Seconds this item lasts in the output (before transitions).
    duration: f64,
    trim: Option<f64>,
    detail: Detailed,
}

struct AudioTrack {
    path: PathBuf,
    offset: f64,
    volume: f64,
}

struct Plan {
    visuals: Vec<Visual>,
    audio: Vec<AudioTrack>,
    /// The transition with its duration already clamped; `None` when there
    /// is none or fewer than two visual items.
    transition: Option<Transition>,
    width: u32,
    height: u32,
}

impl Plan {
    /// Validates the arguments (cheap checks first), then probes every input.
    async fn new(items: &[MergeItem], transition: Option<Transition>) -> Result<Plan, FfmpegError> {
        if items.is_empty() {
            return Err(FfmpegError::Invalid("merge needs at least one item".into()));
        }
        if !items.iter().any(|i| i.kind != ItemKind::Audio) {
            return Err(FfmpegError::Invalid(
                "merge needs at least one video or image item".into(),
            ));
        }
        if let Some(t) = &transition {
            positive("transition duration", t.duration)?;
        }
        for item in items {
            let what = item.path.display();
            match item.kind {
                ItemKind::Image | ItemKind::Video => {
                    if let Some(d) = item.duration {
                        positive(&format!("duration of {what}"), d)?;
                    }
                }
                ItemKind::Audio => {
                    non_negative(&format!("offset of {what}"), item.offset.unwrap_or(0.0))?;
                    non_negative(&format!("volume of {what}"), item.volume.unwrap_or(1.0))?;
                }
            }
        }

        let mut visuals = Vec::new();
        let mut audio = Vec::new();
        for item in items {
            let detail = probe_detailed(&item.path).await?;
            let what = item.path.display();
            match item.kind {
                ItemKind::Audio => {
                    if !detail.probe.has_audio {
                        return Err(FfmpegError::Invalid(format!("{what} has no audio stream")));
                    }
                    audio.push(AudioTrack {
                        path: item.path.clone(),
                        offset: item.offset.unwrap_or(0.0),
                        volume: item.volume.unwrap_or(1.0),
                    });
                }
                kind => {
                    if detail.probe.width.is_none() {
                        return Err(FfmpegError::Invalid(format!("{what} has no picture")));
                    }
                    let duration = match kind {
                        ItemKind::Image => item.duration.unwrap_or(DEFAULT_IMAGE_SECONDS),
                        // A container without a duration (0) trusts the trim.
                        _ => match item.duration {
                            Some(d) if detail.probe.duration > 0.0 => d.min(detail.probe.duration),
                            Some(d) => d,
                            None => detail.probe.duration,
                        },
                    };
                    if duration <= 0.0 {
                        return Err(FfmpegError::Invalid(format!(
                            "{what} has no duration (is it a still image?)"
                        )));
                    }
                    visuals.push(Visual {
                        path: item.path.clone(),
                        kind,
                        duration,
                        trim: item.duration.filter(|_| kind == ItemKind::Video),
                        detail,
                    });
                }
            }
        }

        let first = &visuals[0].detail.probe;
        // 4:2:0 H.264 needs even sizes.
        let even = |v: Option<u32>| (v.unwrap_or(2) & !1).max(2);
        let (width, height) = (even(first.width), even(first.height));
        let shortest = visuals.iter().map(|v| v.duration).fold(f64::INFINITY, f64::min);
        let transition = transition.filter(|_| visuals.len() > 1).map(|t| Transition {
            kind: t.kind,
            duration: t.duration.min(shortest / 2.0),
        });
        Ok(Plan {
            visuals,
            audio,
            transition,
            width,
            height,
        })
    }

    /// Whether the concat demuxer can join the files as they are.
    fn copyable(&self) -> bool {
        let first = &self.visuals[0].detail;
        self.transition.is_none()
            && self.audio.is_empty()
            && self.visuals.iter().all(|v| {
                let (p, f) = (&v.detail.probe, &first.probe);
                v.kind == ItemKind::Video
                    && v.trim.is_none()
                    && p.video_codec == f.video_codec
                    && (p.width, p.height) == (f.width, f.height)
                    && match (p.fps, f.fps) {
                        (Some(a), Some(b)) => (a - b).abs() <= 0.01,
                        _ => false,
                    }
                    && v.detail.pix_fmt == first.pix_fmt
                    && p.audio_codec == f.audio_codec
                    && v.detail.audio_layout == first.audio_layout
                    // The concat list is line-based text.
                    && v.path.to_str().is_some_and(|s| !s.contains(['\n', '\r']))
            })
    }

    fn has_audio(&self) -> bool {
        !self.audio.is_empty() || self.visuals.iter().any(|v| v.detail.probe.has_audio)
    }
}

/// Joins same-format videos with the concat demuxer and `-c copy`.
async fn concat_copy(visuals: &[Visual], out: &Path) -> Result<(), FfmpegError> {
    let mut list = String::from("ffconcat version 1.0\n");
    for v in visuals {
        let abs = std::path::absolute(&v.path)
            .map_err(|e| FfmpegError::Invalid(format!("cannot resolve {}: {e}", v.path.display())))?;
        // `copyable` checked the path is UTF-8.
        let quoted = abs.to_string_lossy().replace('\'', r"'\''");
        let _ = writeln!(list, "file '{quoted}'");
    }
    let list_file = TempFile::beside(out, ".concat.txt")?;
    tokio::fs::write(list_file.path(), list)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("cannot write beside {}: {e}", out.display())))?;

    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec![
        "-f".into(),
        "concat".into(),
        // Absolute paths are "unsafe" to the demuxer; we wrote them ourselves.
        "-safe".into(),
        "0".into(),
        "-i".into(),
        file_arg(list_file.path()),
        "-map".into(),
        "0:v:0".into(),
        "-map".into(),
        "0:a:0?".into(),
        "-c".into(),
        "copy".into(),
    ];
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// The filter graph of a merge, to be encoded alone or with more edits after it (`chain.rs`).
pub(crate) async fn merge_graph(items: &[MergeItem], transition: Option<Transition>) -> Result<Graph, FfmpegError> {
    Ok(graph(&Plan::new(items, transition).await?))
}

/// Everything through one filter graph, to be encoded.
fn graph(plan: &Plan) -> Graph {
    let with_audio = plan.has_audio();
    let fit = fit_filter(plan.width, plan.height, ReframeMode::Pad);
    let mut args: Vec<OsString> = Vec::new();
    let mut graph: Vec<String> = Vec::new();

    for (i, v) in plan.visuals.iter().enumerate() {
        if let Some(t) = v.trim {
            args.extend(["-t".into(), secs(t).into()]);
        }
        args.extend(["-i".into(), file_arg(&v.path)]);
        let d = secs(v.duration);
        // Cloning the last frame then trimming makes every segment exactly
        // `duration` long, which the xfade offsets rely on; a still image is
        // just a one-frame video cloned for its duration.
        graph.push(format!(
            "[{i}:v:0]setpts=PTS-STARTPTS,{fit},fps={FPS},format=yuv420p,\
             tpad=stop_mode=clone:stop_duration={d},trim=duration={d},setpts=PTS-STARTPTS[v{i}]"
        ));
        if with_audio {
            graph.push(if v.detail.probe.has_audio {
                format!(
                    "[{i}:a:0]asetpts=PTS-STARTPTS,aresample=48000,{AUDIO_FORMAT},\
                     apad=whole_dur={d},atrim=duration={d}[a{i}]"
                )
            } else {
                format!("anullsrc=r=48000:cl=stereo,{AUDIO_FORMAT},atrim=duration={d}[a{i}]")
            });
        }
    }

    let n = plan.visuals.len();
    let (video, mut audio) = match &plan.transition {
        None => {
            let inputs: String = (0..n)
                .map(|i| {
                    if with_audio {
                        format!("[v{i}][a{i}]")
                    } else {
                        format!("[v{i}]")
                    }
                })
                .collect();
            let outputs = if with_audio { "[vcat][acat]" } else { "[vcat]" };
            graph.push(format!("{inputs}concat=n={n}:v=1:a={}{outputs}", u8::from(with_audio)));
            (String::from("vcat"), String::from("acat"))
        }
        Some(t) => {
            let durations: Vec<f64> = plan.visuals.iter().map(|v| v.duration).collect();
            let td = secs(t.duration);
            let (mut v_prev, mut a_prev) = (String::from("v0"), String::from("a0"));
            for (k, offset) in xfade_offsets(&durations, t.duration).into_iter().enumerate().skip(1) {
                graph.push(format!(
                    "[{v_prev}][v{k}]xfade=transition={}:duration={td}:offset={}[vx{k}]",
                    xfade_name(t.kind),
                    secs(offset)
                ));
                v_prev = format!("vx{k}");
                if with_audio {
                    graph.push(format!("[{a_prev}][a{k}]acrossfade=d={td}[ax{k}]"));
                    a_prev = format!("ax{k}");
                }
            }
            (v_prev, a_prev)
        }
    };

    if !plan.audio.is_empty() {
        let mut mix_inputs = format!("[{audio}]");
        for (j, track) in plan.audio.iter().enumerate() {
            let input = n + j;
            args.extend(["-i".into(), file_arg(&track.path)]);
            let delay_ms = (track.offset * 1000.0).round();
            graph.push(format!(
                "[{input}:a:0]asetpts=PTS-STARTPTS,aresample=48000,{AUDIO_FORMAT},\
                 volume={},adelay=delays={delay_ms}:all=1[m{j}]",
                secs(track.volume)
            ));
            let _ = write!(mix_inputs, "[m{j}]");
        }
        // duration=first: the visual track decides the length. normalize=0
        // keeps every input at its own volume instead of dividing by count.
        graph.push(format!(
            "{mix_inputs}amix=inputs={}:duration=first:dropout_transition=0:normalize=0[amix]",
            plan.audio.len() + 1
        ));
        audio = "amix".into();
    }

    Graph {
        inputs: args,
        filters: graph,
        video,
        audio: if with_audio {
            GraphAudio::Label(audio)
        } else {
            GraphAudio::None
        },
        width: plan.width,
        height: plan.height,
        files: Vec::new(),
    }
}

/// The xfade `offset` of each join: where, in the output so far, clip `k`
/// starts to blend in. Element 0 (the first clip) is 0. Each join overlaps
/// `t` seconds, so clip `k` starts at the sum of the earlier durations minus
/// `k` transitions.
fn xfade_offsets(durations: &[f64], t: f64) -> Vec<f64> {
    let mut elapsed = 0.0;
    durations
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let offset = if k == 0 { 0.0 } else { elapsed - k as f64 * t };
            elapsed += d;
            offset
        })
        .collect()
}

fn positive(what: &str, v: f64) -> Result<(), FfmpegError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(FfmpegError::Invalid(format!("{what} must be > 0, got {v}")))
    }
}

fn non_negative(what: &str, v: f64) -> Result<(), FfmpegError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(FfmpegError::Invalid(format!("{what} must be >= 0, got {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffmpeg::ffmpeg;
    use crate::{probe, render_audio, render_image, render_video};

    fn item(path: &Path, kind: ItemKind) -> MergeItem {
        MergeItem {
            path: path.to_owned(),
            kind,
            duration: None,
            offset: None,
            volume: None,
        }
    }

    fn near(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 0.15
    }

    #[test]
    fn transitions_draw_with_their_xfade() {
        assert_eq!(xfade_name(TransitionKind::Fade), "fadeblack");
        assert_eq!(xfade_name(TransitionKind::Crossfade), "fade");
        assert_eq!(xfade_name(TransitionKind::Dissolve), "fade");
        assert_eq!(xfade_name(TransitionKind::WipeLeft), "wipeleft");
        assert_eq!(xfade_name(TransitionKind::SlideRight), "slideright");
    }

    #[test]
    fn xfade_offsets_subtract_one_transition_per_join() {
        assert_eq!(xfade_offsets(&[2.0, 3.0, 4.0], 0.5), vec![0.0, 1.5, 4.0]);
        assert_eq!(xfade_offsets(&[1.0], 0.5), vec![0.0]);
    }

    #[tokio::test]
    async fn same_format_clips_are_stream_copied() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
        render_video("first", 1.0, 160, 90, &a).await.unwrap();
        render_video("second", 1.0, 160, 90, &b).await.unwrap();
        let out = dir.path().join("out.mp4");
        let report = merge(
            &[item(&a, ItemKind::Video), item(&b, ItemKind::Video)],
            None,
            &out,
            Quality::default(),
        )
        .await
        .unwrap();
        assert!(report.stream_copied);
        let p = probe(&out).await.unwrap();
        assert!(near(p.duration, 2.0), "{p:?}");
        assert_eq!((p.width, p.height), (Some(160), Some(90)));
        assert!(p.has_audio);
        // Neither the temp output nor the concat list is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[tokio::test]
    async fn fade_between_different_sizes_reencodes_to_first_size() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
        render_video("wide", 1.0, 160, 90, &a).await.unwrap();
        render_video("tall", 1.0, 90, 160, &b).await.unwrap();
        let out = dir.path().join("out.mp4");
        let fade = Transition {
            kind: TransitionKind::Fade,
            duration: 0.5,
        };
        let items = [item(&a, ItemKind::Video), item(&b, ItemKind::Video)];
        let report = merge(&items, Some(fade), &out, Quality::default()).await.unwrap();
        assert!(!report.stream_copied);
        let p = probe(&out).await.unwrap();
        assert_eq!((p.width, p.height), (Some(160), Some(90)));
        assert!(near(p.duration, 1.5), "{p:?}");
        assert!(p.has_audio);
        assert!((p.fps.unwrap() - 30.0).abs() < 0.01);

        // A transition longer than the clips is clamped to half the shortest.
        let long = Transition {
            kind: TransitionKind::SlideLeft,
            duration: 10.0,
        };
        merge(&items, Some(long), &out, Quality::default()).await.unwrap();
        assert!(near(probe(&out).await.unwrap().duration, 1.5));
    }

    #[tokio::test]
    async fn image_and_audio_item_are_mixed_over_the_visual_track() {
        let dir = tempfile::tempdir().unwrap();
        let (v, img, snd) = (
            dir.path().join("v.mp4"),
            dir.path().join("i.png"),
            dir.path().join("s.m4a"),
        );
        render_video("clip", 1.0, 160, 90, &v).await.unwrap();
        render_image("still", 320, 320, &img).await.unwrap();
        render_audio(3.0, &snd).await.unwrap();
        let out = dir.path().join("out.mp4");
        let items = [
            item(&v, ItemKind::Video),
            MergeItem {
                duration: Some(1.5),
                ..item(&img, ItemKind::Image)
            },
            MergeItem {
                offset: Some(0.5),
                volume: Some(0.5),
                ..item(&snd, ItemKind::Audio)
            },
        ];
        let report = merge(&items, None, &out, Quality::default()).await.unwrap();
        assert!(!report.stream_copied);
        let p = probe(&out).await.unwrap();
        // The 3 s audio item does not lengthen the 2.5 s visual track.
        assert!(near(p.duration, 2.5), "{p:?}");
        assert!(p.has_audio);
        assert_eq!((p.width, p.height), (Some(160), Some(90)));
    }

    #[tokio::test]
    async fn crossfade_chain_with_image_first_and_silent_video() {
        let dir = tempfile::tempdir().unwrap();
        let (img, mute, v) = (
            dir.path().join("i.png"),
            dir.path().join("mute.mp4"),
            dir.path().join("v.mp4"),
        );
        render_image("opening", 121, 91, &img).await.unwrap();
        render_video("with sound", 1.0, 160, 90, &v).await.unwrap();
        ffmpeg(vec![
            "-i".into(),
            v.clone().into(),
            "-an".into(),
            "-c".into(),
            "copy".into(),
            mute.clone().into(),
        ])
        .await
        .unwrap();
        assert!(!probe(&mute).await.unwrap().has_audio);

        let out = dir.path().join("out.mp4");
        let items = [
            item(&img, ItemKind::Image),
            item(&mute, ItemKind::Video),
            MergeItem {
                duration: Some(0.8),
                ..item(&v, ItemKind::Video)
            },
        ];
        let dissolve = Transition {
            kind: TransitionKind::Crossfade,
            duration: 0.3,
        };
        merge(&items, Some(dissolve), &out, Quality::default()).await.unwrap();
        let p = probe(&out).await.unwrap();
        // 1 + 1 + 0.8 - 2 * 0.3; the odd-sized image rounds the frame down.
        assert!(near(p.duration, 2.2), "{p:?}");
        assert_eq!((p.width, p.height), (Some(120), Some(90)));
        assert!(p.has_audio);
    }

    #[tokio::test]
    async fn video_only_inputs_give_video_only_output() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("i.png");
        render_image("still", 64, 64, &img).await.unwrap();
        let out = dir.path().join("out.mp4");
        merge(&[item(&img, ItemKind::Image)], None, &out, Quality::default())
            .await
            .unwrap();
        let p = probe(&out).await.unwrap();
        assert!(!p.has_audio);
        assert!(near(p.duration, 1.0), "{p:?}");
    }

    #[tokio::test]
    async fn invalid_merges_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (v, snd) = (dir.path().join("v.mp4"), dir.path().join("s.m4a"));
        render_video("clip", 0.5, 160, 90, &v).await.unwrap();
        render_audio(0.5, &snd).await.unwrap();
        let out = dir.path().join("out.mp4");
        let video = item(&v, ItemKind::Video);
        let audio = item(&snd, ItemKind::Audio);
        let fade = |duration| {
            Some(Transition {
                kind: TransitionKind::Fade,
                duration,
            })
        };

        let cases: Vec<(Vec<MergeItem>, Option<Transition>)> = vec![
            (vec![], None),
            (vec![audio.clone()], None),
            (vec![video.clone(), video.clone()], fade(0.0)),
            (vec![video.clone(), video.clone()], fade(-1.0)),
            (
                vec![MergeItem {
                    duration: Some(0.0),
                    ..item(&v, ItemKind::Image)
                }],
                None,
            ),
            (
                vec![
                    video.clone(),
                    MergeItem {
                        volume: Some(-1.0),
                        ..audio.clone()
                    },
                ],
                None,
            ),
            (
                vec![
                    video.clone(),
                    MergeItem {
                        offset: Some(f64::NAN),
                        ..audio.clone()
                    },
                ],
                None,
            ),
            // An audio file given as a video.
            (vec![item(&snd, ItemKind::Video)], None),
        ];
        for (items, transition) in cases {
            let r = merge(&items, transition, &out, Quality::default()).await;
            assert!(matches!(r, Err(FfmpegError::Invalid(_))), "{items:?}: {r:?}");
        }
        assert!(!out.exists());
    }
}
