//! Background replacement in one ffmpeg pass: the background is keyed out by its colour (a
//! green screen, or the `local` renders' backdrop) or taken from the input's own alpha
//! channel (a transparent PNG), then either laid on a solid colour or kept transparent in a
//! format that carries alpha (VP9 `yuva420p` in WebM for video, RGBA PNG for stills).

use std::ffi::OsString;
use std::path::Path;

use reelay_core::background::{Rgb, GREEN};
use reelay_core::plan::Quality;

use crate::encoding::video_args;
use crate::ffmpeg::{container_args, ffmpeg, file_arg, TempFile};
use crate::FfmpegError;

/// How close to the key a pixel must be to go, and how soft the edge is (colorkey's
/// `similarity` and `blend`): loose enough for a compressed green screen, as upstream keys.
const GREEN_KEY: (f64, f64) = (0.25, 0.05);
/// Any other key is a flat colour we rendered ourselves: keyed tightly.
const FLAT_KEY: (f64, f64) = (0.08, 0.0);

/// What a replacement makes: a still or a video, on a colour (`Some`) or transparent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replacement {
    pub still: bool,
    /// The key colour; `None`: the input's alpha channel is the matte.
    pub key: Option<Rgb>,
    /// The new background; `None`: transparent.
    pub fill: Option<Rgb>,
}

impl Replacement {
    /// The output's `(extension, content type)`.
    pub fn format(&self) -> (&'static str, &'static str) {
        match (self.still, self.fill) {
            (true, _) => ("png", "image/png"),
            (false, Some(_)) => ("mp4", "video/mp4"),
            (false, None) => ("webm", "video/webm"),
        }
    }
}

/// `#rrggbb` as ffmpeg's `0xRRGGBB`.
fn hex(c: Rgb) -> String {
    format!("0x{:02X}{:02X}{:02X}", c[0], c[1], c[2])
}

/// Replaces `input`'s background as `r` says, writing `out` (whose extension should be
/// `r.format().0`).
pub async fn replace_background(input: &Path, r: Replacement, out: &Path) -> Result<(), FfmpegError> {
    let matte = match r.key {
        Some(key) => {
            let (similarity, blend) = if key == GREEN { GREEN_KEY } else { FLAT_KEY };
            format!("[0:v]format=rgba,colorkey={}:{similarity}:{blend}", hex(key))
        }
        None => "[0:v]format=rgba".to_string(),
    };
    let graph = match r.fill {
        // A filled copy of the frame under the keyed one: no second input whose size we
        // would have to probe first.
        Some(fill) => format!(
            "{matte},split[bg][fg];[bg]drawbox=c={}@1:t=fill[under];[under][fg]overlay=format=auto,format={}[v]",
            hex(fill),
            if r.still { "rgb24" } else { "yuv420p" }
        ),
        None => format!("{matte},format={}[v]", if r.still { "rgba" } else { "yuva420p" }),
    };
    let tmp = TempFile::beside(out, "")?;
    let mut args: Vec<OsString> = vec![
        "-i".into(),
        file_arg(input),
        "-filter_complex".into(),
        graph.into(),
        "-map".into(),
        "[v]".into(),
    ];
    let encoder: &[&str] = match r.format().0 {
        "png" => &["-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1"],
        "mp4" => &["-map", "0:a?", "-c:a", "aac"],
        _ => &[
            "-map",
            "0:a?",
            "-c:a",
            "libopus",
            "-c:v",
            "libvpx-vp9",
            "-pix_fmt",
            "yuva420p",
            "-b:v",
            "0",
            "-crf",
            "32",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-f",
            "webm",
        ],
    };
    args.extend(encoder.iter().map(OsString::from));
    if r.format().0 == "mp4" {
        // Finishing a provider's output, not a plan's edit: no `quality` asks otherwise.
        args.extend(video_args(Quality::default()));
    }
    args.extend(container_args(out));
    args.push(file_arg(tmp.path()));
    ffmpeg(args).await?;
    tmp.persist(out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{render_video, BACKDROP};

    /// The RGBA pixel at (x, y) of the first frame (VP9 decoded with libvpx, which keeps alpha).
    pub(crate) async fn pixel(path: &Path, x: u32, y: u32) -> [u8; 4] {
        let decoder: &[&str] = if path.extension().is_some_and(|e| e == "webm") {
            &["-c:v", "libvpx-vp9"]
        } else {
            &[]
        };
        let mut args: Vec<OsString> = decoder.iter().map(OsString::from).collect();
        args.extend([
            "-i".into(),
            file_arg(path),
            "-vf".into(),
            format!("format=rgba,crop=2:2:{x}:{y}").into(),
            "-frames:v".into(),
            "1".into(),
            "-f".into(),
            "rawvideo".into(),
            "-".into(),
        ]);
        let out = crate::ffmpeg::run(&crate::ffmpeg::binary("REELAY_FFMPEG", "ffmpeg"), args, true)
            .await
            .unwrap();
        [out[0], out[1], out[2], out[3]]
    }

    fn near(a: [u8; 4], b: [u8; 4]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 12)
    }

    #[tokio::test]
    async fn the_backdrop_keys_to_green_then_to_a_colour_or_alpha() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.mp4");
        render_video("keyed", 1.0, 160, 90, &src).await.unwrap();
        let green = dir.path().join("green.mp4");
        let to_green = Replacement {
            still: false,
            key: Some(BACKDROP),
            fill: Some(GREEN),
        };
        replace_background(&src, to_green, &green).await.unwrap();
        assert!(near(pixel(&green, 4, 4).await, [0, 255, 0, 255]));
        let subject = pixel(&green, 80, 44).await;
        assert!(!near(subject, [0, 255, 0, 255]), "{subject:?}");

        let red = dir.path().join("red.mp4");
        let to_red = Replacement {
            key: Some(GREEN),
            fill: Some([255, 0, 0]),
            ..to_green
        };
        replace_background(&green, to_red, &red).await.unwrap();
        assert!(near(pixel(&red, 4, 4).await, [255, 0, 0, 255]));
        assert!(near(pixel(&red, 80, 44).await, subject));

        let clear = dir.path().join("clear.webm");
        let to_clear = Replacement { fill: None, ..to_red };
        assert_eq!(to_clear.format(), ("webm", "video/webm"));
        replace_background(&green, to_clear, &clear).await.unwrap();
        // The key's soft edge (blend) may leave a trace of opacity.
        assert!(pixel(&clear, 4, 4).await[3] < 16);
        assert_eq!(pixel(&clear, 80, 44).await[3], 255);
    }
}
