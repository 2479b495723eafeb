//! `cargo xtask layers`: no workspace crate depends on a crate of its own or a higher layer.
//!
//! The layer order is written once, as a table in `docs/ARCHITECTURE.md`; this task reads it and
//! checks it against the dependencies `cargo metadata` reports, so the document and the code
//! cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;

use anyhow::{Context, Result, bail};

use crate::workspace::{self, DependencyKind, Package};

/// Where the layer table lives, relative to the workspace root.
const ARCHITECTURE: &str = "docs/ARCHITECTURE.md";

/// Workspace packages that are tools, not part of the SDK, and so have no layer.
const EXEMPT: &[&str] = &["xtask"];

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// 0 is the bottom: crates that depend on nothing in the workspace.
    pub layer: u32,
    /// The crate's package name.
    pub krate: String,
    /// The table's "May depend on" cell, shown back to the reader; the rule itself only looks
    /// at layer numbers.
    pub may_depend_on: String,
}

/// Something wrong with the layering.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A crate depends on a crate of the same or a higher layer.
    Violation {
        /// The depending crate.
        from: String,
        /// Its layer.
        from_layer: u32,
        /// The depended-on crate.
        to: String,
        /// Its layer, not lower than `from_layer`.
        to_layer: u32,
    },
    /// A workspace crate has no row in the table.
    Unlisted(String),
    /// The table names a crate the workspace does not have.
    Unknown(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Violation {
                from,
                from_layer,
                to,
                to_layer,
            } => write!(
                f,
                "{from} (layer {from_layer}) depends on {to} (layer {to_layer})"
            ),
            Problem::Unlisted(krate) => write!(
                f,
                "{krate} is a workspace crate but has no row in the layer table of {ARCHITECTURE}"
            ),
            Problem::Unknown(krate) => write!(
                f,
                "{ARCHITECTURE} gives {krate} a layer, but the workspace has no such crate"
            ),
        }
    }
}

/// Runs the check, printing the table on success and every problem on failure.
pub fn run() -> Result<()> {
    let path = workspace::root()?.join(ARCHITECTURE);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("could not read the layer table in {}", path.display()))?;
    let rows = parse_table(&text)?;
    let packages = workspace::packages()?;
    let problems = check(&rows, &packages);
    if !problems.is_empty() {
        eprintln!("layer check failed:");
        for problem in &problems {
            eprintln!("  {problem}");
        }
        bail!(
            "{} layer problem(s); a crate may depend only on crates of a strictly lower layer \
             in {ARCHITECTURE}",
            problems.len()
        );
    }
    print_table(&rows, &packages);
    Ok(())
}

