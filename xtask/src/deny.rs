//! `cargo xtask deny`: licences, bans and sources, when cargo-deny is installed.
//!
//! The rules are in `deny.toml` at the workspace root. Advisories are not checked: the advisory
//! database is fetched from the network, which these machines cannot reach.

use anyhow::Result;

use crate::command::Command;

/// Whether the check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// cargo-deny ran and found nothing to deny.
    Checked,
    /// cargo-deny is not installed; nothing was checked.
    Skipped,
}

/// Runs `cargo deny check licenses bans sources`, or explains why it was skipped.
pub fn run() -> Result<Outcome> {
    let version = Command::cargo().args(["deny", "--version"]).probe()?;
    let Some(version) = version else {
        println!(
            "deny: SKIPPED: cargo-deny is not installed, so licences, bans and sources were not \
             checked. It is not installed by `cargo xtask setup` because building it takes \
             minutes on every fresh CI machine; run `cargo install --locked cargo-deny` to \
             check locally. (Advisories are never checked here: their database cannot be \
             fetched on these machines.)"
        );
        return Ok(Outcome::Skipped);
    };
    println!("deny: using {}", version.trim());
    Command::cargo()
        .args(["deny", "check", "licenses", "bans", "sources"])
        .run()?;
    Ok(Outcome::Checked)
}
