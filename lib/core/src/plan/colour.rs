//! Colours as clients write them in params.

/// `RRGGBB` or `RGB` hex digits (no prefix) as `0xRRGGBB`.
pub fn hex_rgb(hex: &str) -> Option<u32> {
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let full: String = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        6 => hex.to_string(),
        _ => return None,
    };
    u32::from_str_radix(&full, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_or_three_hex_digits() {
        assert_eq!(hex_rgb("FF8000"), Some(0xFF8000));
        assert_eq!(hex_rgb("f80"), Some(0xFF8800));
        for bad in ["", "FF80", "GG0000", "+F8000", "FF80000"] {
            assert_eq!(hex_rgb(bad), None, "{bad}");
        }
    }
}
