//! `make bench-media`: the media operations of a 30-second 1080x1920 clip on this machine —
//! captions burned in, a two-layer composite, and a chroma-keyed overlay — each timed as
//! reelay runs it and as one hand-written ffmpeg command doing the same edit (the floor).
//! Then a chain of edits (two clips crossfaded, reframed to 9:16, captioned) of 10 s and of
//! 60 s of 1080x1920: as separate jobs (one encode each), as one fused chain (one encode), and
//! as one hand-written command.
//! A figure printer, not a test: it is ignored by the test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use reelay_core::domain::TimedWord;
use reelay_core::plan::{
    CaptionStyle, ChromaKey, Layer, LayerMedia, LayerParams, Placement, Quality, ReframeMode, Transition,
    TransitionKind,
};
use reelay_media::{burn_captions, layer, merge, reframe, run_chain, ChainStart, ChainStep, ItemKind, MergeItem};

const SECONDS: f64 = 30.0;
/// The encoder settings reelay uses, so the floor does the same work.
const X264: [&str; 8] = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
];

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The base: a moving test pattern with a tone. The overlay: a shape on pure green.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let base = dir.join("base.mp4");
    let overlay = dir.join("green.mp4");
    let d = SECONDS.to_string();
    ffmpeg(
        &[
            &["-f", "lavfi", "-i", &format!("testsrc2=s=1080x1920:d={d}:r=30")],
            &["-f", "lavfi", "-i", &format!("sine=d={d}")][..],
            &X264,
            &["-c:a", "aac", "-shortest", path(&base)],
        ]
        .concat(),
    );
    ffmpeg(
        &[
            &[
                "-f",
                "lavfi",
                "-i",
                &format!("color=c=0x00FF00:s=540x960:d={d}:r=30,drawbox=x=140:y=300:w=260:h=360:c=red:t=fill"),
            ][..],
            &X264,
            &[path(&overlay)],
        ]
        .concat(),
    );
    (base, overlay)
}

fn timed(what: impl FnOnce()) -> f64 {
    let started = Instant::now();
    what();
    started.elapsed().as_secs_f64()
}

async fn timed_async<F: std::future::Future<Output = ()>>(what: F) -> f64 {
    let started = Instant::now();
    what.await;
    started.elapsed().as_secs_f64()
}

fn composite(base: &Path, overlay: &Path, key: bool) -> LayerParams<PathBuf> {
    let layer = |media: &Path, placement, chroma_key| Layer {
        media: LayerMedia::Single(media.to_path_buf()),
        placement,
        chroma_key,
        volume: None,
    };
    let chroma = key.then_some(ChromaKey {
        color: 0x00FF00,
        similarity: 0.25,
        blend: 0.05,
    });
    LayerParams {
        layers: vec![
            layer(base, Placement::Full, None),
            layer(overlay, Placement::Pip, chroma),
        ],
        main_layer: Some(0),
        output_duration: None,
        output_width: None,
        output_height: None,
    }
}

fn row(name: &str, ours: f64, floor: f64) {
    println!(
        "{name:<28} reelay {ours:6.2} s ({:4.2}x realtime)   one ffmpeg command {floor:6.2} s ({:4.2}x realtime)   ratio {:4.2}",
        SECONDS / ours,
        SECONDS / floor,
        ours / floor
    );
}

#[tokio::test]
#[ignore = "a benchmark: `make bench-media` prints its figures"]
async fn media_operations_on_a_30s_1080x1920_clip() {
    let dir = tempfile::tempdir().unwrap();
    let (base, overlay) = inputs(dir.path());
    let out = |name: &str| dir.path().join(name);

    // 75 words, one every 0.4 s, in the default (TikTok) style with the active word highlighted.
    let words = words_for(SECONDS);
    let ours = timed_async(async {
        burn_captions(
            &base,
            &words,
            &CaptionStyle::default(),
            &out("captions.mp4"),
            Quality::default(),
        )
        .await
        .unwrap()
    })
    .await;
    std::fs::write(out("words.srt"), srt(&words)).unwrap();
    let subtitles = format!(
        "subtitles={}:force_style='Fontsize=16,Bold=1,Outline=1,Alignment=2,MarginV=25'",
        path(&out("words.srt"))
    );
    let floor = timed(|| {
        ffmpeg(
            &[
                &["-i", path(&base), "-vf", &subtitles][..],
                &X264,
                &["-c:a", "copy", path(&out("captions-floor.mp4"))],
            ]
            .concat(),
        )
    });
    row("captions burn-in", ours, floor);

    for (name, key) in [("two-layer composite", false), ("chroma-keyed overlay", true)] {
        let task = composite(&base, &overlay, key);
        let ours = timed_async(async { layer(&task, &out("layer.mp4"), Quality::default()).await.unwrap() }).await;
        let keyed = if key { "chromakey=0x00FF00:0.25:0.05," } else { "" };
        let graph = format!("[1:v]{keyed}scale=270:480[o];[0:v][o]overlay=W-w-20:H-h-20:eof_action=pass[v]");
        let floor = timed(|| {
            ffmpeg(
                &[
                    &[
                        "-i",
                        path(&base),
                        "-i",
                        path(&overlay),
                        "-filter_complex",
                        &graph,
                        "-map",
                        "[v]",
                        "-map",
                        "0:a",
                    ][..],
                    &X264,
                    &["-c:a", "copy", path(&out("layer-floor.mp4"))],
                ]
                .concat(),
            )
        });
        row(name, ours, floor);
    }
}

