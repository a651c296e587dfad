//! Pixels of a video's or a still's frames, read back with ffmpeg.

#![allow(dead_code)] // Each test binary uses part of it.

use std::path::Path;
use std::process::Command;

/// The RGBA pixel at (x, y) of the first frame (VP9 decoded by libvpx, which keeps alpha).
pub fn pixel(path: &Path, x: u32, y: u32) -> [u8; 4] {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error"]);
    if path.extension().is_some_and(|e| e == "webm") {
        cmd.args(["-c:v", "libvpx-vp9"]);
    }
    let out = cmd
        .arg("-i")
        .arg(path)
        .args(["-vf", &format!("format=rgba,crop=2:2:{x}:{y}")])
        .args(["-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    [out.stdout[0], out.stdout[1], out.stdout[2], out.stdout[3]]
}

/// Alike within what encoding (yuv420p, a key's soft edge) shifts a colour.
pub fn near(a: [u8; 4], b: [u8; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 16)
}

/// The raw bytes of the frame at `t` seconds after the filter `vf`, in `pix_fmt`.
pub fn raw_frame(video: &Path, t: f64, vf: &str, pix_fmt: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-vf", vf, "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Grey levels of the frame at `t` seconds, scaled to 160 pixels wide.
pub fn grey_frame(video: &Path, t: f64) -> Vec<u8> {
    raw_frame(video, t, "scale=160:-2", "gray")
}

/// The share of a frame's pixels that are drawn (clearly lighter than a black background).
pub fn drawn(frame: &[u8]) -> f64 {
    frame.iter().filter(|&&v| v > 60).count() as f64 / frame.len() as f64
}
