//! `reframe` params: the video, the frame it is fitted to, and how.

use serde_json::Value;

use super::{video_dependency, Kinds, ParamReader};
use crate::plan::draft::VIDEO_INPUT_KEYS;
use crate::plan::{parse_resolution, JobId, MediaRef, ReframeMode, ReframeParams};

pub(super) fn read(p: &mut ParamReader, deps: &[JobId], kinds: &Kinds) -> Option<ReframeParams> {
    let Some(aspect_ratio) = p.aspect_ratio("aspectRatio") else {
        if !p.failed() {
            p.fail(
                "missing_field",
                "params.aspectRatio",
                "`reframe` needs an `aspectRatio`",
            );
        }
        return None;
    };
    let input = read_input(p, deps, kinds, "reframe")?;
    let mode = match p.string("mode").or_else(|| p.string("fit")).as_deref() {
        None | Some("crop") | Some("cover") => ReframeMode::Crop,
        Some("pad") | Some("contain") | Some("fit") => ReframeMode::Pad,
        Some(other) => {
            p.invalid("mode", format_args!("must be `crop` or `pad`, not `{other}`"));
            return None;
        }
    };
    let short_side = match p.string("resolution") {
        None => 1080,
        Some(r) => match parse_resolution(&r) {
            Some(n) => n,
            None => {
                p.invalid("resolution", format_args!("must be like `720p` or `1080p`, not `{r}`"));
                return None;
            }
        },
    };
    Some(ReframeParams {
        input,
        aspect_ratio,
        mode,
        short_side,
    })
}

/// The video `operation` transforms: named in params, or else the job's video dependency.
pub(super) fn read_input(p: &mut ParamReader, deps: &[JobId], kinds: &Kinds, operation: &str) -> Option<MediaRef> {
    let params = p.params;
    let explicit = VIDEO_INPUT_KEYS[..4]
        .iter()
        .find_map(|k| params.get(*k).map(|v| (v, k.to_string())))
        .or_else(|| match params.get("inputs") {
            Some(Value::Array(a)) => a.first().map(|v| (v, "inputs[0]".to_string())),
            _ => None,
        });
    if let Some((value, path)) = explicit {
        return p.media_ref(value, &path);
    }
    // The documented chain form: no reference, only `dependsOn`; take the media dependency.
    if let Some(dep) = video_dependency(deps, kinds) {
        return Some(MediaRef::Job(dep.clone()));
    }
    // A dependency whose operation is unknown (already reported) may be the video.
    if !deps.iter().any(|d| kinds.get(d) == Some(&None)) {
        p.fail(
            "missing_input",
            "params.video",
            format_args!("`{operation}` needs a video: give `video` or depend on a video job"),
        );
    }
    None
}
