//! `layer` end to end: the examples run by `reelay run` on the local provider, with media
//! served by URL from a loopback server (a green-screen clip, a still), then the output's
//! probe and pixels checked.

use std::path::Path;
use std::process::Command;

use reelay_media::probe;

/// The address the examples name for their served media.
const EXAMPLE_BASE: &str = "http://127.0.0.1:8089";

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A 6 s 640x360 green-screen clip (a red box in its middle half) and a blue 200x200 PNG:
/// the examples' media.
const EXAMPLE_MEDIA: &[(&str, &str)] = &[
    (
        "green-screen.mp4",
        "-f lavfi -i color=c=0x00FF00:s=640x360:r=30:d=6 -vf drawbox=x=160:y=90:w=320:h=180:color=red:t=fill \
         -c:v libx264 -pix_fmt yuv420p",
    ),
    ("logo.png", "-f lavfi -i color=c=blue:s=200x200 -frames:v 1"),
];

/// Makes each `(name, ffmpeg options before the output, space-separated)` and serves it as
/// `/name` on a loopback port; returns its base URL.
async fn serve(media: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut app = axum::Router::new();
    for (name, options) in media {
        let path = dir.path().join(name);
        let mut args: Vec<&str> = options.split_whitespace().collect();
        args.push(path.to_str().unwrap());
        ffmpeg(&args);
        let bytes = std::fs::read(path).unwrap();
        app = app.route(
            &format!("/{name}"),
            axum::routing::get(move || async move { bytes.clone() }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs example `name` with its media URLs pointed at `base`; the output's path.
fn run_example(name: &str, base: &str, data: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    run_plan(&text.replace(EXAMPLE_BASE, base), data)
}

/// Runs the plan `text` with `reelay run` on the local provider; the output's path.
fn run_plan(text: &str, data: &Path) -> String {
    let plan = data.join("plan.json");
    std::fs::write(&plan, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reelay"))
        .arg("--data-dir")
        .arg(data.join("state"))
        .arg("run")
        .arg(&plan)
        .env("REELAY_LOG", "warn")
        .env("REELAY_PROVIDER_DELAY_MS", "50")
        // The served media sit on loopback, which downloads may not reach by default.
        .env("REELAY_WEBHOOK_ALLOW", "127.0.0.0/8")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("output:"))
        .expect("an output line");
    path.trim().to_string()
}

/// The frame at `t` seconds as RGB rows.
fn frame(path: &str, t: f64, width: usize) -> impl Fn(usize, usize) -> [u8; 3] {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-ss", &t.to_string(), "-i", path])
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rgb = out.stdout;
    move |x, y| {
        let i = (y * width + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 180 && p[1] < 80 && p[2] < 80
}
fn is_green(p: [u8; 3]) -> bool {
    p[1] > 180 && p[0] < 90 && p[2] < 90
}
fn is_blue(p: [u8; 3]) -> bool {
    p[2] > 180 && p[0] < 80 && p[1] < 80
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chroma_keyed_picture_in_picture_over_a_scene() {
    let base = serve(EXAMPLE_MEDIA).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_example("layer-pip.json", &base, dir.path());
    let probed = probe(Path::new(&out)).await.unwrap();
    assert_eq!((probed.width, probed.height), (Some(1280), Some(720)));
    // The main layer's 4 s, not the 6 s overlay's; its audio.
    assert!((probed.duration - 4.0).abs() < 0.15, "duration {}", probed.duration);
    assert!(probed.has_audio);

    // pip: a quarter of each side (320x180), 20 px in from the bottom-right: x 940..1260, y 520..700.
    let px = frame(&out, 2.0, 1280);
    // The red box (the clip's middle half) sits in the window's middle half.
    for (x, y) in [(1100, 610), (1030, 570), (1170, 650)] {
        assert!(is_red(px(x, y)), "({x},{y}) {:?}", px(x, y));
    }
    // Outside the box the green is keyed out: no green left anywhere in the window.
    for y in (522..698).step_by(4) {
        for x in (942..1258).step_by(4) {
            assert!(!is_green(px(x, y)), "green left at ({x},{y}): {:?}", px(x, y));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_and_a_looped_still_laid_over_a_generated_scene() {
    let base = serve(EXAMPLE_MEDIA).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_example("layer-over-scene.json", &base, dir.path());
    let probed = probe(Path::new(&out)).await.unwrap();
    assert_eq!((probed.width, probed.height), (Some(1280), Some(720)));
    assert!((probed.duration - 5.0).abs() < 0.15, "duration {}", probed.duration);
    assert!(probed.has_audio);

    // w-1/4 top-right: 320x320 (the square still keeps its aspect) at x 960..1280, y 0..320,
    // above the centred 720x720 presenter (x 280..1000): the still wins where they overlap.
    for t in [1.0, 4.5] {
        let px = frame(&out, t, 1280);
        for (x, y) in [(980, 100), (1200, 100), (1270, 310), (965, 5)] {
            assert!(is_blue(px(x, y)), "t={t} ({x},{y}) {:?}", px(x, y));
        }
        for (x, y) in [(1200, 340), (940, 100)] {
            assert!(!is_blue(px(x, y)), "t={t} ({x},{y}) {:?}", px(x, y));
        }
    }
}

fn is_yellow(p: [u8; 3]) -> bool {
    p[0] > 180 && p[1] > 180 && p[2] < 80
}
fn is_grey(p: [u8; 3]) -> bool {
    p.iter().all(|c| (100..160).contains(c))
}

/// The audio's RMS level (of 16-bit samples) between `from` and `to` seconds.
fn loudness(path: &str, from: f64, to: f64) -> f64 {
    const RATE: f64 = 8000.0;
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i", path, "-map", "0:a"])
        .args(["-ac", "1", "-ar", "8000", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<f64> = out
        .stdout
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect();
    let window = &samples[(from * RATE) as usize..(to * RATE) as usize];
    (window.iter().map(|s| s * s).sum::<f64>() / window.len() as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_shows_its_items_in_turn_each_held_to_the_end_of_its_slot() {
    let still = "-f lavfi -i color=c={}:s=320x180 -frames:v 1";
    let base = serve(&[
        (
            "base.mp4",
            "-f lavfi -i color=c=0x808080:s=640x360:r=30:d=4 -f lavfi -i anullsrc=r=44100:cl=mono -t 4 \
             -c:v libx264 -pix_fmt yuv420p -c:a aac",
        ),
        ("red.png", &still.replace("{}", "red")),
        // Half a second of blue with a 1 kHz tone: shorter than its slot.
        (
            "blue.mp4",
            "-f lavfi -i color=c=blue:s=320x180:r=30:d=0.5 -f lavfi -i sine=frequency=1000:duration=0.5 \
             -c:v libx264 -pix_fmt yuv420p -c:a aac",
        ),
        ("yellow.png", &still.replace("{}", "yellow")),
    ])
    .await;
    let plan = serde_json::json!({"jobs": [{"id": "slides", "type": "layer", "params": {"layers": [
        {"media": format!("{base}/base.mp4")},
        {
            "media": [[
                {"media": format!("{base}/red.png"), "duration": 1},
                format!("{base}/blue.mp4"),
                {"media": format!("{base}/yellow.png"), "duration": 0},
            ]],
            "placement": "w-1/2 top-left",
            "volume": 1,
        },
    ]}}]});
    let dir = tempfile::tempdir().unwrap();
    let out = run_plan(&plan.to_string(), dir.path());
    let probed = probe(Path::new(&out)).await.unwrap();
    assert_eq!((probed.width, probed.height), (Some(640), Some(360)));
    // The main layer's length, the timeline's filling it.
    assert!((probed.duration - 4.0).abs() < 0.15, "duration {}", probed.duration);
    assert!(probed.has_audio);

    // Red for its 1 s, then the other two share the 3 s left: blue 1..2.5 s (frozen after
    // its 0.5 s), yellow 2.5..4 s; each in the top-left 320x180, over the grey base.
    let slots = [
        (0.5, is_red as fn([u8; 3]) -> bool),
        (1.2, is_blue),
        (2.2, is_blue),
        (2.8, is_yellow),
        (3.8, is_yellow),
    ];
    for (t, shows) in slots {
        let px = frame(&out, t, 640);
        for (x, y) in [(5, 5), (160, 90), (314, 174)] {
            assert!(shows(px(x, y)), "t={t} ({x},{y}) {:?}", px(x, y));
        }
        for (x, y) in [(330, 90), (160, 190), (480, 270)] {
            assert!(is_grey(px(x, y)), "t={t} ({x},{y}) {:?}", px(x, y));
        }
    }
    // The blue clip's tone from its slot's start (the base is silent: 4 s of grey), silence while it is held.
    for (from, to, loud) in [(0.2, 0.9, false), (1.1, 1.4, true), (1.7, 3.8, false)] {
        let rms = loudness(&out, from, to);
        assert_eq!(rms > 1000.0, loud, "{from}..{to} s: RMS {rms}");
        assert!(loud || rms < 100.0, "{from}..{to} s: RMS {rms}");
    }
}
