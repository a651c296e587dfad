//! Custom placement values: `"300"`, `"50%"`, or arithmetic over named sizes (`"iw/2"`,
//! `"(W-w)/2"`). Evaluated here, never handed to ffmpeg, so a value cannot reach the filter
//! graph's syntax.

use crate::plan::Dimension;

/// Longest expression accepted.
const MAX_LEN: usize = 200;

impl Dimension {
    /// Reads a wire value: a number (pixels) or a string of one of the three forms.
    pub fn parse(raw: &str) -> Result<Dimension, String> {
        let s = raw.trim();
        if let Ok(px) = s.parse::<f64>() {
            return if px.is_finite() && px >= 0.0 {
                Ok(Dimension::Pixels(px))
            } else {
                Err(format!("`{raw}` is not a size in pixels"))
            };
        }
        if let Some(pct) = s.strip_suffix('%') {
            return match pct.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(Dimension::Percent(v)),
                _ => Err(format!("`{raw}` is not a percentage")),
            };
        }
        if s.is_empty() || s.len() > MAX_LEN {
            return Err(format!("`{raw}` must be 1 to {MAX_LEN} characters"));
        }
        // Syntax only: the names are checked where their values are known.
        Parser::new(s, &|_| Some(1.0)).run()?;
        Ok(Dimension::Expr(s.to_string()))
    }

    /// The value in pixels: `side` is what a percentage is of; `var` gives each name's value
    /// (`None`: the name means nothing here).
    pub fn value(&self, side: f64, var: &dyn Fn(&str) -> Option<f64>) -> Result<f64, String> {
        match self {
            Dimension::Pixels(px) => Ok(*px),
            Dimension::Percent(pct) => Ok(side * pct / 100.0),
            Dimension::Expr(s) => match Parser::new(s, var).run()? {
                v if v.is_finite() => Ok(v),
                _ => Err("divides by zero".into()),
            },
        }
    }
}

/// Recursive descent over `+ - * /`, parentheses, numbers and names.
struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    var: &'a dyn Fn(&str) -> Option<f64>,
}

impl<'a> Parser<'a> {
    fn new(s: &str, var: &'a dyn Fn(&str) -> Option<f64>) -> Self {
        Parser {
            chars: s.chars().collect(),
            at: 0,
            var,
        }
    }

    fn run(mut self) -> Result<f64, String> {
        let v = self.sum()?;
        self.skip_spaces();
        match self.chars.get(self.at) {
            None => Ok(v),
            Some(c) => Err(format!("has an unexpected `{c}`")),
        }
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        let hit = self.chars.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        loop {
            if self.eat('+') {
                v += self.product()?;
            } else if self.eat('-') {
                v -= self.product()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.factor()?;
        loop {
            if self.eat('*') {
                v *= self.factor()?;
            } else if self.eat('/') {
                v /= self.factor()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn factor(&mut self) -> Result<f64, String> {
        if self.eat('-') {
            return Ok(-self.factor()?);
        }
        if self.eat('(') {
            let v = self.sum()?;
            return if self.eat(')') {
                Ok(v)
            } else {
                Err("has an unclosed `(`".into())
            };
        }
        self.skip_spaces();
        let start = self.at;
        let word = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
        while self.chars.get(self.at).is_some_and(word) {
            self.at += 1;
        }
        let token: String = self.chars[start..self.at].iter().collect();
        if token.is_empty() {
            return Err(match self.chars.get(self.at) {
                Some(c) => format!("has an unexpected `{c}`"),
                None => "ends too soon".into(),
            });
        }
        if token.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return token.parse().map_err(|_| format!("has a bad number `{token}`"));
        }
        (self.var)(&token).ok_or_else(|| format!("uses `{token}`, which means nothing here"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<f64> {
        match name {
            "W" => Some(1920.0),
            "w" => Some(480.0),
            "iw" => Some(640.0),
            _ => None,
        }
    }

    #[test]
    fn values_in_every_form() {
        let value = |s: &str| Dimension::parse(s).unwrap().value(1000.0, &vars);
        assert_eq!(value("300"), Ok(300.0));
        assert_eq!(value("50%"), Ok(500.0));
        assert_eq!(value("iw/2"), Ok(320.0));
        assert_eq!(value("(W-w)/2"), Ok(720.0));
        assert_eq!(value("W - w - 20"), Ok(1420.0));
        assert_eq!(value("-(w*2)+W"), Ok(960.0));
        assert_eq!(value("0.5*iw"), Ok(320.0));
        assert!(value("ih/2").unwrap_err().contains("`ih`"));
        assert!(value("W/0").is_err());
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in ["", "(W-w", "W-", "W w", "movie=x", "50%%", "-3", "W;h", "1e999"] {
            assert!(Dimension::parse(bad).is_err(), "{bad}");
        }
    }
}
