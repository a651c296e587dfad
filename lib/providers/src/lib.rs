//! AI providers behind the engine's `Provider` port: Replicate, fal and Google Veo over
//! HTTP, and `local` (offline, with ffmpeg). The HTTP clients share `http` (one client,
//! failure classification, streaming downloads), `rate` (per-account budgets) and `registry`
//! (models, their schemas, and the unified params' mapping). Which of them a node runs, and
//! with what settings, is `reelay-node`'s business.

pub mod elevenlabs;
pub mod fal;
pub mod google;
pub mod http;
pub mod hume;
pub mod local;
pub mod rate;
pub mod registry;
pub mod replicate;
pub mod scene_code;
pub mod scene_templates;
pub mod tts;

pub use local::{LocalProvider, LocalProviderSettings, ProviderWebhook};
pub use rate::InProcessBudget;
