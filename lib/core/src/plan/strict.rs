//! Strictness: every object of a plan has a known shape. A key outside it (`dependOn`,
//! `params.promt`) is refused naming the job, the field and, when one is plausible, the key
//! that was meant; a key given twice anywhere in the body is refused; job ids are checked.
//!
//! The shapes here are those the readers (`draft`, `params::*`) read, plus what the client SDK
//! is known to send (api-compat.md, sdk-models.md): `output`, `operation`, `dependencies`, the
//! SDK's timeline bookkeeping (`totalDuration`, …), and a merge item's `operation`. A provider
//! job's params are open (the model's own options), so they are checked there
//! (`params::provider`), against the model's schema.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::model::Operation;
use super::params::{INPUT_KEYS, UNIFIED};
use super::references::looks_like_reference;
use super::PlanError;

/// The code of every unknown key.
pub(super) const UNKNOWN_FIELD: &str = "unknown_field";

// --- The shapes -------------------------------------------------------------------------------

/// A job's own keys.
pub(super) const JOB: &[&str] = &[
    "id",
    "type",
    "operation",
    "params",
    "dependsOn",
    "dependencies",
    "output",
];
/// Keys every operation's params may hold.
const COMMON: &[&str] = &["sendJobWebhook"];
/// Where a video transform may name its video (`draft::VIDEO_INPUT_KEYS`).
const VIDEO_INPUT: &[&str] = &["video", "videoUrl", "url", "input", "inputs"];

const MERGE: &[&str] = &["items", "transition", "addTransitions", "transitionDuration", "quality"];
/// `operation`: the SDK's unexpanded nested operation (refused by the reader as an item with no
/// `url`, which says more than "unknown key").
const MERGE_ITEM: &[&str] = &["url", "media", "type", "duration", "offset", "volume", "operation"];
const REFRAME: &[&str] = &["aspectRatio", "mode", "fit", "resolution", "quality"];
const SUBTITLES: &[&str] = &["transcript", "captions", "style", "language", "quality"];
const WORD: &[&str] = &["word", "text", "start", "end"];
/// Every name `params::subtitles::read_style` reads (the SDK's first, then reelay's aliases).
pub(super) const STYLE: &[&str] = &[
    "preset",
    "fontFamily",
    "fontName",
    "font",
    "fontSize",
    "bold",
    "italic",
    "uppercase",
    "primaryColor",
    "color",
    "textColor",
    "outlineColor",
    "backgroundColor",
    "backColor",
    "borderStyle",
    "outlineWidth",
    "outline",
    "shadow",
    "shadowDistance",
    "padding",
    "alignment",
    "position",
    "marginV",
    "marginVertical",
    "marginL",
    "marginLeft",
    "marginR",
    "marginRight",
    "wordsPerCaption",
    "maxCaptionDuration",
    "maxCaptionChars",
    "maxLines",
    "highlightActiveWord",
    "activeWordColor",
    "highlightColor",
    "inactiveWordColor",
    "activeWordScale",
    "animationStyle",
    "activeWordEffect",
];
const LAYER: &[&str] = &[
    "layers",
    "outputDuration",
    "outputWidth",
    "outputHeight",
    "mainLayer",
    "quality",
];
const LAYER_ITEM: &[&str] = &[
    "media",
    "placement",
    "chromaKey",
    "chromaKeyColor",
    "similarity",
    "blend",
    "main",
    "duration",
    "audio",
    "volume",
];
/// The SDK's timeline object (`layers()` with a nested array).
const TIMELINE: &[&str] = &[
    "isTimeline",
    "timeline",
    "totalDuration",
    "needsAutoDuration",
    "explicitDuration",
];
/// A timeline item: the SDK's `LayerItem` (only `media` and `duration` count), or `url`.
const TIMELINE_ITEM: &[&str] = &[
    "media",
    "url",
    "duration",
    "placement",
    "chromaKey",
    "chromaKeyColor",
    "similarity",
    "blend",
    "main",
];
const PLACEMENT: &[&str] = &["width", "height", "position", "padding", "aspectRatio"];
const POSITION: &[&str] = &["x", "y"];

