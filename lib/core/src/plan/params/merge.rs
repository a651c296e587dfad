//! `merge` params: the items to join, and the transition between them.

use serde_json::{Map, Value};

use super::{Kinds, ParamReader};
use crate::plan::{MediaKind, MediaRef, MergeItem, MergeParams, Transition, TransitionKind};

pub(super) fn read(p: &mut ParamReader, kinds: &Kinds) -> MergeParams {
    let mut items = Vec::new();
    let params = p.params;
    match params.get("items") {
        Some(Value::Array(raw)) => {
            for (i, item) in raw.iter().enumerate() {
                items.extend(read_item(p, &format!("items[{i}]"), item, kinds));
            }
        }
        _ => p.invalid("items", "must be a non-empty array"),
    }
    if items.is_empty() && !p.failed() {
        p.invalid("items", "must list at least one video or image");
    } else if !items.is_empty() && items.iter().all(|i| i.kind == Some(MediaKind::Audio)) {
        p.invalid(
            "items",
            "must contain at least one video or image: audio is mixed over them",
        );
    }
    let transition = read_transition(p);
    MergeParams { items, transition }
}

/// The item at `path`: an object `{url, type?, duration?, offset?, volume?}`, or a bare URL or
/// reference.
fn read_item(p: &mut ParamReader, path: &str, item: &Value, kinds: &Kinds) -> Option<MergeItem> {
    let obj = match item {
        Value::Object(o) => o.clone(),
        // A bare URL or reference is an item too.
        Value::String(_) => Map::from_iter([("url".to_string(), item.clone())]),
        _ => {
            p.invalid(path, "must be an object {url, type?, duration?, offset?, volume?}");
            return None;
        }
    };
    let Some(url) = obj.get("url").or_else(|| obj.get("media")) else {
        p.invalid(&format!("{path}.url"), "is missing");
        return None;
    };
    let source = p.media_ref(url, &format!("{path}.url"))?;
    let kind = read_kind(p, &obj, path, &source, kinds);
    if kind == Some(MediaKind::Transcript) {
        p.invalid(&format!("{path}.url"), "refers to a transcript, which cannot be merged");
    }
    let duration = p.number_in(
        &obj,
        "duration",
        &format!("{path}.duration"),
        |v| v > 0.0 && v <= 3600.0,
        "greater than 0 seconds",
    );
    let offset = p.number_in(
        &obj,
        "offset",
        &format!("{path}.offset"),
        |v| (0.0..=3600.0).contains(&v),
        "at least 0 seconds",
    );
    let volume = p.number_in(
        &obj,
        "volume",
        &format!("{path}.volume"),
        |v| (0.0..=10.0).contains(&v),
        "between 0 and 10",
    );
    Some(MergeItem {
        source,
        kind,
        duration,
        offset,
        volume,
    })
}

/// The item's `type`, else what its source job produces (`None` for a URL: taken as it comes).
fn read_kind(
    p: &mut ParamReader,
    obj: &Map<String, Value>,
    path: &str,
    source: &MediaRef,
    kinds: &Kinds,
) -> Option<MediaKind> {
    match obj.get("type") {
        None | Some(Value::Null) => match source {
            MediaRef::Job(id) => kinds.get(id).copied().flatten(),
            MediaRef::Url(_) => None,
        },
        Some(Value::String(t)) if t == "video" => Some(MediaKind::Video),
        Some(Value::String(t)) if t == "image" => Some(MediaKind::Image),
        Some(Value::String(t)) if t == "audio" => Some(MediaKind::Audio),
        Some(Value::String(other)) => {
            p.invalid(
                &format!("{path}.type"),
                format_args!("must be `video`, `image` or `audio`, not `{other}`"),
            );
            None
        }
        Some(_) => {
            p.invalid(
                &format!("{path}.type"),
                "must be the string `video`, `image` or `audio`",
            );
            None
        }
    }
}

/// The transition `transition` names, or a `fade` when `addTransitions` asks for one.
fn read_transition(p: &mut ParamReader) -> Option<Transition> {
    let name = p.string("transition");
    let add = p.bool("addTransitions").unwrap_or(false);
    let duration = p
        .number_in(
            p.params,
            "transitionDuration",
            "transitionDuration",
            |v| v > 0.0 && v <= 10.0,
            "greater than 0 and at most 10 seconds",
        )
        .unwrap_or(0.5);
    let kind = match name {
        Some(name) => match TransitionKind::parse(&name) {
            Some(kind) => kind,
            None => {
                let known = TransitionKind::ALL.map(TransitionKind::name).join(", ");
                p.invalid("transition", format_args!("must be one of {known}, not `{name}`"));
                return None;
            }
        },
        None if add => TransitionKind::Fade,
        None => return None,
    };
    Some(Transition { kind, duration })
}
