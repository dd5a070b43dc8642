//! The one place armorred runs external programs.
//!
//! Every subprocess goes through [`Cmd`], which logs the shell-quoted command
//! line at debug level, captures stdout, keeps the tail of stderr for errors,
//! kills the child if the caller goes away early, and parses JSON output into
//! typed structs. Its errors keep three failures apart: the program could not
//! start, it ran and failed, or its output was not what we expected.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde::de::DeserializeOwned;

/// How many stderr lines an error keeps.
pub const STDERR_TAIL_LINES: usize = 40;

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
}

/// A finished command's captured output.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start `{program}`{hint}", hint = spawn_hint(source))]
    Spawn {
        program: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){tail}", tail = format_tail(stderr_tail))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("`{command}` gave unexpected output: {message}")]
    BadOutput { command: String, message: String },
}

impl ProcessError {
    /// True when the program itself is missing (not installed / not on PATH).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn spawn_hint(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        ": it is not installed or not on PATH".into()
    } else {
        format!(": {e}")
    }
}

fn format_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- last lines of its output ---\n{}", tail.trim_end())
    }
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The command line, shell-quoted, for logs and error messages.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|a| {
                let s = a.to_string_lossy();
                shlex::try_quote(&s)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| s.into_owned())
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to completion; stderr lines go to `on_stderr` as they arrive.
    pub fn run_with(&self, mut on_stderr: impl FnMut(&str)) -> Result<Output, ProcessError> {
        let command = self.display();
        tracing::debug!(target: "armorred::process", "running: {command}");
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        let child = c.spawn().map_err(|source| ProcessError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            command: command.clone(),
            source,
        })?;
        let mut guard = ChildGuard(Some(child));
        let child = guard.0.as_mut().expect("just spawned");
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // stdout is drained on a thread so neither pipe can fill and block.
        let out_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).map(|_| buf)
        });
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            on_stderr(&line);
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let stdout = out_thread
            .join()
            .map_err(|_| ProcessError::BadOutput {
                command: command.clone(),
                message: "stdout reader panicked".into(),
            })?
            .map_err(|e| ProcessError::BadOutput {
                command: command.clone(),
                message: format!("reading stdout: {e}"),
            })?;
        let mut child = guard.0.take().expect("present");
        let status = child.wait().map_err(|source| ProcessError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            command: command.clone(),
            source,
        })?;
        let stderr_tail = tail.into_iter().collect::<Vec<_>>().join("\n");
        if !status.success() {
            return Err(ProcessError::Failed {
                command,
                status,
                stderr_tail,
            });
        }
        Ok(Output {
            stdout,
            stderr_tail,
        })
    }

    /// Runs to completion, logging stderr at debug level.
    pub fn run(&self) -> Result<Output, ProcessError> {
        self.run_with(|l| tracing::debug!(target: "armorred::process", "{l}"))
    }

    /// Runs and returns stdout as UTF-8 text.
    pub fn stdout_string(&self) -> Result<String, ProcessError> {
        let out = self.run()?;
        String::from_utf8(out.stdout).map_err(|_| ProcessError::BadOutput {
            command: self.display(),
            message: "stdout is not UTF-8".into(),
        })
    }

    /// Runs and parses stdout as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProcessError> {
        let out = self.run()?;
        serde_json::from_slice(&out.stdout).map_err(|e| ProcessError::BadOutput {
            command: self.display(),
            message: format!("invalid JSON: {e}"),
        })
    }

    /// An output-parsing error attributed to this command.
    pub fn bad_output(&self, message: impl fmt::Display) -> ProcessError {
        ProcessError::BadOutput {
            command: self.display(),
            message: message.to_string(),
        }
    }
}

/// Kills and reaps the child unless it was waited for.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_command_line() {
        let c = Cmd::new("nix-build").args(["-A", "package", "--argstr", "specJson", "{\"a\": 1}"]);
        assert_eq!(
            c.display(),
            r#"nix-build -A package --argstr specJson '{"a": 1}'"#
        );
    }

    #[test]
    fn three_failures_are_distinct() {
        let e = Cmd::new("/nonexistent/armorred-test-prog")
            .run()
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("not installed"));

        let e = Cmd::new("sh")
            .args(["-c", "echo first >&2; echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        match &e {
            ProcessError::Failed {
                stderr_tail,
                status,
                ..
            } => {
                assert_eq!(status.code(), Some(3));
                assert!(stderr_tail.ends_with("boom"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.to_string().contains("exit status: 3"), "{e}");

        let e = Cmd::new("sh")
            .args(["-c", "echo not-json"])
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(matches!(e, ProcessError::BadOutput { .. }));
    }

    #[test]
    fn keeps_only_the_tail() {
        let e = Cmd::new("sh")
            .args([
                "-c",
                "for i in $(seq 1 100); do echo line$i >&2; done; exit 1",
            ])
            .run()
            .unwrap_err();
        let ProcessError::Failed { stderr_tail, .. } = e else {
            panic!()
        };
        assert_eq!(stderr_tail.lines().count(), STDERR_TAIL_LINES);
        assert!(stderr_tail.starts_with("line61"));
    }
}
