//! The scene-renderer function's protocol, as JSON: what [`LambdaScenes`](super::LambdaScenes)
//! sends and what the function (`reelay_lambda::scene_renderer`) answers.
//!
//! * `{"action":"check", "code", "className"}` → `{"ok":true}`;
//! * `{"action":"render", "code", "className", "width", "height", "fps", "outputKey"}` →
//!   `{"ok":true, "key", "sizeBytes", "duration", "width", "height"}`, the MP4 at `key`;
//! * either → `{"ok":false, "fault":"code"|"machine", "message"}` when refused.

use serde::{Deserialize, Serialize};

use reelay_core::ports::{MediaInfo, SceneCode, SceneError, SceneFrame};

/// Where renders are handed over: the invoker picks a key under it, the function writes
/// there, and only there (its role may write nothing else).
pub const RENDER_PREFIX: &str = "scratch/renders/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum SceneRequest {
    #[serde(rename_all = "camelCase")]
    Check { code: String, class_name: String },
    #[serde(rename_all = "camelCase")]
    Render {
        code: String,
        class_name: String,
        width: u32,
        height: u32,
        fps: u32,
        output_key: String,
    },
}

impl SceneRequest {
    pub fn check(code: &SceneCode) -> SceneRequest {
        SceneRequest::Check {
            code: code.source.clone(),
            class_name: code.class_name.clone(),
        }
    }

    pub fn render(code: &SceneCode, frame: SceneFrame, output_key: String) -> SceneRequest {
        SceneRequest::Render {
            code: code.source.clone(),
            class_name: code.class_name.clone(),
            width: frame.width,
            height: frame.height,
            fps: frame.fps,
            output_key,
        }
    }

    pub fn code(&self) -> SceneCode {
        let (SceneRequest::Check { code, class_name } | SceneRequest::Render { code, class_name, .. }) = self;
        SceneCode {
            source: code.clone(),
            class_name: class_name.clone(),
        }
    }
}

/// Whose fault a refusal is: [`SceneError`]'s two kinds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    Code,
    Machine,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SceneAnswer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl SceneAnswer {
    pub fn checked() -> SceneAnswer {
        SceneAnswer {
            ok: true,
            ..SceneAnswer::default()
        }
    }

    pub fn rendered(key: &str, info: &MediaInfo) -> SceneAnswer {
        SceneAnswer {
            ok: true,
            key: Some(key.to_string()),
            size_bytes: Some(info.size_bytes),
            duration: info.duration,
            width: info.width,
            height: info.height,
            ..SceneAnswer::default()
        }
    }

    pub fn refused(error: &SceneError) -> SceneAnswer {
        let (fault, message) = match error {
            SceneError::Code(m) => (Fault::Code, m),
            SceneError::Machine(m) => (Fault::Machine, m),
        };
        SceneAnswer {
            ok: false,
            fault: Some(fault),
            message: Some(message.clone()),
            ..SceneAnswer::default()
        }
    }

    /// The refusal this answer carries, if it is one. An answer that is neither ok nor a
    /// known fault is the machine's (a renderer of another version, say).
    fn refusal(&self) -> Option<SceneError> {
        if self.ok {
            return None;
        }
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| "refused without a message".into());
        Some(match self.fault {
            Some(Fault::Code) => SceneError::Code(message),
            _ => SceneError::Machine(message),
        })
    }

    /// A `check`'s answer in the port's terms.
    pub fn into_check(self) -> Result<(), SceneError> {
        self.refusal().map_or(Ok(()), Err)
    }

    /// A `render`'s answer in the port's terms: where the MP4 is, and its probe.
    pub fn into_render(self) -> Result<(String, MediaInfo), SceneError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let key = self
            .key
            .ok_or_else(|| SceneError::Machine("the scene renderer answered a render with no key".into()))?;
        let info = MediaInfo {
            duration: self.duration,
            width: self.width,
            height: self.height,
            size_bytes: self.size_bytes.unwrap_or(0),
            words: None,
        };
        Ok((key, info))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_the_documented_json() {
        let code = SceneCode {
            source: "from manim import *".into(),
            class_name: "Intro".into(),
        };
        let check = serde_json::to_value(SceneRequest::check(&code)).unwrap();
        assert_eq!(
            check,
            json!({"action": "check", "code": "from manim import *", "className": "Intro"})
        );
        let frame = SceneFrame {
            width: 854,
            height: 480,
            fps: 15,
        };
        let render = SceneRequest::render(&code, frame, "scratch/renders/a.mp4".into());
        let value = serde_json::to_value(&render).unwrap();
        assert_eq!(
            value,
            json!({"action": "render", "code": "from manim import *", "className": "Intro",
                   "width": 854, "height": 480, "fps": 15, "outputKey": "scratch/renders/a.mp4"})
        );
        assert_eq!(serde_json::from_value::<SceneRequest>(value).unwrap(), render);
        assert_eq!(render.code(), code);
        assert!(serde_json::from_value::<SceneRequest>(json!({"action": "paint", "code": ""})).is_err());
    }

    #[test]
    fn answers_read_back_as_the_port_reads_them() {
        assert_eq!(
            serde_json::to_value(SceneAnswer::checked()).unwrap(),
            json!({"ok": true})
        );
        let info = MediaInfo {
            duration: Some(1.5),
            width: Some(854),
            height: Some(480),
            size_bytes: 4096,
            words: None,
        };
        let rendered = SceneAnswer::rendered("scratch/renders/a.mp4", &info);
        assert_eq!(
            serde_json::to_value(&rendered).unwrap(),
            json!({"ok": true, "key": "scratch/renders/a.mp4", "sizeBytes": 4096, "duration": 1.5,
                   "width": 854, "height": 480})
        );
        assert_eq!(
            rendered.into_render().unwrap(),
            ("scratch/renders/a.mp4".to_string(), info)
        );
        let code = SceneAnswer::refused(&SceneError::Code("line 3: no".into()));
        assert_eq!(
            serde_json::to_value(&code).unwrap(),
            json!({"ok": false, "fault": "code", "message": "line 3: no"})
        );
        assert_eq!(code.into_check(), Err(SceneError::Code("line 3: no".into())));
        let machine: SceneAnswer =
            serde_json::from_value(json!({"ok": false, "fault": "machine", "message": "disk full"})).unwrap();
        assert_eq!(machine.into_render(), Err(SceneError::Machine("disk full".into())));
        // A refusal that names no fault is the machine's.
        let odd: SceneAnswer = serde_json::from_value(json!({"ok": false})).unwrap();
        assert!(matches!(odd.into_check(), Err(SceneError::Machine(_))));
        let keyless: SceneAnswer = serde_json::from_value(json!({"ok": true})).unwrap();
        assert!(matches!(keyless.into_render(), Err(SceneError::Machine(_))));
    }
}
