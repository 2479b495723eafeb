//! `cargo xtask demo [basic|advanced] [--headless] [--frames N] [--out DIR] [--size WxH]
//! [--fps F] [--debug]`: builds and runs a demo example (optimised unless `--debug`).

use anyhow::{Result, bail};

use crate::command::Command;

/// The demos there are, and the example each runs.
const DEMOS: &[(&str, &str)] = &[
    ("basic", "demo_basic"),
    ("advanced", "demo_advanced"),
    ("files", "demo_files"),
    ("gpu", "demo_gpu"),
];

/// Splits the arguments into the demo's name and the options passed through to it.
fn parse(args: &[String]) -> Result<(&'static str, bool, Vec<String>)> {
    let mut example = "demo_advanced";
    let mut debug = false;
    let mut rest = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i == 0
            && !arg.starts_with('-')
            && let Some((_, ex)) = DEMOS.iter().find(|(name, _)| name == arg)
        {
            example = ex;
            continue;
        }
        if i == 0 && !arg.starts_with('-') {
            let names: Vec<&str> = DEMOS.iter().map(|(n, _)| *n).collect();
            bail!("unknown demo '{arg}'; demos: {}", names.join(", "));
        }
        if arg == "--debug" {
            debug = true;
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((example, debug, rest))
}

/// Runs the demo; its exit status becomes ours: 0 only when the pipeline held its frame rate
/// (nothing lost at the sink or in the file), 3 when it ran but did not (load: `.ci/run`
/// tolerates it), 4 when a handler failed and was left failed (a defect: the handler and its
/// error are named in the log and in `summary.json`'s `failed`), anything else for a crash.
pub fn run(args: &[String]) -> Result<()> {
    let (example, debug, rest) = parse(args)?;
    let code = Command::cargo()
        .arg("run")
        .args((!debug).then_some("--release"))
        // FFmpeg file I/O is built in so the files demo works and headless demos write MP4s;
        // the GPU demo adds wgpu.
        .args([
            "-p",
            "streamlib",
            "--features",
            if example == "demo_gpu" {
                "file,gpu"
            } else {
                "file"
            },
            "--example",
            example,
            "--",
        ])
        .args(rest)
        .run_for_code()?;
    if code != 0 {
        eprintln!("demo exited with status {code}");
        std::process::exit(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_to_advanced_and_passes_options_through() -> Result<()> {
        let (example, debug, rest) = parse(&words("--headless --frames 10"))?;
        assert_eq!((example, debug), ("demo_advanced", false));
        assert_eq!(rest, words("--headless --frames 10"));
        let (example, debug, rest) = parse(&words("basic --debug --size 320x240"))?;
        assert_eq!((example, debug), ("demo_basic", true));
        assert_eq!(rest, words("--size 320x240"));
        Ok(())
    }

    #[test]
    fn unknown_demo_lists_the_known_ones() {
        let err = parse(&words("fancy")).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown demo 'fancy'; demos: basic, advanced, files, gpu")
        );
    }
}
