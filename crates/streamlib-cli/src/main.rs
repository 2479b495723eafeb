//! `streamlib`: run, inspect and graph pipelines from the shell, and serve them to AI agents
//! over MCP.
//!
//! ```text
//! streamlib launch "testpattern size=1920x1080 ! blur sigma=2 ! null" --clock free --frames 600 --stats
//! streamlib inspect [NAME] [--json]
//! streamlib graph "<pipeline>" [--dot|--json]
//! streamlib mcp
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results"
)]

mod inspect;
mod mcp;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Instant;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamlib_launch::{
    ClockKind, LaunchOptions, PipelineDesc, Policy, Registry, Session, dry_run, parse,
    stats_json_with_reports,
};

#[derive(Parser)]
#[command(
    name = "streamlib",
    version,
    about = "Composable realtime streaming pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The pipeline's rate and whether negotiation may convert.
#[derive(clap::Args)]
struct RateArgs {
    /// Ticks per second. Without it, the rate the sources fix (a 25 fps file runs at 25,
    /// 30000/1001 stays exact; sources that disagree are an error listing them), else 30.
    #[arg(long)]
    fps: Option<f64>,
    /// Whether negotiation may insert format converters (convert, scale, videorate) where
    /// a link's formats differ (a warning names each); `--auto-convert false` makes each
    /// such link an error instead.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_convert: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a pipeline until N frames, end of stream or Ctrl-C, then prints per-handler stats.
    ///
    /// Exit status: 0 when every handler ran without error; 1 when a handler failed (it is
    /// named, with its error, on stderr); 2 when the pipeline could not be built or started.
    Launch {
        /// The pipeline, e.g. "testpattern ! blur sigma=2 ! display" (or JSON with --from-json).
        pipeline: String,
        #[command(flatten)]
        rate: RateArgs,
        /// Stop after this many ticks.
        #[arg(long)]
        frames: Option<u64>,
        /// software: realtime; free: as fast as the pipeline goes (offline, benchmarks);
        /// ptp: ticks on a PTP grandmaster's TAI frame boundaries (needs --ptp-interface).
        #[arg(long, value_enum, default_value_t = ClockArg::Software)]
        clock: ClockArg,
        /// The interface PTP runs on (`eth0`, or an IPv4 address), with --clock ptp.
        #[arg(long)]
        ptp_interface: Option<String>,
        /// Print per-handler statistics at the end.
        #[arg(long)]
        stats: bool,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
        /// The pipeline argument is the JSON form.
        #[arg(long)]
        from_json: bool,
        /// Serve every `hlssink` over HTTP at ADDR (`PORT`, `:PORT` or `HOST:PORT`; loopback
        /// unless a host is named): `http://ADDR/index.m3u8`, or `http://ADDR/NAME/index.m3u8`
        /// with several. An `hlssink` with its own `serve=` keeps it.
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
        /// Serve the control room of the running pipeline at `http://ADDR/` (`PORT`, `:PORT`
        /// or `HOST:PORT`; loopback unless a host is named).
        #[arg(long, value_name = "ADDR")]
        ui: Option<String>,
        #[command(flatten)]
        folders: Folders,
    },
    /// Lists the registered handlers, or shows one handler's ports and properties.
    Inspect {
        /// A handler name.
        name: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Prints the validated, negotiated graph: every link's caps, and the transfers and
    /// converters negotiation inserted and why. The handlers are built (files probed, under
    /// the same folder policy as `launch`) but nothing starts: no frame is made or written.
    /// With --dry-run, stand-ins are built instead (no file opened, no socket bound) and the
    /// caps stay undetermined.
    Graph {
        /// The pipeline.
        pipeline: String,
        #[command(flatten)]
        rate: RateArgs,
        /// Negotiate stand-ins instead of the handlers: nothing is opened or bound.
        #[arg(long)]
        dry_run: bool,
        /// Graphviz DOT.
        #[arg(long, conflicts_with = "json")]
        dot: bool,
        /// The negotiated graph as JSON.
        #[arg(long)]
        json: bool,
        /// Print the description (as written) as JSON instead: the form programs build.
        #[arg(long, conflicts_with_all = ["dot", "json"])]
        desc_json: bool,
        /// The pipeline argument is the JSON form.
        #[arg(long)]
        from_json: bool,
        #[command(flatten)]
        folders: Folders,
    },
    /// Serves the MCP protocol on stdin/stdout: tools to list, validate, launch, watch, tune
    /// and stop pipelines. The agent's pipelines read and write no file until --allow-read /
    /// --allow-write name folders, and stay on loopback until --allow-network; crash tests
    /// (identity abort-after=, segfault-after=) run only @process until --allow-crash-tests.
    Mcp {
        #[command(flatten)]
        folders: Folders,
        /// Let pipelines send to, bind and join any address, not only loopback.
        #[arg(long)]
        allow_network: bool,
        /// Let crash tests (identity abort-after=, segfault-after=) end this server's process,
        /// not only an @process element's child.
        #[arg(long)]
        allow_crash_tests: bool,
        /// The most pipelines one connection may run at once.
        #[arg(long, default_value_t = 8)]
        max_pipelines: usize,
        /// How long one tool call may take, in seconds.
        #[arg(long, default_value_t = 30)]
        tool_timeout: u64,
    },
}

/// The folders a pipeline may use beyond the default (`launch`, `graph`: the current folder;
/// `mcp`: none).
#[derive(Args)]
struct Folders {
    /// Let pipelines read files inside DIR (repeatable).
    #[arg(long, value_name = "DIR")]
    allow_read: Vec<PathBuf>,
    /// Let pipelines create and replace files inside DIR (repeatable).
    #[arg(long, value_name = "DIR")]
    allow_write: Vec<PathBuf>,
}

impl Folders {
    /// `base` plus these folders.
    fn policy(&self, base: Policy) -> anyhow::Result<Policy> {
        let mut policy = base;
        for dir in &self.allow_read {
            policy = policy.allow_read(dir)?;
        }
        for dir in &self.allow_write {
            policy = policy.allow_write(dir)?;
        }
        Ok(policy)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ClockArg {
    Software,
    Free,
    Ptp,
}

fn describe(pipeline: &str, from_json: bool) -> anyhow::Result<PipelineDesc> {
    Ok(if from_json {
        PipelineDesc::from_json(pipeline)?
    } else {
        parse(pipeline)?
    })
}

fn main() -> ExitCode {
    // Started as a `@process` worker (the parent set its environment): run the handler the
    // parent names and exit, before any argument parsing or output.
    #[cfg(feature = "process")]
    if streamlib_launch::process::is_worker() {
        return streamlib_launch::process::run_worker(&Registry::builtin());
    }
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Mcp { .. });
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "error" } else { "warn" })
            }),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--serve ADDR`: gives every `hlssink` without its own `serve=` the address, each under its
/// element name when there are several.
fn serve_hls(desc: &mut PipelineDesc, addr: &str) {
    let sinks = desc
        .elements
        .iter()
        .filter(|e| e.handler == "hlssink" && !e.properties.contains_key("serve"))
        .count();
    for element in &mut desc.elements {
        if element.handler != "hlssink" || element.properties.contains_key("serve") {
            continue;
        }
        element
            .properties
            .insert("serve".to_owned(), addr.to_owned());
        if sinks > 1 {
            element
                .properties
                .insert("serve-path".to_owned(), format!("/{}", element.name));
        }
    }
}

/// `--ui ADDR`: binds the control room before the pipeline starts (so a bad or busy address
/// fails first) and adds a preview tap (`webrtcsink`) on each video output of `desc`. It is
/// served while the pipeline runs and stopped when dropped.
#[cfg(feature = "ui")]
fn control_room(
    addr: Option<&str>,
    desc: &mut PipelineDesc,
    registry: &Registry,
) -> anyhow::Result<Option<streamlib_ui::ControlRoom>> {
    let Some(addr) = addr else { return Ok(None) };
    let mut room = streamlib_ui::ControlRoom::bind(addr)?;
    let taps = room.add_previews(desc, registry);
    if !taps.is_empty() {
        let sources: Vec<&str> = taps.iter().map(|t| t.source.as_str()).collect();
        eprintln!("preview taps (webrtcsink) on {}", sources.join(", "));
    }
    Ok(Some(room))
}

/// Shows the started `session` in the control room, and says where.
#[cfg(feature = "ui")]
fn show_control_room(room: Option<&streamlib_ui::ControlRoom>, session: &Session) {
    if let Some(room) = room {
        room.attach(session);
        eprintln!("control room: {}", room.url());
    }
}

/// Without the `ui` feature, `--ui` is an error that says so.
#[cfg(not(feature = "ui"))]
fn control_room(
    addr: Option<&str>,
    _desc: &mut PipelineDesc,
    _registry: &Registry,
) -> anyhow::Result<Option<()>> {
    match addr {
        Some(_) => anyhow::bail!("--ui needs the `ui` feature of streamlib-cli"),
        None => Ok(None),
    }
}

#[cfg(not(feature = "ui"))]
fn show_control_room(_room: Option<&()>, _session: &Session) {}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let registry = Registry::builtin();
    match cli.command {
        Command::Launch {
            pipeline,
            rate,
            frames,
            clock,
            ptp_interface,
            stats,
            json,
            from_json,
            serve,
            ui,
            folders,
        } => {
            let mut desc = describe(&pipeline, from_json)?;
            if let Some(serve) = &serve {
                serve_hls(&mut desc, serve);
            }
            let policy = folders.policy(Policy::current_dir()?)?;
            let options = LaunchOptions {
                ptp_interface,
                fps: rate.fps,
                auto_convert: rate.auto_convert,
                clock: match clock {
                    ClockArg::Software => ClockKind::Software,
                    ClockArg::Free => ClockKind::Free,
                    ClockArg::Ptp => ClockKind::Ptp,
                },
                frames,
            };
            let room = control_room(ui.as_deref(), &mut desc, &registry)?;
            let started = Instant::now();
            let mut session = Session::start_with(&registry, &desc, options, &policy)?;
            show_control_room(room.as_ref(), &session);
            let result = session.wait()?;
            let secs = started.elapsed().as_secs_f64();
            // Exit 1 when a handler failed (left failed, or errors along the way): the run did
            // not do what it was asked. Each failed handler is named with its error.
            let mut failed = result.streams.iter().any(|s| s.errors > 0 || s.panics > 0);
            // Nothing is rejected in silence: each rejecting handler is named, and one that
            // rejected everything it received fails the run.
            for stream in result.rejecting() {
                let all = stream.rejected() >= stream.items_in;
                eprintln!(
                    "warning: handler '{}' ({}) rejected {} of the {} items it received{}",
                    stream.id,
                    stream.handler,
                    stream.rejected(),
                    stream.items_in,
                    if all { ": it used none" } else { "" }
                );
                failed |= all;
            }
            for stream in result.failed() {
                eprintln!(
                    "error: handler '{}' ({}) failed: {}",
                    stream.id,
                    stream.handler,
                    stream.last_error.as_deref().unwrap_or("no message")
                );
            }
            if json {
                let json = stats_json_with_reports(&result, session.controls());
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                if stats {
                    println!("{result}");
                }
                println!(
                    "{} ticks in {secs:.2} s ({:.1} per second)",
                    result.clock_ticks,
                    result.clock_ticks as f64 / secs.max(1e-9)
                );
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Inspect { name, json } => {
            print!("{}", inspect::render(&registry, name.as_deref(), json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph {
            pipeline,
            rate,
            dry_run: stand_ins,
            dot,
            json,
            desc_json,
            from_json,
            folders,
        } => {
            let desc = describe(&pipeline, from_json)?;
            if desc_json {
                println!("{}", desc.to_json());
                return Ok(ExitCode::SUCCESS);
            }
            // Validated and negotiated with stand-ins for the handlers: nothing is built.
            let policy = folders.policy(Policy::current_dir()?)?;
            let graph = if stand_ins {
                dry_run(&registry, &desc, &policy)?
            } else {
                let options = LaunchOptions {
                    fps: rate.fps,
                    auto_convert: rate.auto_convert,
                    ..LaunchOptions::default()
                };
                Session::negotiated_graph(&registry, &desc, &options, &policy)?
            };
            if dot {
                print!("{}", graph.to_dot());
            } else if json {
                println!("{}", graph.to_json());
            } else {
                println!("{}", desc.to_text());
                for edge in &graph.edges {
                    let via: Vec<&str> = edge
                        .transfer
                        .iter()
                        .chain(&edge.converters)
                        .map(String::as_str)
                        .collect();
                    let via = if via.is_empty() {
                        String::new()
                    } else {
                        format!(" via {} (inserted)", via.join(" -> "))
                    };
                    println!(
                        "  {} -> {} [{}] {}{via}",
                        edge.from, edge.to, edge.memory, edge.caps
                    );
                }
                for node in graph.nodes.iter().filter(|n| n.inserted.is_some()) {
                    if let Some(why) = &node.inserted {
                        println!("  inserted {} ({}): {why}", node.name, node.handler);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp {
            folders,
            allow_network,
            allow_crash_tests,
            max_pipelines,
            tool_timeout,
        } => {
            let policy = folders.policy(
                Policy::confined()
                    .allow_network(allow_network)
                    .allow_crash_tests(allow_crash_tests),
            )?;
            let limits = mcp::Limits {
                pipelines: max_pipelines,
                tool_call: std::time::Duration::from_secs(tool_timeout),
            };
            mcp::serve(registry, policy, limits)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
