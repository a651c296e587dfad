//! Which providers a node runs, and with what settings (read from the environment by
//! `settings.rs`), built into the engine's providers by [`ProviderSettings::build`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reelay_core::outbound::AddressPolicy;
use reelay_core::plan::Secret;
use reelay_core::ports::{Provider, RateBudget};
use reelay_media::WorkPool;
use reelay_providers::elevenlabs::{ElevenLabsProvider, ElevenLabsSettings};
use reelay_providers::fal::{FalProvider, FalSettings};
use reelay_providers::google::{GoogleApi, GoogleProvider, GoogleSettings};
use reelay_providers::hume::{HumeProvider, HumeSettings};
use reelay_providers::replicate::{ReplicateProvider, ReplicateSettings};
use reelay_providers::scene_code::{AnthropicProvider, ChatSettings, OpenAiProvider, SceneWriter};
use reelay_providers::{LocalProvider, LocalProviderSettings};

use crate::node::{LocalCallbacks, NodeError};

/// The providers a node runs, built, `local` first, with `local`'s callbacks if it runs.
pub(crate) struct ProviderSet {
    pub providers: Vec<Arc<dyn Provider>>,
    pub local_callbacks: Option<LocalCallbacks>,
}

/// The providers a node runs. `None`: that provider is off.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The offline `local` provider (ffmpeg renders): always on the embedded node; on AWS
    /// only when `REELAY_PROVIDERS` names it (tests).
    pub local: bool,
    /// How long `local`'s models "think" before rendering.
    pub local_delay: Duration,
    /// The Python whose `pocketsphinx` `local`'s transcriber runs.
    pub local_python: String,
    pub replicate: Option<ReplicateSettings>,
    pub fal: Option<FalSettings>,
    pub google: Option<GoogleSettings>,
    pub elevenlabs: Option<ElevenLabsSettings>,
    pub hume: Option<HumeSettings>,
    /// The code-writing models of code-to-video workflows. Unlike the others they run only
    /// with an account key: a workflow, not a client's job, picks them.
    pub openai: Option<ChatSettings>,
    pub anthropic: Option<ChatSettings>,
    /// Who writes scene code (`REELAY_SCENE_WRITER`); `None`: see [`Self::scene_writer`].
    pub scene_writer: Option<SceneWriter>,
}

/// `local`'s offline scene writer (templates).
pub const LOCAL_SCENE_WRITER: (&str, &str) = ("local", reelay_providers::local::SCENE_CODE_MODEL);

impl Default for ProviderSettings {
    /// Every hosted provider, with no account key: clients may bring theirs with each request.
    fn default() -> Self {
        ProviderSettings {
            local: false,
            local_delay: Duration::from_millis(300),
            local_python: "python3".into(),
            replicate: Some(ReplicateSettings::new(None)),
            fal: Some(FalSettings::new(None)),
            google: Some(GoogleSettings::gemini(None)),
            elevenlabs: Some(ElevenLabsSettings::new(None)),
            hume: Some(HumeSettings::new(None)),
            openai: Some(ChatSettings::openai(None)),
            anthropic: Some(ChatSettings::anthropic(None)),
            scene_writer: None,
        }
    }
}

impl ProviderSettings {
    /// No provider at all; tests turn on the ones they drive.
    pub fn none() -> Self {
        ProviderSettings {
            local: false,
            replicate: None,
            fal: None,
            google: None,
            elevenlabs: None,
            hume: None,
            openai: None,
            anthropic: None,
            ..ProviderSettings::default()
        }
    }

    /// The provider and model that write scene code: the one `REELAY_SCENE_WRITER` names, else
    /// Anthropic if it runs with a key, else OpenAI if it does, else `local`'s templates.
    pub fn scene_writer(&self) -> (&str, &str) {
        let model = |writer: SceneWriter| {
            let settings = match writer {
                SceneWriter::Local => return LOCAL_SCENE_WRITER,
                SceneWriter::OpenAi => &self.openai,
                SceneWriter::Anthropic => &self.anthropic,
            };
            // Named but off: `build` refuses that, so the name alone is enough here.
            (writer.name(), settings.as_ref().map_or("", ChatSettings::model))
        };
        if let Some(writer) = self.scene_writer {
            return model(writer);
        }
        [SceneWriter::Anthropic, SceneWriter::OpenAi]
            .into_iter()
            .find(|w| self.code_writer(*w).is_some())
            .map_or(LOCAL_SCENE_WRITER, model)
    }

    /// A hosted code writer's settings, if it runs (on, with a key).
    fn code_writer(&self, writer: SceneWriter) -> Option<&ChatSettings> {
        match writer {
            SceneWriter::Local => None,
            SceneWriter::OpenAi => self.openai.as_ref(),
            SceneWriter::Anthropic => self.anthropic.as_ref(),
        }
        .filter(|s| s.key.is_some())
    }

