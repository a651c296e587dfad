//! Captions end to end: the local voice transcribed and burned into a 9:16 scene
//! (`examples/captions-local-voice.json`), inline words on a video served by URL
//! (`examples/captions-inline.json`), and every script drawn with real glyphs. Each reads the
//! output's pixels: the caption region changes while a word is said and not otherwise, and the
//! active word wears its colour.

#[path = "support/pixels.rs"]
mod pixels;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use reelay_core::domain::TimedWord;
use reelay_core::plan::{CaptionPreset, CaptionStyle, Quality};
use reelay_media::{burn_captions, probe, render_video};
use support::{job, spawn_app_with, ACME};

fn example(name: &str) -> Value {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn file(result: &Value) -> PathBuf {
    let url = result["url"].as_str().unwrap_or_else(|| panic!("{result}"));
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

/// The RGB bytes of the frame at `t` seconds, cropped to the lower part where captions sit.
fn caption_region(video: &Path, t: f64) -> Vec<u8> {
    pixels::raw_frame(video, t, "crop=iw:ih*0.45:0:ih*0.5", "rgb24")
}

fn mean_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
}

/// Pixels of `rgb` whose colour `is` says it is.
fn count(rgb: &[u8], is: impl Fn(u8, u8, u8) -> bool) -> usize {
    rgb.chunks_exact(3).filter(|p| is(p[0], p[1], p[2])).count()
}

/// The output is the input with captions: same length and size, the audio kept; at `said`
/// the caption region differs and shows `colour` pixels, at `quiet` it does not.
async fn check_captioned(input: &Path, output: &Path, said: f64, quiet: Option<f64>, colour: fn(u8, u8, u8) -> bool) {
    let (i, o) = (probe(input).await.unwrap(), probe(output).await.unwrap());
    assert!((i.duration - o.duration).abs() < 0.1, "{i:?} {o:?}");
    assert_eq!((i.width, i.height), (o.width, o.height));
    assert!(o.has_audio, "{o:?}");
    let (before, after) = (caption_region(input, said), caption_region(output, said));
    assert!(mean_diff(&before, &after) > 1.0, "no caption at {said}s");
    let gained = count(&after, colour).saturating_sub(count(&before, colour));
    assert!(
        gained > 50,
        "the active word's colour is missing at {said}s ({gained} pixels)"
    );
    if let Some(t) = quiet {
        let diff = mean_diff(&caption_region(input, t), &caption_region(output, t));
        assert!(diff < 1.0, "a caption at {t}s, where no word is said ({diff})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_voice_is_transcribed_and_burned_in_tiktok_style() {
    let app = spawn_app_with(|s| s.node.providers.local_python = support::python().display().to_string()).await;
    let id = app.submit(ACME, &example("captions-local-voice.json")).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");

    let transcript: Value =
        serde_json::from_slice(&std::fs::read(file(&job(&status, "words")["result"])).unwrap()).unwrap();
    let words: Vec<TimedWord> = serde_json::from_value(transcript["words"].clone()).unwrap();
    assert!(words.len() >= 3, "{transcript}");
    let word = &words[words.len() / 2];
    let last_end = words.last().unwrap().end;
    let (input, output) = (file(&job(&status, "narrated")["result"]), file(&status["result"]));
    let duration = probe(&input).await.unwrap().duration;
    let quiet = (last_end + 0.3 < duration - 0.2).then_some(last_end + 0.3);
    // TikTok's active word is yellow.
    check_captioned(&input, &output, (word.start + word.end) / 2.0, quiet, |r, g, b| {
        r > 200 && g > 200 && b < 90
    })
    .await;
    assert_eq!(probe(&output).await.unwrap().aspect_ratio.as_deref(), Some("9:16"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_words_caption_a_video_given_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    render_video("served clip", 3.0, 640, 360, &clip).await.unwrap();
    let bytes = std::fs::read(&clip).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/clip.mp4", listener.local_addr().unwrap());
    let server = axum::Router::new().route("/clip.mp4", axum::routing::get(move || async move { bytes.clone() }));
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let app = spawn_app_with(|_| {}).await;
    let body = example("captions-inline.json")
        .to_string()
        .replace("https://media.example.com/clip.mp4", &url);
    let id = app.submit(ACME, &serde_json::from_str(&body).unwrap()).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    // "every" (0.9-1.3 s) is said at 1.1 s, in green; nothing is said after 1.8 s.
    check_captioned(&clip, &file(&status["result"]), 1.1, Some(2.5), |r, g, b| {
        g > 200 && r < 90 && b < 90
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn every_script_is_drawn_with_real_glyphs() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=black:s=640x360:d=1:r=10"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=44100:cl=mono",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&blank)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let style = CaptionStyle {
        preset: CaptionPreset::Minimal,
        font_size: Some(120.0),
        ..Default::default()
    };
    let render = |text: &'static str, name: &'static str| {
        let (blank, style, out) = (blank.clone(), style.clone(), dir.path().join(name));
        async move {
            let words = [TimedWord {
                word: text.into(),
                start: 0.0,
                end: 1.0,
            }];
            burn_captions(&blank, &words, &style, &out, Quality::default())
                .await
                .unwrap();
            caption_region(&out, 0.5)
        }
    };
    let empty = caption_region(&blank, 0.5);
    // Two words of each script, as many characters each: missing glyphs would draw both as
    // the same row of boxes.
    let pairs = [
        ("latin", "čćžšđ", "ąęłńó"),
        ("cyrillic", "Привет", "Москва"),
        ("han", "你好世界", "日本語版"),
        ("hangul", "안녕하세요", "감사합니다"),
        ("hebrew", "שלום", "עולם"),
        ("arabic", "مرحبا", "سلامة"),
    ];
    for (script, a, b) in pairs {
        let ra = render(a, "a.mp4").await;
        let rb = render(b, "b.mp4").await;
        assert!(mean_diff(&ra, &empty) > 0.5, "{script}: nothing drawn");
        assert!(
            mean_diff(&ra, &rb) > 0.5,
            "{script}: {a} and {b} look alike: boxes, not glyphs"
        );
    }
    // The check itself catches boxes: characters no installed font has draw alike.
    let ra = render("\u{10FFF0}\u{10FFF1}", "a.mp4").await;
    let rb = render("\u{10FFF2}\u{10FFF3}", "b.mp4").await;
    assert!(mean_diff(&ra, &rb) < 0.5, "private-use characters should all be boxes");
}

/// Merge → reframe → captions, each read by the next alone, is encoded once, by the captions
/// job: the merge and the reframe complete with their outputs deferred into it (no file
/// made), and the captioned 9:16 video is the whole chain. A later execution that wants the
/// reframe alone gets it made then, from the reused scenes, which are not rendered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_edits_is_encoded_once_and_an_intermediate_made_when_asked() {
    let app = spawn_app_with(|_| {}).await;
    let scene = |id: &str| {
        serde_json::json!({"id": id, "type": "generate", "params": {"provider": "local",
            "modelId": "video", "prompt": id, "duration": 2, "resolution": "360p"}})
    };
    let words = serde_json::json!([{"word": "one", "start": 0.2, "end": 0.8},
        {"word": "encode", "start": 0.8, "end": 1.6}]);
    let plan = serde_json::json!({"jobs": [scene("a"), scene("b"),
        {"id": "merged", "type": "merge", "dependsOn": ["a", "b"], "params": {
            "items": [{"url": "$a"}, {"url": "$b"}], "transition": "fade", "transitionDuration": 0.5}},
        {"id": "vertical", "type": "reframe", "dependsOn": ["merged"],
            "params": {"videoUrl": "$merged", "aspectRatio": "9:16", "resolution": "480p"}},
        {"id": "captioned", "type": "addSubtitles", "dependsOn": ["vertical"],
            "params": {"videoUrl": "$vertical", "transcript": words,
                "style": {"preset": "youtube", "activeWordColor": "#00FF00"}}}]});
    let id = app.submit(ACME, &plan).await;
    let status = app.ended(ACME, &id).await;
    assert_eq!(status["status"], "completed", "{status}");
    for (edit, reader) in [("merged", "vertical"), ("vertical", "captioned")] {
        let result = &job(&status, edit)["result"];
        assert_eq!(job(&status, edit)["status"], "completed", "{status}");
        assert_eq!(result["deferred"]["fusedInto"], reader, "{result}");
        assert!(result.get("url").is_none(), "{result}");
        let folder = app.dir.path().join(format!("blobs/executions/{id}/{edit}"));
        assert!(!folder.exists(), "{edit}'s output was made: {}", folder.display());
    }
    let output = file(&status["result"]);
    let probed = probe(&output).await.unwrap();
    assert_eq!((probed.width, probed.height), (Some(480), Some(854)), "{probed:?}");
    assert!((probed.duration - 3.5).abs() < 0.1, "{probed:?}");
    let renders = || std::fs::read_dir(app.dir.path().join("provider/jobs")).unwrap().count();
    assert_eq!(renders(), 2);

    // The reframe alone, asked for by a variant: made now from the first run's scenes.
    let variant = serde_json::json!({"baseExecutionId": id, "jobs": [
        {"id": "vertical", "type": "reframe", "dependsOn": ["merged"],
            "params": {"videoUrl": "$merged", "aspectRatio": "9:16", "resolution": "480p"}}]});
    let again = app.submit(ACME, &variant).await;
    let status = app.ended(ACME, &again).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(renders(), 2, "a scene was rendered again");
    // The captioned chain is that reframe with captions: "encode" is said at 1.2 s, in
    // green; nothing is said at 3 s.
    let green = |rgb: &[u8]| count(rgb, |r, g, b| g > 200 && r < 90 && b < 90);
    let vertical = file(&status["result"]);
    assert_eq!(probe(&vertical).await.unwrap().duration, probed.duration);
    let gained = green(&caption_region(&output, 1.2)).saturating_sub(green(&caption_region(&vertical, 1.2)));
    assert!(gained > 50, "no green word at 1.2 s ({gained} pixels)");
    let quiet = mean_diff(&caption_region(&vertical, 3.0), &caption_region(&output, 3.0));
    assert!(quiet < 1.0, "a caption at 3 s, where no word is said ({quiet})");
    app.stop().await;
}
