//! Where the workspace is and what is in it, as `cargo metadata` reports it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use crate::command::Command;

/// The workspace root: the parent of this crate's folder.
pub fn root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow!(
                "xtask's folder {} has no parent",
                env!("CARGO_MANIFEST_DIR")
            )
        })
}

/// A workspace member and the dependencies its manifest declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name, e.g. `streamlib-buffers`.
    pub name: String,
    /// Every declared dependency, workspace or not, of every kind.
    pub dependencies: Vec<Dependency>,
}

/// One dependency as declared in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The depended-on package's name (not the name it is renamed to in code).
    pub name: String,
    /// Which table it is declared in.
    pub kind: DependencyKind,
}

/// Which dependency table a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DependencyKind {
    /// `[dependencies]`: part of what users of the crate get.
    Normal,
    /// `[build-dependencies]`: run at build time, also reaches users.
    Build,
    /// `[dev-dependencies]`: tests, examples and benches only.
    Dev,
}

/// Runs `cargo metadata --no-deps` and returns the workspace members, sorted by name.
pub fn packages() -> Result<Vec<Package>> {
    let json = Command::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    parse_metadata(&json)
}

/// The names of the workspace members, sorted.
pub fn package_names() -> Result<Vec<String>> {
    Ok(packages()?
        .into_iter()
        .map(|package| package.name)
        .collect())
}

/// Reads the members out of `cargo metadata --format-version 1` output.
pub fn parse_metadata(json: &str) -> Result<Vec<Package>> {
    let metadata: Value = serde_json::from_str(json).context("cargo metadata printed bad JSON")?;
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata has no `workspace_members` list")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut packages = Vec::new();
    for package in metadata["packages"]
        .as_array()
        .context("cargo metadata has no `packages` list")?
    {
        if !members.contains(&package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let name = string_field(package, "name")?;
        let dependencies = package["dependencies"]
            .as_array()
            .with_context(|| format!("package {name} has no `dependencies` list"))?
            .iter()
            .map(|dependency| {
                let kind = match dependency["kind"].as_str() {
                    None => DependencyKind::Normal,
                    Some("build") => DependencyKind::Build,
                    Some("dev") => DependencyKind::Dev,
                    Some(other) => {
                        return Err(anyhow!("package {name}: unknown dependency kind `{other}`"));
                    }
                };
                Ok(Dependency {
                    name: string_field(dependency, "name")?,
                    kind,
                })
            })
            .collect::<Result<_>>()?;
        packages.push(Package { name, dependencies });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

fn string_field(object: &Value, field: &str) -> Result<String> {
    object[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("cargo metadata entry has no string `{field}`: {object}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_and_dependency_kinds() -> Result<()> {
        let json = r#"{
            "workspace_members": ["path+file:///w/crates/a#0.1.0", "path+file:///w/crates/b#0.1.0"],
            "packages": [
                {"id": "path+file:///w/crates/b#0.1.0", "name": "b", "dependencies": [
                    {"name": "a", "kind": null, "rename": "alpha"},
                    {"name": "cc", "kind": "build"},
                    {"name": "proptest", "kind": "dev"}
                ]},
                {"id": "path+file:///w/crates/a#0.1.0", "name": "a", "dependencies": []},
                {"id": "registry+https://x#c@1.0.0", "name": "not-a-member", "dependencies": []}
            ]
        }"#;
        let packages = parse_metadata(json)?;
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "a");
        assert_eq!(packages[1].name, "b");
        let kinds: Vec<_> = packages[1]
            .dependencies
            .iter()
            .map(|dependency| (dependency.name.as_str(), dependency.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", DependencyKind::Normal),
                ("cc", DependencyKind::Build),
                ("proptest", DependencyKind::Dev),
            ]
        );
        Ok(())
    }

    #[test]
    fn rejects_output_that_is_not_metadata() {
        assert!(parse_metadata("{}").is_err());
        assert!(parse_metadata("not json").is_err());
    }
}
