//! The one filter graph of a layer job: a black canvas of the output's size and length, each
//! layer's picture overlaid on it bottom first, and the audio chosen or mixed.
//!
//! Every value written into the graph is a number this crate computed: nothing a client sent
//! reaches its syntax.

use std::fmt::Write;

use reelay_core::plan::{ChromaKey, Slot};

use super::placement::Rect;
use crate::ffmpeg::secs;

/// One picture to overlay: input `input`, keyed, scaled into `rect`.
pub(super) struct Clip {
    pub input: usize,
    pub rect: Rect,
    /// A timeline item's slot: its frames move to the slot's start and its last one holds to
    /// the slot's end. `None`: it plays from 0 and is gone when it ends.
    pub slot: Option<Slot>,
    pub key: Option<ChromaKey>,
}

/// One input's audio in the output.
pub(super) struct Track {
    pub input: usize,
    pub volume: f64,
    /// When it starts: a timeline item's at its slot.
    pub delay: f64,
    pub main: bool,
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
    tracks: Vec<Track>,
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
        // A clip shorter than its slot (a still's loop is cut to it) shows its last frame
        // until the slot ends, and no longer.
        if let Some(slot) = clip.slot {
            let length = secs(slot.length);
            let _ = write!(
                self.filter,
                "tpad=stop_mode=clone:stop_duration={length},trim=duration={length},"
            );
        }
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
        let start = clip.slot.map_or(0.0, |slot| slot.start);
        let _ = write!(
            self.filter,
            "scale={w}:{h},setsar=1,setpts=PTS-STARTPTS+{}/TB[l{k}];[{}][l{k}]overlay=x={x}:y={y}:eof_action=pass[c{k}]",
            secs(start),
            self.top
        );
        self.top = format!("c{k}");
    }

    pub fn audio(&mut self, track: Track) {
        self.tracks.push(track);
    }

    /// The graph's text (picture at `[vout]`) and where the audio comes from.
    pub fn finish(mut self) -> (String, Audio) {
        let _ = write!(self.filter, ";[{}]format=yuv420p[vout]", self.top);
        let audio = match self.tracks.as_slice() {
            [] => Audio::None,
            [t] if t.main && (t.volume - 1.0).abs() < 1e-9 => Audio::Main(t.input),
            tracks => {
                for (j, t) in tracks.iter().enumerate() {
                    let _ = write!(self.filter, ";[{}:a]", t.input);
                    if t.delay > 0.0 {
                        let ms = (t.delay * 1000.0).round();
                        let _ = write!(self.filter, "adelay=delays={ms}:all=1,");
                    }
                    let _ = write!(self.filter, "volume={}[a{j}]", secs(t.volume));
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

    fn track(input: usize, volume: f64, delay: f64, main: bool) -> Track {
        Track {
            input,
            volume,
            delay,
            main,
        }
    }

    #[test]
    fn a_keyed_pip_over_a_base_with_the_main_audio_kept() {
        let mut g = Graph::new((1080, 1920), 30.0, 5.0);
        let rect = |x, y, w, h| Rect { x, y, w, h };
        g.overlay(Clip {
            input: 0,
            rect: rect(0, 0, 1080, 1920),
            slot: None,
            key: None,
        });
        g.overlay(Clip {
            input: 1,
            rect: rect(790, 1420, 270, 480),
            slot: None,
            key: Some(ChromaKey {
                color: 0x00FF00,
                similarity: 0.25,
                blend: 0.05,
            }),
        });
        g.audio(track(0, 1.0, 0.0, true));
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
            filter.contains("setpts=PTS-STARTPTS+0.000000/TB[l2];[c1][l2]overlay=x=790:y=1420"),
            "{filter}"
        );
        assert!(filter.ends_with("[c2]format=yuv420p[vout]"), "{filter}");
    }

    #[test]
    fn a_timeline_item_moves_to_its_slot_and_holds_its_last_frame_to_the_end() {
        let mut g = Graph::new((640, 360), 30.0, 4.0);
        g.overlay(Clip {
            input: 2,
            rect: Rect {
                x: 0,
                y: 0,
                w: 320,
                h: 180,
            },
            slot: Some(Slot {
                start: 1.0,
                length: 1.5,
            }),
            key: None,
        });
        let (filter, _) = g.finish();
        assert!(
            filter.contains(
                "[2:v]tpad=stop_mode=clone:stop_duration=1.500000,trim=duration=1.500000,scale=320:180,setsar=1,setpts=PTS-STARTPTS+1.000000/TB[l1]"
            ),
            "{filter}"
        );
    }

    #[test]
    fn audio_asked_of_other_layers_is_mixed_a_timeline_item_s_from_its_slot() {
        let mut g = Graph::new((2, 2), 30.0, 3.0);
        g.audio(track(0, 1.0, 0.0, true));
        g.audio(track(2, 0.5, 0.0, false));
        g.audio(track(4, 1.0, 1.25, false));
        let (filter, audio) = g.finish();
        assert_eq!(audio, Audio::Mixed);
        assert!(
            filter.ends_with(
                "[2:a]volume=0.500000[a1];[4:a]adelay=delays=1250:all=1,volume=1.000000[a2];[a0][a1][a2]amix=inputs=3:duration=longest:normalize=0[aout]"
            ),
            "{filter}"
        );
    }
}
