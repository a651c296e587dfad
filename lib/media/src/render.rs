//! Stand-in renderers for the offline `local` AI provider: a moving test
//! pattern with the prompt written on it, a still, a tone. They only need to
//! be real, cheap media files whose look depends on the prompt.

use std::ffi::OsString;
use std::path::Path;

use crate::ffmpeg::{container_args, ffmpeg, file_arg, secs, TempFile};
use crate::FfmpegError;

const FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Longest prompt excerpt drawn on a frame.
const MAX_TEXT_CHARS: usize = 60;
/// Largest frame side we agree to render; beyond it ffmpeg would only burn memory.
const MAX_SIDE: u32 = 8192;

/// The flat colour around the subject (a test pattern in the middle half of the frame) of
/// every video and still rendered here: the `local` background remover keys it out.
pub const BACKDROP: [u8; 3] = [0x20, 0x30, 0x40];

/// Renders a `duration`-second, 30 fps H.264/AAC video of `width`x`height`
/// (even numbers): a moving test pattern tinted by the prompt on the backdrop, the prompt
/// (one line, at most 60 characters) moving over it, and a sine tone.
pub async fn render_video(prompt: &str, duration: f64, width: u32, height: u32, out: &Path) -> Result<(), FfmpegError> {
    check_duration(duration)?;
    check_size(width, height)?;
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(FfmpegError::Invalid(format!(
            "video size {width}x{height} must be even"
        )));
    }
    let seed = fnv1a(prompt);
    let d = secs(duration);
    let mut video_filters = vec![subject(seed)];
    video_filters.extend(drawtext(
        prompt,
        width.min(height),
        // Visible from the first frame (thumbnails): a short text sways
        // around the centre, a long one scrolls from its start to its end.
        &format!("if(gt(tw,w*0.9),w/20-(tw-w*0.9)*t/{d},(w-tw)/2+w/10*sin(2*PI*t/{d}))"),
        &format!("(h-th)/2+h/6*sin(2*PI*t/{d})"),
    ));
    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("{}:rate=30:duration={d}", backdrop(width, height)).into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={}:rate=30:duration={d}", pattern_size(width, height)).into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={}:sample_rate=48000:duration={d}", 220 + seed % 660).into(),
        "-filter_complex".into(),
        format!("{}[v]", video_filters.join(",")).into(),
        "-map".into(),
        "[v]".into(),
        "-map".into(),
        "2:a".into(),
        // ultrafast: these renders run inside tests and demos, speed wins.
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "ultrafast".into(),
        "-crf".into(),
        "23".into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-c:a".into(),
        "aac".into(),
        "-ac".into(),
        "2".into(),
    ];
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// Renders a PNG still of `width`x`height` with the prompt written on it.
pub async fn render_image(prompt: &str, width: u32, height: u32, out: &Path) -> Result<(), FfmpegError> {
    check_size(width, height)?;
    let seed = fnv1a(prompt);
    // The sources round odd sizes down to even; a PNG can be any size.
    let mut filters = vec![subject(seed), format!("scale={width}:{height}")];
    filters.extend(drawtext(prompt, width.min(height), "(w-tw)/2", "(h-th)/2"));
    let tmp = TempFile::beside(out, "")?;
    let args: Vec<OsString> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("{}:rate=1:duration=1", backdrop(width, height)).into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={}:rate=1:duration=1", pattern_size(width, height)).into(),
        "-filter_complex".into(),
        filters.join(",").into(),
        "-frames:v".into(),
        "1".into(),
        "-c:v".into(),
        "png".into(),
        // The output name need not end in .png; the format is forced.
        "-f".into(),
        "image2".into(),
        "-update".into(),
        "1".into(),
        file_arg(tmp.path()),
    ];
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// Renders `duration` seconds of a 440 Hz stereo tone as AAC (e.g. `.m4a`).
pub async fn render_audio(duration: f64, out: &Path) -> Result<(), FfmpegError> {
    check_duration(duration)?;
    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency=440:sample_rate=48000:duration={}", secs(duration)).into(),
        "-c:a".into(),
        "aac".into(),
        "-ac".into(),
        "2".into(),
    ];
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

/// The backdrop source (input 0) of a frame of `width`x`height` (any size, odd ones too).
fn backdrop(width: u32, height: u32) -> String {
    let [r, g, b] = BACKDROP;
    format!("color=c=0x{r:02X}{g:02X}{b:02X}:size={width}x{height}")
}

/// The pattern's size: half the frame, even (testsrc2 rounds odd sizes down anyway).
fn pattern_size(width: u32, height: u32) -> String {
    let half = |side: u32| (side / 4 * 2).max(2);
    format!("{}x{}", half(width), half(height))
}

/// The pattern (input 1), tinted by the prompt, centred on the backdrop (input 0).
fn subject(seed: u32) -> String {
    format!("[1:v]hue=h={}[p];[0:v][p]overlay=(W-w)/2:(H-h)/2", seed % 360)
}

fn check_duration(duration: f64) -> Result<(), FfmpegError> {
    if duration.is_finite() && duration > 0.0 {
        Ok(())
    } else {
        Err(FfmpegError::Invalid(format!(
            "duration must be a positive number of seconds, got {duration}"
        )))
    }
}

fn check_size(width: u32, height: u32) -> Result<(), FfmpegError> {
    if (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height) {
        Ok(())
    } else {
        Err(FfmpegError::Invalid(format!(
            "frame size {width}x{height} must be within 1..={MAX_SIDE}"
        )))
    }
}

