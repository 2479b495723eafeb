//! `cargo xtask msrv`: the declared `rust-version` is no lower than what the code needs.
//!
//! Three things set the minimum, and each has its own check:
//! - a std API newer than `rust-version`: clippy's `incompatible_msrv`, an error in the
//!   workspace lints, run by `cargo xtask lint`;
//! - a dependency that declares a newer `rust-version` (read here from `cargo metadata`, over
//!   every feature, normal, build and dev dependencies alike, since the tests must build too);
//! - a language feature newer than `rust-version`, which no lint sees: this scans our sources
//!   for the ones we use (today, let-chains: `if let … && …`, stable since 1.88).
//!
//! `XTASK_MSRV_LIST=1 cargo xtask msrv` lists every let-chain it found.
//!
//! What it cannot do here: build with the declared toolchain itself (`cargo +1.88 check`),
//! because the machines this project runs on have one toolchain and cannot fetch another.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::command::Command;
use crate::workspace;

/// A Rust version, `major.minor` (patch versions never gate features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    major: u32,
    minor: u32,
}

impl Version {
    const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// `1.88`, `1.88.0` → 1.88.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().unwrap_or("0").parse().ok()?;
        Some(Self { major, minor })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why the code needs at least some version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Need {
    version: Version,
    why: String,
}

/// Edition 2024, which every member uses, needs 1.85.
const EDITION_2024: Version = Version::new(1, 85);
/// `if let P = e && c`, `while let … && let …`.
const LET_CHAINS: Version = Version::new(1, 88);

/// Runs the check and prints what sets the minimum.
pub fn run() -> Result<()> {
    let root = workspace::root()?;
    let manifest = fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let declared = declared_version(&manifest)
        .ok_or_else(|| anyhow!("Cargo.toml's [workspace.package] declares no rust-version"))?;

    let mut needs = vec![Need {
        version: EDITION_2024,
        why: "edition 2024".to_owned(),
    }];
    let metadata = Command::cargo()
        .args(["metadata", "--format-version", "1", "--all-features"])
        .output()?;
    needs.extend(dependency_needs(&metadata)?);
    let chains = let_chains_in(&root)?;
    if std::env::var_os("XTASK_MSRV_LIST").is_some() {
        for (place, _) in &chains {
            println!("  let-chain: {}", place.display());
        }
    }
    if let Some((first, _)) = chains.first() {
        needs.push(Need {
            version: LET_CHAINS,
            why: format!(
                "let-chains in {} places, first {}",
                chains.len(),
                first.display()
            ),
        });
    }
    needs.sort_by_key(|n| std::cmp::Reverse(n.version));
    let Some(top) = needs.first() else {
        bail!("nothing to compare the declared rust-version with");
    };
    println!("msrv: declared {declared}; the code needs {}:", top.version);
    for need in needs.iter().take_while(|n| n.version == top.version) {
        println!("  {} — {}", need.version, need.why);
    }
    if declared < top.version {
        bail!(
            "rust-version {declared} in Cargo.toml is below what the code needs ({}: {}); \
             raise it, or remove what needs the newer compiler",
            top.version,
            top.why
        );
    }
    Ok(())
}

/// The `rust-version` of `[workspace.package]`.
fn declared_version(manifest: &str) -> Option<Version> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(value) = line.strip_prefix("rust-version") {
            let value = value
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .trim_matches('"');
            return Version::parse(value);
        }
    }
    None
}

/// The `rust-version` every non-workspace package declares, the highest first.
fn dependency_needs(metadata: &str) -> Result<Vec<Need>> {
    let json: Value = serde_json::from_str(metadata).context("parsing cargo metadata")?;
    let members: Vec<&str> = json["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let packages = json["packages"]
        .as_array()
        .ok_or_else(|| anyhow!("cargo metadata printed no packages"))?;
    let mut needs: Vec<Need> = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or_default()))
        .filter_map(|p| {
            let version = Version::parse(p["rust_version"].as_str()?)?;
            Some(Need {
                version,
                why: format!(
                    "dependency {} {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?")
                ),
            })
        })
        .collect();
    needs.sort_by(|a, b| b.version.cmp(&a.version).then(a.why.cmp(&b.why)));
    Ok(needs)
}

/// Every `.rs` file under `crates/`, `examples/`, `benches/` and `xtask/`, and the let-chains
/// in each (file, line).
fn let_chains_in(root: &Path) -> Result<Vec<(PathBuf, usize)>> {
    let mut files = Vec::new();
    for dir in ["crates", "examples", "benches", "xtask"] {
        collect_rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for line in let_chain_lines(&text) {
            let shown = file.strip_prefix(root).unwrap_or(&file);
            found.push((PathBuf::from(format!("{}:{line}", shown.display())), line));
        }
    }
    Ok(found)
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// A token of Rust source, as much as finding let-chains needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    AndAnd,
    Open(u8),
    Close(u8),
    Semi,
    Other,
}

