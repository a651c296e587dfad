//! Timed words into an ASS script: words grouped into captions, one event per caption, or one
//! per word span when the word being said is highlighted (karaoke).

use std::fmt::Write;

use reelay_core::domain::TimedWord;

use super::style::Look;

/// The ASS script for `words` in `look`, on a `width`×`height` frame (its PlayRes, so
/// positions and sizes are the frame's pixels).
pub(crate) fn script(words: &[TimedWord], look: &Look, width: u32, height: u32) -> String {
    let mut out = String::new();
    let bool_flag = |b: bool| if b { -1 } else { 0 };
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        "[Script Info]\nScriptType: v4.00+\nPlayResX: {width}\nPlayResY: {height}\n\
         WrapStyle: 0\nScaledBorderAndShadow: yes\nYCbCr Matrix: None\n\n\
         [V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
         BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, \
         Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
         Style: Caption,{font},{size:.1},&H{primary:08X},&H{primary:08X},&H{outline_colour:08X},&H{back:08X},\
         {bold},{italic},0,0,100,100,0,0,{border},{outline:.1},{shadow:.1},{align},{ml},{mr},{mv},1\n\n\
         [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        font = look.font.replace(',', " "),
        size = look.size,
        primary = look.primary,
        outline_colour = look.outline_colour,
        back = look.back,
        bold = bool_flag(look.bold),
        italic = bool_flag(look.italic),
        border = look.border_style,
        outline = look.outline,
        shadow = look.shadow,
        align = look.alignment,
        ml = look.margin_l.round(),
        mr = look.margin_r.round(),
        mv = look.margin_v.round(),
    );
    let texts: Vec<String> = words.iter().map(|w| clean(&w.word, look.uppercase)).collect();
    for group in groups(words, &texts, look, width) {
        let shown = &texts[group.clone()];
        let spoken = &words[group];
        let (first, last) = (&spoken[0], &spoken[spoken.len() - 1]);
        let end = last.end.max(first.start + MIN_SHOWN);
        match &look.highlight {
            None => event(&mut out, first.start, end, &join(shown, None)),
            Some(h) => {
                let active = active_override(h, look);
                for (i, word) in spoken.iter().enumerate() {
                    let from = if i == 0 { first.start } else { word.start };
                    let to = spoken.get(i + 1).map_or(end, |next| next.start);
                    if to > from {
                        event(&mut out, from, to, &join(shown, Some((i, &active))));
                    }
                }
            }
        }
    }
    out
}

/// A caption shorter than this would flash by unread.
const MIN_SHOWN: f64 = 0.1;

fn event(out: &mut String, start: f64, end: f64, text: &str) {
    let _ = writeln!(out, "Dialogue: 0,{},{},Caption,,0,0,0,,{text}", time(start), time(end));
}

/// `H:MM:SS.cc`.
fn time(seconds: f64) -> String {
    let cs = (seconds.max(0.0) * 100.0).round() as u64;
    format!(
        "{}:{:02}:{:02}.{:02}",
        cs / 360_000,
        cs / 6000 % 60,
        cs / 100 % 60,
        cs % 100
    )
}

/// The override tags that set the active word apart; `{\r}` after it goes back to the style.
fn active_override(h: &super::style::Highlight, look: &Look) -> String {
    let mut tags = format!("\\1c&H{:06X}&\\1a&H{:02X}&", h.active & 0xFF_FFFF, h.active >> 24);
    if h.scale != 100 {
        let _ = write!(tags, "\\fscx{0}\\fscy{0}", h.scale);
    }
    if h.glow {
        let _ = write!(
            tags,
            "\\3c&H{:06X}&\\bord{:.1}\\blur{:.1}",
            h.active & 0xFF_FFFF,
            look.outline + look.size * 0.08,
            look.size * 0.1
        );
    }
    tags
}

/// A word as ASS shows it: braces and backslashes would start override tags.
fn clean(word: &str, uppercase: bool) -> String {
    let text: String = word
        .trim()
        .chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if uppercase {
        text.to_uppercase()
    } else {
        text
    }
}

