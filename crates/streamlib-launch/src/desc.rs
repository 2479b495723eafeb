//! The pipeline as data: elements and links, serialisable as JSON and printable as text.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::LaunchError;

/// A pipeline graph before validation: what the text or JSON said, nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineDesc {
    /// The elements, in the order they were written (auto names follow this order).
    pub elements: Vec<ElementDesc>,
    /// The links between them.
    #[serde(default)]
    pub links: Vec<LinkDesc>,
}

/// One handler instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementDesc {
    /// Unique name (the stream id): `name=` or `<handler><n>`, as gst-launch does.
    pub name: String,
    /// The registered handler name (`testpattern`, `blur`, …).
    pub handler: String,
    /// Properties as written; validated against the registry when built.
    #[serde(default, deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
    /// `@dispatcher`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatcher: Option<String>,
}

/// `element` or `element.port`: one end of a link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRef {
    /// Element name.
    pub element: String,
    /// Port name; the first suitable port when `None`.
    pub port: Option<String>,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(port) => write!(f, "{}.{port}", self.element),
            None => write!(f, "{}", self.element),
        }
    }
}

impl PortRef {
    /// Parses `element` or `element.port`.
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((element, "")) => PortRef {
                element: element.to_owned(),
                port: None,
            },
            Some((element, port)) => PortRef {
                element: element.to_owned(),
                port: Some(port.to_owned()),
            },
            None => PortRef {
                element: text.to_owned(),
                port: None,
            },
        }
    }
}

impl Serialize for PortRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(PortRef::parse(&text))
    }
}

/// A connection from an output to an input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkDesc {
    /// The output end.
    pub from: PortRef,
    /// The input end.
    pub to: PortRef,
}

/// Properties may be written in JSON as strings, numbers or booleans; all are kept as text.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "property `{k}`: expected a string, number or boolean, found {other}"
            ))),
        })
        .collect()
}

impl PipelineDesc {
    /// Parses the JSON form.
    pub fn from_json(json: &str) -> Result<Self, LaunchError> {
        serde_json::from_str(json).map_err(|e| LaunchError::Json(e.to_string()))
    }

    /// The JSON form (pretty-printed).
    pub fn to_json(&self) -> String {
        // A struct of strings and maps of strings always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The element named `name`.
    pub fn element(&self, name: &str) -> Option<&ElementDesc> {
        self.elements.iter().find(|e| e.name == name)
    }

    /// The same graph with its links in a canonical order, for comparing two descriptions.
    pub fn normalized(&self) -> Self {
        let mut copy = self.clone();
        copy.links.sort();
        copy
    }

    /// The text form: chains where links use default ports, `name.port ! name.port` for the
    /// rest. Parsing it gives back this description (up to link order).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut printed_links = vec![false; self.links.len()];
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for element in &self.elements {
            let n = counts.entry(&element.handler).or_insert(0);
            let auto = format!("{}{}", element.handler, n);
            *n += 1;
            let chained = previous.and_then(|prev| {
                self.links.iter().enumerate().position(|(i, l)| {
                    !printed_links[i]
                        && l.from.element == prev
                        && l.from.port.is_none()
                        && l.to.element == element.name
                        && l.to.port.is_none()
                })
            });
            match chained {
                Some(i) => {
                    printed_links[i] = true;
                    out.push_str(" ! ");
                }
                None if !out.is_empty() => out.push_str("  "),
                None => {}
            }
            out.push_str(&element.handler);
            if element.name != auto {
                out.push_str(" name=");
                out.push_str(&quote(&element.name));
            }
            for (key, value) in &element.properties {
                out.push(' ');
                out.push_str(key);
                out.push('=');
                out.push_str(&quote(value));
            }
            if let Some(dispatcher) = &element.dispatcher {
                out.push_str(" @");
                out.push_str(dispatcher);
            }
            previous = Some(&element.name);
        }
        for (link, _) in self.links.iter().zip(&printed_links).filter(|(_, p)| !**p) {
            let end = |r: &PortRef| match &r.port {
                Some(_) => r.to_string(),
                None => format!("{}.", r.element),
            };
            out.push_str("  ");
            out.push_str(&end(&link.from));
            out.push_str(" ! ");
            out.push_str(&end(&link.to));
        }
        out
    }
}

/// Quotes a value that would not survive the tokenizer bare.
fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\\' | '!' | '@' | '\''));
    if bare {
        value.to_owned()
    } else {
        let mut quoted = String::with_capacity(value.len() + 2);
        quoted.push('"');
        for c in value.chars() {
            if matches!(c, '"' | '\\') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    }
}

impl fmt::Display for PipelineDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
