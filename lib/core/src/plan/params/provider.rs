//! Params of the operations an AI provider carries out (`generate`, `generateImage`,
//! `generateAudio`, `transcribe`, `lipSync`, `removeBackground`, ...): the model, the unified
//! params, the media inputs, and the model's own options passed through.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{video_dependency, Kinds, ParamReader};
use crate::background::Background;
use crate::plan::strict;
use crate::plan::{parse_resolution, Catalog, JobId, MediaRef, ModelLookup, Operation, ProviderParams, Secret};

/// Media inputs by their unified name.
pub(in crate::plan) const INPUT_KEYS: [&str; 7] = [
    "image",
    "audio",
    "startImage",
    "endImage",
    "video",
    "videoUrl",
    "audioUrl",
];

/// The unified form's other params; every param that is neither one of these nor an input
/// passes through to the model as an option.
pub(in crate::plan) const UNIFIED: [&str; 11] = [
    "provider",
    "modelId",
    "prompt",
    "duration",
    "resolution",
    "aspectRatio",
    "seed",
    "unified",
    "model",
    "sendJobWebhook",
    "apiKey",
];

pub(super) fn read(
    p: &mut ParamReader,
    op: Operation,
    catalog: &dyn Catalog,
    deps: &[JobId],
    kinds: &Kinds,
) -> Option<ProviderParams> {
    let params = p.params;
    let unified = p.bool("unified").unwrap_or(true);
    let model_obj = match params.get("model") {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    let Some((provider, model_id)) = read_model(p, op, catalog, model_obj) else {
        // `modelID` for `modelId`: the reason the model was not found.
        if unified {
            refuse_near_misses(p, |meant| matches!(meant, "provider" | "modelId"));
        }
        return None;
    };
    let prompt = p.string("prompt");
    let duration = p.number_in(
        params,
        "duration",
        "duration",
        |v| v > 0.0 && v <= 600.0,
        "greater than 0 and at most 600 seconds",
    );
    let resolution = p.string("resolution");
    if let Some(r) = &resolution {
        // Image models size by `1K`/`2K`/`4K` (nano-banana-pro); the model's schema says which.
        let image_size = r.strip_suffix('K').is_some_and(|n| n.parse::<u8>().is_ok());
        if parse_resolution(r).is_none() && !image_size {
            p.invalid(
                "resolution",
                format_args!("must be like `480p`, `720p`, `1080p`, `4k` or `2K`, not `{r}`"),
            );
        }
    }
    let aspect_ratio = p.aspect_ratio("aspectRatio");
    let seed = read_seed(p);
    let inputs = read_inputs(p, op, deps, kinds);
    let (options, api_key) = options_and_key(params, model_obj);
    let params = ProviderParams {
        api_key,
        provider,
        model_id,
        prompt,
        duration,
        resolution,
        aspect_ratio,
        seed,
        inputs,
        unified,
        options,
    };
    for (field, message) in catalog.check(&params) {
        p.fail("invalid_model_params", format!("params.{field}"), message);
    }
    // A model with a schema refuses a misspelt param itself (or takes it as its own field, as
    // Hume takes `speed`); one without would take it silently.
    if unified && !near_misses(p.params).is_empty() && !has_schema(catalog, &params) {
        refuse_near_misses(p, |_| true);
    }
    if let Err((field, message)) = Background::of(op, &params.options) {
        p.invalid(field, message);
    }
    Some(params)
}

/// Refuses the params that are not unified ones but nearly are (`promt`, `aspect_ratio`,
/// `modelID`), when the unified param they stand for is one `meant` accepts.
fn refuse_near_misses(p: &mut ParamReader, meant: impl Fn(&str) -> bool) {
    for (key, near) in near_misses(p.params) {
        if meant(near) {
            p.fail(
                strict::UNKNOWN_FIELD,
                format!("params.{key}"),
                format_args!("unknown key `{key}` in `params`; did you mean `{near}`?"),
            );
        }
    }
}

/// The params that nearly are unified ones, with the one each stands for.
fn near_misses(raw: &Map<String, Value>) -> Vec<(&str, &'static str)> {
    raw.keys()
        .filter(|k| !strict::PROVIDER.contains(&k.as_str()))
        .filter_map(|k| strict::suggest(k, &strict::PROVIDER).map(|near| (k.as_str(), near)))
        .collect()
}

/// Whether the catalog checks the options of the job's model against a schema: asked by
/// giving it an option no model has.
fn has_schema(catalog: &dyn Catalog, params: &ProviderParams) -> bool {
    const PROBE: &str = "\u{1}reelay-probe";
    let mut probe = params.clone();
    probe.options.insert(PROBE.to_string(), Value::Null);
    catalog.check(&probe).iter().any(|(field, _)| field == PROBE)
}

/// The job's provider and model id (in params, or in `model`), if the catalog has that model
/// and it can carry out `op`.
fn read_model(
    p: &mut ParamReader,
    op: Operation,
    catalog: &dyn Catalog,
    model_obj: Option<&Map<String, Value>>,
) -> Option<(String, String)> {
    let from_model = |key: &str| {
        model_obj
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut provider = p.string("provider").or_else(|| from_model("provider"));
    let mut model_id = p.string("modelId").or_else(|| from_model("modelId"));
    // A job that names no model runs the server's default for its operation, recorded in
    // its params as if the client had named it.
    if let (None, None, Some((default_provider, default_model))) = (&provider, &model_id, catalog.default_model(op)) {
        provider = Some(default_provider);
        model_id = Some(default_model);
    }
    if provider.is_none() {
        p.fail(
            "missing_field",
            "params.provider",
            format_args!("`{op}` needs a `provider`"),
        );
    }
    if model_id.is_none() {
        p.fail(
            "missing_field",
            "params.modelId",
            format_args!("`{op}` needs a `modelId`"),
        );
    }
    let (mut provider, model_id) = (provider?, model_id?);
    if let Some(runs_at) = catalog.route(&provider, &model_id) {
        provider = runs_at;
    }
    let (code, field, detail) = match catalog.lookup(&provider, &model_id) {
        ModelLookup::UnknownProvider(known) => (
            "unknown_provider",
            "params.provider",
            format!("unknown provider `{provider}`; available: {}", known.join(", ")),
        ),
        ModelLookup::UnknownModel(known) => (
            "unknown_model",
            "params.modelId",
            format!(
                "provider `{provider}` has no model `{model_id}`; available: {}",
                known.join(", ")
            ),
        ),
        ModelLookup::Found(model) if !model.operations.contains(&op) => (
            "unsupported_model_operation",
            "params.modelId",
            format!("model `{provider}/{model_id}` cannot `{op}`"),
        ),
        ModelLookup::Found(_) => return Some((provider, model_id)),
    };
    p.fail(code, field, detail);
    None
}

fn read_seed(p: &mut ParamReader) -> Option<i64> {
    let seed = p.params.get("seed").filter(|v| !v.is_null())?;
    let integer = seed.as_i64();
    if integer.is_none() {
        p.invalid("seed", "must be an integer");
    }
    integer
}

fn read_inputs(p: &mut ParamReader, op: Operation, deps: &[JobId], kinds: &Kinds) -> BTreeMap<String, MediaRef> {
    let params = p.params;
    let mut inputs = BTreeMap::new();
    for key in INPUT_KEYS {
        // A list (nano-banana's `image: [url, …]`) stays among the options, whose references
        // are resolved all the same.
        if let Some(v) = params.get(key).filter(|v| !v.is_null() && !v.is_array()) {
            if let Some(r) = p.media_ref(v, key) {
                inputs.insert(key.to_string(), r);
            }
        }
    }
    // The chained form (`lipSync` after `generate`): no reference, only a dependency.
    if matches!(op, Operation::LipSync | Operation::RemoveBackground)
        && !inputs.contains_key("video")
        && !inputs.contains_key("videoUrl")
    {
        if let Some(dep) = video_dependency(deps, kinds) {
            inputs.insert("video".to_string(), MediaRef::Job(dep.clone()));
        }
    }
    inputs
}

/// The model's raw options (`model.options`, then every param the unified form does not know),
/// and the job's provider key.
fn options_and_key(
    params: &Map<String, Value>,
    model_obj: Option<&Map<String, Value>>,
) -> (Map<String, Value>, Option<Secret>) {
    let mut options: Map<String, Value> = model_obj
        .and_then(|m| m.get("options"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in params {
        if !UNIFIED.contains(&k.as_str()) && (!INPUT_KEYS.contains(&k.as_str()) || v.is_array()) {
            options.insert(k.clone(), v.clone());
        }
    }
    // A provider key may sit in params, in `model`, or among the model's raw options;
    // wherever it is, it leaves the params here so it can only be stored sealed.
    let in_model = options.remove("apiKey");
    let api_key = [
        params.get("apiKey"),
        model_obj.and_then(|m| m.get("apiKey")),
        in_model.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().filter(|k| !k.is_empty()).map(Secret::new));
    (options, api_key)
}
