//! Running child processes: always from the workspace root, always printed first, and failing
//! with the command line and exit code so a CI log says what broke.

use std::ffi::OsString;
use std::fmt;
use std::process::{self, Stdio};

use anyhow::{Context, Result, bail};

use crate::workspace;

/// A child process to run from the workspace root.
///
/// Built up like [`std::process::Command`], but it can be displayed as the shell line a person
/// would type, which is printed before it runs and quoted in errors.
#[derive(Debug, Clone)]
pub struct Command {
    /// What is executed.
    program: OsString,
    /// How the program is shown: `cargo` rather than the full path of the toolchain's cargo.
    shown_as: String,
    /// Arguments, in order.
    args: Vec<String>,
    /// Environment variables set for the child on top of the inherited ones.
    envs: Vec<(String, String)>,
}

impl Command {
    /// A command running `program`, found on `PATH`.
    pub fn new(program: &str) -> Self {
        Self {
            program: program.into(),
            shown_as: program.to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// A command running the same cargo that runs this xtask, so a `cargo +nightly xtask` or a
    /// toolchain picked by `rust-toolchain.toml` is used by every step, not whatever is on `PATH`.
    pub fn cargo() -> Self {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Self {
            program,
            shown_as: "cargo".to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Prints the command, runs it with the terminal as its input and output, and fails unless it
    /// exits with status 0.
    pub fn run(&self) -> Result<()> {
        println!("$ {self}");
        let status = self
            .to_std()?
            .status()
            .with_context(|| format!("could not start `{self}`"))?;
        self.check(status)
    }

    /// Prints the command, runs it with the terminal as its input and output, and returns its
    /// exit code (for tasks that pass a child's status through).
    pub fn run_for_code(&self) -> Result<i32> {
        println!("$ {self}");
        let status = self
            .to_std()?
            .status()
            .with_context(|| format!("could not start `{self}`"))?;
        Ok(status.code().unwrap_or(1))
    }

    /// Prints the command, runs it and returns its standard output; its standard error still goes
    /// to the terminal so its diagnostics are seen. Fails unless it exits with status 0.
    pub fn output(&self) -> Result<String> {
        println!("$ {self}");
        let output = self
            .to_std()?
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{self}`"))?;
        self.check(output.status)?;
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{self}` printed something that is not UTF-8"))
    }

    /// Like [`Command::output`], but returns standard output whatever the exit status, for tools
    /// that report part of the answer through it (`dpkg-query` exits 1 for unknown packages).
    pub fn output_whatever_status(&self) -> Result<String> {
        println!("$ {self}");
        let output = self
            .to_std()?
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{self}`"))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Prints the command and runs it quietly to ask a yes/no question (is this tool
    /// installed?), returning its standard output when it succeeds and `None` when it fails or
    /// cannot start.
    pub fn probe(&self) -> Result<Option<String>> {
        println!("$ {self}");
        let Ok(output) = self.to_std()?.stdin(Stdio::null()).output() else {
            return Ok(None);
        };
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    fn to_std(&self) -> Result<process::Command> {
        let mut command = process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(key, value)| (key, value)))
            .current_dir(workspace::root()?);
        Ok(command)
    }

    fn check(&self, status: process::ExitStatus) -> Result<()> {
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => bail!("`{self}` failed with exit code {code}"),
            None => bail!("`{self}` was killed by a signal ({status})"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", shell_quote(value))?;
        }
        f.write_str(&self.shown_as)?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word the way a shell would need it, so a printed command can be pasted back.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,/:=+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_a_pasteable_shell_line() {
        let command = Command::cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "tree",
            "--format",
            "{p}",
            "-e",
            "normal,build",
        ]);
        assert_eq!(
            command.to_string(),
            "RUSTDOCFLAGS='-D warnings' cargo tree --format '{p}' -e normal,build"
        );
    }

    #[test]
    fn quotes_single_quotes_and_empty_words() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("--keep-going"), "--keep-going");
    }
}
