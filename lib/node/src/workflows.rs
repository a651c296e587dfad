//! The settings of code-to-video workflows, read with the others (`settings.rs`, whose table
//! lists these variables too): how often a scene's refused code is written again, how each
//! step's passing failures are retried, and what one render may use (read the same by the
//! embedded node and the scene-renderer function).

use std::time::Duration;

use reelay_core::plan::Operation;
use reelay_core::{EngineSettings, RetryPolicy};

use reelay_media::ManimSettings;

use crate::settings::{SettingsError, Vars};

/// What one scene render may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneLimits {
    /// Wall-clock time, and as many seconds of CPU.
    pub timeout: Duration,
    /// Address space.
    pub memory_bytes: u64,
}

impl Default for SceneLimits {
    fn default() -> Self {
        let sandbox = ManimSettings::new("python3", "/tmp");
        SceneLimits {
            timeout: sandbox.timeout,
            memory_bytes: sandbox.memory_bytes,
        }
    }
}

impl SceneLimits {
    /// `REELAY_SCENE_TIMEOUT_SECS` and `REELAY_SCENE_MEMORY_MB`.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<SceneLimits, SettingsError> {
        let defaults = SceneLimits::default();
        let timeout = vars.number("REELAY_SCENE_TIMEOUT_SECS", defaults.timeout.as_secs(), 1..=3600)?;
        let memory_mb = vars.number("REELAY_SCENE_MEMORY_MB", defaults.memory_bytes >> 20, 256..=65_536)?;
        Ok(SceneLimits {
            timeout: Duration::from_secs(timeout),
            memory_bytes: memory_mb << 20,
        })
    }

    /// A sandbox running `python`, its renders' folders under `scratch`, within these limits.
    pub fn sandbox(
        &self,
        python: impl Into<std::path::PathBuf>,
        scratch: impl Into<std::path::PathBuf>,
    ) -> ManimSettings {
        let mut settings = ManimSettings::new(python, scratch);
        settings.timeout = self.timeout;
        settings.cpu_seconds = self.timeout.as_secs();
        settings.memory_bytes = self.memory_bytes;
        settings
    }
}

/// Each retried step and the variable of its attempts.
const STEP_ATTEMPTS: [(Operation, &str); 3] = [
    (Operation::GenerateSceneCode, "REELAY_CODE_ATTEMPTS"),
    (Operation::RenderScene, "REELAY_RENDER_ATTEMPTS"),
    (Operation::UploadScene, "REELAY_UPLOAD_ATTEMPTS"),
];

pub(crate) fn read_workflows<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    engine: &mut EngineSettings,
) -> Result<(), SettingsError> {
    engine.scene_repairs = vars.number("REELAY_SCENE_REPAIRS", u64::from(engine.scene_repairs), 0..=10)? as u32;
    let defaults = RetryPolicy::workflow_defaults();
    let base = vars.number("REELAY_WORKFLOW_RETRY_BASE_SECS", 30, 0..=3600)?;
    let cap = vars.number("REELAY_WORKFLOW_RETRY_CAP_SECS", 300, 0..=86_400)?;
    for (operation, name) in STEP_ATTEMPTS {
        let default = defaults.get(&operation).map_or(3, |p| p.max_attempts);
        let attempts = vars.number(name, u64::from(default), 1..=100)? as u32;
        engine.step_retries.insert(
            operation,
            RetryPolicy {
                max_attempts: attempts,
                base: Duration::from_secs(base),
                cap: Duration::from_secs(cap.max(base)),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<EngineSettings, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut engine = EngineSettings::default();
        read_workflows(&Vars::new(|name: &str| map.get(name).cloned()), &mut engine)?;
        Ok(engine)
    }

    #[test]
    fn defaults_follow_the_design_and_each_can_be_changed() {
        let engine = read(&[]).expect("defaults");
        assert_eq!(engine.scene_repairs, 2);
        let code = engine.retry_policy(Operation::GenerateSceneCode);
        assert_eq!(code.max_attempts, 3);
        let delays: Vec<u64> = (1..=5).map(|n| code.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 300]);
        assert_eq!(engine.retry_policy(Operation::RenderScene).max_attempts, 5);
        assert_eq!(engine.retry_policy(Operation::UploadScene).max_attempts, 5);

        let engine = read(&[
            ("REELAY_SCENE_REPAIRS", "4"),
            ("REELAY_RENDER_ATTEMPTS", "2"),
            ("REELAY_WORKFLOW_RETRY_BASE_SECS", "1"),
            ("REELAY_WORKFLOW_RETRY_CAP_SECS", "5"),
        ])
        .expect("valid");
        assert_eq!(engine.scene_repairs, 4);
        let render = engine.retry_policy(Operation::RenderScene);
        assert_eq!(render.max_attempts, 2);
        assert_eq!(render.delay_after(10), Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("REELAY_SCENE_REPAIRS", "-1"),
            ("REELAY_CODE_ATTEMPTS", "0"),
            ("REELAY_WORKFLOW_RETRY_BASE_SECS", "soon"),
        ] {
            let error = read(&[(name, value)]).expect_err(name);
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