/// The keys a provider job's unified params name (the rest are the model's options): the
/// unified params and inputs `params::provider` reads, and the SDK's options it maps per model.
pub(super) static PROVIDER: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mapped = ["cameraMotion", "outputFormat", "outputType", "backgroundColor"];
    UNIFIED.iter().chain(&INPUT_KEYS).chain(&mapped).copied().collect()
});

/// The params keys an operation with a fixed shape knows; `None` for a provider's operation.
fn params_keys(op: Operation) -> Option<Vec<&'static str>> {
    let own: &[&[&str]] = match op {
        Operation::Merge => &[MERGE],
        Operation::Reframe => &[REFRAME, VIDEO_INPUT],
        Operation::AddSubtitles => &[SUBTITLES, VIDEO_INPUT],
        Operation::Layer => &[LAYER],
        _ => return None,
    };
    Some(own.iter().chain([&COMMON]).flat_map(|k| k.iter().copied()).collect())
}

// --- Unknown keys -----------------------------------------------------------------------------

/// Reports the keys of one object outside `known`, for one job (`job`: its id) or for the
/// request around the plan (`job: None`). `path` is the object's field path (`params.items[0]`;
/// empty for the job itself).
pub(super) struct KeyCheck<'e> {
    pub(super) job: Option<&'e str>,
    pub(super) errors: &'e mut Vec<PlanError>,
}

impl<'e> KeyCheck<'e> {
    pub(super) fn new(job: Option<&'e str>, errors: &'e mut Vec<PlanError>) -> Self {
        KeyCheck { job, errors }
    }

