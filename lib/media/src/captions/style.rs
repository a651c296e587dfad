//! The caption presets (the SDK's table, `sdk-models.md` §4) and a client's style resolved
//! over one of them, then fitted to a frame: sizes are given on the presets' 1080×1920 frame
//! and scale with the frame, so one style looks alike at any size and shape.

use reelay_core::plan::{ActiveWordEffect, CaptionPreset, CaptionStyle};

/// A style resolved for one frame, in that frame's pixels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Look {
    pub font: String,
    pub size: f64,
    pub bold: bool,
    pub italic: bool,
    pub uppercase: bool,
    /// ASS `&HAABBGGRR` values.
    pub primary: u32,
    pub outline_colour: u32,
    pub back: u32,
    /// 1: outline and shadow; 3: a box (libass fills it with the outline colour).
    pub border_style: u8,
    pub outline: f64,
    pub shadow: f64,
    pub alignment: u8,
    pub margin_v: f64,
    pub margin_l: f64,
    pub margin_r: f64,
    pub words_per_caption: usize,
    pub max_duration: f64,
    pub max_chars: usize,
    pub max_lines: usize,
    pub highlight: Option<Highlight>,
}

/// The word being said, in a caption that shows its neighbours too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Highlight {
    pub active: u32,
    /// Percent; 100 leaves the size alone.
    pub scale: u32,
    pub glow: bool,
}

/// The presets' frame: its short side is what sizes scale by.
const REFERENCE: (f64, f64) = (1080.0, 1920.0);
/// The least room kept clear at each side, as a share of the width: lines wrap inside it.
const SAFE_SIDE: f64 = 0.06;

/// One preset row: the base (Arial 20, white on a black outline, half-black back, outline 2,
/// bottom centre, margins 10, 3 words a caption) with the row's changes.
struct Preset {
    font: &'static str,
    size: f64,
    bold: bool,
    primary: u32,
    back: Option<u32>,
    outline: f64,
    shadow: f64,
    alignment: u8,
    margin_v: f64,
    words: u32,
    /// (active, inactive, scale).
    highlight: Option<(u32, u32, f64)>,
}

fn preset(p: CaptionPreset) -> Preset {
    let base = Preset {
        font: "Arial",
        size: 20.0,
        bold: false,
        primary: 0x00FF_FFFF,
        back: None,
        outline: 2.0,
        shadow: 0.0,
        alignment: 2,
        margin_v: 10.0,
        words: 3,
        highlight: None,
    };
    match p {
        CaptionPreset::Tiktok => Preset {
            size: 80.0,
            bold: true,
            outline: 3.0,
            margin_v: 250.0,
            words: 1,
            highlight: Some((0x0000_FFFF, 0x00AA_AAAA, 1.2)),
            ..base
        },
        CaptionPreset::Youtube => Preset {
            size: 48.0,
            back: Some(0x8000_0000),
            margin_v: 100.0,
            words: 5,
            ..base
        },
        CaptionPreset::Story => Preset {
            font: "Courier New",
            size: 52.0,
            primary: 0x00FF_FF00,
            back: Some(0x4000_0000),
            outline: 0.0,
            alignment: 5,
            highlight: Some((0x00FF_FFFF, 0x0088_8888, 1.15)),
            ..base
        },
        CaptionPreset::Minimal => Preset {
            font: "Helvetica",
            size: 42.0,
            primary: 0x00DD_DDDD,
            margin_v: 80.0,
            words: 4,
            ..base
        },
        CaptionPreset::Cinematic => Preset {
            font: "Times New Roman",
            size: 40.0,
            primary: 0x00E0_E0E0,
            outline: 0.0,
            shadow: 2.0,
            margin_v: 120.0,
            words: 6,
            ..base
        },
    }
}

