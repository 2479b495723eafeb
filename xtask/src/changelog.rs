//! `cargo xtask changelog`: CHANGELOG.md keeps the shape its header promises.
//!
//! An `## [Unreleased]` section comes first, its entries under Keep a Changelog's headings
//! (Added, Changed, Deprecated, Removed, Fixed, Security), each entry a `- ` line. What it
//! cannot check is that a change wrote its line: that is review's job, and the header asks it.

use std::fs;

use anyhow::{Context, Result, bail};

use crate::workspace;

/// The headings an entry may stand under.
const KINDS: &[&str] = &[
    "Added",
    "Changed",
    "Deprecated",
    "Removed",
    "Fixed",
    "Security",
];

/// Checks the workspace's CHANGELOG.md.
pub fn run() -> Result<()> {
    let path = workspace::root()?.join("CHANGELOG.md");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let entries = check(&text).with_context(|| format!("in {}", path.display()))?;
    println!("changelog: {entries} entries under Unreleased");
    Ok(())
}

/// The number of entries under Unreleased, or what is wrong with the file.
fn check(text: &str) -> Result<usize> {
    let mut sections = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("## "));
    let Some((start, first)) = sections.next() else {
        bail!("no `## ` release section");
    };
    if first.trim() != "## [Unreleased]" {
        bail!("the first section is `{first}`, not `## [Unreleased]`");
    }
    let end = sections.next().map_or(usize::MAX, |(i, _)| i);
    let mut kind = None;
    let mut entries = 0;
    for (number, line) in text.lines().enumerate().take(end).skip(start + 1) {
        if let Some(heading) = line.strip_prefix("### ") {
            if !KINDS.contains(&heading.trim()) {
                bail!(
                    "line {}: `### {heading}` is not one of {}",
                    number + 1,
                    KINDS.join(", ")
                );
            }
            kind = Some(heading);
        } else if line.starts_with("- ") {
            if kind.is_none() {
                bail!("line {}: an entry before any `### ` heading", number + 1);
            }
            entries += 1;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_shape_and_counts_entries() -> Result<()> {
        let text = "# Changelog\n\n## [Unreleased]\n\n### Added\n- a\n- b\n  more\n\n\
                    ### Fixed\n- c\n\n## 0.1.0\n\n### Added\n- old\n";
        assert_eq!(check(text)?, 3);
        Ok(())
    }

    #[test]
    fn refuses_what_breaks_it() {
        assert!(check("# Changelog\n").is_err(), "no section");
        assert!(
            check("## 0.1.0\n### Added\n- a\n").is_err(),
            "no Unreleased first"
        );
        assert!(
            check("## [Unreleased]\n### Improved\n- a\n").is_err(),
            "unknown kind"
        );
        assert!(
            check("## [Unreleased]\n- a\n").is_err(),
            "entry without kind"
        );
    }
}
