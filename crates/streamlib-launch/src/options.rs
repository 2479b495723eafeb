//! Stream options in pipeline text: words an element takes beside its handler's properties
//! that say how the runtime runs it, not what the handler does (`restart=`, `max-restarts=`,
//! and for `@process` elements the child's limits: `tick-deadline-ms=`, `memory-limit-mb=`,
//! `cpu-affinity=`, `nice=`). They are the same for every handler, so they are parsed here,
//! once.
//!
//! In a [`PipelineDesc`](crate::PipelineDesc) they are ordinary properties (so text and JSON
//! round-trip them unchanged); the build splits them off before the handler's properties are
//! validated. A handler that registers a property of the same name keeps it: the word is the
//! handler's, and that element takes no such stream option (no built-in handler does).

use streamlib_runtime::{Backoff, RestartPolicy, Stream};

use crate::LaunchError;
use crate::desc::ElementDesc;
use crate::error::{list, nearest};
use crate::registry::{HandlerSpec, PropertySpec, Registry, prop};
use crate::value::{PropType, Value, ValueError};

/// `restart=never|on-failure|always`.
const RESTART: &str = "restart";
/// `max-restarts=N` (`-1`: no cap).
const MAX_RESTARTS: &str = "max-restarts";
/// The words `restart=` takes.
const POLICIES: &[&str] = &["never", "on-failure", "always"];
/// `tick-deadline-ms=N` (`@process`): the watchdog.
const TICK_DEADLINE: &str = "tick-deadline-ms";
/// `memory-limit-mb=N` (`@process`): the child's address-space limit.
const MEMORY_LIMIT: &str = "memory-limit-mb";
/// `cpu-affinity=0,2` (`@process`): CPUs the child may run on.
const CPU_AFFINITY: &str = "cpu-affinity";
/// `nice=N` (`@process`): the child's niceness.
const NICE: &str = "nice";

/// The stream options, described as properties are (for `streamlib inspect` and the JSON
/// registry). Their defaults are the runtime's: no restart; the [`Backoff`] default cap.
static STREAM_OPTIONS: [PropertySpec; 6] = [
    prop(
        RESTART,
        PropType::Enum(POLICIES),
        Some("never"),
        false,
        "what the runtime does when the handler fails (an error or a panic, or a crash under \
         @process): never leaves it failed; on-failure restarts it (on_stop, a backoff from \
         10 ms doubling up to 5 s while it keeps failing within 1 s of a start, on_start); \
         always also restarts a handler that ended its own stream (not one the clock or its \
         upstreams ended)",
    ),
    prop(
        MAX_RESTARTS,
        PropType::Int {
            min: -1,
            max: u32::MAX as i64,
        },
        Some("10"),
        false,
        "restarts allowed in a row before the stream is left failed (-1: no cap; a stream \
         that stayed up 1 s counts from one again); given without restart=, it means \
         restart=on-failure",
    ),
    prop(
        TICK_DEADLINE,
        PropType::Int {
            min: 1,
            max: 3_600_000,
        },
        Some("1000"),
        false,
        "@process only: milliseconds from a tick's start to the child's answer before the \
         watchdog kills the child (a failure, restarted by restart=)",
    ),
    prop(
        MEMORY_LIMIT,
        PropType::Int {
            min: 1,
            max: 1 << 30,
        },
        None,
        false,
        "@process only: the child's address-space limit (RLIMIT_AS) in MiB; the shared \
         frame pool's mapping counts against it. Unset: no limit",
    ),
    prop(
        CPU_AFFINITY,
        PropType::Text,
        None,
        false,
        "@process only: the CPUs the child may run on, as indices separated by commas \
         (0,2). Unset: any",
    ),
    prop(
        NICE,
        PropType::Int { min: -20, max: 19 },
        None,
        false,
        "@process only: the child's niceness (-20 to 19; below the parent's needs \
         CAP_SYS_NICE). Unset: the parent's",
    ),
];

impl Registry {
    /// The stream options every element takes beside its handler's properties, whatever its
    /// handler and dispatcher: `restart=never|on-failure|always` and `max-restarts=N`
    /// (e.g. `identity panic-after=30 restart=always max-restarts=5`). A handler's own
    /// property of the same name takes precedence on its elements.
    pub fn stream_options(&self) -> &'static [PropertySpec] {
        &STREAM_OPTIONS
    }
}

/// The stream options of one element (none given: the runtime's defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamOptions {
    /// The restart policy, when `restart=` or `max-restarts=` was given.
    restart: Option<RestartPolicy>,
    /// The `@process` child's limits given in the text.
    pub(crate) child: ChildLimits,
}

/// What an `@process` element's text says of its child, over the installed
/// `ProcessOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChildLimits {
    pub(crate) tick_deadline: Option<std::time::Duration>,
    /// Bytes.
    pub(crate) memory_limit: Option<u64>,
    pub(crate) cpu_affinity: Option<Vec<usize>>,
    pub(crate) nice: Option<i32>,
}

