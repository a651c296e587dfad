//! Where a layer lands: a placement resolved to a rectangle of the output frame, in pixels.

use reelay_core::plan::{CustomPlacement, Placement, Position};

/// A placed layer: top-left corner (may lie outside the frame) and an even size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: u32,
    pub h: u32,
}

/// Margin of the `pip` window from the frame's edges.
const PIP_MARGIN: i64 = 20;
/// Largest placed side: beyond it scaling only burns memory.
const MAX_SIDE: f64 = 16384.0;

/// The rectangle `placement` gives a `source`-sized layer in a `frame`. The base layer
/// (`base`) at `full` is fitted with its aspect kept, not stretched.
pub(crate) fn place(placement: &Placement, frame: (u32, u32), source: (u32, u32), base: bool) -> Result<Rect, String> {
    let (fw, fh) = (f64::from(frame.0), f64::from(frame.1));
    let (iw, ih) = (f64::from(source.0), f64::from(source.1));
    match placement {
        Placement::Full if base => {
            let scale = (fw / iw).min(fh / ih);
            sized(fw, fh, iw * scale, ih * scale, Position::Center)
        }
        Placement::Full => sized(fw, fh, fw, fh, Position::TopLeft),
        Placement::Pip => {
            let r = sized(fw, fh, fw / 4.0, fh / 4.0, Position::BottomRight)?;
            Ok(Rect {
                x: r.x - PIP_MARGIN,
                y: r.y - PIP_MARGIN,
                ..r
            })
        }
        Placement::Grid {
            width,
            height,
            position,
        } => {
            let (w, h) = match (width, height) {
                (Some(a), Some(b)) => (fw * a, fh * b),
                (Some(a), None) => (fw * a, fw * a * ih / iw),
                (None, Some(b)) => (fh * b * iw / ih, fh * b),
                (None, None) => (iw, ih),
            };
            sized(fw, fh, w, h, *position)
        }
        Placement::Custom(custom) => custom_rect(custom, fw, fh, iw, ih),
    }
}

/// A `w`×`h` layer (made even) at `position` in a `fw`×`fh` frame.
fn sized(fw: f64, fh: f64, w: f64, h: f64, position: Position) -> Result<Rect, String> {
    let (w, h) = (even(w)?, even(h)?);
    let (free_x, free_y) = (fw - f64::from(w), fh - f64::from(h));
    let (ax, ay) = match position {
        Position::TopLeft => (0.0, 0.0),
        Position::Top => (0.5, 0.0),
        Position::TopRight => (1.0, 0.0),
        Position::Left => (0.0, 0.5),
        Position::Center => (0.5, 0.5),
        Position::Right => (1.0, 0.5),
        Position::BottomLeft => (0.0, 1.0),
        Position::Bottom => (0.5, 1.0),
        Position::BottomRight => (1.0, 1.0),
    };
    Ok(Rect {
        x: (free_x * ax).floor() as i64,
        y: (free_y * ay).floor() as i64,
        w,
        h,
    })
}

/// The documented custom form: values refer to the frame inset by `padding` on every side, so
/// `width: "100%"` with a padding is an inset; a position not given is centred.
fn custom_rect(c: &CustomPlacement, fw: f64, fh: f64, iw: f64, ih: f64) -> Result<Rect, String> {
    let pad = c.padding;
    let (fw, fh) = (fw - 2.0 * pad, fh - 2.0 * pad);
    let size_var = |name: &str| match name {
        "W" | "main_w" => Some(fw),
        "H" | "main_h" => Some(fh),
        "iw" => Some(iw),
        "ih" => Some(ih),
        _ => None,
    };
    let width = c.width.as_ref().map(|d| d.value(fw, &size_var)).transpose()?;
    let height = c.height.as_ref().map(|d| d.value(fh, &size_var)).transpose()?;
    let ratio = c.aspect_ratio.map_or(iw / ih, |r| f64::from(r.w) / f64::from(r.h));
    let (w, h) = match (width, height) {
        (Some(w), Some(h)) if c.aspect_ratio.is_some() => {
            // Both sides and a ratio: the largest rectangle of that ratio inside the box.
            let w_fit = w.min(h * ratio);
            (w_fit, w_fit / ratio)
        }
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (w, w / ratio),
        (None, Some(h)) => (h * ratio, h),
        (None, None) => (iw, iw / ratio),
    };
    let (w, h) = (even(w)?, even(h)?);
    let (pw, ph) = (f64::from(w), f64::from(h));
    let position_var = |name: &str| match name {
        "w" | "overlay_w" => Some(pw),
        "h" | "overlay_h" => Some(ph),
        other => size_var(other),
    };
    let x = match &c.x {
        Some(d) => d.value(fw, &position_var)?,
        None => (fw - pw) / 2.0,
    };
    let y = match &c.y {
        Some(d) => d.value(fh, &position_var)?,
        None => (fh - ph) / 2.0,
    };
    Ok(Rect {
        x: (x + pad).floor() as i64,
        y: (y + pad).floor() as i64,
        w,
        h,
    })
}

