//! What a background removal (`removeBackground`, `removeImageBackground`) is asked to give:
//! read from the job's `outputType` and `backgroundColor` at submission (problems name the
//! field), and read again by the engine to finish the model's output (`provider_output.rs`).

use serde_json::{Map, Value};

use crate::plan::{hex_rgb, MediaKind, Operation};

/// The background a removal's output has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// A green screen (`#00FF00`): what the video models give, and the SDK's default.
    Green,
    /// A solid colour (`backgroundColor: "#RRGGBB"`).
    Colour(Rgb),
    /// An alpha channel: WebM VP9 `yuva420p` for video, RGBA PNG for stills.
    Transparent,
    /// A matte the model makes itself (`alpha-mask`, `foreground-mask`), kept as it comes.
    Matte,
}

/// An sRGB colour.
pub type Rgb = [u8; 3];

/// The key colour of a green screen.
pub const GREEN: Rgb = [0, 255, 0];

/// An ffmpeg step: `(key, fill)`, the colour keyed out (`None`: the input's alpha) and the
/// colour laid under (`None`: transparent).
pub type Step = (Option<Rgb>, Option<Rgb>);

/// The `outputType` values a removal takes.
pub const OUTPUT_TYPES: [&str; 4] = ["green-screen", "transparent", "alpha-mask", "foreground-mask"];

impl Background {
    /// The background a job of `op` asks for; `Ok(None)` for other operations. A video is a
    /// green screen unless asked otherwise; a still is transparent (what its models give).
    pub fn of(op: Operation, options: &Map<String, Value>) -> Result<Option<Background>, (&'static str, String)> {
        let still = match op {
            Operation::RemoveBackground => false,
            Operation::RemoveImageBackground => true,
            _ => return Ok(None),
        };
        let output_type = match options.get("outputType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if OUTPUT_TYPES.contains(&s.as_str()) => Some(s.as_str()),
            Some(other) => {
                return Err((
                    "outputType",
                    format!("must be one of {}, not {other}", OUTPUT_TYPES.join(", ")),
                ))
            }
        };
        let asked = match output_type {
            None if still => Background::Transparent,
            None | Some("green-screen") => Background::Green,
            Some("transparent") => Background::Transparent,
            Some(_) if still => {
                return Err((
                    "outputType",
                    "a still's background is green-screen or transparent".into(),
                ))
            }
            Some(_) => Background::Matte,
        };
        let colour = match options.get("backgroundColor") {
            None | Some(Value::Null) => return Ok(Some(asked)),
            Some(v) => v
                .as_str()
                .and_then(parse_colour)
                .ok_or(("backgroundColor", format!("must be a colour like \"#1E90FF\", not {v}")))?,
        };
        // The SDK always sends `outputType: "green-screen"`: a colour replaces that green.
        match asked {
            Background::Green => Ok(Some(Background::Colour(colour))),
            Background::Transparent if output_type.is_none() => Ok(Some(Background::Colour(colour))),
            _ => Err((
                "backgroundColor",
                format!(
                    "cannot be used with outputType `{}`",
                    output_type.unwrap_or("transparent")
                ),
            )),
        }
    }

    /// How results name it: `green`, `#rrggbb`, `transparent`, `matte`.
    pub fn label(self) -> String {
        match self {
            Background::Green => "green".into(),
            Background::Colour([r, g, b]) => format!("#{r:02x}{g:02x}{b:02x}"),
            Background::Transparent => "transparent".into(),
            Background::Matte => "matte".into(),
        }
    }

    /// The ffmpeg step that turns a model's output of `kind` into this background, if one is
    /// needed: `(key, fill)` as `reelay_media::Replacement` takes them.
    /// Models give a video on a green screen and a still with alpha.
    pub fn step(self, kind: MediaKind) -> Option<Step> {
        let still = kind == MediaKind::Image;
        let key = (!still).then_some(GREEN);
        match self {
            Background::Matte => None,
            Background::Green if !still => None,
            Background::Green => Some((key, Some(GREEN))),
            Background::Transparent if still => None,
            Background::Transparent => Some((key, None)),
            Background::Colour(c) => Some((key, Some(c))),
        }
    }
}

/// `#RRGGBB` or `#RGB`.
fn parse_colour(s: &str) -> Option<Rgb> {
    let [_, r, g, b] = hex_rgb(s.strip_prefix('#')?)?.to_be_bytes();
    Some([r, g, b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(op: Operation, v: Value) -> Result<Option<Background>, (&'static str, String)> {
        Background::of(op, v.as_object().unwrap())
    }

    #[test]
    fn what_each_job_asks_for() {
        let video = Operation::RemoveBackground;
        let still = Operation::RemoveImageBackground;
        assert_eq!(of(video, json!({})), Ok(Some(Background::Green)));
        assert_eq!(of(still, json!({})), Ok(Some(Background::Transparent)));
        assert_eq!(of(Operation::Generate, json!({"outputType": 1})), Ok(None));
        assert_eq!(
            of(video, json!({"outputType": "transparent"})),
            Ok(Some(Background::Transparent))
        );
        assert_eq!(
            of(video, json!({"outputType": "alpha-mask"})),
            Ok(Some(Background::Matte))
        );
        let red = Some(Background::Colour([255, 0, 0]));
        assert_eq!(
            of(
                video,
                json!({"outputType": "green-screen", "backgroundColor": "#FF0000"})
            ),
            Ok(red)
        );
        assert_eq!(of(still, json!({"backgroundColor": "#f00"})), Ok(red));
        assert_eq!(red.map(Background::label).as_deref(), Some("#ff0000"));
    }

    #[test]
    fn bad_types_and_colours_name_their_field() {
        let video = Operation::RemoveBackground;
        for (params, field) in [
            (json!({"outputType": "blue-screen"}), "outputType"),
            (json!({"backgroundColor": "red"}), "backgroundColor"),
            (json!({"backgroundColor": "#12345"}), "backgroundColor"),
            (json!({"backgroundColor": "#GGGGGG"}), "backgroundColor"),
            (
                json!({"outputType": "transparent", "backgroundColor": "#000000"}),
                "backgroundColor",
            ),
        ] {
            assert_eq!(of(video, params.clone()).map_err(|e| e.0), Err(field), "{params}");
        }
        assert_eq!(
            of(Operation::RemoveImageBackground, json!({"outputType": "alpha-mask"})).map_err(|e| e.0),
            Err("outputType")
        );
    }

    #[test]
    fn steps_from_what_models_give() {
        let (video, still) = (MediaKind::Video, MediaKind::Image);
        assert_eq!(Background::Green.step(video), None);
        assert_eq!(Background::Transparent.step(still), None);
        assert_eq!(Background::Matte.step(video), None);
        assert_eq!(Background::Transparent.step(video), Some((Some([0, 255, 0]), None)));
        assert_eq!(Background::Green.step(still), Some((None, Some([0, 255, 0]))));
        assert_eq!(
            Background::Colour([1, 2, 3]).step(video),
            Some((Some([0, 255, 0]), Some([1, 2, 3])))
        );
    }
}
