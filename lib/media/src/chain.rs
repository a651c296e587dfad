//! A chain of edits run as one: a merge (or one file) goes through reframes and captions in
//! a single ffmpeg filter graph and is encoded once, instead of once per edit. Each edit adds
//! its filters to the graph ([`Graph`]); the picture's size is carried along, so an edit that
//! needs it (captions are laid out for the frame) never probes an intermediate file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use reelay_core::domain::TimedWord;
use reelay_core::plan::{CaptionStyle, Quality, ReframeMode, Transition};

use crate::captions::caption_filter;
use crate::encoding::video_args;
use crate::ffmpeg::{container_args, ffmpeg, file_arg, TempFile};
use crate::merge::{merge_graph, MergeItem};
use crate::probe::probe;
use crate::reframe::{checked_size, fit_filter};
use crate::FfmpegError;

/// Where a chain starts: a merge, or one video file.
#[derive(Debug, Clone)]
pub enum ChainStart {
    Merge {
        items: Vec<MergeItem>,
        transition: Option<Transition>,
    },
    File(PathBuf),
}

/// One edit of a chain, applied to what came before it.
#[derive(Debug, Clone)]
pub enum ChainStep {
    Reframe {
        width: u32,
        height: u32,
        mode: ReframeMode,
    },
    Captions {
        words: Vec<TimedWord>,
        style: Box<CaptionStyle>,
    },
}

/// Where the audio of a graph comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GraphAudio {
    None,
    /// A filter's output label: encoded (AAC).
    Label(String),
    /// The first input's audio, untouched: copied.
    FirstInput,
}

/// An ffmpeg filter graph in the making.
pub(crate) struct Graph {
    /// The inputs (`-i …` and their options).
    pub inputs: Vec<OsString>,
    pub filters: Vec<String>,
    /// The label of the picture so far.
    pub video: String,
    pub audio: GraphAudio,
    pub width: u32,
    pub height: u32,
    /// Files the filters read (caption scripts), removed with the graph once it is encoded.
    pub files: Vec<TempFile>,
}

impl Graph {
    /// One file's picture and audio as they are.
    async fn of_file(path: &Path) -> Result<Graph, FfmpegError> {
        let probed = probe(path).await.map_err(|e| match e {
            FfmpegError::Ffmpeg(why) => FfmpegError::Invalid(format!("cannot read the video: {why}")),
            other => other,
        })?;
        let (Some(width), Some(height)) = (probed.width, probed.height) else {
            return Err(FfmpegError::Invalid("the video has no picture to edit".into()));
        };
        Ok(Graph {
            inputs: vec!["-i".into(), file_arg(path)],
            filters: Vec::new(),
            video: "0:v:0".into(),
            audio: if probed.has_audio {
                GraphAudio::FirstInput
            } else {
                GraphAudio::None
            },
            width,
            height,
            files: Vec::new(),
        })
    }

    /// Adds `filter` on the picture so far, under a fresh label.
    fn then_picture(&mut self, filter: &str) {
        let label = format!("s{}", self.filters.len());
        self.filters.push(format!("[{}]{filter}[{label}]", self.video));
        self.video = label;
    }

    /// Adds one edit; files its filters read (caption scripts) are written beside `out`.
    async fn apply(&mut self, step: &ChainStep, out: &Path) -> Result<(), FfmpegError> {
        match step {
            ChainStep::Reframe { width, height, mode } => {
                checked_size(*width, *height)?;
                self.then_picture(&fit_filter(*width, *height, *mode));
                (self.width, self.height) = (*width, *height);
            }
            ChainStep::Captions { words, style } => {
                let script = TempFile::beside(out, &format!(".{}.ass", self.filters.len()))?;
                let filter = caption_filter(words, style, self.width, self.height, script.path()).await?;
                self.files.push(script);
                self.then_picture(&filter);
            }
        }
        Ok(())
    }

    /// Encodes the graph into `out`: H.264 at `quality`, the audio encoded (AAC) when the
    /// graph changed it and copied when it did not.
    pub(crate) async fn encode(self, out: &Path, quality: Quality) -> Result<(), FfmpegError> {
        let tmp = TempFile::beside(out, "")?;
        let mut args = self.inputs;
        let video = if self.filters.is_empty() {
            // Nothing to filter: the input's picture is re-encoded as it is.
            self.video
        } else {
            args.extend(["-filter_complex".into(), self.filters.join(";").into()]);
            format!("[{}]", self.video)
        };
        args.extend(["-map".into(), video.into()]);
        match self.audio {
            GraphAudio::None => {}
            GraphAudio::Label(label) => {
                args.extend(["-map".into(), format!("[{label}]").into(), "-c:a".into(), "aac".into()])
            }
            GraphAudio::FirstInput => args.extend(["-map".into(), "0:a?".into(), "-c:a".into(), "copy".into()]),
        }
        args.extend(video_args(quality));
        args.extend(container_args(out));
        args.push(file_arg(tmp.path()));
        ffmpeg(args).await?;
        tmp.persist(out).await
    }
}

