//! `streamlib mcp`: the Model Context Protocol server over stdio (rmcp), so that an AI agent
//! can list handlers, validate, launch, watch, tune and stop pipelines.
//!
//! Launched pipelines live in a table keyed by id (`p1`, `p2`, …); when the client
//! disconnects (stdin closes) every one still running is stopped, so files are finalized and
//! threads joined before the process exits.

mod params;
mod pipelines;

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use serde_json::{Value as Json, json};
use streamlib_launch::{
    Graph, LaunchError, LaunchOptions, Policy, Registry, Session, dry_run, nearest,
};

use params::{InspectHandler, LaunchPipeline, PipelineId, SetProperty, ValidatePipeline, describe};
use pipelines::{Launched, Pipelines};

/// How long, after the client disconnects, blocking work still in flight (a launch half
/// done) may take before the process moves on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest id, element, property or value `set_property` accepts.
const MAX_ARGUMENT_BYTES: usize = 4096;

/// What one MCP connection may use: an agent is not trusted with the machine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Pipelines running at once.
    pub pipelines: usize,
    /// How long one tool call may take (building, starting or stopping a pipeline).
    pub tool_call: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pipelines: 8,
            tool_call: Duration::from_secs(30),
        }
    }
}

/// What `initialize` tells the agent: the syntax and the workflow, briefly.
const INSTRUCTIONS: &str = "\
streamlib runs realtime media pipelines. A pipeline is text in the spirit of gst-launch:
  testpattern size=640x360 ! blur sigma=2 ! null
- An element is a handler name followed by key=value properties (quote values with spaces:
  text=\"hello world\"); `name=mix` names it, otherwise it is <handler><n> (testpattern0, blur0).
  An optional @dispatcher (e.g. @threadpool) chooses where it runs.
- `!` links the previous element to the next. `name.port` refers to an element declared
  anywhere, for graphs that are not a chain:
  compositor name=mix ! null  testpattern ! mix.layer0  testpattern pattern=gradient ! mix.layer1
Workflow: list_handlers, inspect_handler (ports, property types, ranges, defaults, which are
live), validate_pipeline (a dry run: the negotiated graph, or an error pointing at the
column / suggesting names / stating ranges), launch_pipeline (returns an id such as p1),
pipeline_stats, set_property (live properties only), control_room (a live web page for a person
to watch and tune it; returns its URL), stop_pipeline (returns final stats).
Pipelines still running when the client disconnects are stopped.
Files and the network are confined by the operator: locations must be plain files inside the
folders allowed for reading or writing (no URLs, no devices), and network addresses must be
loopback unless the network is allowed; a refusal names the rule.";

/// The MCP service: the handler registry, what pipelines may reach, and this connection's
/// pipelines.
#[derive(Clone)]
struct StreamlibServer {
    registry: Arc<Registry>,
    policy: Arc<Policy>,
    limits: Limits,
    pipelines: Arc<Pipelines>,
    tool_router: ToolRouter<Self>,
}

/// A successful result: the JSON as structured content (and as text for older clients).
fn success(value: Json) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A tool error (`isError: true`) whose text the agent reads and can act on.
fn failure(message: impl Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

/// The graph as JSON.
fn graph_json(graph: &Graph) -> Json {
    serde_json::to_value(graph).unwrap_or(Json::Null)
}

/// Stops a pipeline (blocking: the runtime joins its threads, writers finalize their files)
/// and returns the final statistics.
fn stop(mut launched: Launched) -> Result<Json, LaunchError> {
    let stats = launched.session.stop()?;
    Ok(streamlib_launch::stats_json_with_reports(
        &stats,
        launched.session.controls(),
    ))
}

/// Runs blocking work (building handlers, joining threads) off the protocol task, for at most
/// `limit`. Work that takes longer is abandoned: it finishes on its own thread and what it
/// returns is dropped (a session dropped is stopped).
async fn blocking<R: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let started = std::time::Instant::now();
    let abandoned = || {
        format!(
            "the tool call took longer than {} s and was abandoned",
            limit.as_secs()
        )
    };
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
        // Work that finished only after its limit (the timer is checked after the first poll)
        // is abandoned too, so the limit holds however the race between the two falls. What
        // it produced (a started session) is dropped off the async threads: dropping a
        // session stops its pipeline.
        Ok(Ok(result)) if started.elapsed() > limit => {
            drop(tokio::task::spawn_blocking(move || drop(result)));
            Err(abandoned())
        }
        Ok(done) => done.map_err(|e| format!("internal error: {e}")),
        Err(_) => Err(abandoned()),
    }
}

#[tool_router]
impl StreamlibServer {
    fn new(registry: Registry, policy: Policy, limits: Limits, pipelines: Arc<Pipelines>) -> Self {
        Self {
            registry: Arc::new(registry),
            policy: Arc::new(policy),
            limits,
            pipelines,
            tool_router: Self::tool_router(),
        }
    }

