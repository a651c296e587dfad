//! Frame shapes: aspect ratios and resolutions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A frame ratio such as `9:16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AspectRatio {
    pub w: u32,
    pub h: u32,
}

impl AspectRatio {
    pub fn parse(raw: &str) -> Option<AspectRatio> {
        let (w, h) = raw.trim().split_once(':')?;
        let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
        ((1..=10_000).contains(&w) && (1..=10_000).contains(&h)).then_some(AspectRatio { w, h })
    }

    pub fn reduced(self) -> AspectRatio {
        let g = gcd(self.w, self.h);
        AspectRatio {
            w: self.w / g,
            h: self.h / g,
        }
    }

    /// The frame with this ratio whose short side is `short_side`, both sides even (x264 needs it).
    pub fn frame(self, short_side: u32) -> (u32, u32) {
        let even = |v: f64| ((v / 2.0).round() as u32).max(1) * 2;
        let s = f64::from(short_side);
        let (w, h) = (f64::from(self.w), f64::from(self.h));
        if w <= h {
            (even(s), even(s * h / w))
        } else {
            (even(s * w / h), even(s))
        }
    }

    /// The ratio of a frame size, e.g. 1080x1920 → 9:16. Frames rounded to even pixels are
    /// a hair off their ratio (426x240 is 71:40): within 1 % of a common ratio, that one.
    pub fn of_frame(width: u32, height: u32) -> Option<AspectRatio> {
        if width == 0 || height == 0 {
            return None;
        }
        const COMMON: [(u32, u32); 11] = [
            (16, 9),
            (9, 16),
            (1, 1),
            (4, 5),
            (5, 4),
            (4, 3),
            (3, 4),
            (3, 2),
            (2, 3),
            (21, 9),
            (9, 21),
        ];
        let actual = f64::from(width) / f64::from(height);
        let near = COMMON
            .iter()
            .find(|(w, h)| (actual / (f64::from(*w) / f64::from(*h)) - 1.0).abs() < 0.01);
        Some(match near {
            Some(&(w, h)) => AspectRatio { w, h },
            None => AspectRatio { w: width, h: height }.reduced(),
        })
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.w, self.h)
    }
}

impl TryFrom<String> for AspectRatio {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AspectRatio::parse(&value).ok_or_else(|| format!("not an aspect ratio: {value}"))
    }
}

impl From<AspectRatio> for String {
    fn from(value: AspectRatio) -> String {
        value.to_string()
    }
}

/// `"720p"` → 720; `"1080p"` → 1080; `"4k"` → 2160.
pub fn parse_resolution(raw: &str) -> Option<u32> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower == "4k" {
        return Some(2160);
    }
    let n: u32 = lower.strip_suffix('p')?.parse().ok()?;
    (64..=4320).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspect_ratio_parses_and_frames() {
        assert_eq!(AspectRatio::parse("9:16"), Some(AspectRatio { w: 9, h: 16 }));
        for bad in ["0:1", "a:b", "16/9", "", "9:", "1:10001"] {
            assert_eq!(AspectRatio::parse(bad), None, "{bad}");
        }
        assert_eq!(AspectRatio { w: 9, h: 16 }.frame(1080), (1080, 1920));
        assert_eq!(AspectRatio { w: 16, h: 9 }.frame(720), (1280, 720));
        assert_eq!(AspectRatio { w: 4, h: 5 }.frame(1080), (1080, 1350));
        assert_eq!(AspectRatio { w: 1, h: 1 }.frame(1080), (1080, 1080));
        assert_eq!(AspectRatio::of_frame(1080, 1920), Some(AspectRatio { w: 9, h: 16 }));
        assert_eq!(AspectRatio::of_frame(426, 240), Some(AspectRatio { w: 16, h: 9 }));
        assert_eq!(AspectRatio::of_frame(1000, 700), Some(AspectRatio { w: 10, h: 7 }));
        assert_eq!(AspectRatio::of_frame(0, 7), None);
    }

    #[test]
    fn resolutions() {
        assert_eq!(parse_resolution("720p"), Some(720));
        assert_eq!(parse_resolution("4K"), Some(2160));
        assert_eq!(parse_resolution("huge"), None);
        assert_eq!(parse_resolution("1p"), None);
    }
}