/// Runs `start` through `steps` in one ffmpeg pass into `out`.
pub async fn run_chain(
    start: &ChainStart,
    steps: &[ChainStep],
    out: &Path,
    quality: Quality,
) -> Result<(), FfmpegError> {
    let mut graph = match start {
        ChainStart::Merge { items, transition } => merge_graph(items, transition.clone()).await?,
        ChainStart::File(path) => Graph::of_file(path).await?,
    };
    for step in steps {
        graph.apply(step, out).await?;
    }
    graph.encode(out, quality).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{merge, ItemKind};
    use crate::{burn_captions, reframe, render_video};
    use reelay_core::plan::TransitionKind;

    /// Frames in `path`'s picture, counted by decoding.
    fn frames(path: &Path) -> u64 {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// The lowest per-frame PSNR (dB, luma and chroma together) of `a` against `b`.
    fn worst_psnr(a: &Path, b: &Path) -> f64 {
        let log = a.with_extension("psnr.log");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(a)
            .arg("-i")
            .arg(b)
            .arg("-lavfi")
            .arg(format!("[0:v][1:v]psnr=stats_file={}", log.display()))
            .args(["-f", "null", "-"])
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("psnr_avg:")))
            .map(|v| if v == "inf" { f64::INFINITY } else { v.parse().unwrap() })
            .fold(f64::INFINITY, f64::min)
    }

    fn words() -> Vec<TimedWord> {
        ["one", "chain", "encoded", "once"]
            .iter()
            .enumerate()
            .map(|(i, w)| TimedWord {
                word: (*w).into(),
                start: i as f64 * 0.6,
                end: i as f64 * 0.6 + 0.5,
            })
            .collect()
    }

    /// A merge with a fade, a 9:16 reframe and captions in one pass give what the three
    /// edits give one after the other: the same frames, as many, as long, with audio.
    #[tokio::test]
    async fn a_chain_in_one_pass_matches_its_edits_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let clip = |name: &str| dir.path().join(name);
        render_video("first", 2.0, 640, 360, &clip("a.mp4")).await.unwrap();
        render_video("second", 2.0, 640, 360, &clip("b.mp4")).await.unwrap();
        let items: Vec<MergeItem> = ["a.mp4", "b.mp4"]
            .iter()
            .map(|name| MergeItem {
                path: clip(name),
                kind: ItemKind::Video,
                duration: None,
                offset: None,
                volume: None,
            })
            .collect();
        let fade = Some(Transition {
            kind: TransitionKind::Fade,
            duration: 0.5,
        });
        let style = Box::<CaptionStyle>::default();

        merge(&items, fade.clone(), &clip("merged.mp4"), Quality::default())
            .await
            .unwrap();
        reframe(
            &clip("merged.mp4"),
            360,
            640,
            ReframeMode::Crop,
            &clip("framed.mp4"),
            Quality::default(),
        )
        .await
        .unwrap();
        burn_captions(
            &clip("framed.mp4"),
            &words(),
            &style,
            &clip("apart.mp4"),
            Quality::default(),
        )
        .await
        .unwrap();

        let steps = [
            ChainStep::Reframe {
                width: 360,
                height: 640,
                mode: ReframeMode::Crop,
            },
            ChainStep::Captions { words: words(), style },
        ];
        let start = ChainStart::Merge {
            items,
            transition: fade,
        };
        run_chain(&start, &steps, &clip("fused.mp4"), Quality::default())
            .await
            .unwrap();

        let (apart, fused) = (
            probe(&clip("apart.mp4")).await.unwrap(),
            probe(&clip("fused.mp4")).await.unwrap(),
        );
        assert_eq!((fused.width, fused.height), (Some(360), Some(640)));
        assert_eq!(fused.has_audio, apart.has_audio);
        assert!(
            (fused.duration - apart.duration).abs() < 0.05,
            "{} vs {}",
            fused.duration,
            apart.duration
        );
        assert_eq!(frames(&clip("fused.mp4")), frames(&clip("apart.mp4")));
        // The apart output went through three lossy encodes, the fused one through one: they
        // differ by coding noise only, never by a missing caption or a shifted frame.
        let psnr = worst_psnr(&clip("fused.mp4"), &clip("apart.mp4"));
        assert!(psnr > 30.0, "worst frame PSNR {psnr:.1} dB");
    }

    /// A chain that starts from a file: its audio is copied, not encoded again.
    #[tokio::test]
    async fn a_chain_from_a_file_keeps_its_audio_and_refuses_a_bad_size() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        render_video("clip", 1.0, 320, 240, &src).await.unwrap();
        let out = dir.path().join("out.mp4");
        let reframe = |width, height| ChainStep::Reframe {
            width,
            height,
            mode: ReframeMode::Pad,
        };
        run_chain(
            &ChainStart::File(src.clone()),
            &[reframe(240, 240)],
            &out,
            Quality::default(),
        )
        .await
        .unwrap();
        let (before, after) = (probe(&src).await.unwrap(), probe(&out).await.unwrap());
        assert_eq!((after.width, after.height), (Some(240), Some(240)));
        assert_eq!(after.audio_codec, before.audio_codec);
        let bad = run_chain(
            &ChainStart::File(src),
            &[reframe(241, 240)],
            &dir.path().join("bad.mp4"),
            Quality::default(),
        )
        .await;
        assert!(matches!(bad, Err(FfmpegError::Invalid(_))), "{bad:?}");
        assert!(!dir.path().join("bad.mp4").exists());
    }
}