    /// Every handler a pipeline may use, with its one-line summary.
    #[tool(
        description = "List every handler (pipeline element type) this streamlib build offers, \
        each with a one-line summary. Pipelines chain handlers with `!`, e.g. \
        `testpattern size=640x360 ! blur sigma=2 ! null`; use inspect_handler for one \
        handler's ports and properties.",
        annotations(read_only_hint = true)
    )]
    async fn list_handlers(&self) -> CallToolResult {
        let handlers: Vec<Json> = self
            .registry
            .iter()
            .map(|spec| json!({ "name": spec.name, "summary": spec.summary }))
            .collect();
        success(json!({ "handlers": handlers }))
    }

    /// One handler's ports and properties.
    #[tool(
        description = "Show one handler's ports (direction, kind, memory caps, delivery) and \
        properties (type, accepted values, min/max, default — null means required — and \
        whether it is live, i.e. settable with set_property while running). Properties are \
        written `key=value` after the handler name in a pipeline.",
        annotations(read_only_hint = true)
    )]
    async fn inspect_handler(&self, params: Parameters<InspectHandler>) -> CallToolResult {
        let name = params.0.name;
        match self.registry.get(&name) {
            Some(spec) => match serde_json::to_value(spec) {
                Ok(value) => success(value),
                Err(e) => failure(format!("internal error: {e}")),
            },
            None => failure(LaunchError::UnknownHandler {
                suggestion: nearest(&name, self.registry.names()),
                name,
            }),
        }
    }

    /// A dry run: parse, validate, negotiate; nothing runs.
    #[tool(
        description = "Dry-run a pipeline without running it: parse it, check handlers, \
        properties (types, ranges) and links, and negotiate memory (inserting CPU/GPU \
        transfers where needed). Nothing is built, so formats (pixel format, size, rate) are \
        not checked: launch_pipeline negotiates them and reports a mismatch it cannot bridge. Returns the negotiated graph (nodes and edges, transfers \
        included) and the canonical text and JSON forms; or an error that points at the \
        column, suggests the nearest valid name, or states the valid range. Text syntax: \
        `testpattern size=640x360 ! blur sigma=2 ! null`; `name=x` names an element, `x.port` \
        links to one of its ports from anywhere.",
        annotations(read_only_hint = true)
    )]
    async fn validate_pipeline(&self, params: Parameters<ValidatePipeline>) -> CallToolResult {
        let ValidatePipeline { pipeline, format } = params.0;
        let registry = Arc::clone(&self.registry);
        let policy = Arc::clone(&self.policy);
        let checked = blocking(self.limits.tool_call, move || {
            let desc = describe(&pipeline, format)?;
            let graph = dry_run(&registry, &desc, &policy)?;
            Ok::<_, LaunchError>((desc, graph))
        })
        .await;
        match checked {
            Ok(Ok((desc, graph))) => success(json!({
                "valid": true,
                "text": desc.to_text(),
                "json": serde_json::to_value(&desc).unwrap_or(Json::Null),
                "graph": graph_json(&graph),
            })),
            Ok(Err(e)) => failure(e),
            Err(e) => failure(e),
        }
    }

    /// Starts a pipeline in the background.
    #[tool(
        description = "Start a pipeline in the background and return its id (e.g. `p1`) and \
        negotiated graph. Several can run at once. Text syntax: \
        `testpattern size=640x360 ! blur sigma=2 ! null`. Then use pipeline_stats to watch \
        it, set_property to change live properties, stop_pipeline to end it (files are \
        finalized then). `frames` makes it stop by itself after that many ticks.",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn launch_pipeline(&self, params: Parameters<LaunchPipeline>) -> CallToolResult {
        let LaunchPipeline {
            pipeline,
            format,
            fps,
            clock,
            frames,
            previews,
        } = params.0;
        let options = LaunchOptions {
            fps,
            auto_convert: true,
            clock: clock.unwrap_or_default().into(),
            frames,
            ptp_interface: None,
        };
        // The slot is taken before anything is built and travels with the work, so that
        // concurrent launches cannot all pass the limit, and one abandoned at its time limit
        // still counts until its build (and the stop of what it built) really ends.
        let slot = match self.pipelines.reserve(self.limits.pipelines) {
            Ok(slot) => slot,
            Err(why) => return failure(why),
        };
        let registry = Arc::clone(&self.registry);
        let policy = Arc::clone(&self.policy);
        let start_options = options.clone();
        let started = blocking(self.limits.tool_call, move || {
            let session = describe(&pipeline, format).and_then(|mut desc| {
                let taps = preview_taps(previews, &mut desc, &registry);
                Session::start_with(&registry, &desc, start_options, &policy)
                    .map(|session| (session, taps))
            });
            // Dropped in this order when abandoned: the session (stopped), then the slot.
            (session, slot)
        })
        .await;
        let ((session, taps), slot) = match started {
            Ok((Ok(session), slot)) => (session, slot),
            Ok((Err(e), _)) => return failure(e),
            Err(e) => return failure(e),
        };
        #[cfg(not(feature = "ui"))]
        let _ = taps;
        let text = session.desc().to_text();
        let graph = graph_json(session.graph());
        // The rate it runs at: the one asked for, or the one the sources fixed.
        let clock = session.stats().map(|s| s.clock);
        match self.pipelines.insert(Launched {
            session,
            options: options.clone(),
            _slot: slot,
            #[cfg(feature = "ui")]
            control_room: None,
            #[cfg(feature = "ui")]
            previews: taps,
        }) {
            Ok(id) => success(json!({
                "id": id,
                "pipeline": text,
                "options": options,
                "clock": clock,
                "graph": graph,
            })),
            Err((launched, why)) => {
                // The client went away while this one started.
                let _ = blocking(self.limits.tool_call, move || stop(*launched)).await;
                failure(why)
            }
        }
    }

    /// Live statistics of a launched pipeline.
    #[tool(
        description = "Live statistics of a launched pipeline: clock ticks, missed ticks, tick \
        rate, and per element (stream) ticks, items out, drops, errors, panics, restarts, \
        deadline misses, process time and latency percentiles in microseconds, and a `report` \
        of the handler's own counters where it keeps any (network handlers: packets, losses, \
        pacing); plus `finished` (it ended by itself: end of stream or its frame limit).",
        annotations(read_only_hint = true)
    )]
    async fn pipeline_stats(&self, params: Parameters<PipelineId>) -> CallToolResult {
        let id = params.0.id;
        match self.pipelines.with(&id, |launched| launched.report(&id)) {
            Ok(report) => success(report),
            Err(e) => failure(e),
        }
    }

    /// The pipelines launched and not stopped yet.
    #[tool(
        description = "List the pipelines launched on this connection and not stopped yet: \
        id, text, and whether each finished by itself.",
        annotations(read_only_hint = true)
    )]
    async fn list_pipelines(&self) -> CallToolResult {
        success(json!({ "pipelines": self.pipelines.list() }))
    }

    /// Changes a live property.
    #[tool(
        description = "Change a live property of a running pipeline's element (e.g. element \
        `blur0`, property `sigma`, value `4`); the element sees it before its next frame. \
        The value is checked like a launch-time value: an error says why (unknown element or \
        property, not live, wrong type, out of range). inspect_handler shows which properties \
        are live and their ranges.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn set_property(&self, params: Parameters<SetProperty>) -> CallToolResult {
        let SetProperty {
            id,
            element,
            property,
            value,
        } = params.0;
        let value = value.to_text();
        if [&id, &element, &property, &value]
            .iter()
            .any(|t| t.len() > MAX_ARGUMENT_BYTES)
        {
            return failure(format!(
                "set_property: an argument is longer than {MAX_ARGUMENT_BYTES} bytes"
            ));
        }
        let set = self.pipelines.with(&id, |launched| {
            launched.session.controls().set(&element, &property, &value)
        });
        match set {
            Ok(Ok(())) => success(json!({
                "id": id,
                "element": element,
                "property": property,
                "value": value,
                "applied": "queued: the element uses it from its next frame",
            })),
            Ok(Err(e)) => failure(e),
            Err(e) => failure(e),
        }
    }

    /// The control room of a launched pipeline.
    #[tool(
        description = "Open the control room of a launched pipeline and return its URL \
        (http://127.0.0.1:PORT/, loopback only): a live web page for a person to watch it, \
        with the negotiated graph, per-element statistics with plots, and every live property \
        as a control; with `previews: true` at launch_pipeline, a WebRTC preview of any \
        video port. The same URL is returned on later calls; it is served until the \
        pipeline is stopped. Its JSON API: GET /api/graph, GET /api/stats, POST \
        /api/elements/{element}/properties/{property} with the value as the body.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn control_room(&self, params: Parameters<PipelineId>) -> CallToolResult {
        let id = params.0.id;
        match control_room_url(&self.pipelines, &id) {
            Ok(url) => success(json!({
                "id": id,
                "url": url,
                "api": {
                    "graph": format!("{url}api/graph"),
                    "stats": format!("{url}api/stats"),
                },
            })),
            Err(e) => failure(e),
        }
    }

    /// Stops a pipeline.
    #[tool(
        description = "Stop a launched pipeline: the clock stops, every element finishes \
        (files are finalized) and the final statistics are returned. The id is forgotten \
        afterwards.",
        annotations(read_only_hint = false, destructive_hint = true)
    )]
    async fn stop_pipeline(&self, params: Parameters<PipelineId>) -> CallToolResult {
        let id = params.0.id;
        let launched = match self.pipelines.remove(&id) {
            Ok(launched) => launched,
            Err(e) => return failure(e),
        };
        let text = launched.session.desc().to_text();
        match blocking(self.limits.tool_call, move || stop(launched)).await {
            Ok(Ok(stats)) => success(json!({
                "id": id,
                "pipeline": text,
                "stopped": true,
                "stats": stats,
            })),
            Ok(Err(e)) => failure(format!("{id} stopped with an error: {e}")),
            Err(e) => failure(e),
        }
    }
}