/// The drawtext filter writing `prompt` at (`x`, `y`) (ffmpeg expressions),
/// or nothing for a blank prompt (drawtext refuses empty text).
/// `short_side` is the frame's smaller dimension; the font scales with it.
fn drawtext(prompt: &str, short_side: u32, x: &str, y: &str) -> Option<String> {
    let text = display_text(prompt);
    if text.is_empty() {
        return None;
    }
    let mut opts = Vec::new();
    // Without the file, drawtext falls back to fontconfig's default font.
    if Path::new(FONT_FILE).exists() {
        opts.push(format!("fontfile={}", escape_value(FONT_FILE)));
    }
    opts.extend([
        // No %{...} expansion: the prompt is shown literally.
        "expansion=none".to_owned(),
        format!("text={}", escape_value(&text)),
        format!("fontsize={}", (short_side / 10).max(12)),
        "fontcolor=white".to_owned(),
        "box=1".to_owned(),
        "boxcolor=black@0.5".to_owned(),
        "boxborderw=6".to_owned(),
        format!("x={}", escape_value(x)),
        format!("y={}", escape_value(y)),
    ]);
    Some(format!("drawtext={}", escape_graph(&opts.join(":"))))
}

/// The prompt on one line: whitespace runs (newlines included) become one
/// space, other control characters go, and long prompts are cut with "…".
fn display_text(prompt: &str) -> String {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    let flat: String = words.join(" ").chars().filter(|c| !c.is_control()).collect();
    if flat.chars().count() <= MAX_TEXT_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(MAX_TEXT_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

/// Escapes an option value for the filter's own `key=value:key=value`
/// parser.
fn escape_value(s: &str) -> String {
    escape(s, &['\\', '\'', ':'])
}

/// Escapes a filter's whole argument string for the filter-graph parser,
/// which splits on `[ ] , ;` before the filter sees its options.
fn escape_graph(s: &str) -> String {
    escape(s, &['\\', '\'', '[', ']', ',', ';'])
}

fn escape(s: &str, specials: &[char]) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A small stable hash (FNV-1a) so the same prompt always looks the same.
fn fnv1a(s: &str) -> u32 {
    s.bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe;

    #[test]
    fn display_text_flattens_and_truncates() {
        assert_eq!(display_text("  a\n\tb\r\nc  "), "a b c");
        assert_eq!(display_text("x\u{7}y"), "xy");
        let long = "word ".repeat(40);
        let t = display_text(&long);
        assert!(t.chars().count() <= MAX_TEXT_CHARS);
        assert!(t.starts_with("word word") && t.ends_with("word…"), "{t}");
        assert_eq!(display_text(" \n "), "");
    }

    #[test]
    fn escaping_is_two_level() {
        assert_eq!(escape_value(r"a:b'c\d,e"), r"a\:b\'c\\d,e");
        assert_eq!(
            escape_graph(&format!("text={}", escape_value("it's 1:2, [x];"))),
            r"text=it\\\'s 1\\:2\, \[x\]\;"
        );
    }

    #[tokio::test]
    async fn render_video_probes_as_requested() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v.mp4");
        render_video("a cat on a skateboard", 1.0, 160, 90, &out).await.unwrap();
        let p = probe(&out).await.unwrap();
        assert!((p.duration - 1.0).abs() < 0.1, "{p:?}");
        assert_eq!((p.width, p.height), (Some(160), Some(90)));
        assert_eq!(p.aspect_ratio.as_deref(), Some("16:9"));
        assert!(p.has_audio);
        assert_eq!(p.video_codec.as_deref(), Some("h264"));
        assert_eq!(p.audio_codec.as_deref(), Some("aac"));
        assert!((p.fps.unwrap() - 30.0).abs() < 0.01);
        assert!(p.size_bytes > 0);
        // Only the output remains: the temp file was renamed, not copied.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn hostile_prompt_is_drawn_literally() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v.mp4");
        let prompt = "it's 100% \"fine\": a\\b [x], y; z=1\n%{pts} {{}} 'q' ::: \\\\ é漢字 \
                      and then a very long tail that has to be truncated somewhere";
        render_video(prompt, 0.5, 160, 90, &out).await.unwrap();
        assert!(probe(&out).await.unwrap().duration > 0.4);
    }

    #[tokio::test]
    async fn render_image_and_audio() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("i.png");
        render_image("a: b, c", 161, 91, &img).await.unwrap();
        let p = probe(&img).await.unwrap();
        assert_eq!((p.width, p.height), (Some(161), Some(91)));
        assert_eq!(p.video_codec.as_deref(), Some("png"));
        assert!(!p.has_audio);

        let snd = dir.path().join("a.m4a");
        render_audio(0.5, &snd).await.unwrap();
        let p = probe(&snd).await.unwrap();
        assert!((p.duration - 0.5).abs() < 0.1, "{p:?}");
        assert!(p.has_audio && p.width.is_none() && p.fps.is_none());
        assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    }

    #[tokio::test]
    async fn bad_arguments_are_invalid() {
        let out = Path::new("/nonexistent/x.mp4");
        for r in [
            render_video("p", 0.0, 160, 90, out).await,
            render_video("p", f64::NAN, 160, 90, out).await,
            render_video("p", 1.0, 161, 90, out).await,
            render_video("p", 1.0, 0, 90, out).await,
            render_image("p", 0, 10, out).await,
            render_audio(-1.0, out).await,
        ] {
            assert!(matches!(r, Err(FfmpegError::Invalid(_))), "{r:?}");
        }
    }
}