    pub(super) fn object(&mut self, obj: &Map<String, Value>, path: &str, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match suggest(key, known) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("known: {}", known.join(", ")),
                };
                self.refuse(path, key, &hint);
            }
        }
    }

    /// Refuses `key` of the object at `path`, with `hint`.
    pub(super) fn refuse(&mut self, path: &str, key: &str, hint: &str) {
        let field = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        let place = if path.is_empty() {
            String::new()
        } else {
            format!(" in `{path}`")
        };
        let detail = format!("unknown key `{key}`{place}; {hint}");
        self.errors.push(match self.job {
            Some(job) => PlanError::in_job(UNKNOWN_FIELD, job, field, detail),
            None => PlanError::new(UNKNOWN_FIELD, detail).field(field),
        });
    }

    /// The keys of a job of `op` and, where its shape is fixed, of its params and what they nest.
    pub(super) fn job(&mut self, job: &Map<String, Value>, op: Option<Operation>, prefix: &str) {
        let params_keys = op.and_then(params_keys);
        for key in job.keys() {
            if JOB.contains(&key.as_str()) {
                continue;
            }
            // A param put beside `params` (`sendJobWebhook`, `prompt`): say where it goes.
            let belongs_in_params = match (&params_keys, op) {
                (Some(keys), _) => keys.contains(&key.as_str()),
                (None, Some(_)) => PROVIDER.contains(&key.as_str()),
                (None, None) => false,
            };
            let hint = match suggest(key, JOB) {
                Some(near) => format!("did you mean `{near}`?"),
                None if belongs_in_params => format!("did you mean `params.{key}`? params go in `params`"),
                None => format!("known: {}", JOB.join(", ")),
            };
            self.refuse(prefix, key, &hint);
        }
        if let (Some(op), Some(Value::Object(params))) = (op, job.get("params")) {
            self.params(op, params);
        }
    }

    fn params(&mut self, op: Operation, params: &Map<String, Value>) {
        let Some(known) = params_keys(op) else {
            return;
        };
        self.object(params, "params", &known);
        match op {
            Operation::Merge => self.each_object(params.get("items"), "params.items", MERGE_ITEM),
            Operation::AddSubtitles => {
                if let Some(Value::Object(style)) = params.get("style") {
                    self.object(style, "params.style", STYLE);
                }
                for key in ["transcript", "captions"] {
                    self.each_object(params.get(key), &format!("params.{key}"), WORD);
                }
            }
            Operation::Layer => {
                if let Some(Value::Array(layers)) = params.get("layers") {
                    for (i, layer) in layers.iter().enumerate() {
                        if let Value::Object(layer) = layer {
                            self.layer_item(layer, &format!("params.layers[{i}]"), LAYER_ITEM);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn each_object(&mut self, list: Option<&Value>, path: &str, known: &[&str]) {
        if let Some(Value::Array(items)) = list {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(item) = item {
                    self.object(item, &format!("{path}[{i}]"), known);
                }
            }
        }
    }

    /// A layer (`known`: `LAYER_ITEM`) or a timeline item (`TIMELINE_ITEM`): its keys, its
    /// placement, and its media.
    fn layer_item(&mut self, item: &Map<String, Value>, path: &str, known: &[&str]) {
        self.object(item, path, known);
        if let Some(Value::Object(placement)) = item.get("placement") {
            let at = format!("{path}.placement");
            self.object(placement, &at, PLACEMENT);
            if let Some(Value::Object(position)) = placement.get("position") {
                self.object(position, &format!("{at}.position"), POSITION);
            }
        }
        if let Some(media) = item.get("media") {
            self.media(media, &format!("{path}.media"), false);
        }
    }

    /// A layer's media: a URL, a list, a nested list (a timeline), or the SDK's timeline object.
    fn media(&mut self, media: &Value, path: &str, in_timeline: bool) {
        match media {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    match item {
                        Value::Array(_) if !in_timeline => self.media(item, &at, true),
                        Value::Object(o) if in_timeline => self.layer_item(o, &at, TIMELINE_ITEM),
                        _ => {}
                    }
                }
            }
            Value::Object(o) if o.get("isTimeline") == Some(&Value::Bool(true)) => {
                self.object(o, path, TIMELINE);
                if let Some(timeline) = o.get("timeline") {
                    self.media(timeline, &format!("{path}.timeline"), true);
                }
            }
            _ => {}
        }
    }
}

/// The key among `known` that `key` was plausibly meant to be: the same but for case and
/// separators (`depends_on`), a common other name (`deps`), or within a small edit distance
/// (`dependOn`, `promt`: one edit for keys of up to 4 characters, none for 1 or 2).
pub(crate) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let folded = fold(key);
    if let Some(k) = known.iter().find(|k| fold(k) == folded) {
        return Some(k);
    }
    if let Some((_, meant)) = ALIASES.iter().find(|(alias, _)| *alias == folded) {
        if let Some(k) = known.iter().find(|k| *k == meant) {
            return Some(k);
        }
    }
    let limit = match key.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    };
    known
        .iter()
        .map(|k| (edit_distance(&folded, &fold(k)), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Other names clients use for a key (folded as `fold` does).
const ALIASES: &[(&str, &str)] = &[
    ("deps", "dependsOn"),
    ("depends", "dependsOn"),
    ("dependency", "dependsOn"),
    ("needs", "dependsOn"),
    ("after", "dependsOn"),
    ("requires", "dependsOn"),
    ("op", "type"),
    ("kind", "type"),
    ("parameters", "params"),
    ("args", "params"),
    ("arguments", "params"),
    ("inputs", "params"),
    ("jobid", "id"),
    ("name", "id"),
];

/// Lower case, without `_`, `-`, `.` or spaces: `depends_on`, `Depends-On` → `dependson`.
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
/// substitutions and transpositions of adjacent characters. Long keys are not compared (the
/// cost is quadratic; no known key is near 64 characters).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let width = b.len() + 1;
    // Three rows: two back (transpositions), one back, this one.
    let mut rows = vec![vec![0usize; width]; 3];
    for (j, cell) in rows[1].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (two_back, rest) = rows.split_at_mut(1);
        let (one_back, this) = rest.split_at_mut(1);
        let (two_back, one_back, this) = (&two_back[0], &one_back[0], &mut this[0]);
        this[0] = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (one_back[j] + 1).min(this[j - 1] + 1).min(one_back[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two_back[j - 2] + 1);
            }
            this[j] = d;
        }
        rows.rotate_left(1);
    }
    rows[1][b.len()]
}

