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

use clap::{Parser, Subcommand, ValueEnum};
use streamlib_clock::ManualClock;
use streamlib_launch::{
    ClockKind, LaunchOptions, PipelineDesc, Registry, Session, build, fps_rational, parse,
    stats_json_with_reports,
};
use streamlib_runtime::StreamRuntime;

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

#[derive(Subcommand)]
enum Command {
    /// Runs a pipeline until N frames, end of stream or Ctrl-C, then prints per-handler stats.
    ///
    /// Exit status: 0 when every handler ran without error; 1 when a handler failed (it is
    /// named, with its error, on stderr); 2 when the pipeline could not be built or started.
    Launch {
        /// The pipeline, e.g. "testpattern ! blur sigma=2 ! display" (or JSON with --from-json).
        pipeline: String,
        /// Ticks per second.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
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
    },
    /// Lists the registered handlers, or shows one handler's ports and properties.
    Inspect {
        /// A handler name.
        name: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Prints the validated, negotiated graph (auto-inserted transfers included) without
    /// running it: no tick is issued, but the handlers are built (a network sender writes its
    /// SDP, a receiver binds its socket, a GPU handler opens the GPU).
    Graph {
        /// The pipeline.
        pipeline: String,
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
    },
    /// Serves the MCP protocol on stdin/stdout: tools to list, validate, launch, watch, tune
    /// and stop pipelines.
    Mcp,
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
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Mcp);
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    #[allow(unused_mut, reason = "only the gpu feature adds to it")]
    let mut registry = Registry::builtin();
    #[cfg(feature = "gpu")]
    streamlib::gpu::register_launch(&mut registry);
    match cli.command {
        Command::Launch {
            pipeline,
            fps,
            frames,
            clock,
            ptp_interface,
            stats,
            json,
            from_json,
        } => {
            let desc = describe(&pipeline, from_json)?;
            let options = LaunchOptions {
                ptp_interface,
                fps,
                clock: match clock {
                    ClockArg::Software => ClockKind::Software,
                    ClockArg::Free => ClockKind::Free,
                    ClockArg::Ptp => ClockKind::Ptp,
                },
                frames,
            };
            let started = Instant::now();
            let mut session = Session::start(&registry, &desc, options)?;
            let result = session.wait()?;
            let secs = started.elapsed().as_secs_f64();
            let failed = result.streams.iter().any(|s| s.errors > 0 || s.panics > 0);
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
            dot,
            json,
            desc_json,
            from_json,
        } => {
            let desc = describe(&pipeline, from_json)?;
            if desc_json {
                println!("{}", desc.to_json());
                return Ok(ExitCode::SUCCESS);
            }
            // A clock that never ticks: the graph is built and negotiated, never run.
            let (clock, _never) = ManualClock::new(fps_rational(30.0)?);
            let built = build(&registry, &desc, StreamRuntime::new(clock))?;
            if dot {
                print!("{}", built.graph.to_dot());
            } else if json {
                println!("{}", built.graph.to_json());
            } else {
                println!("{}", desc.to_text());
            // Exit 1 when a handler failed (left failed, or errors along the way): the run did
            // not do what it was asked. Each failed handler is named with its error.
                for edge in &built.graph.edges {
            for stream in result.failed() {
                eprintln!(
                    "error: handler '{}' ({}) failed: {}",
                    stream.id,
                    stream.handler,
                    stream.last_error.as_deref().unwrap_or("no message")
                );
            }
                    match &edge.transfer {
                        Some(t) => println!(
                            "  {} -> {} [{}] via {t} (inserted)",
                            edge.from, edge.to, edge.memory
                        ),
                        None => println!("  {} -> {} [{}]", edge.from, edge.to, edge.memory),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp => {
            mcp::serve(registry)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
