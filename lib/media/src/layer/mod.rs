//! `layer`: media composited over a base in one ffmpeg run: each layer keyed (before scaling),
//! scaled and overlaid in z-order on a canvas as long as the main layer, stills looped, a
//! timeline's items each in its slot; the main layer's audio copied (or mixed with the layers
//! that ask for theirs, a timeline item's from its slot's start).

mod graph;
mod placement;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use reelay_core::plan::{timeline_slots, LayerMedia, LayerParams, Quality};

use crate::encoding::video_args;
use crate::ffmpeg::{container_args, ffmpeg, file_arg, secs, TempFile};
use crate::probe::probe;
use crate::FfmpegError;
use graph::{Clip, Graph, Track};
use placement::place;

/// Frame rate when the main layer gives none (a still, or none at all).
const DEFAULT_FPS: f64 = 30.0;

/// One input as probed: a video, or a still to loop.
struct Source {
    path: PathBuf,
    width: u32,
    height: u32,
    duration: f64,
    still: bool,
    fps: Option<f64>,
    audio_codec: Option<String>,
}

/// Composites `task`'s layers (their media as local files) into `out`, an H.264/AAC MP4.
pub async fn layer(task: &LayerParams<PathBuf>, out: &Path, quality: Quality) -> Result<(), FfmpegError> {
    let mut probed = Vec::new();
    for (n, path) in task.sources().into_iter().enumerate() {
        probed.push(source(n, path).await?);
    }
    // The same layers with each medium as its input's index (the order `sources` gave).
    let mut next = 0;
    let sources = task.try_map(|_| {
        next += 1;
        Ok::<_, FfmpegError>(next - 1)
    })?;
    let main = task.main_layer.map(|i| &probed[first_source(&sources, i)]);
    let duration = match (task.output_duration, main) {
        (Some(d), _) => d,
        (None, Some(m)) if !m.still && m.duration > 0.0 => m.duration,
        _ => {
            return Err(FfmpegError::Invalid(
                "the main layer is a still image: give `outputDuration`".into(),
            ))
        }
    };
    let base = first_source(&sources, 0);
    let frame = (
        even_side(task.output_width.unwrap_or(probed[base].width)),
        even_side(task.output_height.unwrap_or(probed[base].height)),
    );
    let fps = main
        .and_then(|m| m.fps)
        .filter(|f| (1.0..=120.0).contains(f))
        .unwrap_or(DEFAULT_FPS);

    let mut graph = Graph::new(frame, fps, duration);
    // How long each input is read: its timeline slot, else the whole output.
    let mut limits = vec![duration; probed.len()];
    let main_input = task.main_layer.map(|i| first_source(&sources, i));
    for (index, layer) in sources.layers.iter().enumerate() {
        let clips = match &layer.media {
            LayerMedia::Single(n) => vec![(*n, None)],
            LayerMedia::Timeline(items) => {
                let slots = timeline_slots(items, duration)
                    .map_err(|overrun| FfmpegError::Invalid(format!("layer {index} is a timeline: {overrun}")))?;
                items
                    .iter()
                    .zip(slots)
                    .map(|(t, slot)| (t.source, Some(slot)))
                    .collect()
            }
        };
        for (n, slot) in clips {
            let s = &probed[n];
            let rect = place(&layer.placement, frame, (s.width, s.height), index == 0)
                .map_err(|why| FfmpegError::Invalid(format!("layer {index}: {why}")))?;
            graph.overlay(Clip {
                input: n,
                rect,
                slot,
                key: layer.chroma_key,
            });
            if let Some(slot) = slot {
                limits[n] = slot.length;
            }
            // The main layer's audio is kept; another's mixed in when it asks (`volume`).
            let main = Some(n) == main_input;
            let volume = if main {
                Some(layer.volume.unwrap_or(1.0))
            } else {
                layer.volume
            };
            if let (Some(volume), Some(_)) = (volume, &s.audio_codec) {
                graph.audio(Track {
                    input: n,
                    volume,
                    delay: slot.map_or(0.0, |slot| slot.start),
                    main,
                });
            }
        }
    }
    let mut args: Vec<OsString> = Vec::new();
    for (n, s) in probed.iter().enumerate() {
        if s.still {
            args.extend(["-loop", "1", "-framerate"].map(OsString::from));
            args.push(format!("{fps}").into());
        }
        args.extend(["-t".into(), secs(limits[n]).into(), "-i".into(), file_arg(&s.path)]);
    }
    let (filter, audio) = graph.finish();
    args.extend(["-filter_complex".into(), filter.into(), "-map".into(), "[vout]".into()]);
    args.extend(video_args(quality));
    match audio {
        graph::Audio::None => {}
        // The main layer's own track, unchanged: copied when the MP4 takes it as it is.
        graph::Audio::Main(n) => {
            args.extend(["-map".into(), format!("{n}:a:0").into(), "-c:a".into()]);
            let copy = probed[n].audio_codec.as_deref() == Some("aac");
            args.push(if copy { "copy" } else { "aac" }.into());
        }
        graph::Audio::Mixed => args.extend(["-map", "[aout]", "-c:a", "aac"].map(OsString::from)),
    }
    args.extend(["-t".into(), secs(duration).into()]);
    args.extend(container_args(out));
    let tmp = TempFile::beside(out, "")?;
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// The probe of input `n`; a file that cannot be read as a picture fails for good.
async fn source(n: usize, path: &Path) -> Result<Source, FfmpegError> {
    let p = probe(path)
        .await
        .map_err(|e| FfmpegError::Invalid(format!("layer medium {n} cannot be read: {e}")))?;
    let (Some(width), Some(height)) = (p.width, p.height) else {
        return Err(FfmpegError::Invalid(format!(
            "layer medium {n} has no picture (no video stream)"
        )));
    };
    // Image demuxers (`png_pipe`, `image2`…) or a single frame with no length: a still.
    let still = p.format.ends_with("_pipe") || p.format == "image2" || p.duration <= 0.0;
    Ok(Source {
        path: path.to_path_buf(),
        width,
        height,
        duration: p.duration,
        still,
        fps: p.fps,
        audio_codec: if still { None } else { p.audio_codec },
    })
}

/// The input index of layer `i`'s first medium.
fn first_source(indexed: &LayerParams<usize>, i: usize) -> usize {
    match &indexed.layers[i].media {
        LayerMedia::Single(n) => *n,
        LayerMedia::Timeline(items) => items.first().map_or(0, |t| t.source),
    }
}

fn even_side(v: u32) -> u32 {
    (v & !1).max(2)
}