/// A side rounded to the nearest even pixel count (yuv420p halves chroma), at least 2.
fn even(v: f64) -> Result<u32, String> {
    if !v.is_finite() || v <= 0.0 || v > MAX_SIDE {
        return Err(format!("a placed size of {v:.0} px is outside 1 to {MAX_SIDE} px"));
    }
    Ok(((v / 2.0).round() as u32 * 2).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(placement: &str, frame: (u32, u32), source: (u32, u32)) -> (i64, i64, u32, u32) {
        let r = place(&Placement::parse(placement).unwrap(), frame, source, false).unwrap();
        (r.x, r.y, r.w, r.h)
    }

    #[test]
    fn presets_in_landscape_and_portrait_frames() {
        let src = (640, 360);
        for ((fw, fh), full, center, pip) in [
            (
                (1920, 1080),
                (0, 0, 1920, 1080),
                (640, 360, 640, 360),
                (1420, 790, 480, 270),
            ),
            (
                (1080, 1920),
                (0, 0, 1080, 1920),
                (220, 780, 640, 360),
                (790, 1420, 270, 480),
            ),
            ((720, 720), (0, 0, 720, 720), (40, 180, 640, 360), (520, 520, 180, 180)),
        ] {
            assert_eq!(rect("full", (fw, fh), src), full);
            assert_eq!(rect("center", (fw, fh), src), center);
            assert_eq!(rect("pip", (fw, fh), src), pip);
            assert_eq!(rect("Picture-In-Picture", (fw, fh), src), pip);
        }
    }

    #[test]
    fn every_position_with_a_quarter_width_keeping_the_aspect() {
        // w-1/4 of 1920 = 480 wide; a 640x360 source keeps 16:9: 270 high.
        let frame = (1920, 1080);
        for (pos, x, y) in [
            ("top-left", 0, 0),
            ("top", 720, 0),
            ("top-center", 720, 0),
            ("top-right", 1440, 0),
            ("left", 0, 405),
            ("center-left", 0, 405),
            ("center", 720, 405),
            ("right", 1440, 405),
            ("center-right", 1440, 405),
            ("bottom-left", 0, 810),
            ("bottom", 720, 810),
            ("bottom-center", 720, 810),
            ("bottom-right", 1440, 810),
        ] {
            assert_eq!(
                rect(&format!("w-1/4 {pos}"), frame, (640, 360)),
                (x, y, 480, 270),
                "{pos}"
            );
        }
    }

    #[test]
    fn fraction_forms_and_quarters() {
        let frame = (1080, 1920);
        // Height only: the width follows the source's aspect (9:16 here).
        assert_eq!(rect("h-1/2 top-right", frame, (1080, 1920)), (540, 0, 540, 960));
        assert_eq!(rect("w-0.5 h-0.25", frame, (640, 360)), (270, 720, 540, 480));
        assert_eq!(rect("W-1/3 BOTTOM-LEFT", frame, (300, 300)), (0, 1560, 360, 360));
        // The last position wins.
        assert_eq!(
            rect("top-left w-1/2 bottom-right", frame, (200, 200)),
            (540, 1380, 540, 540)
        );
        assert_eq!(rect("sequence", frame, (200, 200)), rect("center", frame, (200, 200)));
        assert_eq!(rect("top-left-quarter", frame, (9, 9)), (0, 0, 540, 960));
        assert_eq!(rect("bottom-right-quarter", (1920, 1080), (9, 9)), (960, 540, 960, 540));
        for bad in ["w-full", "w-2", "h-0", "w-1/0", "middle-ish", "", "left-quarter"] {
            assert!(Placement::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_base_at_full_is_fitted_not_stretched() {
        let r = place(&Placement::Full, (1080, 1920), (1920, 1080), true).unwrap();
        assert_eq!((r.x, r.y, r.w, r.h), (0, 656, 1080, 608));
    }

    #[test]
    fn custom_values_in_pixels_percent_and_expressions() {
        let custom = |v: serde_json::Value| {
            let placement = Placement::from_value(&v).unwrap();
            let r = place(&placement, (1920, 1080), (640, 360), false).unwrap();
            (r.x, r.y, r.w, r.h)
        };
        use serde_json::json;
        assert_eq!(
            custom(json!({"width": "300", "height": 200, "position": {"x": "10", "y": "(H-h)/2"}})),
            (10, 440, 300, 200)
        );
        assert_eq!(
            custom(json!({"width": "50%", "position": {"x": "(W-w)/2", "y": "0"}})),
            (480, 0, 960, 540)
        );
        assert_eq!(custom(json!({"width": "iw/2"})), (800, 450, 320, 180));
        // 100% with a padding: an inset.
        assert_eq!(
            custom(json!({"width": "100%", "height": "100%", "padding": 40})),
            (40, 40, 1840, 1000)
        );
        assert_eq!(
            custom(json!({"height": "50%", "aspectRatio": "1:1", "position": {"x": 0, "y": 0}})),
            (0, 0, 540, 540)
        );
        assert_eq!(
            custom(json!({"width": 800, "height": 800, "aspectRatio": "16:9"})),
            (560, 315, 800, 450)
        );
    }
}