/// `style` over its preset, for a `width`×`height` frame.
pub(crate) fn resolve(style: &CaptionStyle, width: u32, height: u32) -> Look {
    let p = preset(style.preset);
    let (w, h) = (f64::from(width), f64::from(height));
    // Text and strokes follow the short side; margins follow the side they measure.
    let k = w.min(h) / REFERENCE.0;
    let (kx, ky) = (w / REFERENCE.0, h / REFERENCE.1);
    // Zero margins are ignored, as upstream does.
    let margin = |given: Option<f64>, preset: f64| given.filter(|m| *m > 0.0).unwrap_or(preset);
    let safe = SAFE_SIDE * w;

    let back = style.background_color.map(|c| c.0).or(p.back);
    let boxed = match style.border_style {
        Some(b) => b == 3,
        None => back.is_some(),
    };
    let outline = if boxed {
        style.padding.unwrap_or(10.0)
    } else {
        style.outline_width.unwrap_or(p.outline)
    };
    let outline_colour = style.outline_color.map_or(0, |c| c.0);
    let primary = style.primary_color.map_or(p.primary, |c| c.0);

    // Highlight is on when the preset has it or an active colour is given, unless turned off.
    let highlight_on = style
        .highlight_active_word
        .unwrap_or(p.highlight.is_some() || style.active_word_color.is_some());
    let (mut primary_out, mut highlight) = (primary, None);
    if highlight_on {
        let (active, inactive, scale) = p.highlight.unwrap_or((0x0000_FFFF, primary, 1.0));
        let effect = style.active_word_effect.unwrap_or(ActiveWordEffect::Color);
        let mut scale = style.active_word_scale.unwrap_or(scale);
        if effect == ActiveWordEffect::Scale && scale == 1.0 {
            scale = 1.2;
        }
        primary_out = style.inactive_word_color.map_or(inactive, |c| c.0);
        highlight = Some(Highlight {
            active: style.active_word_color.map_or(active, |c| c.0),
            scale: (scale * 100.0).round().clamp(1.0, 1000.0) as u32,
            glow: effect == ActiveWordEffect::Glow,
        });
    }
    Look {
        font: style.font_family.clone().unwrap_or_else(|| p.font.to_string()),
        size: style.font_size.unwrap_or(p.size) * k,
        bold: style.bold.unwrap_or(p.bold),
        italic: style.italic.unwrap_or(false),
        uppercase: style.uppercase.unwrap_or(false),
        primary: primary_out,
        // A box takes the outline colour in libass: the background is the box.
        outline_colour: if boxed {
            back.unwrap_or(0x8000_0000)
        } else {
            outline_colour
        },
        back: back.unwrap_or(0x8000_0000),
        border_style: if boxed { 3 } else { 1 },
        outline: outline * k,
        shadow: style.shadow.unwrap_or(p.shadow) * k,
        alignment: style.alignment.unwrap_or(p.alignment),
        margin_v: margin(style.margin_v, p.margin_v) * ky,
        margin_l: (margin(style.margin_l, 10.0) * kx).max(safe),
        margin_r: (margin(style.margin_r, 10.0) * kx).max(safe),
        words_per_caption: style.words_per_caption.unwrap_or(p.words) as usize,
        max_duration: style.max_caption_duration.unwrap_or(3.0),
        max_chars: style.max_caption_chars.unwrap_or(50) as usize,
        max_lines: style.max_lines.unwrap_or(2) as usize,
        highlight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::plan::AssColour;

    #[test]
    fn presets_keep_their_table_values_on_their_own_frame() {
        let tiktok = resolve(&CaptionStyle::default(), 1080, 1920);
        assert_eq!((tiktok.size, tiktok.bold, tiktok.margin_v), (80.0, true, 250.0));
        assert_eq!(tiktok.primary, 0x00AA_AAAA, "the inactive words take the base colour");
        let h = tiktok.highlight.unwrap();
        assert_eq!((h.active, h.scale), (0x0000_FFFF, 120));
        let youtube = resolve(
            &CaptionStyle {
                preset: CaptionPreset::Youtube,
                ..Default::default()
            },
            1080,
            1920,
        );
        assert_eq!(
            (youtube.border_style, youtube.outline, youtube.outline_colour),
            (3, 10.0, 0x8000_0000)
        );
        assert_eq!((youtube.words_per_caption, youtube.highlight), (5, None));
    }

    #[test]
    fn sizes_follow_the_frame_and_overrides_win() {
        let style = CaptionStyle {
            font_size: Some(100.0),
            primary_color: AssColour::parse("#00ff00"),
            highlight_active_word: Some(false),
            alignment: Some(8),
            ..Default::default()
        };
        let landscape = resolve(&style, 1280, 720);
        assert!((landscape.size - 100.0 * 720.0 / 1080.0).abs() < 1e-9);
        assert!((landscape.margin_v - 250.0 * 720.0 / 1920.0).abs() < 1e-9);
        assert_eq!(
            (landscape.primary, landscape.alignment, landscape.highlight),
            (0x0000_FF00, 8, None)
        );
        assert!(landscape.margin_l >= 0.06 * 1280.0);
    }
}
