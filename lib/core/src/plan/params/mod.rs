//! Each operation's params, read from the wire and checked: one module per family of
//! operations. A new operation adds its module and its arm in `job_spec`.

mod layer;
mod merge;
mod provider;
pub(super) use provider::{INPUT_KEYS, UNIFIED};
mod reader;
mod reframe;
mod subtitles;

use std::collections::HashMap;

use super::draft::Draft;
use super::model::{JobId, JobSpec, MediaKind, Operation, Params, Quality};
use super::{Catalog, PlanError};
use reader::ParamReader;

/// What each job a plan may refer to produces (`None`: its operation is unknown, and reported).
pub(super) type Kinds = HashMap<JobId, Option<MediaKind>>;

/// The job `draft` describes, its params typed; `None` when they cannot be (reported).
pub(super) fn job_spec(
    draft: &Draft,
    catalog: &dyn Catalog,
    kinds: &Kinds,
    errors: &mut Vec<PlanError>,
) -> Option<JobSpec> {
    let operation = draft.operation?;
    let deps = draft.dep_ids();
    let mut p = ParamReader::new(&draft.id, &draft.params, errors);
    let params = match operation {
        Operation::Merge => Params::Merge(merge::read(&mut p, kinds)),
        Operation::Reframe => Params::Reframe(reframe::read(&mut p, &deps, kinds)?),
        Operation::AddSubtitles => Params::Subtitles(subtitles::read(&mut p, &deps, kinds)?),
        Operation::Layer => Params::Layer(layer::read(&mut p, kinds)?),
        op => Params::Provider(provider::read(&mut p, op, catalog, &deps, kinds)?),
    };
    let send_job_webhook = p.bool("sendJobWebhook").unwrap_or(false);
    // A provider's own `quality` (a model option) stays the model's.
    let quality = match params {
        Params::Provider(_) => Quality::default(),
        _ => read_quality(&mut p),
    };
    if p.failed() {
        return None;
    }
    Some(JobSpec {
        id: draft.id.clone(),
        operation,
        params,
        depends_on: deps,
        send_job_webhook,
        quality,
    })
}

/// `quality`: how an edit is encoded (the strict shapes allow it on the edits alone).
fn read_quality(p: &mut ParamReader) -> Quality {
    let Some(name) = p.string("quality") else {
        return Quality::default();
    };
    Quality::parse(&name).unwrap_or_else(|| {
        let known = Quality::ALL.map(Quality::name).join(", ");
        p.invalid("quality", format_args!("must be one of {known}, not `{name}`"));
        Quality::default()
    })
}

/// The first of `deps` that produces a video: the input of a transform that names none.
pub(super) fn video_dependency<'d>(deps: &'d [JobId], kinds: &Kinds) -> Option<&'d JobId> {
    deps.iter()
        .find(|d| matches!(kinds.get(*d), Some(Some(MediaKind::Video))))
}
