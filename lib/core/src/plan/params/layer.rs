//! `layer` params: media stacked over a base, each at a placement, optionally keyed; which
//! layer sets the length; the output's size and duration.

mod expr;
mod placement;

use serde_json::{Map, Value};

use super::{Kinds, ParamReader};
use crate::plan::{
    hex_rgb, timeline_slots, ChromaKey, Layer, LayerMedia, LayerParams, MediaKind, MediaRef, Placement, TimelineItem,
};

/// Largest output side, as for renders.
const MAX_SIDE: f64 = 8192.0;

pub(super) fn read(p: &mut ParamReader, kinds: &Kinds) -> Option<LayerParams> {
    let params = p.params;
    let Some(Value::Array(raw)) = params.get("layers") else {
        p.invalid("layers", "must be a non-empty array of layers");
        return None;
    };
    if raw.is_empty() {
        p.invalid("layers", "must list at least one layer");
        return None;
    }
    let mut layers = Vec::with_capacity(raw.len());
    let mut flagged_main = None;
    for (i, item) in raw.iter().enumerate() {
        let path = format!("layers[{i}]");
        let obj = match item {
            Value::Object(o) => o.clone(),
            Value::String(_) => Map::from_iter([("media".to_string(), item.clone())]),
            _ => {
                p.invalid(&path, "must be an object {media, placement, …}");
                continue;
            }
        };
        if flagged_main.is_none() && flag(p, &obj, "main", &format!("{path}.main")) == Some(true) {
            flagged_main = Some(i);
        }
        layers.extend(read_layer(p, &obj, &path, kinds));
    }
    let side = |p: &mut ParamReader, key| {
        let v = p.number_in(
            params,
            key,
            key,
            |v| v.fract() == 0.0 && (2.0..=MAX_SIDE).contains(&v),
            "a whole number of pixels from 2 to 8192",
        );
        v.map(|v| v as u32)
    };
    let output_width = side(p, "outputWidth");
    let output_height = side(p, "outputHeight");
    let output_duration = p.number_in(
        params,
        "outputDuration",
        "outputDuration",
        |v| v > 0.0 && v <= 3600.0,
        "greater than 0 and at most 3600 seconds",
    );
    let index = p.number_in(
        params,
        "mainLayer",
        "mainLayer",
        |v| v.fract() == 0.0 && v >= 0.0,
        "a layer index (0, 1, …)",
    );
    if p.failed() {
        return None;
    }
    let main_layer = main_layer(p, &layers, flagged_main, index.map(|v| v as usize), output_duration)?;
    check_timelines(p, &layers, output_duration);
    (!p.failed()).then_some(LayerParams {
        layers,
        main_layer,
        output_duration,
        output_width,
        output_height,
    })
}

fn read_layer(p: &mut ParamReader, obj: &Map<String, Value>, path: &str, kinds: &Kinds) -> Option<Layer> {
    let media_path = format!("{path}.media");
    let mut media = match obj.get("media") {
        None | Some(Value::Null) => {
            p.invalid(&media_path, "is missing");
            return None;
        }
        Some(v) => read_media(p, v, &media_path, kinds)?,
    };
    // A plain layer with a `duration` is shown that long: a timeline of one.
    let duration = p.number_in(
        obj,
        "duration",
        &format!("{path}.duration"),
        |v| v > 0.0 && v <= 3600.0,
        "greater than 0 seconds",
    );
    if let (LayerMedia::Single(source), Some(d)) = (&media, duration) {
        media = LayerMedia::Timeline(vec![TimelineItem {
            source: source.clone(),
            duration: Some(d),
        }]);
    }
    let placement = match obj.get("placement") {
        None | Some(Value::Null) => Placement::Full,
        Some(v) => match Placement::from_value(v) {
            Ok(placement) => placement,
            Err((field, why)) => {
                let at = if field.is_empty() {
                    String::new()
                } else {
                    format!(".{field}")
                };
                p.invalid(&format!("{path}.placement{at}"), why);
                return None;
            }
        },
    };
    let chroma_key = read_chroma_key(p, obj, path);
    let volume = match flag(p, obj, "audio", &format!("{path}.audio")) {
        Some(false) => None,
        audio => p
            .number_in(
                obj,
                "volume",
                &format!("{path}.volume"),
                |v| (0.0..=10.0).contains(&v),
                "between 0 and 10",
            )
            .or(audio.map(|_| 1.0)),
    };
    Some(Layer {
        media,
        placement,
        chroma_key,
        volume,
    })
}

/// A URL or reference, a one-element array of one, or a timeline: a nested array (as written)
/// or the SDK's `{isTimeline: true, timeline: […]}`.
fn read_media(p: &mut ParamReader, v: &Value, path: &str, kinds: &Kinds) -> Option<LayerMedia> {
    match v {
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::Array(timeline) => read_timeline(p, timeline, &format!("{path}[0]"), kinds),
            one => read_media(p, one, &format!("{path}[0]"), kinds),
        },
        Value::Array(items) if items.iter().all(Value::is_array) => {
            p.invalid(path, "holds more than one timeline: give each its own layer");
            None
        }
        Value::Array(_) => {
            p.invalid(
                path,
                "must be one medium; for media shown one after another, nest them: [[a, b]]",
            );
            None
        }
        Value::Object(o) if o.get("isTimeline") == Some(&Value::Bool(true)) => match o.get("timeline") {
            Some(Value::Array(items)) => read_timeline(p, items, &format!("{path}.timeline"), kinds),
            _ => {
                p.invalid(&format!("{path}.timeline"), "must be an array of media");
                None
            }
        },
        other => read_source(p, other, path, kinds).map(LayerMedia::Single),
    }
}

