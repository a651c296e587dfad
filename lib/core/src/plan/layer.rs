//! The `layer` operation's model: layers over a base, each one medium or a timeline of media
//! shown one after another, and the slots a timeline's items take.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::frame::AspectRatio;
use super::model::MediaRef;

/// `layer`: media composited over a base, each at a placement. Generic over where media come
/// from: the plan's `MediaRef`, or the resolved URLs the Media port reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerParams<S = MediaRef> {
    /// Bottom to top: layer 0 is the base.
    pub layers: Vec<Layer<S>>,
    /// The layer whose length (and audio) the output takes; `None` when every layer is a
    /// timeline, and `output_duration` sets the length.
    pub main_layer: Option<usize>,
    pub output_duration: Option<f64>,
    pub output_width: Option<u32>,
    pub output_height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer<S = MediaRef> {
    pub media: LayerMedia<S>,
    pub placement: Placement,
    pub chroma_key: Option<ChromaKey>,
    /// Mixes this layer's audio in at this volume (a timeline item's from its slot's start);
    /// the main layer's audio is always kept.
    pub volume: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum LayerMedia<S = MediaRef> {
    Single(S),
    /// Items shown one after another; one without a duration shares what the others leave.
    Timeline(Vec<TimelineItem<S>>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineItem<S = MediaRef> {
    pub source: S,
    pub duration: Option<f64>,
}

/// Where and at what size a layer sits in the output frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Placement {
    /// Stretched over the frame (the base: fitted, aspect kept).
    Full,
    /// A quarter of each side, 20 px in from the bottom-right corner.
    Pip,
    /// Fractions of the frame's sides (one given: the other follows the aspect; none: the
    /// layer's own size) at a position: `center`, `w-1/4 bottom-right`, `top-left-quarter`.
    Grid {
        width: Option<f64>,
        height: Option<f64>,
        position: Position,
    },
    /// `{width, height, position: {x, y}, padding, aspectRatio}`.
    Custom(CustomPlacement),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Position {
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPlacement {
    pub width: Option<Dimension>,
    pub height: Option<Dimension>,
    pub x: Option<Dimension>,
    pub y: Option<Dimension>,
    /// Pixels kept clear on every side: the frame the other values refer to is inset by it.
    pub padding: f64,
    /// Sets the side not given, or fits the layer into the box both give.
    pub aspect_ratio: Option<AspectRatio>,
}

/// A custom placement value: pixels (`"300"`), a percentage of the frame (`"50%"`), or an
/// arithmetic expression over `W`, `H` (frame), `iw`, `ih` (layer), `w`, `h` (placed layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Dimension {
    Pixels(f64),
    Percent(f64),
    Expr(String),
}

/// Keys a colour out of a layer before it is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChromaKey {
    /// `0xRRGGBB`.
    pub color: u32,
    pub similarity: f64,
    pub blend: f64,
}

impl<S> LayerParams<S> {
    /// Every medium, bottom layer first, a timeline's in order: the order `try_map` visits.
    pub fn sources(&self) -> Vec<&S> {
        let mut all = Vec::new();
        for layer in &self.layers {
            match &layer.media {
                LayerMedia::Single(s) => all.push(s),
                LayerMedia::Timeline(items) => all.extend(items.iter().map(|t| &t.source)),
            }
        }
        all
    }

    /// The same layers with every source mapped by `f` (to a URL the Media port reads).
    pub fn try_map<T, E>(&self, mut f: impl FnMut(&S) -> Result<T, E>) -> Result<LayerParams<T>, E> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let media = match &l.media {
                    LayerMedia::Single(s) => LayerMedia::Single(f(s)?),
                    LayerMedia::Timeline(items) => LayerMedia::Timeline(
                        items
                            .iter()
                            .map(|t| {
                                Ok(TimelineItem {
                                    source: f(&t.source)?,
                                    duration: t.duration,
                                })
                            })
                            .collect::<Result<_, E>>()?,
                    ),
                };
                Ok(Layer {
                    media,
                    placement: l.placement.clone(),
                    chroma_key: l.chroma_key,
                    volume: l.volume,
                })
            })
            .collect::<Result<_, E>>()?;
        Ok(LayerParams {
            layers,
            main_layer: self.main_layer,
            output_duration: self.output_duration,
            output_width: self.output_width,
            output_height: self.output_height,
        })
    }
}