/// The caption's words, spaced as their script spaces them, the active one tagged.
fn join(words: &[String], active: Option<(usize, &String)>) -> String {
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 && !(ends_unspaced(&words[i - 1]) && starts_unspaced(word)) {
            out.push(' ');
        }
        match active {
            Some((a, tags)) if a == i => {
                let _ = write!(out, "{{{tags}}}{word}{{\\r}}");
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// Han and kana: written without spaces between words, and about a square wide.
fn is_unspaced(c: char) -> bool {
    matches!(u32::from(c), 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

fn ends_unspaced(w: &str) -> bool {
    w.chars().last().is_some_and(is_unspaced)
}

fn starts_unspaced(w: &str) -> bool {
    w.chars().next().is_some_and(is_unspaced)
}

/// Roughly how wide `text` is at font size 1: enough to keep a caption within its lines.
fn width_estimate(text: &str) -> f64 {
    text.chars()
        .map(|c| {
            if is_unspaced(c) || u32::from(c) >= 0xAC00 && u32::from(c) <= 0xD7AF {
                1.0
            } else {
                0.6
            }
        })
        .sum()
}

/// Ranges of words shown together: a caption closes at `words_per_caption` words, or before a
/// word that would make it last longer than `max_duration`, exceed `max_chars`, or need more
/// than `max_lines` lines of the safe width.
fn groups(words: &[TimedWord], texts: &[String], look: &Look, width: u32) -> Vec<std::ops::Range<usize>> {
    let line = (f64::from(width) - look.margin_l - look.margin_r).max(look.size);
    let room = line * look.max_lines as f64;
    let scale = look.highlight.map_or(1.0, |h| f64::from(h.scale) / 100.0);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=words.len() {
        if i == words.len() {
            out.push(start..i);
            break;
        }
        let candidate = join(&texts[start..=i], None);
        let full = i - start >= look.words_per_caption.max(1)
            || words[i].end - words[start].start > look.max_duration
            || candidate.chars().count() > look.max_chars
            || width_estimate(&candidate) * look.size * scale > room;
        if full {
            out.push(start..i);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captions::style::resolve;
    use reelay_core::plan::{CaptionPreset, CaptionStyle};

    fn words(spec: &[(&str, f64, f64)]) -> Vec<TimedWord> {
        spec.iter()
            .map(|(w, s, e)| TimedWord {
                word: w.to_string(),
                start: *s,
                end: *e,
            })
            .collect()
    }

    #[test]
    fn groups_close_at_the_count_the_duration_and_the_width() {
        let look = resolve(
            &CaptionStyle {
                preset: CaptionPreset::Youtube,
                ..Default::default()
            },
            1080,
            1920,
        );
        let ws = words(&[
            ("a", 0.0, 0.5),
            ("b", 0.5, 1.0),
            ("c", 1.0, 1.5),
            ("d", 1.5, 2.0),
            ("e", 2.0, 2.5),
            ("f", 2.5, 3.0),
            ("g", 9.0, 9.5),
        ]);
        let texts: Vec<String> = ws.iter().map(|w| w.word.clone()).collect();
        assert_eq!(groups(&ws, &texts, &look, 1080), vec![0..5, 5..6, 6..7]);
        let long = words(&[("extraordinarily", 0.0, 0.5); 6]);
        let texts: Vec<String> = long.iter().map(|w| w.word.clone()).collect();
        // 48 px on 1080 wide: about three of these fit a line, two lines a caption.
        assert!(groups(&long, &texts, &look, 1080).len() >= 2);
    }

    #[test]
    fn karaoke_writes_one_event_per_word_with_the_active_word_tagged() {
        let look = resolve(
            &CaptionStyle {
                preset: CaptionPreset::Story,
                ..Default::default()
            },
            1080,
            1920,
        );
        let ass = script(
            &words(&[("hello", 0.0, 0.4), ("{big}", 0.5, 0.9), ("世界", 1.0, 1.2)]),
            &look,
            1080,
            1920,
        );
        let events: Vec<&str> = ass.lines().filter(|l| l.starts_with("Dialogue:")).collect();
        assert_eq!(events.len(), 3, "{ass}");
        assert!(
            events[0].starts_with("Dialogue: 0,0:00:00.00,0:00:00.50,"),
            "{}",
            events[0]
        );
        assert!(
            events[1].contains("hello {\\1c&HFFFFFF&\\1a&H00&\\fscx115\\fscy115}(big){\\r} 世界"),
            "{}",
            events[1]
        );
        assert!(ass.contains("PlayResX: 1080\nPlayResY: 1920"));
    }

    #[test]
    fn han_is_joined_without_spaces() {
        assert_eq!(join(&["你".into(), "好".into(), "world".into()], None), "你好 world");
        assert_eq!(time(3723.456), "1:02:03.46");
    }
}