/// Starts the control room of pipeline `id` on a free loopback port, once; returns its URL.
#[cfg(feature = "ui")]
fn control_room_url(pipelines: &Pipelines, id: &str) -> Result<String, String> {
    pipelines.with_mut(id, |launched| {
        if let Some(room) = &launched.control_room {
            return Ok(room.url());
        }
        let room = streamlib_ui::ControlRoom::bind("127.0.0.1:0")
            .map_err(|e| format!("{id}: {e}"))?
            .with_previews(launched.previews.clone());
        room.attach(&launched.session);
        let url = room.url();
        launched.control_room = Some(room);
        Ok(url)
    })?
}

/// With `previews`, a preview tap on each video output of `desc` (see
/// [`streamlib_ui::add_previews`]).
#[cfg(feature = "ui")]
fn preview_taps(
    previews: bool,
    desc: &mut streamlib_launch::PipelineDesc,
    registry: &Registry,
) -> Vec<streamlib_ui::PreviewTap> {
    if previews {
        streamlib_ui::add_previews(desc, registry)
    } else {
        Vec::new()
    }
}

/// Without the `ui` feature there are no previews to show: no taps.
#[cfg(not(feature = "ui"))]
fn preview_taps(_: bool, _: &mut streamlib_launch::PipelineDesc, _: &Registry) -> Vec<()> {
    Vec::new()
}