/// Where a timeline item shows in the output: from `start`, for `length` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub start: f64,
    pub length: f64,
}

/// A timeline whose durations do not fit in the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overrun {
    /// The sum of the durations given.
    pub given: f64,
    /// Whether some items have none, and so need time left for them.
    pub open: bool,
    pub total: f64,
}

impl fmt::Display for Overrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // To the millisecond: a probed length is rarely a round number.
        let ms = |v: f64| (v * 1000.0).round() / 1000.0;
        write!(
            f,
            "its durations ({} s{}) do not fit in the output's {} s",
            ms(self.given),
            if self.open { " plus items without one" } else { "" },
            ms(self.total)
        )
    }
}

/// Slack for durations that must fit: a probed length may fall short of a round one.
const SLACK: f64 = 1e-3;

/// The slots of a timeline's items in an output of `total` seconds: one after another, those
/// without a duration sharing equally what the others leave.
pub fn timeline_slots<S>(items: &[TimelineItem<S>], total: f64) -> Result<Vec<Slot>, Overrun> {
    let given: f64 = items.iter().filter_map(|t| t.duration).sum();
    let open = items.iter().filter(|t| t.duration.is_none()).count();
    if given > total + SLACK || (open > 0 && given >= total) {
        return Err(Overrun {
            given,
            open: open > 0,
            total,
        });
    }
    let share = if open > 0 { (total - given) / open as f64 } else { 0.0 };
    let mut start = 0.0;
    Ok(items
        .iter()
        .map(|t| {
            let slot = Slot {
                start,
                length: t.duration.unwrap_or(share),
            };
            start += slot.length;
            slot
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(durations: &[Option<f64>]) -> Vec<TimelineItem<()>> {
        durations
            .iter()
            .map(|&duration| TimelineItem { source: (), duration })
            .collect()
    }

    fn slots(durations: &[Option<f64>], total: f64) -> Vec<(f64, f64)> {
        let slots = timeline_slots(&timeline(durations), total).unwrap();
        slots.into_iter().map(|s| (s.start, s.length)).collect()
    }

    #[test]
    fn explicit_durations_play_in_turn() {
        assert_eq!(slots(&[Some(1.0), Some(2.5)], 5.0), [(0.0, 1.0), (1.0, 2.5)]);
        // Exactly the output's length, and a probed length a hair short of it.
        assert_eq!(slots(&[Some(2.0), Some(3.0)], 5.0), [(0.0, 2.0), (2.0, 3.0)]);
        assert_eq!(slots(&[Some(5.0)], 4.9995), [(0.0, 5.0)]);
    }

    #[test]
    fn items_without_a_duration_share_what_the_others_leave() {
        assert_eq!(slots(&[None, None], 4.0), [(0.0, 2.0), (2.0, 2.0)]);
        assert_eq!(
            slots(&[Some(1.0), None, Some(0.5), None], 4.0),
            [(0.0, 1.0), (1.0, 1.25), (2.25, 0.5), (2.75, 1.25)]
        );
    }

    #[test]
    fn durations_beyond_the_output_are_refused() {
        let err = timeline_slots(&timeline(&[Some(3.0), Some(2.5)]), 5.0).unwrap_err();
        assert_eq!(
            err,
            Overrun {
                given: 5.5,
                open: false,
                total: 5.0
            }
        );
        assert_eq!(err.to_string(), "its durations (5.5 s) do not fit in the output's 5 s");
        // Items without a duration need time left: none is, or less than none.
        for given in [5.0, 6.0] {
            let err = timeline_slots(&timeline(&[Some(given), None]), 5.0).unwrap_err();
            assert!(err.open, "{err:?}");
            assert!(err.to_string().contains("plus items without one"), "{err}");
        }
    }
}
