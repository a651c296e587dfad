//! Placements as the SDK writes them: a preset or token string (`pip`, `w-1/4 bottom-right`),
//! or a custom object `{width, height, position: {x, y}, padding, aspectRatio}`.

use serde_json::{Map, Value};

use crate::plan::{AspectRatio, CustomPlacement, Dimension, Placement, Position};

/// Names a custom size may use: the frame (`W`, `H`) and the layer's own size (`iw`, `ih`).
const SIZE_NAMES: [&str; 6] = ["W", "H", "iw", "ih", "main_w", "main_h"];
/// Names a custom position may use: the above, and the placed size (`w`, `h`).
const POSITION_NAMES: [&str; 10] = [
    "W",
    "H",
    "iw",
    "ih",
    "main_w",
    "main_h",
    "w",
    "h",
    "overlay_w",
    "overlay_h",
];

impl Placement {
    /// Reads a preset or a string of tokens (any case): `w-F`/`h-F` sizes (`F` a fraction such
    /// as `1/4` or `0.25`) and a position (the last one wins).
    pub fn parse(raw: &str) -> Result<Placement, String> {
        let mut lower = raw.trim().to_ascii_lowercase();
        match lower.as_str() {
            "full" => return Ok(Placement::Full),
            "pip" | "picture-in-picture" => return Ok(Placement::Pip),
            // Typed by the SDK, drawn by no one: placed as upstream places it, centred.
            "sequence" => lower.clear(),
            _ => {}
        }
        if let Some(corner) = lower.strip_suffix("-quarter") {
            return match position(corner) {
                Some(position) if corner.contains('-') => Ok(Placement::Grid {
                    width: Some(0.5),
                    height: Some(0.5),
                    position,
                }),
                _ => Err(format!("`{raw}` is not a quarter: use top-left-quarter, top-right-quarter, bottom-left-quarter or bottom-right-quarter")),
            };
        }
        let (mut width, mut height, mut at) = (None, None, Position::Center);
        for token in lower.split_whitespace() {
            if let Some(f) = token.strip_prefix("w-") {
                width = Some(fraction(f).ok_or_else(|| bad_fraction(raw, token))?);
            } else if let Some(f) = token.strip_prefix("h-") {
                height = Some(fraction(f).ok_or_else(|| bad_fraction(raw, token))?);
            } else {
                at = position(token).ok_or_else(|| {
                    format!(
                        "`{raw}`: `{token}` is neither a size (`w-1/4`, `h-1/2`) nor a position \
                         (top-left, top, top-right, left, center, right, bottom-left, bottom, bottom-right)"
                    )
                })?;
            }
        }
        if raw.trim().is_empty() {
            return Err("is empty".into());
        }
        Ok(Placement::Grid {
            width,
            height,
            position: at,
        })
    }
}

fn position(token: &str) -> Option<Position> {
    Some(match token {
        "top-left" => Position::TopLeft,
        "top" | "top-center" => Position::Top,
        "top-right" => Position::TopRight,
        "left" | "center-left" => Position::Left,
        "center" | "centre" | "middle" => Position::Center,
        "right" | "center-right" => Position::Right,
        "bottom-left" => Position::BottomLeft,
        "bottom" | "bottom-center" => Position::Bottom,
        "bottom-right" => Position::BottomRight,
        _ => return None,
    })
}

/// `1/4`, `0.25`, `1`: a share of the frame's side, more than 0 and at most 1.
fn fraction(s: &str) -> Option<f64> {
    let v = match s.split_once('/') {
        Some((n, d)) => n.parse::<f64>().ok()? / d.parse::<f64>().ok()?,
        None => s.parse::<f64>().ok()?,
    };
    (v.is_finite() && v > 0.0 && v <= 1.0).then_some(v)
}

fn bad_fraction(raw: &str, token: &str) -> String {
    format!("`{raw}`: `{token}` needs a share of the frame from 0 to 1, like `w-1/4` or `h-0.5`")
}

impl Placement {
    /// A placement as sent: a string, or a custom object. An error names the field inside the
    /// placement (`position.x`; empty for the value itself) and the problem.
    pub fn from_value(v: &Value) -> Result<Placement, (String, String)> {
        match v {
            Value::String(s) => Placement::parse(s).map_err(|why| (String::new(), format!("cannot be read: {why}"))),
            Value::Object(o) => custom(o).map(Placement::Custom),
            _ => Err((
                String::new(),
                "must be a preset string or an object {width, height, position, padding}".into(),
            )),
        }
    }
}

/// Reads a custom placement.
fn custom(obj: &Map<String, Value>) -> Result<CustomPlacement, (String, String)> {
    let position = match obj.get("position") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(("position".into(), "must be an object {x, y}".into())),
    };
    let padding = match obj.get("padding") {
        None | Some(Value::Null) => 0.0,
        Some(v) => match dimension(Some(v), "padding", &[])? {
            Some(Dimension::Pixels(px)) => px,
            _ => return Err(("padding".into(), "must be a number of pixels".into())),
        },
    };
    let aspect_ratio = match obj.get("aspectRatio") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(AspectRatio::parse(s).ok_or_else(|| {
            (
                "aspectRatio".to_string(),
                format!("must be a ratio like `16:9`, not `{s}`"),
            )
        })?),
        Some(_) => return Err(("aspectRatio".into(), "must be a ratio like `16:9`".into())),
    };
    Ok(CustomPlacement {
        width: dimension(obj.get("width"), "width", &SIZE_NAMES)?,
        height: dimension(obj.get("height"), "height", &SIZE_NAMES)?,
        x: dimension(position.get("x"), "position.x", &POSITION_NAMES)?,
        y: dimension(position.get("y"), "position.y", &POSITION_NAMES)?,
        padding,
        aspect_ratio,
    })
}

/// A value (number or string) whose expression may use only `names`.
fn dimension(v: Option<&Value>, field: &str, names: &[&str]) -> Result<Option<Dimension>, (String, String)> {
    let fail = |why: String| (field.to_string(), why);
    let d = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => Dimension::parse(&n.to_string()),
        Some(Value::String(s)) => Dimension::parse(s),
        Some(_) => Err("must be a number or a string like \"300\", \"50%\" or \"(W-w)/2\"".into()),
    }
    .map_err(fail)?;
    // Distinct stand-ins, so that a valid `W/(W-H)` does not divide by zero here.
    let stand_in = |name: &str| names.iter().position(|n| *n == name).map(|i| 997.0 + 13.0 * i as f64);
    d.value(1.0, &stand_in)
        .map_err(|why| fail(format!("{why} (it may use {})", names.join(", "))))?;
    Ok(Some(d))
}