/// `words` as SubRip, one cue a word: what the hand-written floor draws.
fn srt(words: &[TimedWord]) -> String {
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                srt_time(w.start),
                srt_time(w.end),
                w.word
            )
        })
        .collect()
}

fn srt_time(s: f64) -> String {
    let ms = (s * 1000.0).round() as u64;
    format!("00:{:02}:{:02},{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

/// Words for `seconds` of speech, one every 0.4 s.
fn words_for(seconds: f64) -> Vec<TimedWord> {
    (0..(seconds / 0.4) as u32)
        .map(|i| TimedWord {
            word: format!("word{i}"),
            start: f64::from(i) * 0.4,
            end: f64::from(i) * 0.4 + 0.35,
        })
        .collect()
}

const FADE: f64 = 0.5;

#[tokio::test]
#[ignore = "a benchmark: `make bench-media` prints its figures"]
async fn a_merge_reframe_captions_chain_apart_fused_and_by_hand() {
    for seconds in [10.0, 60.0] {
        let dir = tempfile::tempdir().unwrap();
        let out = |name: &str| dir.path().join(name);
        // Two 1920x1080 scenes with a tone, crossfaded into `seconds` of output.
        let clip = (seconds + FADE) / 2.0;
        for (name, pattern) in [("a.mp4", "testsrc2"), ("b.mp4", "smptehdbars")] {
            ffmpeg(
                &[
                    &["-f", "lavfi", "-i", &format!("{pattern}=s=1920x1080:d={clip}:r=30")][..],
                    &["-f", "lavfi", "-i", &format!("sine=d={clip}")],
                    &X264,
                    &["-c:a", "aac", "-shortest", path(&out(name))],
                ]
                .concat(),
            );
        }
        let items: Vec<MergeItem> = ["a.mp4", "b.mp4"]
            .iter()
            .map(|name| MergeItem {
                path: out(name),
                kind: ItemKind::Video,
                duration: None,
                offset: None,
                volume: None,
            })
            .collect();
        let fade = Some(Transition {
            kind: TransitionKind::Crossfade,
            duration: FADE,
        });
        let words = words_for(seconds);
        let style = CaptionStyle::default();

        let apart = timed_async(async {
            merge(&items, fade.clone(), &out("merged.mp4"), Quality::default())
                .await
                .unwrap();
            reframe(
                &out("merged.mp4"),
                1080,
                1920,
                ReframeMode::Crop,
                &out("framed.mp4"),
                Quality::default(),
            )
            .await
            .unwrap();
            burn_captions(
                &out("framed.mp4"),
                &words,
                &style,
                &out("apart.mp4"),
                Quality::default(),
            )
            .await
            .unwrap();
        })
        .await;
        let steps = [
            ChainStep::Reframe {
                width: 1080,
                height: 1920,
                mode: ReframeMode::Crop,
            },
            ChainStep::Captions {
                words: words.clone(),
                style: Box::new(style.clone()),
            },
        ];
        let start = ChainStart::Merge {
            items: items.clone(),
            transition: fade.clone(),
        };
        let fused = timed_async(async {
            run_chain(&start, &steps, &out("fused.mp4"), Quality::default())
                .await
                .unwrap()
        })
        .await;

        std::fs::write(out("words.srt"), srt(&words)).unwrap();
        let graph = format!(
            "[0:v][1:v]xfade=transition=fade:duration={FADE}:offset={},\
             scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920,\
             subtitles={}:force_style='Fontsize=16,Bold=1,Outline=1,Alignment=2,MarginV=25'[v];\
             [0:a][1:a]acrossfade=d={FADE}[a]",
            clip - FADE,
            path(&out("words.srt"))
        );
        let floor = timed(|| {
            ffmpeg(
                &[
                    &["-i", path(&out("a.mp4")), "-i", path(&out("b.mp4"))][..],
                    &["-filter_complex", &graph, "-map", "[v]", "-map", "[a]"],
                    &X264,
                    &["-c:a", "aac", path(&out("floor.mp4"))],
                ]
                .concat(),
            )
        });
        let rt = |t: f64| seconds / t;
        println!(
            "{seconds:>3} s of 1080x1920, crossfade + 9:16 + captions: separate jobs {apart:6.2} s ({:4.2}x realtime)   \
             fused chain {fused:6.2} s ({:4.2}x)   one ffmpeg command {floor:6.2} s ({:4.2}x)   fused / floor {:4.2}",
            rt(apart),
            rt(fused),
            rt(floor),
            fused / floor
        );
    }
}
