//! `addSubtitles` style: a preset (the SDK's table, `sdk-models.md` §4) and the client's
//! overrides, each checked at submission. The Media port turns it into an ASS style
//! (`lib/media/src/captions/`); sizes here are pixels of the presets' 1080×1920 frame.

use serde::{Deserialize, Serialize};

use super::colour::hex_rgb;

/// The SDK's named looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CaptionPreset {
    #[default]
    Tiktok,
    Youtube,
    Story,
    Minimal,
    Cinematic,
}

impl CaptionPreset {
    pub const NAMES: &'static str = "tiktok, youtube, story, minimal, cinematic, default, bold";

    /// Any ASCII case. `default` and `bold` are the SDK's string styles, which upstream
    /// renders as TikTok.
    pub fn parse(raw: &str) -> Option<CaptionPreset> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "tiktok" | "default" | "bold" => CaptionPreset::Tiktok,
            "youtube" => CaptionPreset::Youtube,
            "story" => CaptionPreset::Story,
            "minimal" => CaptionPreset::Minimal,
            "cinematic" => CaptionPreset::Cinematic,
            _ => return None,
        })
    }
}

/// A colour as ASS writes it, `0xAABBGGRR` (alpha 0 is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssColour(pub u32);

impl AssColour {
    /// `#RRGGBB`, `#RGB`, or ASS's own `&HAABBGGRR` / `&HBBGGRR` (trailing `&` optional).
    pub fn parse(raw: &str) -> Option<AssColour> {
        if let Some(css) = raw.strip_prefix('#') {
            let rgb = hex_rgb(css)?;
            let (r, g, b) = (rgb >> 16, (rgb >> 8) & 0xff, rgb & 0xff);
            return Some(AssColour((b << 16) | (g << 8) | r));
        }
        let ass = raw.strip_prefix("&H").or_else(|| raw.strip_prefix("&h"))?;
        let ass = ass.strip_suffix('&').unwrap_or(ass);
        let digits = (ass.len() == 6 || ass.len() == 8) && ass.chars().all(|c| c.is_ascii_hexdigit());
        digits
            .then(|| u32::from_str_radix(ass, 16).ok())
            .flatten()
            .map(AssColour)
    }
}

/// A numpad digit (1 bottom-left … 9 top-right), from the digit or a word.
pub fn parse_alignment(raw: &str) -> Option<u8> {
    let digit = raw.trim().parse::<u8>().ok().filter(|d| (1..=9).contains(d));
    digit.or_else(|| {
        Some(
            match raw.trim().to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
                "bottom-left" => 1,
                "bottom" | "bottom-center" => 2,
                "bottom-right" => 3,
                "left" | "middle-left" | "center-left" => 4,
                "center" | "middle" | "middle-center" => 5,
                "right" | "middle-right" | "center-right" => 6,
                "top-left" => 7,
                "top" | "top-center" => 8,
                "top-right" => 9,
                _ => return None,
            },
        )
    })
}

/// How the word being said stands out (besides its colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActiveWordEffect {
    /// Colour only, scaled by `activeWordScale` if that is not 1.
    Color,
    /// Enlarged (1.2× unless `activeWordScale` says otherwise).
    Scale,
    /// A soft halo in the active colour.
    Glow,
}

impl ActiveWordEffect {
    pub fn parse(raw: &str) -> Option<ActiveWordEffect> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "color" | "colour" | "highlight" | "karaoke" | "none" => ActiveWordEffect::Color,
            "scale" | "pop" | "bounce" => ActiveWordEffect::Scale,
            "glow" => ActiveWordEffect::Glow,
            _ => return None,
        })
    }
}

/// A preset and what the client changed of it; `None`: the preset's value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptionStyle {
    pub preset: CaptionPreset,
    pub font_family: Option<String>,
    pub font_size: Option<f64>,
    pub bold: Option<bool>,
    pub italic: Option<bool>,
    pub uppercase: Option<bool>,
    pub primary_color: Option<AssColour>,
    pub outline_color: Option<AssColour>,
    /// A box behind the text unless `border_style` says outline (1).
    pub background_color: Option<AssColour>,
    pub border_style: Option<u8>,
    pub outline_width: Option<f64>,
    pub shadow: Option<f64>,
    /// Room between the text and its box's edge.
    pub padding: Option<f64>,
    pub alignment: Option<u8>,
    pub margin_v: Option<f64>,
    pub margin_l: Option<f64>,
    pub margin_r: Option<f64>,
    pub words_per_caption: Option<u32>,
    pub max_caption_duration: Option<f64>,
    pub max_caption_chars: Option<u32>,
    pub max_lines: Option<u32>,
    pub highlight_active_word: Option<bool>,
    pub active_word_color: Option<AssColour>,
    pub inactive_word_color: Option<AssColour>,
    pub active_word_scale: Option<f64>,
    pub active_word_effect: Option<ActiveWordEffect>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_as_ass_writes_them() {
        assert_eq!(AssColour::parse("#FF8000"), Some(AssColour(0x0000_80FF)));
        assert_eq!(AssColour::parse("#f80"), Some(AssColour(0x0000_88FF)));
        assert_eq!(AssColour::parse("&H80000000"), Some(AssColour(0x8000_0000)));
        assert_eq!(AssColour::parse("&H00FFFF&"), Some(AssColour(0x0000_FFFF)));
        for bad in ["red", "#12345", "#GGGGGG", "&H123", "", "#"] {
            assert_eq!(AssColour::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn alignments_are_digits_or_words() {
        assert_eq!(parse_alignment("2"), Some(2));
        assert_eq!(parse_alignment("bottom"), Some(2));
        assert_eq!(parse_alignment("Center"), Some(5));
        assert_eq!(parse_alignment("top right"), Some(9));
        assert_eq!(parse_alignment("0"), None);
        assert_eq!(parse_alignment("sideways"), None);
    }
}