/// Reads every table row of the form `| 0 | \`crate\` | owns | may depend on |`, anywhere in
/// the document and in any order; other rows (headers, separators, prose tables) are skipped.
pub fn parse_table(markdown: &str) -> Result<Vec<LayerRow>> {
    let mut rows: Vec<LayerRow> = Vec::new();
    for (index, line) in markdown.lines().enumerate() {
        let Some(inner) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        let (Some(layer), Some(krate)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        let Some(krate) = backticked_name(krate) else {
            continue;
        };
        if let Some(earlier) = rows.iter().find(|row| row.krate == krate) {
            bail!(
                "{ARCHITECTURE} line {}: {krate} already has a row (layer {}); each crate is \
                 listed once",
                index + 1,
                earlier.layer
            );
        }
        rows.push(LayerRow {
            layer,
            krate: krate.to_owned(),
            may_depend_on: cells.get(3).copied().unwrap_or_default().to_owned(),
        });
    }
    if rows.is_empty() {
        bail!(
            "{ARCHITECTURE} has no layer table rows; expected rows like \
             `| 0 | `streamlib-buffers` | what it owns | nothing in the workspace |`"
        );
    }
    rows.sort_by(|a, b| (a.layer, &a.krate).cmp(&(b.layer, &b.krate)));
    Ok(rows)
}

/// `` `streamlib-clock` `` → `streamlib-clock`; anything else (prose, several names) → `None`.
fn backticked_name(cell: &str) -> Option<&str> {
    let name = cell.strip_prefix('`')?.strip_suffix('`')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then_some(name)
}

/// Applies the rule: every workspace crate (but the exempt tools) has exactly one row, the
/// table names only workspace crates, and each normal or build dependency on a workspace crate
/// points to a strictly lower layer. Dev-dependencies are not checked: a test or bench may
/// drive a crate through a higher layer without that reaching users.
pub fn check(rows: &[LayerRow], packages: &[Package]) -> BTreeSet<Problem> {
    let layers: BTreeMap<&str, u32> = rows
        .iter()
        .map(|row| (row.krate.as_str(), row.layer))
        .collect();
    let members: BTreeSet<&str> = packages
        .iter()
        .map(|package| package.name.as_str())
        .collect();
    let mut problems = BTreeSet::new();
    for package in packages {
        if !EXEMPT.contains(&package.name.as_str()) && !layers.contains_key(package.name.as_str()) {
            problems.insert(Problem::Unlisted(package.name.clone()));
        }
    }
    for row in rows {
        if !members.contains(row.krate.as_str()) {
            problems.insert(Problem::Unknown(row.krate.clone()));
        }
    }
    for (from, to) in checked_edges(packages) {
        // A crate without a row is already reported above; there is no layer to compare.
        let (Some(&from_layer), Some(&to_layer)) = (layers.get(from), layers.get(to)) else {
            continue;
        };
        if to_layer >= from_layer {
            problems.insert(Problem::Violation {
                from: from.to_owned(),
                from_layer,
                to: to.to_owned(),
                to_layer,
            });
        }
    }
    problems
}

/// Normal and build dependencies between workspace members, as (from, to), each pair once.
fn checked_edges(packages: &[Package]) -> BTreeSet<(&str, &str)> {
    edges(packages, |kind| kind != DependencyKind::Dev)
}

/// Dev-dependencies between workspace members that are not also normal or build dependencies.
fn dev_only_edges(packages: &[Package]) -> BTreeSet<(&str, &str)> {
    let checked = checked_edges(packages);
    edges(packages, |kind| kind == DependencyKind::Dev)
        .into_iter()
        .filter(|edge| !checked.contains(edge))
        .collect()
}

fn edges(packages: &[Package], keep: impl Fn(DependencyKind) -> bool) -> BTreeSet<(&str, &str)> {
    let members: BTreeSet<&str> = packages
        .iter()
        .map(|package| package.name.as_str())
        .collect();
    packages
        .iter()
        .flat_map(|package| {
            package
                .dependencies
                .iter()
                .filter(|dependency| keep(dependency.kind))
                .filter(|dependency| members.contains(dependency.name.as_str()))
                .map(|dependency| (package.name.as_str(), dependency.name.as_str()))
        })
        .collect()
}

fn print_table(rows: &[LayerRow], packages: &[Package]) {
    let checked = checked_edges(packages);
    let layer_of: BTreeMap<&str, u32> = rows
        .iter()
        .map(|row| (row.krate.as_str(), row.layer))
        .collect();
    let width = rows.iter().map(|row| row.krate.len()).max().unwrap_or(0);
    println!("layers ({ARCHITECTURE}), checked against cargo metadata:");
    println!("  layer  {:width$}  depends on (normal + build)", "crate");
    for row in rows {
        let depends_on: Vec<String> = checked
            .iter()
            .filter(|(from, _)| *from == row.krate)
            .map(|(_, to)| match layer_of.get(to) {
                Some(layer) => format!("{to} ({layer})"),
                None => (*to).to_owned(),
            })
            .collect();
        let depends_on = if depends_on.is_empty() {
            "nothing in the workspace".to_owned()
        } else {
            depends_on.join(", ")
        };
        println!("  {:>5}  {:width$}  {depends_on}", row.layer, row.krate);
    }
    let dev_only = dev_only_edges(packages);
    if dev_only.is_empty() {
        println!(
            "dev-dependencies are not checked (tests and benches may use any layer); none link workspace crates"
        );
    } else {
        let listed: Vec<String> = dev_only
            .iter()
            .map(|(from, to)| format!("{from} -> {to}"))
            .collect();
        println!(
            "dev-dependencies are not checked (tests and benches may use any layer): {}",
            listed.join(", ")
        );
    }
    let exempt: Vec<&str> = EXEMPT
        .iter()
        .copied()
        .filter(|name| packages.iter().any(|package| package.name == *name))
        .collect();
    if !exempt.is_empty() {
        println!("not layered (tools, not SDK crates): {}", exempt.join(", "));
    }
    println!(
        "ok: {} crates, {} workspace dependencies, each on a strictly lower layer",
        rows.len(),
        checked.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Dependency;

    const TABLE: &str = "\
# Architecture

Some prose with a | pipe | in it.

| Layer | Crate | Owns | May depend on |
|---|---|---|---|
| 1 | `streamlib-ports` | typed ports | buffers, clock |
|0|`streamlib-buffers`|ring buffers|nothing in the workspace|
  | 0 | `streamlib-clock` | clocks | nothing in the workspace |
| 2 | see below | prose | - |
| x | `not-a-layer` | prose | - |
";

    fn package(name: &str, dependencies: &[(&str, DependencyKind)]) -> Package {
        Package {
            name: name.to_owned(),
            dependencies: dependencies
                .iter()
                .map(|&(name, kind)| Dependency {
                    name: name.to_owned(),
                    kind,
                })
                .collect(),
        }
    }

    fn row(layer: u32, krate: &str) -> LayerRow {
        LayerRow {
            layer,
            krate: krate.to_owned(),
            may_depend_on: String::new(),
        }
    }

    #[test]
    fn parses_rows_in_any_order_and_skips_the_rest() -> Result<()> {
        let rows = parse_table(TABLE)?;
        let parsed: Vec<(u32, &str)> = rows
            .iter()
            .map(|row| (row.layer, row.krate.as_str()))
            .collect();
        assert_eq!(
            parsed,
            [
                (0, "streamlib-buffers"),
                (0, "streamlib-clock"),
                (1, "streamlib-ports"),
            ]
        );
        assert_eq!(rows[2].may_depend_on, "buffers, clock");
        Ok(())
    }

    #[test]
    fn rejects_a_crate_listed_twice() {
        let text = "| 0 | `a` | x | y |\n| 1 | `a` | x | y |\n";
        match parse_table(text) {
            Ok(rows) => panic!("accepted a duplicate: {rows:?}"),
            Err(error) => assert!(error.to_string().contains("line 2"), "{error}"),
        }
    }

    #[test]
    fn rejects_a_document_without_rows() {
        assert!(parse_table("# Architecture\n\nNo table yet.\n").is_err());
    }

    #[test]
    fn accepts_dependencies_on_lower_layers() {
        let rows = [row(0, "a"), row(0, "b"), row(1, "c"), row(2, "d")];
        let packages = [
            package("a", &[("libc", DependencyKind::Normal)]),
            package("b", &[]),
            package(
                "c",
                &[("a", DependencyKind::Normal), ("b", DependencyKind::Build)],
            ),
            package(
                "d",
                &[("a", DependencyKind::Normal), ("c", DependencyKind::Normal)],
            ),
            package("xtask", &[("serde_json", DependencyKind::Normal)]),
        ];
        assert_eq!(check(&rows, &packages), BTreeSet::new());
    }

    #[test]
    fn reports_same_and_higher_layer_dependencies() {
        let rows = [row(0, "a"), row(0, "b"), row(1, "c")];
        let packages = [
            package("a", &[("b", DependencyKind::Normal)]),
            package("b", &[("c", DependencyKind::Build)]),
            package("c", &[]),
        ];
        let problems: Vec<String> = check(&rows, &packages)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "a (layer 0) depends on b (layer 0)",
                "b (layer 0) depends on c (layer 1)",
            ]
        );
    }

    #[test]
    fn ignores_dev_dependencies() {
        let rows = [row(0, "a"), row(1, "b")];
        let packages = [
            package("a", &[("b", DependencyKind::Dev)]),
            package("b", &[("a", DependencyKind::Normal)]),
        ];
        assert_eq!(check(&rows, &packages), BTreeSet::new());
        assert_eq!(dev_only_edges(&packages), BTreeSet::from([("a", "b")]));
    }

    #[test]
    fn reports_a_dependency_once_even_if_declared_twice() {
        let rows = [row(0, "a"), row(0, "b")];
        let packages = [
            package(
                "a",
                &[("b", DependencyKind::Normal), ("b", DependencyKind::Build)],
            ),
            package("b", &[]),
        ];
        assert_eq!(check(&rows, &packages).len(), 1);
    }

    #[test]
    fn reports_unlisted_and_unknown_crates_but_not_xtask() {
        let rows = [row(0, "a"), row(1, "ghost")];
        let packages = [package("a", &[]), package("b", &[]), package("xtask", &[])];
        assert_eq!(
            check(&rows, &packages),
            BTreeSet::from([
                Problem::Unlisted("b".to_owned()),
                Problem::Unknown("ghost".to_owned()),
            ])
        );
    }
}
