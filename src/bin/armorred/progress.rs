//! Progress on a terminal: one line per image being built, a spinner with
//! Nix's last log line while Nix builds, then a bar of layers written (count
//! and compressed bytes). [`armorred::pipeline::LogReporter`] is the plain
//! alternative; the binary picks one with [`bars_wanted`].
//!
//! Log events still print while bars are drawn: [`BarReporter::log_writer`]
//! hands `tracing` a writer that prints above the bars instead of through them.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use armorred::oci::tarball::LayerBlob;
use armorred::pipeline::Reporter;
use armorred::tier::Tier;

/// Bars only where someone watches: stderr is a terminal that can redraw,
/// and neither `--no-progress` nor `--quiet` asked for less.
pub fn bars_wanted(no_progress: bool, quiet: bool) -> bool {
    !no_progress
        && !quiet
        && io::stderr().is_terminal()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Colors unless `NO_COLOR` is set (https://no-color.org).
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
}

struct ImageLine {
    bar: ProgressBar,
    bytes: u64,
}

/// A [`Reporter`] that draws indicatif bars on stderr.
pub struct BarReporter {
    multi: MultiProgress,
    lines: Mutex<BTreeMap<(String, Tier), ImageLine>>,
    color: bool,
}

impl BarReporter {
    pub fn new(color: bool) -> BarReporter {
        BarReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Mutex::new(BTreeMap::new()),
            color,
        }
    }

    /// A `tracing` writer that prints each event above the bars.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter(self.multi.clone())
    }

    fn style(&self, template: &str, colored: &str) -> ProgressStyle {
        let t = if self.color { colored } else { template };
        // The templates are constants; a typo falls back to the default look.
        ProgressStyle::with_template(t)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .progress_chars("=> ")
    }

    fn spinner_style(&self) -> ProgressStyle {
        self.style(
            "{spinner} {prefix} {wide_msg}",
            "{spinner:.cyan} {prefix:.bold} {wide_msg}",
        )
    }

    fn bar_style(&self) -> ProgressStyle {
        self.style(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} layers, {msg}",
            "{spinner:.cyan} {prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} layers, {msg}",
        )
    }

    /// Runs `f` on the image's line, making the line on first use.
    fn with_line(&self, image: &str, tier: Tier, f: impl FnOnce(&mut ImageLine)) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        let line = lines.entry((image.to_string(), tier)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(self.spinner_style());
            bar.set_prefix(format!("{image} ({tier})"));
            bar.enable_steady_tick(Duration::from_millis(120));
            ImageLine { bar, bytes: 0 }
        });
        f(line);
    }
}

impl Reporter for BarReporter {
    fn stage(&self, image: &str, tier: Tier, message: &str) {
        tracing::debug!("{image} ({tier}): {message}");
        self.with_line(image, tier, |l| l.bar.set_message(message.to_string()));
    }

    fn detail(&self, image: &str, tier: Tier, message: &str) {
        self.stage(image, tier, message);
    }

    fn nix_log(&self, image: &str, tier: Tier, line: &str) {
        tracing::debug!(target: "armorred::nix", "{image} ({tier}): {line}");
        self.with_line(image, tier, |l| {
            l.bar
                .set_message(format!("building with Nix: {}", line.trim()))
        });
    }

    fn layer_written(&self, image: &str, tier: Tier, done: usize, total: usize, blob: &LayerBlob) {
        self.with_line(image, tier, |l| {
            if l.bar.length() != Some(total as u64) {
                l.bar.set_style(self.bar_style());
                l.bar.set_length(total as u64);
                l.bytes = 0;
            }
            l.bytes += blob.size;
            l.bar.set_position(done as u64);
            l.bar.set_message(mib(l.bytes));
        });
    }

    fn finished(&self, image: &str, tier: Tier, outcome: Result<&str, &str>) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        if let Some(l) = lines.remove(&(image.to_string(), tier)) {
            let what = match outcome {
                Ok(digest) => format!("done {digest}"),
                Err(why) => format!("FAILED: {why}"),
            };
            // A line that wrote layers keeps its bar, so the count stays.
            if l.bar.length().is_some() {
                l.bar.set_message(format!("{}, {what}", mib(l.bytes)));
            } else {
                l.bar.set_message(what);
            }
            if outcome.is_ok() {
                l.bar.finish();
            } else {
                l.bar.abandon();
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// See [`BarReporter::log_writer`].
pub struct LogWriter(MultiProgress);

/// One log event, printed whole above the bars when `tracing` drops it.
pub struct EventWriter {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // A log line that cannot be written has nowhere else to go.
        self.multi.suspend(|| {
            let _ = io::stderr().write_all(&buf);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            multi: self.0.clone(),
            buf: Vec::new(),
        }
    }
}