impl ChildLimits {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Splits `element`'s stream options from its handler's properties: the element without
/// them (for property validation) and the options.
///
/// # Errors
/// A value a stream option does not take ([`LaunchError::BadValue`],
/// [`LaunchError::OutOfRange`]), options that contradict each other
/// ([`LaunchError::ConflictingStreamOptions`]), or a misspelt option
/// ([`LaunchError::UnknownProperty`], suggesting it).
pub(crate) fn split(
    element: &ElementDesc,
    spec: &HandlerSpec,
) -> Result<(ElementDesc, StreamOptions), LaunchError> {
    let mut rest = element.clone();
    let mut restart = None;
    let mut max_restarts = None;
    let mut child = ChildLimits::default();
    let mut given = Vec::new();
    for option in STREAM_OPTIONS
        .iter()
        .filter(|o| spec.property(o.name).is_none())
    {
        let Some(text) = rest.properties.remove(option.name) else {
            continue;
        };
        let value = parse(element, spec, option, &text)?;
        if [TICK_DEADLINE, MEMORY_LIMIT, CPU_AFFINITY, NICE].contains(&option.name) {
            given.push(format!("{}={text}", option.name));
        }
        match (option.name, value) {
            (RESTART, Value::Text(policy)) => restart = Some((policy, text)),
            (MAX_RESTARTS, Value::Int(n)) => max_restarts = Some((n, text)),
            (TICK_DEADLINE, Value::Int(ms)) => {
                child.tick_deadline = Some(std::time::Duration::from_millis(ms.unsigned_abs()));
            }
            (MEMORY_LIMIT, Value::Int(mb)) => child.memory_limit = Some(mb.unsigned_abs() << 20),
            (NICE, Value::Int(n)) => child.nice = i32::try_from(n).ok(),
            (CPU_AFFINITY, Value::Text(list)) => {
                child.cpu_affinity = Some(cpus(element, spec, &list)?);
            }
            _ => {}
        }
    }
    if !child.is_empty() && element.dispatcher.as_deref() != Some("process") {
        return Err(LaunchError::ConflictingStreamOptions {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            options: given.join(" "),
            fix: "these limit the child of an @process element: add @process, or drop them"
                .to_owned(),
        });
    }
    misspelt(&rest, spec)?;
    let cap = |n: i64| u32::try_from(n).ok();
    let backoff = |max: &Option<(i64, String)>| Backoff {
        max_restarts: max
            .as_ref()
            .map_or(Backoff::default().max_restarts, |(n, _)| cap(*n)),
        ..Backoff::default()
    };
    let policy = match (&restart, &max_restarts) {
        (None, None) => None,
        (Some((policy, _)), None) if policy == "never" => Some(RestartPolicy::Never),
        (Some((policy, _)), Some((_, max))) if policy == "never" => {
            return Err(LaunchError::ConflictingStreamOptions {
                element: element.name.clone(),
                handler: spec.name.to_owned(),
                options: format!("{RESTART}=never {MAX_RESTARTS}={max}"),
                fix: format!(
                    "restart=never never restarts; drop {MAX_RESTARTS}= or use \
                     restart=on-failure or restart=always"
                ),
            });
        }
        (Some((policy, _)), _) if policy == "always" => {
            Some(RestartPolicy::Always(backoff(&max_restarts)))
        }
        // `on-failure`, or `max-restarts=` alone: a cap on restarts asks for restarts.
        _ => Some(RestartPolicy::OnFailure(backoff(&max_restarts))),
    };
    Ok((
        rest,
        StreamOptions {
            restart: policy,
            child,
        },
    ))
}

/// `cpu-affinity=`'s CPU indices, or the error naming the element and what it takes.
fn cpus(element: &ElementDesc, spec: &HandlerSpec, list: &str) -> Result<Vec<usize>, LaunchError> {
    let parsed: Option<Vec<usize>> = list
        .split(',')
        .map(|cpu| cpu.trim().parse::<usize>().ok().filter(|&c| c < 1024))
        .collect();
    match parsed {
        Some(cpus) if !cpus.is_empty() => Ok(cpus),
        _ => Err(LaunchError::BadValue {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            property: CPU_AFFINITY.to_owned(),
            value: list.to_owned(),
            expected: "CPU indices below 1024 separated by commas, e.g. 0,2 (stream option)"
                .to_owned(),
        }),
    }
}

/// A value for `option`, or the error naming the element, the option and what it takes.
fn parse(
    element: &ElementDesc,
    spec: &HandlerSpec,
    option: &PropertySpec,
    text: &str,
) -> Result<Value, LaunchError> {
    option.ty.parse(text).map_err(|e| match e {
        ValueError::Type(expected) => LaunchError::BadValue {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            property: option.name.to_owned(),
            value: text.to_owned(),
            expected: format!("{expected} (stream option)"),
        },
        ValueError::Range(range) => LaunchError::OutOfRange {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            property: option.name.to_owned(),
            value: text.to_owned(),
            range: format!("{range} (stream option)"),
        },
    })
}

/// A property neither the handler's nor a stream option, but nearest to a stream option
/// (`restrat=always`): refused here, suggesting the option; other unknown properties are
/// left to the handler's validation.
fn misspelt(element: &ElementDesc, spec: &HandlerSpec) -> Result<(), LaunchError> {
    let options = || STREAM_OPTIONS.iter().map(|o| o.name);
    let known = || spec.properties.iter().map(|p| p.name).chain(options());
    for name in element.properties.keys() {
        if spec.property(name).is_some() {
            continue;
        }
        let suggestion = nearest(name, known());
        if suggestion
            .as_deref()
            .is_some_and(|s| options().any(|o| o == s))
        {
            return Err(LaunchError::UnknownProperty {
                element: element.name.clone(),
                handler: spec.name.to_owned(),
                property: name.clone(),
                suggestion,
                available: format!(
                    "{}; stream options: {}",
                    list(spec.properties.iter().map(|p| p.name)),
                    list(options())
                ),
            });
        }
    }
    Ok(())
}

impl StreamOptions {
    /// Applies the options to the stream the element was built into.
    pub(crate) fn apply(&self, stream: Stream) -> Stream {
        match self.restart {
            Some(policy) => stream.restart_policy(policy),
            None => stream,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[cfg(feature = "video")]
    fn element(properties: &[(&str, &str)]) -> ElementDesc {
        ElementDesc {
            name: "identity0".to_owned(),
            handler: "identity".to_owned(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dispatcher: None,
        }
    }

    #[cfg(feature = "video")]
    fn policy(properties: &[(&str, &str)]) -> Result<Option<RestartPolicy>, LaunchError> {
        let registry = Registry::builtin();
        let spec = registry.get("null").unwrap();
        split(&element(properties), spec).map(|(_, o)| o.restart)
    }

    #[cfg(feature = "video")]
    #[test]
    fn child_limits_parse_and_need_process() {
        let registry = Registry::builtin();
        let spec = registry.get("identity").unwrap();
        let mut given = element(&[
            ("tick-deadline-ms", "250"),
            ("memory-limit-mb", "512"),
            ("cpu-affinity", "0, 1"),
            ("nice", "5"),
        ]);
        let refused = split(&given, spec).unwrap_err().to_string();
        assert!(refused.contains("add @process"), "{refused}");
        assert!(refused.contains("tick-deadline-ms=250"), "{refused}");
        given.dispatcher = Some("process".to_owned());
        let (rest, options) = split(&given, spec).unwrap();
        assert!(rest.properties.is_empty());
        assert_eq!(
            options.child,
            ChildLimits {
                tick_deadline: Some(std::time::Duration::from_millis(250)),
                memory_limit: Some(512 << 20),
                cpu_affinity: Some(vec![0, 1]),
                nice: Some(5),
            }
        );
        given
            .properties
            .insert("cpu-affinity".to_owned(), "0,x".to_owned());
        let bad = split(&given, spec).unwrap_err().to_string();
        assert!(bad.contains("cpu-affinity") && bad.contains("0,x"), "{bad}");
    }

    #[test]
    fn the_documented_defaults_are_the_runtimes() {
        let cap = Backoff::default().max_restarts.unwrap().to_string();
        assert_eq!(STREAM_OPTIONS[1].default, Some(cap.as_str()));
        assert_eq!(STREAM_OPTIONS[0].default, Some("never"));
    }

    #[cfg(feature = "video")]
    #[test]
    fn each_policy_and_cap() {
        let capped = |n| Backoff {
            max_restarts: n,
            ..Backoff::default()
        };
        assert_eq!(policy(&[]).unwrap(), None);
        assert_eq!(
            policy(&[("restart", "never")]).unwrap(),
            Some(RestartPolicy::Never)
        );
        assert_eq!(
            policy(&[("restart", "on-failure")]).unwrap(),
            Some(RestartPolicy::OnFailure(Backoff::default()))
        );
        assert_eq!(
            policy(&[("restart", "always"), ("max-restarts", "3")]).unwrap(),
            Some(RestartPolicy::Always(capped(Some(3))))
        );
        assert_eq!(
            policy(&[("max-restarts", "-1")]).unwrap(),
            Some(RestartPolicy::OnFailure(capped(None)))
        );
    }

    #[cfg(feature = "video")]
    #[test]
    fn options_leave_the_handlers_properties() {
        let registry = Registry::builtin();
        let spec = registry.get("identity").unwrap();
        let given = element(&[("restart", "always"), ("panic-after", "3")]);
        let (rest, _) = split(&given, spec).unwrap();
        assert_eq!(rest.properties.keys().collect::<Vec<_>>(), ["panic-after"]);
    }
}
