//! The offline templates rendered for real, `FastStart` on a rendered scene, and the
//! benchmark (`make bench-scenes`).

use std::process::Command;
use std::time::{Duration, Instant};

use reelay_core::plan::Quality;
use reelay_core::ports::{Media, MediaError, MediaTask, SceneCode, SceneFrame, SceneRunner};
use reelay_media::{probe, FfmpegMedia, ManimSandbox};

use crate::common::*;
use crate::pixels::{drawn, grey_frame};
use reelay_providers::scene_templates::write_scene;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_passes_the_checks_and_renders_drawn_frames() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let runner = ManimSandbox::new(settings(&scratch));
    let cases = [
        (
            "title",
            "Photosynthesis",
            "How plants turn sunlight into sugar",
            4.0,
            854,
            480,
            "SUBTITLE",
        ),
        (
            "bullets",
            "",
            "Water \"evaporates\". Clouds form; rain falls back down. Rivers carry it home — 水",
            5.0,
            854,
            480,
            "POINTS",
        ),
        (
            "shape",
            "Shapes",
            "A star turns into a hexagon",
            4.0,
            1280,
            720,
            "RegularPolygon(n=6",
        ),
        (
            "graph",
            "Waves",
            "Plot the sine function and follow a point along it",
            5.0,
            1080,
            1920,
            "np.sin(x)",
        ),
    ];
    for (kind, name, prompt, seconds, width, height, marker) in cases {
        let brief = brief(name, prompt, seconds, width, height);
        let source = write_scene(&brief);
        assert!(source.contains(marker), "{kind}: {source}");
        let scene = SceneCode {
            source,
            class_name: brief.class_name.clone(),
        };
        runner
            .check(&scene)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", scene.source));
        let frame = SceneFrame { width, height, fps: 15 };
        let artifact = runner
            .render(&scene, frame)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            (artifact.content_type.as_str(), artifact.extension.as_str()),
            ("video/mp4", "mp4")
        );
        assert_eq!(
            (artifact.info.width, artifact.info.height),
            (Some(width), Some(height)),
            "{kind}"
        );
        let video = save(artifact, dir.path(), &format!("{kind}.mp4")).await;
        let probed = probe(&video).await.unwrap();
        assert_eq!((probed.width, probed.height), (Some(width), Some(height)), "{kind}");
        assert!(
            (probed.duration - seconds).abs() <= 1.0,
            "{kind}: {} s for {seconds} s",
            probed.duration
        );
        for share in [0.3, 0.6] {
            let frame = grey_frame(&video, seconds * share);
            let drawn = drawn(&frame);
            assert!(
                (0.003..0.6).contains(&drawn),
                "{kind} at {share}: {drawn} of the frame is drawn"
            );
        }
    }
    assert_eq!(entries(&scratch), Vec::<String>::new(), "render folders left behind");
}

#[tokio::test]
async fn fast_start_moves_the_index_to_the_front_of_a_rendered_scene() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ManimSandbox::new(settings(&dir.path().join("scenes")));
    let rendered = runner
        .render(&scene("        self.add(Text('index first'))"), SMALL)
        .await
        .unwrap();
    let input = save(rendered, dir.path(), "rendered.mp4").await;
    let media = FfmpegMedia::new(dir.path().join("media"));
    let packed = media
        .run(
            MediaTask::FastStart {
                input: format!("file://{}", input.display()),
            },
            Quality::default(),
        )
        .await
        .unwrap();
    let before_duration = probe(&input).await.unwrap().duration;
    assert!(
        (packed.info.duration.unwrap() - before_duration).abs() < 0.05,
        "{:?}",
        packed.info
    );
    let output = save(packed, dir.path(), "packed.mp4").await;
    let boxes = top_level_boxes(&output);
    assert!(before(&boxes, "moov", "mdat"), "{boxes:?}");
    println!("rendered: {:?}; packed: {boxes:?}", top_level_boxes(&input));

    // An input written index-last comes out index-first too.
    let late = dir.path().join("late.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=320x240:rate=15",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&late)
        .status()
        .unwrap();
    assert!(made.success());
    assert!(before(&top_level_boxes(&late), "mdat", "moov"));
    let packed = media
        .run(
            MediaTask::FastStart {
                input: format!("file://{}", late.display()),
            },
            Quality::default(),
        )
        .await
        .unwrap();
    assert!((packed.info.duration.unwrap() - 2.0).abs() < 0.1, "{:?}", packed.info);
    let output = save(packed, dir.path(), "late-packed.mp4").await;
    assert!(before(&top_level_boxes(&output), "moov", "mdat"));

    // Not a video: the input's fault.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a video").unwrap();
    let err = media
        .run(
            MediaTask::FastStart {
                input: format!("file://{}", text.display()),
            },
            Quality::default(),
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MediaError::Invalid(_)), "{err:?}");
}

/// `make bench-scenes`: seconds per rendered template scene (5 s at 1080p30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_seconds_per_scene() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ManimSandbox::new(settings(dir.path()));
    let frame = SceneFrame {
        width: 1920,
        height: 1080,
        fps: 30,
    };
    let prompts = [
        "How plants turn sunlight into sugar",
        "A star turns into a hexagon",
        "Plot the sine function",
    ];
    let mut total = Duration::ZERO;
    for prompt in prompts {
        let brief = brief("Benchmark", prompt, 5.0, 1920, 1080);
        let scene = SceneCode {
            source: write_scene(&brief),
            class_name: brief.class_name,
        };
        let started = Instant::now();
        let artifact = runner.render(&scene, frame).await.unwrap();
        let took = started.elapsed();
        total += took;
        println!(
            "{prompt:?}: {:.2} s for {:?} s of video",
            took.as_secs_f64(),
            artifact.info.duration
        );
    }
    println!(
        "seconds per rendered scene (5 s, 1920x1080, 30 fps): {:.2}",
        total.as_secs_f64() / prompts.len() as f64
    );
}
