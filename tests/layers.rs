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

/// Serves a 6 s 640x360 green-screen clip (a red box in its middle half) and a blue 200x200
/// PNG on a loopback port; returns its base URL.
async fn serve_media() -> String {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("green-screen.mp4");
    let logo = dir.path().join("logo.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x00FF00:s=640x360:r=30:d=6",
        "-vf",
        "drawbox=x=160:y=90:w=320:h=180:color=red:t=fill",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().unwrap(),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:s=200x200",
        "-frames:v",
        "1",
        logo.to_str().unwrap(),
    ]);
    let (clip, logo) = (std::fs::read(clip).unwrap(), std::fs::read(logo).unwrap());
    let app = axum::Router::new()
        .route(
            "/green-screen.mp4",
            axum::routing::get(move || async move { clip.clone() }),
        )
        .route("/logo.png", axum::routing::get(move || async move { logo.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs example `name` with its media URLs pointed at `base`; the output's path.
fn run_example(name: &str, base: &str, data: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let plan = data.join(name);
    std::fs::write(&plan, text.replace(EXAMPLE_BASE, base)).unwrap();
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
    let base = serve_media().await;
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
    let base = serve_media().await;
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
