//! `cargo xtask ci`: the whole gate, as `.ci/run` runs it after `cargo xtask setup`.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::{deny, features, lint, test};

/// A stage of the gate; `Ok(false)` means it passed only because it was skipped.
type Stage = fn() -> Result<bool>;

/// The stages, cheapest failure first.
const STAGES: &[(&str, Stage)] = &[
    ("lint", || lint::run().map(|()| true)),
    ("features", || features::run().map(|()| true)),
    ("test", || test::run().map(|()| true)),
    ("deny", || {
        deny::run().map(|outcome| outcome == deny::Outcome::Checked)
    }),
];

/// What became of one stage.
enum Outcome {
    /// It succeeded after this long.
    Passed(Duration),
    /// It passed without checking anything (a missing optional tool), after this long.
    Skipped(Duration),
    /// It failed after this long.
    Failed(Duration),
    /// An earlier stage failed and `--keep-going` was not given.
    NotRun,
}

/// Runs lint, features, test and deny in order. Without `keep_going` it stops at the first failure;
/// with it, every stage runs. Either way a summary is printed and any failure fails the run.
pub fn run(keep_going: bool) -> Result<()> {
    let mut outcomes = Vec::new();
    let mut stopped = false;
    for &(name, stage) in STAGES {
        if stopped {
            outcomes.push((name, Outcome::NotRun));
            continue;
        }
        println!("\n==> ci: {name}");
        let start = Instant::now();
        let result = stage();
        let elapsed = start.elapsed();
        match result {
            Ok(true) => outcomes.push((name, Outcome::Passed(elapsed))),
            Ok(false) => outcomes.push((name, Outcome::Skipped(elapsed))),
            Err(error) => {
                eprintln!("ci: {name} failed: {error:#}");
                outcomes.push((name, Outcome::Failed(elapsed)));
                stopped = !keep_going;
            }
        }
    }
    println!("\nci summary:");
    for (name, outcome) in &outcomes {
        let (verdict, time) = match outcome {
            Outcome::Passed(elapsed) => ("pass", format_duration(*elapsed)),
            Outcome::Skipped(elapsed) => ("skipped", format_duration(*elapsed)),
            Outcome::Failed(elapsed) => ("FAIL", format_duration(*elapsed)),
            Outcome::NotRun => ("not run", String::new()),
        };
        let line = format!("  {name:<8} {verdict:<8} {time}");
        println!("{}", line.trim_end());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Failed(_)))
        .map(|(name, _)| *name)
        .collect();
    if !failed.is_empty() {
        bail!("ci failed: {}", failed.join(", "));
    }
    println!("ci: no stage failed");
    Ok(())
}

/// `83.2s` → `1m 23s`; under a minute, tenths of a second.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_for_the_summary() {
        assert_eq!(format_duration(Duration::from_millis(3_460)), "3.5s");
        assert_eq!(format_duration(Duration::from_secs(83)), "1m 23s");
        assert_eq!(format_duration(Duration::from_secs(3_600)), "60m 00s");
    }
}