/// Without the `ui` feature there is no control room to open.
#[cfg(not(feature = "ui"))]
fn control_room_url(_: &Pipelines, _: &str) -> Result<String, String> {
    Err("this streamlib was built without the control room (feature `ui`)".to_owned())
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for StreamlibServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("streamlib", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves MCP on stdin/stdout until the client disconnects, then stops every pipeline it left
/// running. Pipelines reach only what `policy` allows; `limits` bound what one connection
/// may use.
pub fn serve(registry: Registry, policy: Policy, limits: Limits) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pipelines = Arc::new(Pipelines::default());
    let server = StreamlibServer::new(registry, policy, limits, Arc::clone(&pipelines));
    let served = runtime.block_on(async move {
        // Non-blocking pipes when the client spawned us with pipes (the usual case), so a
        // signal can end the read; the blocking stdin handle otherwise.
        let service = server.serve(rmcp::transport::stdio_pipes()).await?;
        let cancel = service.cancellation_token();
        tokio::spawn(async move {
            terminated().await;
            tracing::info!("terminated by a signal");
            cancel.cancel();
        });
        let reason = service.waiting().await?;
        tracing::info!("MCP client gone ({reason:?})");
        anyhow::Ok(())
    });
    // Nothing is admitted from here on; what runs is stopped now (files finalized, threads
    // joined).
    for (id, launched) in pipelines.close() {
        if let Err(e) = stop(launched) {
            tracing::error!("stopping {id}: {e}");
        }
    }
    // Blocking work still in flight (a launch half done) may finish: the session it returns is
    // dropped with its task, and dropping a session stops it. A stdin read that cannot be
    // cancelled is abandoned after the timeout.
    runtime.shutdown_timeout(DRAIN_TIMEOUT);
    served
}

/// Resolves on SIGINT or SIGTERM (how clients end a server that does not leave when its stdin
/// closes), so that the pipelines are still stopped cleanly; never resolves if the handlers
/// cannot be installed.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A launch abandoned at its time limit keeps its slot until its work ends: the limit
    /// holds against an agent that launches slow pipelines with a short timeout.
    #[test]
    fn abandoned_work_keeps_its_slot_until_it_ends() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            panic!("no tokio runtime");
        };
        let pipelines = Pipelines::default();
        let Ok(slot) = pipelines.reserve(1) else {
            panic!("the first slot is free");
        };
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let answer = runtime.block_on(blocking(Duration::from_millis(10), move || {
            finished.recv().ok();
            slot
        }));
        assert!(answer.is_err(), "the call was abandoned");
        assert!(pipelines.reserve(1).is_err(), "abandoned work still counts");
        finish.send(()).ok();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pipelines.taken() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the slot was never given back"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(pipelines.reserve(1).is_ok());
    }
}