fn read_timeline(p: &mut ParamReader, items: &[Value], path: &str, kinds: &Kinds) -> Option<LayerMedia> {
    if items.is_empty() {
        p.invalid(path, "must list at least one medium");
        return None;
    }
    let mut timeline = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let (media, duration) = match item {
            Value::Object(o) => (
                o.get("media").or_else(|| o.get("url")).unwrap_or(&Value::Null),
                p.number_in(
                    o,
                    "duration",
                    &format!("{at}.duration"),
                    |v| (0.0..=3600.0).contains(&v),
                    "at least 0 seconds",
                ),
            ),
            other => (other, None),
        };
        // The SDK writes 0 for "no duration".
        let duration = duration.filter(|d| *d > 0.0);
        if let Some(source) = read_source(p, media, &format!("{at}.media"), kinds) {
            timeline.push(TimelineItem { source, duration });
        }
    }
    Some(LayerMedia::Timeline(timeline))
}

fn read_source(p: &mut ParamReader, v: &Value, path: &str, kinds: &Kinds) -> Option<MediaRef> {
    let source = p.media_ref(v, path)?;
    if let MediaRef::Job(id) = &source {
        if let Some(Some(kind @ (MediaKind::Audio | MediaKind::Transcript))) = kinds.get(id) {
            p.invalid(
                path,
                format_args!(
                    "refers to job `{id}`, which makes {}: a layer shows a video or an image",
                    kind.name()
                ),
            );
            return None;
        }
    }
    Some(source)
}

fn read_chroma_key(p: &mut ParamReader, obj: &Map<String, Value>, path: &str) -> Option<ChromaKey> {
    let on = flag(p, obj, "chromaKey", &format!("{path}.chromaKey")).unwrap_or(false);
    let unit = |p: &mut ParamReader, key: &str| {
        p.number_in(
            obj,
            key,
            &format!("{path}.{key}"),
            |v| (0.0..=1.0).contains(&v),
            "between 0 and 1",
        )
    };
    let similarity = unit(p, "similarity").unwrap_or(0.25);
    let blend = unit(p, "blend").unwrap_or(0.05);
    let color = match obj.get("chromaKeyColor") {
        None | Some(Value::Null) => 0x00FF00,
        Some(Value::String(s)) => match color(s) {
            Some(c) => c,
            None => {
                p.invalid(
                    &format!("{path}.chromaKeyColor"),
                    format_args!("must be a colour like `#00FF00`, `0x00FF00`, `green` or `blue`, not `{s}`"),
                );
                return None;
            }
        },
        Some(_) => {
            p.invalid(
                &format!("{path}.chromaKeyColor"),
                "must be a colour string like `#00FF00`",
            );
            return None;
        }
    };
    on.then_some(ChromaKey {
        color,
        similarity,
        blend,
    })
}

fn flag(p: &mut ParamReader, obj: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
    match obj.get(key)? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        _ => {
            p.invalid(path, "must be true or false");
            None
        }
    }
}

/// `#RRGGBB`, `0xRRGGBB`, `RRGGBB`, or a screen colour's name.
fn color(raw: &str) -> Option<u32> {
    let s = raw.trim().to_ascii_lowercase();
    match s.as_str() {
        // A green screen's green, not CSS's darker `green` (0x008000).
        "green" | "lime" => return Some(0x00FF00),
        "blue" => return Some(0x0000FF),
        "magenta" => return Some(0xFF00FF),
        _ => {}
    }
    let hex = s.strip_prefix('#').or_else(|| s.strip_prefix("0x")).unwrap_or(&s);
    (hex.len() == 6).then(|| hex_rgb(hex))?
}

/// The main layer: the first flagged `main`, else `mainLayer`, else the first that is not a
/// timeline (a timeline takes its length from the main, so cannot be it).
fn main_layer(
    p: &mut ParamReader,
    layers: &[Layer],
    flagged: Option<usize>,
    index: Option<usize>,
    output_duration: Option<f64>,
) -> Option<Option<usize>> {
    let is_timeline = |i: usize| matches!(layers[i].media, LayerMedia::Timeline(_));
    let (chosen, field) = match (flagged, index) {
        (Some(i), _) => (i, format!("layers[{i}].main")),
        (None, Some(i)) if i >= layers.len() => {
            p.invalid(
                "mainLayer",
                format_args!("is {i}, but there are {} layers (counted from 0)", layers.len()),
            );
            return None;
        }
        (None, Some(i)) => (i, "mainLayer".to_string()),
        (None, None) => match (0..layers.len()).find(|i| !is_timeline(*i)) {
            Some(i) => return Some(Some(i)),
            None if output_duration.is_some() => return Some(None),
            None => {
                p.invalid(
                    "outputDuration",
                    "is needed when every layer is a timeline: nothing else sets the length",
                );
                return None;
            }
        },
    };
    if is_timeline(chosen) {
        p.invalid(
            &field,
            format_args!("names layer {chosen}, a timeline: the main layer sets the length, so it must be one medium"),
        );
        return None;
    }
    Some(Some(chosen))
}

/// With a known output length, a timeline's given durations must fit in it (and leave time
/// for its items without one); otherwise the run finds out, from the main layer's length.
fn check_timelines(p: &mut ParamReader, layers: &[Layer], output_duration: Option<f64>) {
    let Some(total) = output_duration else { return };
    for (i, layer) in layers.iter().enumerate() {
        if let LayerMedia::Timeline(items) = &layer.media {
            if let Err(overrun) = timeline_slots(items, total) {
                p.invalid(&format!("layers[{i}].media"), format_args!("is a timeline: {overrun}"));
            }
        }
    }
}
