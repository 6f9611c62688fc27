//! `oodlab`: plan, run and inspect OOD-detection experiments. Parsing happens in two phases: raw
//! flags (clap) first, then resolved [`settings::Settings`], before any work starts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod output;
mod progress;
mod settings;

use clap::Parser;

/// candle allocates and frees every intermediate tensor of every step; with glibc's allocator the
/// large ones are fresh `mmap`s that page-fault on first touch (a third of a CPU run's time went to
/// the kernel). mimalloc keeps and reuses those pages (docs/performance.md).
/// The `system-allocator` feature builds without it, for the comparison in scripts/bench.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use oodlab_protocol::exit_codes;

fn main() {
    let cli = args::Cli::parse();
    init_logging(cli.verbose);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<CliError>().map_or(exit_codes::STORE_ERROR, |c| c.code)
        }
    };
    std::process::exit(code);
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OODLAB_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    CliError { code: exit_codes::INVALID_INPUT, message: message.into() }.into()
}
