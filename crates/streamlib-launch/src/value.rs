//! Property types and values: parsed from text, checked against a range, shown back as text.

use std::fmt;

use streamlib_ports::FrameLimits;

/// The type of a handler property, with its valid range.
#[derive(Debug, Clone, PartialEq)]
pub enum PropType {
    /// `true`/`false` (also `yes`/`no`, `1`/`0`).
    Bool,
    /// An integer in `min..=max`.
    Int {
        /// Smallest valid value.
        min: i64,
        /// Largest valid value.
        max: i64,
    },
    /// A number in `min..=max`.
    Float {
        /// Smallest valid value.
        min: f64,
        /// Largest valid value.
        max: f64,
    },
    /// Free text.
    Text,
    /// A file path.
    Path,
    /// `WIDTHxHEIGHT`, each side in `1..=max`.
    Size {
        /// Largest side.
        max: u32,
    },
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// `RRGGBB` or `RRGGBBAA` in hex, with or without a leading `#`.
    Color,
}

/// A parsed property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text, a path or an enum word.
    Text(String),
    /// Width and height.
    Size(u32, u32),
    /// Straight RGBA.
    Color([u8; 4]),
}

impl Value {
    /// The flag, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number (integers widen), if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The size, if this is one.
    pub fn as_size(&self) -> Option<(u32, u32)> {
        match self {
            Value::Size(w, h) => Some((*w, *h)),
            _ => None,
        }
    }

    /// The colour, if this is one.
    pub fn as_color(&self) -> Option<[u8; 4]> {
        match self {
            Value::Color(c) => Some(*c),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(t) => f.write_str(t),
            Value::Size(w, h) => write!(f, "{w}x{h}"),
            Value::Color([r, g, b, a]) => write!(f, "{r:02x}{g:02x}{b:02x}{a:02x}"),
        }
    }
}

/// Why a text is not a valid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// Not of the type: says what was expected.
    Type(String),
    /// Of the type but outside the range: states the range.
    Range(String),
}

impl PropType {
    /// How the type and its range read in help and errors: `a number in 0.01..=100`.
    pub fn describe(&self) -> String {
        match self {
            PropType::Bool => "true or false".to_owned(),
            PropType::Int { min, max } => format!("an integer in {min}..={max}"),
            PropType::Float { min, max } => format!("a number in {min}..={max}"),
            PropType::Text => "text".to_owned(),
            PropType::Path => "a file path".to_owned(),
            PropType::Size { max } => {
                let pixels = FrameLimits::DEFAULT.max_pixels;
                format!("a size WIDTHxHEIGHT, each side in 1..={max}, at most {pixels} pixels")
            }
            PropType::Enum(words) => format!("one of {}", words.join(", ")),
            PropType::Color => "a colour RRGGBB or RRGGBBAA (hex)".to_owned(),
        }
    }

    /// A short type name for tables and JSON: `bool`, `int`, `float`, `text`, `path`, `size`,
    /// `enum`, `color`.
    pub fn name(&self) -> &'static str {
        match self {
            PropType::Bool => "bool",
            PropType::Int { .. } => "int",
            PropType::Float { .. } => "float",
            PropType::Text => "text",
            PropType::Path => "path",
            PropType::Size { .. } => "size",
            PropType::Enum(_) => "enum",
            PropType::Color => "color",
        }
    }

    /// Parses `text` as a value of this type and checks its range.
    pub fn parse(&self, text: &str) -> Result<Value, ValueError> {
        let type_error = || ValueError::Type(self.describe());
        let range_error = || ValueError::Range(self.describe());
        match self {
            PropType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(Value::Bool(true)),
                "false" | "no" | "0" | "off" => Ok(Value::Bool(false)),
                _ => Err(type_error()),
            },
            PropType::Int { min, max } => {
                let v: i64 = text.parse().map_err(|_| type_error())?;
                if (*min..=*max).contains(&v) {
                    Ok(Value::Int(v))
                } else {
                    Err(range_error())
                }
            }
            PropType::Float { min, max } => {
                let v: f64 = text.parse().map_err(|_| type_error())?;
                if !v.is_finite() {
                    return Err(type_error());
                }
                if (*min..=*max).contains(&v) {
                    Ok(Value::Float(v))
                } else {
                    Err(range_error())
                }
            }
            PropType::Text => Ok(Value::Text(text.to_owned())),
            PropType::Path => {
                if text.is_empty() {
                    Err(type_error())
                } else {
                    Ok(Value::Text(text.to_owned()))
                }
            }
            PropType::Size { max } => {
                let (w, h) = text
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                    .ok_or_else(type_error)?;
                // The frame limits too: no frame pool is sized from a property beyond them.
                if (1..=*max).contains(&w)
                    && (1..=*max).contains(&h)
                    && FrameLimits::DEFAULT.check(w, h).is_ok()
                {
                    Ok(Value::Size(w, h))
                } else {
                    Err(range_error())
                }
            }
            PropType::Enum(words) => words
                .iter()
                .find(|w| **w == text)
                .map(|w| Value::Text((*w).to_owned()))
                .ok_or_else(type_error),
            PropType::Color => parse_color(text).map(Value::Color).ok_or_else(type_error),
        }
    }
}

fn parse_color(text: &str) -> Option<[u8; 4]> {
    let hex = text.strip_prefix('#').unwrap_or(text);
    if !(hex.len() == 6 || hex.len() == 8) || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    let alpha = if hex.len() == 8 { byte(6)? } else { 255 };
    Some([byte(0)?, byte(2)?, byte(4)?, alpha])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn parses_and_checks_ranges() {
        let sigma = PropType::Float {
            min: 0.01,
            max: 100.0,
        };
        assert_eq!(sigma.parse("2"), Ok(Value::Float(2.0)));
        assert_eq!(
            sigma.parse("200"),
            Err(ValueError::Range("a number in 0.01..=100".into()))
        );
        assert!(matches!(sigma.parse("two"), Err(ValueError::Type(_))));
        assert!(matches!(sigma.parse("NaN"), Err(ValueError::Type(_))));
        let size = PropType::Size { max: 16384 };
        assert_eq!(size.parse("1920x1080"), Ok(Value::Size(1920, 1080)));
        assert!(matches!(size.parse("0x10"), Err(ValueError::Range(_))));
        assert!(matches!(size.parse("1920"), Err(ValueError::Type(_))));
        // Each side may be at its maximum only while the area stays within the limits.
        let wide = PropType::Size { max: 32_767 };
        assert_eq!(wide.parse("16384x16384"), Ok(Value::Size(16384, 16384)));
        assert!(matches!(
            wide.parse("32767x32767"),
            Err(ValueError::Range(_))
        ));
        assert!(matches!(wide.parse("32767x8"), Err(ValueError::Range(_))));
        assert_eq!(
            PropType::Color.parse("#ff8000"),
            Ok(Value::Color([255, 128, 0, 255]))
        );
        assert!(PropType::Color.parse("ff80").is_err());
        assert!(PropType::Color.parse("é€€€").is_err());
        assert_eq!(
            PropType::Enum(&["a", "b"]).parse("c"),
            Err(ValueError::Type("one of a, b".into()))
        );
        assert_eq!(PropType::Bool.parse("yes"), Ok(Value::Bool(true)));
        assert_eq!(Value::Color([1, 2, 3, 4]).to_string(), "01020304");
    }
}
