//! Background removal on the `local` stand-ins, through `reelay run`: the removal half of
//! `examples/background-removed-over-scene.json` (with and without its `layer` job), and each output
//! type: green screen, a chosen colour, transparent video (VP9 with alpha), and a still cut out
//! to a PNG with alpha. Pixels are read back with ffmpeg: the backdrop of the local renders
//! must be gone, the subject in the middle kept.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

#[path = "support/pixels.rs"]
mod pixels;
use pixels::{near, pixel};

fn example() -> Value {
    let path = format!(
        "{}/examples/background-removed-over-scene.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `plan` with `reelay run`; returns the data folder (kept while the guard lives).
fn run(plan: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    std::fs::write(&file, plan.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reelay"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["run", file.to_str().unwrap()])
        .env("REELAY_LOG", "warn")
        .env("REELAY_PROVIDER_DELAY_MS", "20")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The stored output of `job` (any extension).
fn output_of(dir: &Path, job: &str) -> PathBuf {
    let executions = dir.join("data/blobs/executions");
    let execution = std::fs::read_dir(&executions).unwrap().next().unwrap().unwrap().path();
    let outputs: Vec<PathBuf> = std::fs::read_dir(execution.join(job))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // A finished background replaces the model's output; where the extension changed, the
    // model's own output stays beside it.
    outputs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "webm"))
        .or_else(|| outputs.first())
        .cloned()
        .unwrap()
}

/// ffprobe's answer for one entry of the first video stream.
fn stream_entry(path: &Path, entry: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", entry])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A point on the backdrop (a corner) and one on the subject (the pattern in the middle half).
const BACKDROP: (u32, u32) = (6, 6);
const SUBJECT: (u32, u32) = (300, 140);

#[test]
fn local_removals_key_their_input_to_each_output_type() {
    let mut plan = example();
    let jobs = plan["jobs"].as_array_mut().unwrap();
    // The removal half, with more output types beside it.
    jobs.retain(|j| j["type"] != "layer");
    let removal = |id: &str, extra: Value| {
        let mut params = json!({"provider": "local", "modelId": "remove-background", "video": "$presenter"});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"id": id, "type": "removeBackground", "params": params})
    };
    jobs.push(removal("coloured", json!({"backgroundColor": "#FF0000"})));
    jobs.push(removal("clear", json!({"outputType": "transparent"})));
    jobs.push(json!({"id": "still", "type": "generateImage",
        "params": {"provider": "local", "modelId": "image", "prompt": "a mug", "aspectRatio": "16:9", "resolution": "480p"}}));
    jobs.push(json!({"id": "mug", "type": "removeImageBackground",
        "params": {"provider": "local", "modelId": "remove-image-background", "image": "$still"}}));
    let dir = run(&plan);
    let (bx, by) = BACKDROP;
    let (sx, sy) = SUBJECT;

    let green = output_of(dir.path(), "cutout");
    assert_eq!(green.extension().unwrap(), "mp4");
    assert!(
        near(pixel(&green, bx, by), [0, 255, 0, 255]),
        "{:?}",
        pixel(&green, bx, by)
    );
    let subject = pixel(&green, sx, sy);
    assert!(!near(subject, [0, 255, 0, 255]), "{subject:?}");

    let red = output_of(dir.path(), "coloured");
    assert!(near(pixel(&red, bx, by), [255, 0, 0, 255]), "{:?}", pixel(&red, bx, by));
    assert!(!near(pixel(&red, sx, sy), [255, 0, 0, 255]));

    let clear = output_of(dir.path(), "clear");
    assert_eq!(clear.extension().unwrap(), "webm");
    assert_eq!(stream_entry(&clear, "stream=codec_name"), "vp9");
    assert_eq!(stream_entry(&clear, "stream_tags=alpha_mode"), "1");
    // The key's soft edge may leave a trace of opacity.
    assert!(pixel(&clear, bx, by)[3] < 16, "{:?}", pixel(&clear, bx, by));
    assert_eq!(pixel(&clear, sx, sy)[3], 255);

    let mug = output_of(dir.path(), "mug");
    assert_eq!(mug.extension().unwrap(), "png");
    assert_eq!(stream_entry(&mug, "stream=pix_fmt"), "rgba");
    assert_eq!(pixel(&mug, bx, by)[3], 0);
    assert_eq!(pixel(&mug, sx, sy)[3], 255);
}

#[test]
fn bad_output_types_and_colours_are_refused_naming_job_and_field() {
    let plan = json!({"jobs": [
        {"id": "clip", "type": "generate", "params": {"provider": "local", "modelId": "video", "prompt": "x"}},
        {"id": "a", "type": "removeBackground",
            "params": {"provider": "local", "modelId": "remove-background", "video": "$clip", "outputType": "blue-screen"}},
        {"id": "b", "type": "removeBackground",
            "params": {"provider": "local", "modelId": "remove-background", "video": "$clip", "backgroundColor": "teal"}}
    ]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    std::fs::write(&file, plan.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reelay"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["run", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["`a`", "params.outputType", "`b`", "params.backgroundColor"] {
        assert!(said.contains(needle), "{needle}: {said}");
    }
}

#[test]
fn the_whole_example_lays_the_cutout_over_the_scene() {
    let dir = run(&example());
    let composite = output_of(dir.path(), "composite");
    let presenter = output_of(dir.path(), "presenter");
    let (bx, by) = BACKDROP;
    let (sx, sy) = SUBJECT;
    // Where the presenter's backdrop was, the cutout's green is keyed away: the scene shows.
    let behind = pixel(&composite, bx, by);
    assert!(!near(behind, [0, 255, 0, 255]), "the key colour is left: {behind:?}");
    let scene = output_of(dir.path(), "scene");
    assert!(near(behind, pixel(&scene, bx, by)), "{behind:?}");
    // The presenter itself stays on top.
    assert!(near(pixel(&composite, sx, sy), pixel(&presenter, sx, sy)));
}