    /// Sets the account keys that `key` gives, by their variable's name (`REPLICATE_API_TOKEN`,
    /// `FAL_KEY`, `GEMINI_API_KEY`, `ELEVENLABS_API_KEY`, `HUME_API_KEY`, and `GOOGLE_APPLICATION_CREDENTIALS_JSON`: a Vertex AI
    /// service account key itself). On AWS, the secret's keys take the place of the
    /// environment's this way.
    pub fn use_keys(&mut self, key: impl Fn(&str) -> Option<Secret>) {
        if let Some(replicate) = &mut self.replicate {
            replicate.api_key = key("REPLICATE_API_TOKEN").or(replicate.api_key.take());
        }
        if let Some(fal) = &mut self.fal {
            fal.key = key("FAL_KEY").or(fal.key.take());
        }
        if let Some(google) = &mut self.google {
            let name = match google.api {
                GoogleApi::Gemini { .. } => "GEMINI_API_KEY",
                GoogleApi::Vertex(_) => "GOOGLE_APPLICATION_CREDENTIALS_JSON",
            };
            google.key = key(name).or(google.key.take());
        }
        if let Some(elevenlabs) = &mut self.elevenlabs {
            elevenlabs.key = key("ELEVENLABS_API_KEY").or(elevenlabs.key.take());
        }
        if let Some(hume) = &mut self.hume {
            hume.key = key("HUME_API_KEY").or(hume.key.take());
        }
        if let Some(openai) = &mut self.openai {
            openai.key = key("OPENAI_API_KEY").or(openai.key.take());
        }
        if let Some(anthropic) = &mut self.anthropic {
            anthropic.key = key("ANTHROPIC_API_KEY").or(anthropic.key.take());
        }
    }

    /// The providers. `outbound`: where providers that fetch a client's input
    /// media themselves may reach; `budget`: where rate limits are counted (shared by every
    /// process on AWS); `local_dir`: the `local` provider's work folder; `pool`: the node's
    /// media work slots, which `local`'s renders share.
    pub(crate) fn build(
        &self,
        outbound: &AddressPolicy,
        budget: &Arc<dyn RateBudget>,
        local_dir: &Path,
        pool: &WorkPool,
    ) -> Result<ProviderSet, NodeError> {
        let failed = |provider: &'static str| {
            move |e: &dyn std::fmt::Display| NodeError::Provider {
                provider,
                message: e.to_string(),
            }
        };
        let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
        let mut local_callbacks = None;
        if self.local {
            let (local, webhooks) = LocalProvider::new(LocalProviderSettings {
                workdir: local_dir.to_path_buf(),
                delay: self.local_delay,
                python: self.local_python.clone(),
                outbound: outbound.clone(),
                pool: pool.clone(),
            })
            .map_err(|e| failed("local")(&e))?;
            providers.push(local);
            local_callbacks = Some(webhooks);
        }
        if let Some(settings) = &self.replicate {
            let provider = ReplicateProvider::new(settings.clone()).map_err(|e| failed("replicate")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        if let Some(settings) = &self.fal {
            let provider = FalProvider::new(settings.clone()).map_err(|e| failed("fal")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        if let Some(settings) = &self.google {
            let settings = GoogleSettings {
                media_addresses: outbound.clone(),
                ..settings.clone()
            };
            let provider = GoogleProvider::new(settings).map_err(|e| failed("google-cloud")(&e))?;
            providers.push(Arc::new(provider.with_budget(budget.clone())));
        }
        // Text-to-speech answers with the submit and has no request budget to count: its
        // limits are on concurrency, and its 429s make jobs wait.
        if let Some(settings) = &self.elevenlabs {
            let provider = ElevenLabsProvider::from_settings(settings.clone()).map_err(|e| failed("elevenlabs")(&e))?;
            providers.push(Arc::new(provider));
        }
        if let Some(settings) = &self.hume {
            let provider = HumeProvider::from_settings(settings.clone()).map_err(|e| failed("hume")(&e))?;
            providers.push(Arc::new(provider));
        }
        if let Some(settings) = self.code_writer(SceneWriter::OpenAi) {
            let provider = OpenAiProvider::new(settings.clone()).map_err(|e| failed("openai")(&e))?;
            providers.push(Arc::new(provider));
        }
        if let Some(settings) = self.code_writer(SceneWriter::Anthropic) {
            let provider = AnthropicProvider::new(settings.clone()).map_err(|e| failed("anthropic")(&e))?;
            providers.push(Arc::new(provider));
        }
        match self.scene_writer {
            Some(SceneWriter::Local) if !self.local => {
                return Err(failed("local")(
                    &"REELAY_SCENE_WRITER names `local`, which this node does not run",
                ))
            }
            Some(w) if w != SceneWriter::Local && self.code_writer(w).is_none() => {
                let (provider, key) = match w {
                    SceneWriter::OpenAi => ("openai", "OPENAI_API_KEY"),
                    _ => ("anthropic", "ANTHROPIC_API_KEY"),
                };
                return Err(failed(provider)(&format!(
                    "REELAY_SCENE_WRITER names `{provider}`, which runs only with {key} set (and, when \
                     REELAY_PROVIDERS is set, named there)"
                )));
            }
            _ => {}
        }
        Ok(ProviderSet {
            providers,
            local_callbacks,
        })
    }
}
