//! The tools' arguments: their serde forms are what clients send, their JSON schemas (doc
//! comments become descriptions) are what `tools/list` shows an agent.

use schemars::JsonSchema;
use serde::Deserialize;
use streamlib_launch::{ClockKind, LaunchError, PipelineDesc, parse};

/// How the `pipeline` string is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PipelineFormat {
    /// The text syntax: `testpattern size=640x360 ! blur sigma=2 ! null`.
    Text,
    /// The JSON form: `{"elements": [{"name", "handler", "properties"}], "links": [...]}`.
    Json,
}

/// Which clock drives a launched pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockChoice {
    /// Realtime: one tick every 1/fps seconds (for watching, live tuning).
    #[default]
    Software,
    /// As fast as the pipeline goes (offline processing, benchmarks).
    Free,
}

impl From<ClockChoice> for ClockKind {
    fn from(choice: ClockChoice) -> Self {
        match choice {
            ClockChoice::Software => ClockKind::Software,
            ClockChoice::Free => ClockKind::Free,
        }
    }
}

/// `inspect_handler` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InspectHandler {
    /// The handler name, as `list_handlers` shows it (e.g. `blur`).
    pub name: String,
}

/// `validate_pipeline` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ValidatePipeline {
    /// The pipeline: text such as `testpattern size=640x360 ! blur sigma=2 ! null`, or the
    /// JSON form as a string.
    pub pipeline: String,
    /// `text` or `json`; guessed from the first character (`{` means JSON) when left out.
    #[serde(default)]
    pub format: Option<PipelineFormat>,
}

/// `launch_pipeline` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LaunchPipeline {
    /// The pipeline: text such as `testpattern size=640x360 ! blur sigma=2 ! null`, or the
    /// JSON form as a string.
    pub pipeline: String,
    /// `text` or `json`; guessed from the first character (`{` means JSON) when left out.
    #[serde(default)]
    pub format: Option<PipelineFormat>,
    /// Ticks (frames) per second, in (0, 1000]; when left out, the rate the sources fix (a
    /// 25 fps file runs at 25; sources that disagree are an error), else 30. 29.97 and 59.94
    /// are the NTSC rates.
    #[serde(default)]
    pub fps: Option<f64>,
    /// `software` (realtime, the default) or `free` (as fast as possible).
    #[serde(default)]
    pub clock: Option<ClockChoice>,
    /// Stop by itself after this many ticks; runs until `stop_pipeline` (or end of stream)
    /// when left out.
    #[serde(default)]
    pub frames: Option<u64>,
    /// Add a preview tap (a `webrtcsink` on loopback, encoding only while someone watches)
    /// on each video output, for the page `control_room` opens to play. Off when left out.
    #[serde(default)]
    pub previews: bool,
}

/// Arguments naming a launched pipeline.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PipelineId {
    /// The id `launch_pipeline` returned (e.g. `p1`).
    pub id: String,
}

/// A property value: text as in the pipeline syntax, or a JSON number or boolean.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PropertyValue {
    /// As written in a pipeline: `4`, `0.5`, `1280x720`, `#ff8800`, `smpte`, `true`.
    Text(String),
    /// A number.
    Number(f64),
    /// A flag.
    Flag(bool),
}

impl PropertyValue {
    /// The value as pipeline text (`4.0` prints as `4`).
    pub fn to_text(&self) -> String {
        match self {
            PropertyValue::Text(text) => text.clone(),
            PropertyValue::Number(n) => n.to_string(),
            PropertyValue::Flag(b) => b.to_string(),
        }
    }
}

/// `set_property` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SetProperty {
    /// The id `launch_pipeline` returned (e.g. `p1`).
    pub id: String,
    /// The element name: `name=` if given, else `<handler><n>` counted per handler from 0
    /// (`blur0`, `testpattern1`); the launch result's graph lists them.
    pub element: String,
    /// A live property of that element (`inspect_handler` marks them `"live": true`), e.g.
    /// `sigma`, `layer1.opacity`.
    pub property: String,
    /// The new value; checked against the property's type and range like a launch-time value.
    pub value: PropertyValue,
}

/// The longest pipeline text (or JSON) a tool call accepts.
pub const MAX_PIPELINE_BYTES: usize = 64 * 1024;

/// Parses `pipeline` in `format`, or in the format its first character suggests; refuses one
/// longer than [`MAX_PIPELINE_BYTES`] before reading it.
pub fn describe(
    pipeline: &str,
    format: Option<PipelineFormat>,
) -> Result<PipelineDesc, LaunchError> {
    if pipeline.len() > MAX_PIPELINE_BYTES {
        return Err(LaunchError::TooLong {
            length: pipeline.len(),
            limit: MAX_PIPELINE_BYTES,
        });
    }
    let format = format.unwrap_or(if pipeline.trim_start().starts_with('{') {
        PipelineFormat::Json
    } else {
        PipelineFormat::Text
    });
    match format {
        PipelineFormat::Text => Ok(parse(pipeline)?),
        PipelineFormat::Json => PipelineDesc::from_json(pipeline),
    }
}
