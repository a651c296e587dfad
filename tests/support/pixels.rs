//! Pixels of a video's or a still's first frame, read back with ffmpeg.

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
