//! What a code-writing model is asked for one scene: the brief travels in the
//! `generateSceneCode` job's params; the repairs are added by the engine at each new round.

use serde::{Deserialize, Serialize};

use crate::plan::ProviderParams;

/// The option under which a `generateSceneCode` job's params carry its brief.
const BRIEF_OPTION: &str = "scene";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SceneBrief {
    pub prompt: String,
    pub scene_name: String,
    /// The `Scene` subclass the code must define.
    pub class_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Target length in seconds.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    /// Earlier rounds' code and why it was refused, oldest first: what to fix this time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<Repair>,
}

/// One refused round of a scene's code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    pub step: SceneStep,
    pub error: String,
    pub code: String,
}

/// The steps of one scene, by the names the workflow status answer gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SceneStep {
    CodeGeneration,
    Validation,
    Compilation,
    Upload,
}

impl SceneStep {
    pub const ALL: [SceneStep; 4] = [
        SceneStep::CodeGeneration,
        SceneStep::Validation,
        SceneStep::Compilation,
        SceneStep::Upload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SceneStep::CodeGeneration => "codeGeneration",
            SceneStep::Validation => "validation",
            SceneStep::Compilation => "compilation",
            SceneStep::Upload => "upload",
        }
    }
}

impl SceneBrief {
    /// The brief a `generateSceneCode` job carries, if its params hold one.
    pub fn from_params(params: &ProviderParams) -> Result<SceneBrief, String> {
        let value = params
            .options
            .get(BRIEF_OPTION)
            .ok_or_else(|| format!("params have no `{BRIEF_OPTION}` brief"))?;
        serde_json::from_value(value.clone()).map_err(|e| format!("params.{BRIEF_OPTION}: {e}"))
    }

    /// Writes the brief into a job's params.
    pub fn put_into(&self, params: &mut ProviderParams) {
        params.prompt = Some(self.prompt.clone());
        let value = serde_json::to_value(self).expect("a brief serialises");
        params.options.insert(BRIEF_OPTION.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_round_trips_through_job_params() {
        let brief = SceneBrief {
            prompt: "Explain the Pythagorean theorem".into(),
            scene_name: "Intro".into(),
            class_name: "IntroScene".into(),
            context: Some("for 12-year-olds".into()),
            duration: 5.0,
            width: 1920,
            height: 1080,
            repairs: vec![Repair {
                step: SceneStep::Validation,
                error: "import of `os` is not allowed".into(),
                code: "import os".into(),
            }],
        };
        let mut params = ProviderParams::prompt("local", "scene-code", "");
        brief.put_into(&mut params);
        assert_eq!(params.prompt.as_deref(), Some("Explain the Pythagorean theorem"));
        assert_eq!(SceneBrief::from_params(&params), Ok(brief));
        let bare = ProviderParams::prompt("local", "scene-code", "x");
        assert!(SceneBrief::from_params(&bare).unwrap_err().contains("`scene`"));
    }
}
