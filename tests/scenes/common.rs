//! What the scene tests share: runners on a scratch folder, small scenes, and reading
//! rendered movies back (bytes, frames, MP4 boxes) and the machine (processes, folders).

use std::path::{Path, PathBuf};

use futures::StreamExt;

use reelay_core::ports::{Artifact, SceneCode, SceneFrame};
use reelay_core::scenes::SceneBrief;
use reelay_media::ManimSettings;

pub fn settings(scratch: &Path) -> ManimSettings {
    ManimSettings::new(crate::support::python(), scratch)
}

pub fn code(source: &str) -> SceneCode {
    SceneCode {
        source: source.into(),
        class_name: "Demo".into(),
    }
}

/// A scene whose `construct` runs `body` (indented already) and then draws a circle.
pub fn scene(body: &str) -> SceneCode {
    code(&format!(
        "from manim import *\n\nclass Demo(Scene):\n    def construct(self):\n{body}\n        self.play(Create(Circle()), run_time=0.5)\n"
    ))
}

pub const SMALL: SceneFrame = SceneFrame {
    width: 426,
    height: 240,
    fps: 10,
};

pub fn brief(name: &str, prompt: &str, duration: f64, width: u32, height: u32) -> SceneBrief {
    SceneBrief {
        prompt: prompt.into(),
        scene_name: name.into(),
        class_name: "OfflineScene".into(),
        context: None,
        duration,
        width,
        height,
        repairs: Vec::new(),
    }
}

/// The artifact's bytes, written to `dir/name`.
pub async fn save(artifact: Artifact, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = Vec::new();
    let mut body = artifact.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Processes whose working folder lies under `root` (a sandbox left running).
pub fn processes_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(root) {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push(format!("{} {}", entry.file_name().to_string_lossy(), comm.trim()));
        }
    }
    found
}

pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The file's top-level MP4 boxes, in order.
pub fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        let size = match size32 {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()),
            0 => (bytes.len() - at) as u64,
            n => n,
        };
        assert!(size >= 8, "a broken box at {at} in {}", path.display());
        boxes.push(kind);
        at += size as usize;
    }
    boxes
}

pub fn before(boxes: &[String], first: &str, second: &str) -> bool {
    let at = |name: &str| {
        boxes
            .iter()
            .position(|b| b == name)
            .unwrap_or_else(|| panic!("no {name} in {boxes:?}"))
    };
    at(first) < at(second)
}
