//! The text syntax, in the spirit of `gst-launch-1.0`:
//!
//! ```text
//! testpattern pattern=smpte size=1920x1080 ! blur sigma=2 @threadpool ! display
//! compositor name=mix ! display  testpattern ! mix.layer0  testpattern pattern=gradient ! mix.layer1
//! ```
//!
//! - An element is a handler name followed by `key=value` properties (`name=` names it) and
//!   optionally `@dispatcher`. Values with spaces are quoted: `text="hello world"`.
//! - `!` links the previous element (or reference) to the next.
//! - `name.port` (or `name.` for the first suitable port) refers to an element declared
//!   anywhere in the description, so graphs that are not a chain can be written.
//! - An element that follows another without `!` starts a new chain.

use std::collections::BTreeMap;

use crate::desc::{ElementDesc, LinkDesc, PipelineDesc, PortRef};
use crate::error::{ParseError, nearest};

#[derive(Debug)]
enum Token {
    Bang,
    Word {
        text: String,
        /// Whether any part was quoted (then it cannot be a handler or reference).
        quoted: bool,
    },
}

/// Splits `text` into `!` and words, honouring double quotes with `\"` and `\\` escapes.
fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let err = |column: usize, message: String| ParseError {
        message,
        column,
        text: text.to_owned(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '!' {
            tokens.push((i + 1, Token::Bang));
            i += 1;
            continue;
        }
        let start = i;
        let mut word = String::new();
        let mut quoted = false;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '!' {
            if chars[i] == '"' {
                quoted = true;
                let open = i;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(open + 1, "unterminated quote".to_owned())),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&other) => {
                            word.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
            } else {
                word.push(chars[i]);
                i += 1;
            }
        }
        tokens.push((start + 1, Token::Word { text: word, quoted }));
    }
    Ok(tokens)
}

/// Whether `name` is a valid handler, element or port name.
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One end of a link while parsing: an element by index, or a reference by name.
#[derive(Debug, Clone)]
enum End {
    Element(usize),
    Reference(PortRef, usize),
}

struct Parsed {
    name: Option<(String, usize)>,
    column: usize,
    element: ElementDesc,
}

