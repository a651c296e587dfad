//! The one filter graph of a layer job: a black canvas of the output's size and length, each
//! layer's picture overlaid on it bottom first, and the audio chosen or mixed.
//!
//! Every value written into the graph is a number this crate computed: nothing a client sent
//! reaches its syntax.

use std::fmt::Write;

use reelay_core::plan::ChromaKey;

use super::placement::Rect;
use crate::ffmpeg::secs;

/// One picture to overlay: input `input`, keyed, scaled into `rect`, shown from `start`.
pub(super) struct Clip {
    pub input: usize,
    pub rect: Rect,
    pub start: f64,
    /// Whether the input's frames move to `start` (a timeline item) or play from 0.
    pub shifted: bool,
    pub key: Option<ChromaKey>,
}

/// Where the output's audio comes from.
#[derive(Debug, PartialEq)]
pub(super) enum Audio {
    None,
    /// Input `n`'s first audio stream as it is.
    Main(usize),
    /// `[aout]`: the tracks mixed at their volumes.
    Mixed,
}

pub(super) struct Graph {
    filter: String,
    /// The label of the picture so far.
    top: String,
    count: usize,
    /// `(input, volume, is the main layer)`.
    tracks: Vec<(usize, f64, bool)>,
}

impl Graph {
    pub fn new(frame: (u32, u32), fps: f64, duration: f64) -> Self {
        let mut filter = String::new();
        // The canvas sets the output's size, rate and length, whatever the layers' own.
        let _ = write!(
            filter,
            "color=c=black:s={}x{}:r={fps}:d={},format=yuv420p[c0]",
            frame.0,
            frame.1,
            secs(duration)
        );
        Graph {
            filter,
            top: "c0".into(),
            count: 0,
            tracks: Vec::new(),
        }
    }

    pub fn overlay(&mut self, clip: Clip) {
        self.count += 1;
        let k = self.count;
        let Rect { x, y, w, h } = clip.rect;
        let _ = write!(self.filter, ";[{}:v]", clip.input);
        // Keyed before scaling, so the key sees the source's own pixels.
        if let Some(key) = clip.key {
            let _ = write!(
                self.filter,
                "chromakey=color=0x{:06X}:similarity={}:blend={},",
                key.color,
                secs(key.similarity),
                secs(key.blend)
            );
        }
        let start = if clip.shifted { clip.start } else { 0.0 };
        let _ = write!(
            self.filter,
            "scale={w}:{h},setsar=1,setpts=PTS-STARTPTS+{}/TB[l{k}];[{}][l{k}]overlay=x={x}:y={y}:eof_action=pass[c{k}]",
            secs(start),
            self.top
        );
        self.top = format!("c{k}");
    }

    pub fn audio(&mut self, input: usize, volume: f64, main: bool) {
        self.tracks.push((input, volume, main));
    }

    /// The graph's text (picture at `[vout]`) and where the audio comes from.
    pub fn finish(mut self) -> (String, Audio) {
        let _ = write!(self.filter, ";[{}]format=yuv420p[vout]", self.top);
        let audio = match self.tracks.as_slice() {
            [] => Audio::None,
            [(n, v, true)] if (*v - 1.0).abs() < 1e-9 => Audio::Main(*n),
            tracks => {
                for (j, (n, v, _)) in tracks.iter().enumerate() {
                    let _ = write!(self.filter, ";[{n}:a]volume={}[a{j}]", secs(*v));
                }
                let labels: String = (0..tracks.len()).map(|j| format!("[a{j}]")).collect();
                // normalize=0: each track keeps its volume instead of being divided by the count.
                let _ = write!(
                    self.filter,
                    ";{labels}amix=inputs={}:duration=longest:normalize=0[aout]",
                    tracks.len()
                );
                Audio::Mixed
            }
        };
        (self.filter, audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_pip_over_a_base_with_the_main_audio_kept() {
        let mut g = Graph::new((1080, 1920), 30.0, 5.0);
        let rect = |x, y, w, h| Rect { x, y, w, h };
        g.overlay(Clip {
            input: 0,
            rect: rect(0, 0, 1080, 1920),
            start: 0.0,
            shifted: false,
            key: None,
        });
        g.overlay(Clip {
            input: 1,
            rect: rect(790, 1420, 270, 480),
            start: 2.0,
            shifted: true,
            key: Some(ChromaKey {
                color: 0x00FF00,
                similarity: 0.25,
                blend: 0.05,
            }),
        });
        g.audio(0, 1.0, true);
        let (filter, audio) = g.finish();
        assert_eq!(audio, Audio::Main(0));
        assert!(
            filter.starts_with("color=c=black:s=1080x1920:r=30:d=5.000000"),
            "{filter}"
        );
        assert!(
            filter.contains("[1:v]chromakey=color=0x00FF00:similarity=0.250000:blend=0.050000,scale=270:480"),
            "{filter}"
        );
        assert!(
            filter.contains("setpts=PTS-STARTPTS+2.000000/TB[l2];[c1][l2]overlay=x=790:y=1420"),
            "{filter}"
        );
        assert!(filter.ends_with("[c2]format=yuv420p[vout]"), "{filter}");
    }

    #[test]
    fn audio_asked_of_other_layers_is_mixed() {
        let mut g = Graph::new((2, 2), 30.0, 1.0);
        g.audio(0, 1.0, true);
        g.audio(2, 0.5, false);
        let (filter, audio) = g.finish();
        assert_eq!(audio, Audio::Mixed);
        assert!(
            filter.ends_with("[2:a]volume=0.500000[a1];[a0][a1]amix=inputs=2:duration=longest:normalize=0[aout]"),
            "{filter}"
        );
    }
}