/// Splits Rust source into words, `&&` and brackets, with comments, strings and chars gone;
/// each token with its line (1-based).
fn tokens(text: &str) -> Vec<(Token<'_>, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if bytes[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if bytes.get(i) == Some(&b'\n') {
                        line += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push((Token::Other, line));
            }
            b'\'' => {
                // A char literal ('a', '\n', '\u{..}') or a lifetime ('a): a char closes
                // within a few bytes.
                let close = if bytes.get(i + 1) == Some(&b'\\') {
                    bytes[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else {
                    let width = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (bytes.get(i + 1 + width) == Some(&b'\'')).then_some(i + 1 + width)
                };
                i = close.map_or(i + 1, |c| c + 1);
                out.push((Token::Other, line));
            }
            b'r' if raw_string_start(&bytes[i..]).is_some() => {
                let hashes = raw_string_start(&bytes[i..]).unwrap_or(0);
                i += 2 + hashes;
                let end: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while i < bytes.len() && !bytes[i..].starts_with(&end) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += end.len();
                out.push((Token::Other, line));
            }
            b'&' if bytes.get(i + 1) == Some(&b'&') => {
                out.push((Token::AndAnd, line));
                i += 2;
            }
            b'(' | b'[' | b'{' => {
                out.push((Token::Open(b), line));
                i += 1;
            }
            b')' | b']' | b'}' => {
                out.push((Token::Close(b), line));
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push((Token::Word(&text[start..i]), line));
            }
            b';' => {
                out.push((Token::Semi, line));
                i += 1;
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    out.push((Token::Other, line));
                }
                i += 1;
            }
        }
    }
    out
}

/// `r"`, `r#"`, `br##"` …: the number of `#`s, if a raw string starts here.
fn raw_string_start(bytes: &[u8]) -> Option<usize> {
    let hashes = bytes[1..].iter().take_while(|&&b| b == b'#').count();
    (bytes.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// The lines of the `if` / `while` conditions that chain a `let` with `&&` (at the
/// condition's own bracket depth: `if let Some(x) = f(a && b)` is not a chain).
fn let_chain_lines(text: &str) -> Vec<usize> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    for (start, &(token, line)) in tokens.iter().enumerate() {
        if !matches!(token, Token::Word("if" | "while")) {
            continue;
        }
        let mut depth = 0i32;
        let (mut has_let, mut has_and) = (false, false);
        for &(t, _) in &tokens[start + 1..] {
            match t {
                Token::Open(b'{') if depth == 0 => break,
                Token::Open(_) => depth += 1,
                Token::Close(_) => {
                    depth -= 1;
                    if depth < 0 {
                        break;
                    }
                }
                Token::Word("let") if depth == 0 => has_let = true,
                Token::AndAnd if depth == 0 => has_and = true,
                Token::Semi => break,
                _ => {}
            }
        }
        if has_let && has_and {
            found.push(line);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_let_chains_and_nothing_else() {
        let src = r##"
fn f(a: Option<u8>, b: bool) {
    if let Some(x) = a && b { }
    if b && let Some(x) = a { }
    while let Some(x) = a
        && x > 1
    { }
    if let Some(x) = g(a && b) { }
    if a.is_some() && b { }
    let s = "if let Some(x) = a && b {";
    // if let Some(x) = a && b {
    let c = 'a';
    let _l: &'static str = r#"if let && "#;
}
"##;
        assert_eq!(let_chain_lines(src), vec![3, 4, 5]);
    }

    #[test]
    fn reads_the_declared_version() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"0.1.0\"\n\
                        rust-version = \"1.88\"\n";
        assert_eq!(declared_version(manifest), Some(Version::new(1, 88)));
        assert_eq!(
            declared_version("[package]\nrust-version = \"1.70\"\n"),
            None
        );
    }

    #[test]
    fn orders_versions_numerically() {
        assert!(Version::parse("1.100").unwrap_or(EDITION_2024) > LET_CHAINS);
        assert_eq!(Version::parse("1.88.0"), Some(LET_CHAINS));
    }

    #[test]
    fn reads_dependency_versions_from_metadata() -> Result<()> {
        let json = r#"{"workspace_members":["ws 0.1"],"packages":[
            {"id":"ws 0.1","name":"ws","version":"0.1.0","rust_version":"1.99"},
            {"id":"a 1","name":"a","version":"1.0.0","rust_version":"1.87"},
            {"id":"b 2","name":"b","version":"2.0.0","rust_version":null}]}"#;
        let needs = dependency_needs(json)?;
        assert_eq!(
            needs.len(),
            1,
            "the workspace's own and undeclared ones are skipped"
        );
        assert_eq!(needs[0].version, Version::new(1, 87));
        assert_eq!(needs[0].why, "dependency a 1.0.0");
        Ok(())
    }
}