// --- Job ids ----------------------------------------------------------------------------------

/// The longest job id, in characters.
pub(super) const MAX_ID_CHARS: usize = 128;

/// Why `id` cannot be a job id, if it cannot: too long, a character that does not print or
/// that reorders text (bidi controls could make `job1` show as another id in a log or a UI), or
/// the look of a reference.
pub(super) fn id_problem(id: &str) -> Option<String> {
    let length = id.chars().count();
    if length > MAX_ID_CHARS {
        return Some(format!("is {length} characters long; the limit is {MAX_ID_CHARS}"));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character U+{:04X}", u32::from(c)));
    }
    if let Some(c) = id.chars().find(|c| is_bidi_or_invisible(*c)) {
        return Some(format!(
            "contains U+{:04X}, an invisible or bidirectional formatting character",
            u32::from(c)
        ));
    }
    if looks_like_reference(id) {
        return Some(
            "looks like a reference (`$…` or `_…JobDependency:…`): those name jobs, they cannot be one".into(),
        );
    }
    None
}

/// Bidi embeddings, overrides, isolates and marks, and the zero-width characters.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

// --- Duplicate keys ---------------------------------------------------------------------------

/// How many duplicate keys are reported at most.
const MAX_DUPLICATES: usize = 20;

/// The paths (`executionPlan.jobs[0].params.prompt`) of keys given more than once in one
/// object of a JSON body, which must be valid JSON (serde_json keeps the last silently). Read
/// by serde_json, so its nesting limit holds here too.
pub(crate) fn duplicate_keys(body: &[u8]) -> Vec<String> {
    let mut walk = Walk {
        path: Vec::new(),
        found: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    // The body was read as JSON already: an error here cannot happen, and is not a duplicate.
    let _ = (&mut walk).deserialize(&mut de);
    walk.found
}

enum Segment {
    Key(String),
    Index(usize),
}

struct Walk {
    path: Vec<Segment>,
    found: Vec<String>,
}

impl Walk {
    fn path_to(&self, key: &str) -> String {
        let mut out = String::new();
        for segment in self.path.iter().chain([&Segment::Key(key.to_string())]) {
            match segment {
                Segment::Key(k) if out.is_empty() => out.push_str(k),
                Segment::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl<'de> DeserializeSeed<'de> for &mut Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Segment::Index(i));
            let more = seq.next_element_seed(&mut *self)?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) && self.found.len() < MAX_DUPLICATES {
                let path = self.path_to(&key);
                if !self.found.contains(&path) {
                    self.found.push(path);
                }
            }
            self.path.push(Segment::Key(key));
            map.next_value_seed(&mut *self)?;
            self.path.pop();
        }
        Ok(())
    }
}

/// The problem of a key given twice at `path`, against its job when it is inside one.
pub(super) fn duplicate_key_error(root: &Value, path: &str) -> PlanError {
    const CODE: &str = "duplicate_key";
    // `jobs[3].params.prompt` or `executionPlan.jobs[3].params.prompt`.
    let in_job = path
        .strip_prefix("executionPlan.")
        .unwrap_or(path)
        .strip_prefix("jobs[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, rest)| Some((index.parse::<usize>().ok()?, rest.strip_prefix('.')?)));
    if let Some((index, field)) = in_job {
        let plan = root.get("executionPlan").unwrap_or(root);
        let id = plan
            .pointer(&format!("/jobs/{index}/id"))
            .and_then(Value::as_str)
            .filter(|id| !id.trim().is_empty() && id_problem(id).is_none());
        if let Some(id) = id {
            return PlanError::in_job(
                CODE,
                id,
                field,
                format_args!("the key `{field}` is given more than once"),
            );
        }
    }
    PlanError::new(CODE, format!("the key `{path}` is given more than once")).field(path)
}