/// Parses the text syntax into a [`PipelineDesc`]. Names are assigned (`<handler><n>` for
/// unnamed elements) and references resolved; handlers and properties are not checked
/// against a registry here (see [`crate::build`]).
pub fn parse(text: &str) -> Result<PipelineDesc, ParseError> {
    let err = |column: usize, message: String| ParseError {
        message,
        column,
        text: text.to_owned(),
    };
    let mut elements: Vec<Parsed> = Vec::new();
    let mut links: Vec<(End, End, usize)> = Vec::new();
    // The last end of the current chain, and whether it is an element that can still take
    // properties.
    let mut previous: Option<End> = None;
    let mut open_element: Option<usize> = None;
    let mut bang: Option<usize> = None;
    // The column of a reference that starts a chain and is not linked yet.
    let mut dangling: Option<usize> = None;

    for (column, token) in tokenize(text)? {
        match token {
            Token::Bang => {
                if previous.is_none() {
                    return Err(err(column, "`!` needs an element before it".to_owned()));
                }
                if bang.is_some() {
                    return Err(err(
                        column,
                        "expected an element after `!`, found another `!`".to_owned(),
                    ));
                }
                bang = Some(column);
                open_element = None;
            }
            Token::Word { text: word, quoted } => {
                if let Some((key, value)) = word.split_once('=').filter(|_| !word.starts_with('"'))
                {
                    let Some(index) = open_element.filter(|_| bang.is_none()) else {
                        return Err(err(
                            column,
                            format!("property `{word}` does not follow an element"),
                        ));
                    };
                    if !is_identifier(key.split('.').next().unwrap_or(key))
                        || key.split('.').any(|part| !is_identifier(part))
                    {
                        return Err(err(column, format!("`{key}` is not a property name")));
                    }
                    let parsed = &mut elements[index];
                    if key == "name" {
                        if !is_identifier(value) {
                            return Err(err(
                                column,
                                format!(
                                    "`{value}` is not a valid element name (letters, digits, `_`, `-`)"
                                ),
                            ));
                        }
                        if parsed.name.is_some() {
                            return Err(err(column, "`name` is set twice".to_owned()));
                        }
                        parsed.name = Some((value.to_owned(), column));
                    } else if parsed
                        .element
                        .properties
                        .insert(key.to_owned(), value.to_owned())
                        .is_some()
                    {
                        return Err(err(column, format!("property `{key}` is set twice")));
                    }
                    continue;
                }
                if quoted {
                    return Err(err(
                        column,
                        format!("expected a handler name or `name.port`, found \"{word}\""),
                    ));
                }
                if let Some(dispatcher) = word.strip_prefix('@') {
                    let Some(index) = open_element.filter(|_| bang.is_none()) else {
                        return Err(err(column, format!("`{word}` does not follow an element")));
                    };
                    if !is_identifier(dispatcher) {
                        return Err(err(column, format!("`{word}` is not a dispatcher name")));
                    }
                    let element = &mut elements[index].element;
                    if element.dispatcher.is_some() {
                        return Err(err(column, "the dispatcher is set twice".to_owned()));
                    }
                    element.dispatcher = Some(dispatcher.to_owned());
                    continue;
                }
                let end = if word.contains('.') {
                    let reference = PortRef::parse(&word);
                    let valid = is_identifier(&reference.element)
                        && reference.port.as_deref().is_none_or(is_identifier);
                    if !valid {
                        return Err(err(
                            column,
                            format!(
                                "`{word}` is not an element reference (`name.port` or `name.`)"
                            ),
                        ));
                    }
                    open_element = None;
                    End::Reference(reference, column)
                } else {
                    if !is_identifier(&word) {
                        return Err(err(column, format!("`{word}` is not a handler name")));
                    }
                    elements.push(Parsed {
                        name: None,
                        column,
                        element: ElementDesc {
                            name: String::new(),
                            handler: word,
                            properties: BTreeMap::new(),
                            dispatcher: None,
                        },
                    });
                    open_element = Some(elements.len() - 1);
                    End::Element(elements.len() - 1)
                };
                if let (Some(bang_column), Some(from)) = (bang.take(), previous.take()) {
                    links.push((from, end.clone(), bang_column));
                    dangling = None;
                } else {
                    // A new chain: the previous one must not end in an unlinked reference.
                    if let Some(c) = dangling.take() {
                        return Err(err(
                            c,
                            "a reference must be linked with `!` to something".to_owned(),
                        ));
                    }
                    if let End::Reference(_, c) = &end {
                        dangling = Some(*c);
                    }
                }
                previous = Some(end);
            }
        }
    }
    if let Some(column) = bang {
        return Err(err(column, "the pipeline ends with `!`".to_owned()));
    }
    if let Some(column) = dangling {
        return Err(err(
            column,
            "a reference must be linked with `!` to something".to_owned(),
        ));
    }
    if elements.is_empty() {
        return Err(err(1, "the pipeline has no elements".to_owned()));
    }
    name_elements(&mut elements, &err)?;
    let names: Vec<&str> = elements.iter().map(|p| p.element.name.as_str()).collect();
    let resolve = |end: &End| -> Result<PortRef, ParseError> {
        match end {
            End::Element(i) => Ok(PortRef {
                element: elements[*i].element.name.clone(),
                port: None,
            }),
            End::Reference(reference, column) => {
                if names.contains(&reference.element.as_str()) {
                    Ok(reference.clone())
                } else {
                    let hint = nearest(&reference.element, names.iter().copied())
                        .map(|n| format!(" (did you mean `{n}`?)"))
                        .unwrap_or_default();
                    Err(err(
                        *column,
                        format!("no element named `{}`{hint}", reference.element),
                    ))
                }
            }
        }
    };
    let links = links
        .iter()
        .map(|(from, to, _)| {
            Ok(LinkDesc {
                from: resolve(from)?,
                to: resolve(to)?,
            })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    Ok(PipelineDesc {
        elements: elements.into_iter().map(|p| p.element).collect(),
        links,
    })
}

/// Gives every element its name: `name=` or `<handler><n>` (n counts earlier elements of the
/// same handler), refusing duplicates.
fn name_elements(
    elements: &mut [Parsed],
    err: &impl Fn(usize, String) -> ParseError,
) -> Result<(), ParseError> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for parsed in elements.iter_mut() {
        let n = counts.entry(parsed.element.handler.clone()).or_insert(0);
        let (name, column) = match parsed.name.take() {
            Some(explicit) => explicit,
            None => (format!("{}{}", parsed.element.handler, n), parsed.column),
        };
        *n += 1;
        if seen.insert(name.clone(), column).is_some() {
            return Err(err(
                column,
                format!("two elements are named `{name}`; give one of them another `name=`"),
            ));
        }
        parsed.element.name = name;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn link(from: &str, to: &str) -> LinkDesc {
        LinkDesc {
            from: PortRef::parse(from),
            to: PortRef::parse(to),
        }
    }

    #[test]
    fn a_chain() {
        let desc =
            parse("testpattern pattern=smpte size=1920x1080 ! blur sigma=2 @threadpool ! display")
                .unwrap();
        let names: Vec<&str> = desc.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["testpattern0", "blur0", "display0"]);
        assert_eq!(desc.elements[0].properties["size"], "1920x1080");
        assert_eq!(desc.elements[1].dispatcher.as_deref(), Some("threadpool"));
        assert_eq!(
            desc.links,
            [link("testpattern0", "blur0"), link("blur0", "display0")]
        );
    }

    #[test]
    fn named_elements_and_references() {
        let desc = parse(
            "compositor name=mix ! display  testpattern ! mix.layer0  \
             testpattern pattern=gradient ! mix.layer1",
        )
        .unwrap();
        assert_eq!(
            desc.links,
            [
                link("mix", "display0"),
                link("testpattern0", "mix.layer0"),
                link("testpattern1", "mix.layer1"),
            ]
        );
        // A reference may come before the element it names, and may start a chain.
        let desc = parse("mix. ! display  testpattern ! compositor name=mix").unwrap();
        assert_eq!(
            desc.links,
            [link("mix", "display0"), link("testpattern0", "mix")]
        );
    }

    #[test]
    fn quoted_values() {
        let desc = parse(r#"drawing text="hello \"world\" ! @x" ! null"#).unwrap();
        assert_eq!(desc.elements[0].properties["text"], r#"hello "world" ! @x"#);
        assert_eq!(desc.links.len(), 1);
    }

    #[test]
    fn errors_point_at_the_column() {
        let cases = [
            ("! blur", 1, "`!` needs an element before it"),
            ("blur ! ! display", 8, "found another `!`"),
            ("blur !", 6, "ends with `!`"),
            ("sigma=2 ! blur", 1, "does not follow an element"),
            ("blur ! sigma=2", 8, "does not follow an element"),
            (
                "blur name=a ! blur name=a",
                20,
                "two elements are named `a`",
            ),
            (
                "blur ! mx.video  compositor name=mix",
                8,
                "no element named `mx` (did you mean `mix`?)",
            ),
            ("blur text=\"open", 11, "unterminated quote"),
            ("blur sigma=1 sigma=2", 14, "set twice"),
            ("bl*ur", 1, "not a handler name"),
            ("mix.", 1, "must be linked"),
            ("", 1, "no elements"),
        ];
        for (text, column, message) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(message), "{text}: {}", e.message);
            assert_eq!(e.column, column, "{text}: {e}");
        }
        let shown = parse("blur ! ! display").unwrap_err().to_string();
        assert!(shown.ends_with("  blur ! ! display\n         ^"), "{shown}");
    }
}
