//! The `armorred` binary: set up logging, parse arguments, run the command,
//! print its data on stdout and map the result to an exit code. Everything
//! else lives in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

mod cli;
mod commands;
mod progress;

use armorred::pipeline::{LogReporter, Reporter};
use cli::Cli;
use progress::BarReporter;

fn init_tracing<W>(cli: &Cli, color: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,armorred=info",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = progress::color_wanted();
    let reporter: Box<dyn Reporter> = if progress::bars_wanted(cli.no_progress, cli.quiet) {
        let bars = BarReporter::new(color);
        init_tracing(&cli, color, bars.log_writer());
        Box::new(bars)
    } else {
        init_tracing(&cli, color, std::io::stderr);
        Box::new(LogReporter)
    };
    let result = commands::run(&cli, reporter.as_ref());
    // Bars finish drawing before the result is printed.
    drop(reporter);
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return ExitCode::from(1);
            }
            ExitCode::from(u8::from(out.failed))
        }
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            if let Some(h) = armorred::error::hint(&e) {
                msg.push_str(&format!("\nhint: {h}"));
            }
            eprintln!("{msg}");
            ExitCode::from(armorred::error::exit_code(&e))
        }
    }
}
