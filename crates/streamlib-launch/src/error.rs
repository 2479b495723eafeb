//! What can go wrong between a pipeline's text and a running runtime.

use std::fmt;

use streamlib_runtime::RuntimeError;

/// A syntax error in a pipeline description, with the column it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// 1-based character column in `text`.
    pub column: usize,
    /// The description that was parsed.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} at column {}", self.message, self.column)?;
        writeln!(f, "  {}", self.text)?;
        write!(f, "  {}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

impl std::error::Error for ParseError {}

/// " (did you mean `x`?)" or nothing.
pub(crate) struct Suggest<'a>(pub &'a Option<String>);

impl fmt::Display for Suggest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (did you mean `{name}`?)"),
            None => Ok(()),
        }
    }
}

/// Errors from parsing, validating, building or controlling a pipeline. Each names the
/// element, handler, property or port at fault.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The text does not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The JSON form does not parse.
    #[error("invalid pipeline JSON: {0}")]
    Json(String),
    /// No handler of that name is registered.
    #[error("unknown handler `{name}`{}; `streamlib inspect` lists them", Suggest(.suggestion))]
    UnknownHandler {
        /// The name given.
        name: String,
        /// The nearest registered name.
        suggestion: Option<String>,
    },
    /// The handler has no such property.
    #[error("{element} ({handler}): unknown property `{property}`{}; its properties: {available}", Suggest(.suggestion))]
    UnknownProperty {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// The property given.
        property: String,
        /// The nearest valid property.
        suggestion: Option<String>,
        /// Every valid property.
        available: String,
    },
    /// A value of the wrong type.
    #[error("{element} ({handler}): `{property}={value}` is not {expected}")]
    BadValue {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// Property name.
        property: String,
        /// The value given.
        value: String,
        /// What it should be.
        expected: String,
    },
    /// A value outside the property's range.
    #[error("{element} ({handler}): `{property}={value}` is out of range: {range}")]
    OutOfRange {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// Property name.
        property: String,
        /// The value given.
        value: String,
        /// The valid range.
        range: String,
    },
    /// A property without a default was not given.
    #[error("{element} ({handler}): property `{property}` is required ({doc})")]
    MissingProperty {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// Property name.
        property: String,
        /// What it is for.
        doc: String,
    },
    /// The same property twice on one element.
    #[error("{element}: property `{property}` is set twice")]
    DuplicateProperty {
        /// Element name.
        element: String,
        /// Property name.
        property: String,
    },
    /// Two elements with one name.
    #[error("two elements are named `{name}`; give one of them another `name=`")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An element name that is not an identifier (the JSON form can carry any string).
    #[error("`{name}` is not a valid element name (letters, digits, `_`, `-`)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A link names an element that does not exist.
    #[error("link `{link}`: no element named `{name}`{}", Suggest(.suggestion))]
    UnknownElement {
        /// The link as written.
        link: String,
        /// The name given.
        name: String,
        /// The nearest element name.
        suggestion: Option<String>,
    },
    /// A link names a port the element does not have.
    #[error("link `{link}`: {element} ({handler}) has no {direction} `{port}`{}; its {direction}s: {available}", Suggest(.suggestion))]
    UnknownPort {
        /// The link as written.
        link: String,
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The port given.
        port: String,
        /// The nearest port name.
        suggestion: Option<String>,
        /// Every port in that direction.
        available: String,
    },
    /// A link without port names found no suitable port.
    #[error(
        "link `{link}`: {element} ({handler}) has no free {direction} for {kind} (its {direction}s: {available})"
    )]
    NoFreePort {
        /// The link as written.
        link: String,
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The message kind looked for.
        kind: String,
        /// Every port in that direction.
        available: String,
    },
    /// An unknown `@dispatcher`.
    #[error("{element}: unknown dispatcher `@{name}`{}; dispatchers: {available}", Suggest(.suggestion))]
    UnknownDispatcher {
        /// Element name.
        element: String,
        /// The name given.
        name: String,
        /// The nearest valid one.
        suggestion: Option<String>,
        /// Every valid one.
        available: String,
    },
    /// Stream options that contradict each other on one element
    /// (`restart=never max-restarts=3`).
    #[error("{element} ({handler}): stream options `{options}` contradict each other: {fix}")]
    ConflictingStreamOptions {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// The options as given.
        options: String,
        /// What to write instead.
        fix: String,
    },
    /// The handler refused its configuration.
    #[error("{element} ({handler}): {message}")]
    Handler {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// The handler's error, with its causes.
        message: String,
    },
    /// The runtime refused the graph (negotiation, validation, start).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A property that cannot change while the pipeline runs.
    #[error(
        "{element} ({handler}): `{property}` cannot be changed while running; live properties: {live}"
    )]
    NotLive {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// Property name.
        property: String,
        /// The ones that can.
        live: String,
    },
    /// Sources fix different frame rates and no rate was chosen.
    #[error(
        "the sources run at different rates ({rates}); choose the pipeline's rate with --fps \
         (or `fps` in the launch options): each source then keeps its own rate into the \
         handlers that accept any, and a rate adapter goes where an input fixes one"
    )]
    RatesDisagree {
        /// `stream.port rate`, comma-separated.
        rates: String,
    },
    /// An empty description.
    #[error("the pipeline is empty")]
    Empty,
    /// The [`Policy`](crate::Policy) refused a file or an address the element would reach.
    #[error("{element} ({handler}): {property} {source}")]
    Refused {
        /// Element name.
        element: String,
        /// Handler name.
        handler: String,
        /// The property at fault.
        property: String,
        /// The rule it broke.
        source: crate::PolicyError,
    },
    /// The pipeline text is longer than the caller accepts.
    #[error("the pipeline is {length} bytes long; at most {limit} are accepted")]
    TooLong {
        /// Its length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
    },
}

/// Names longer than this get no suggestion: comparing two names costs the product of their
/// lengths, and an agent can send long ones.
const SUGGEST_MAX_CHARS: usize = 64;

/// The name in `candidates` nearest to `name` (edit distance at most a third of its length,
/// at least 2), for "did you mean" hints. Names and candidates longer than 64 characters
/// are not compared, so the cost stays bounded whatever the input.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // Bytes bound characters from above: a quick refusal before counting.
    if name.len() > SUGGEST_MAX_CHARS * 4 {
        return None;
    }
    let length = name.chars().count();
    if length > SUGGEST_MAX_CHARS {
        return None;
    }
    let limit = (length / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| c.len() <= SUGGEST_MAX_CHARS * 4)
        // The distance is at least the difference in length.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `a, b, c`, or `none`.
pub(crate) fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.into_iter().collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            nearest("testpatern", ["blur", "testpattern"]),
            Some("testpattern".into())
        );
        assert_eq!(nearest("blr", ["blur", "display"]), Some("blur".into()));
        assert_eq!(nearest("zzzzzz", ["blur", "display"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn long_names_get_no_suggestion_and_cost_little() {
        let long = "a".repeat(200_000);
        let near = format!("{long}b");
        let started = std::time::Instant::now();
        assert_eq!(nearest(&near, [long.as_str(), "blur"]), None);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        let name = "x".repeat(60);
        let candidate = format!("{name}y");
        assert_eq!(
            nearest(&name, [candidate.as_str()]),
            Some(candidate.clone())
        );
    }
}
