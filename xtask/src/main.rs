//! The streamlib task runner, reached as `cargo xtask <task>` through the alias in
//! `.cargo/config.toml`.
//!
//! Every check CI runs is a task here, so a developer runs exactly what CI runs:
//! `cargo xtask ci` locally is `.ci/run` minus the machine setup. Each task lives in its own
//! module; `cargo xtask help` lists them.

// An xtask is a command-line tool whose whole job is to tell a person what it ran and what went
// wrong; the workspace-wide print lints exist to keep printing out of library code, not out of this.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod changelog;
mod ci;
mod command;
mod demo;
mod deny;
mod deps;
mod features;
mod fuzz;
mod layers;
mod lint;
mod loom;
mod msrv;
mod python;
mod setup;
mod test;
mod workspace;

use std::process::ExitCode;

use anyhow::{Result, bail};

/// A task as `cargo xtask help` shows it.
struct Task {
    /// What follows `cargo xtask`.
    usage: &'static str,
    /// One line on what it does.
    summary: &'static str,
}

/// Every task, in the order `help` lists them.
const TASKS: &[Task] = &[
    Task {
        usage: "ci [--keep-going]",
        summary: "lint, features, test and deny in order; --keep-going runs all and prints a summary",
    },
    Task {
        usage: "lint",
        summary: "fmt, clippy, rustdoc, each crate with --no-default-features, layers, deps",
    },
    Task {
        usage: "test",
        summary: "all tests, benches in test mode and doc tests (extra args: STREAMLIB_TEST_ARGS)",
    },
    Task {
        usage: "py",
        summary: "build the Python package into its venv (maturin develop) and run its pytest suite (part of test)",
    },
    Task {
        usage: "loom",
        summary: "model-check streamlib-buffers' lock-free code under loom (part of test)",
    },
    Task {
        usage: "fuzz TARGET [SECONDS]",
        summary: "run one fuzz target long (libFuzzer via cargo-bolero, else random inputs)",
    },
    Task {
        usage: "layers",
        summary: "no crate depends on its own or a higher layer of docs/ARCHITECTURE.md",
    },
    Task {
        usage: "deps",
        summary: "tokio, wgpu and FFmpeg stay out of the crates that must not carry them",
    },
    Task {
        usage: "msrv",
        summary: "the declared rust-version covers dependencies and language features (part of lint)",
    },
    Task {
        usage: "changelog",
        summary: "CHANGELOG.md starts with Unreleased, entries under Keep a Changelog headings (part of lint)",
    },
    Task {
        usage: "features",
        summary: "cargo hack --each-feature over the facade, launch and handler crates (part of ci)",
    },
    Task {
        usage: "deny",
        summary: "cargo deny check licenses bans sources (skipped when cargo-deny is missing)",
    },
    Task {
        usage: "setup",
        summary: "install the Debian packages this machine lacks (or print the command), the test peers, the Python venv",
    },
    Task {
        usage: "bench [ARGS...]",
        summary: "cargo bench --workspace, passing ARGS through",
    },
    Task {
        usage: "demo [basic|advanced] [--headless] [--frames N] [--out DIR] [--size WxH] [--fps F] [--debug]",
        summary: "run a demo (default advanced); headless writes PNGs + stats, exit 0 if it held its rate",
    },
    Task {
        usage: "help",
        summary: "this list",
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line by hand (a dependency for nine words is not worth it) and runs the task.
fn run() -> Result<()> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| anyhow::anyhow!("argument {arg:?} is not valid UTF-8"))
        })
        .collect::<Result<Vec<_>>>()?;
    let Some((task, rest)) = args.split_first() else {
        print_help();
        bail!("no task given");
    };
    match task.as_str() {
        "ci" => match rest {
            [] => ci::run(false),
            [flag] if flag == "--keep-going" => ci::run(true),
            _ => bail!("usage: cargo xtask ci [--keep-going] (got {rest:?})"),
        },
        "lint" => no_arguments(task, rest).and_then(|()| lint::run()),
        "test" => no_arguments(task, rest).and_then(|()| test::run()),
        "py" => no_arguments(task, rest).and_then(|()| python::test()),
        "loom" => no_arguments(task, rest).and_then(|()| loom::run()),
        "layers" => no_arguments(task, rest).and_then(|()| layers::run()),
        "deps" => no_arguments(task, rest).and_then(|()| deps::run()),
        "msrv" => no_arguments(task, rest).and_then(|()| msrv::run()),
        "changelog" => no_arguments(task, rest).and_then(|()| changelog::run()),
        "features" => no_arguments(task, rest).and_then(|()| features::run()),
        "deny" => no_arguments(task, rest).and_then(|()| deny::run().map(drop)),
        "setup" => no_arguments(task, rest).and_then(|()| setup::run()),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "demo" => demo::run(rest),
        "help" | "-h" | "--help" => {
            print_help();
            Ok(())
        }
        other => {
            print_help();
            bail!("unknown task `{other}`")
        }
    }
}

/// Refuses arguments for a task that takes none, rather than silently ignoring a typo.
fn no_arguments(task: &str, rest: &[String]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        bail!("`cargo xtask {task}` takes no arguments (got {rest:?})")
    }
}

fn print_help() {
    println!("usage: cargo xtask <task>\n\ntasks:");
    let width = TASKS.iter().map(|task| task.usage.len()).max().unwrap_or(0);
    for task in TASKS {
        println!("  {:width$}  {}", task.usage, task.summary);
    }
}
