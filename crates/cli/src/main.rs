//! `oodlab`: plan, run and inspect OOD-detection experiments. Parsing happens in two phases: raw
//! flags (clap) first, then resolved [`settings::Settings`], before any work starts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod eta;
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

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v2): after how many milliseconds freed memory
/// goes back to the system; -1 never.
#[cfg(not(feature = "system-allocator"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // By default mimalloc returns freed pages to the system after 10 ms, and a training step
    // frees and reallocates the same tensors' memory every few milliseconds: each reuse then
    // page-faults and the kernel zeroes the pages again (14,000 faults in 13 steps of the
    // reference CNN). Keeping them cuts that to ~500 and makes the step 15% faster
    // (docs/performance.md); the footprint is the step's peak, which a run reaches anyway.
    #[cfg(not(feature = "system-allocator"))]
    #[allow(unsafe_code)]
    // SAFETY: setting an option is allowed at any time; it only changes later purges.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
    let cli = args::Cli::parse();
    if cli.command.only_prints() {
        // Rust ignores SIGPIPE, so `println!` into a closed pipe (`oodlab status | head -3`)
        // panics with a backtrace; the default action ends the process silently instead.
        use nix::sys::signal::{signal, SigHandler, Signal};
        #[allow(unsafe_code)]
        // SAFETY: no other thread runs yet, and SIG_DFL installs no handler of ours.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }
    init_logging(cli.verbose);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) if damaged_store(&e) => {
            // One sentence instead of SQLite's message repeated through every layer of context.
            let cause = e.chain().last().map(|c| c.to_string()).unwrap_or_default();
            eprintln!(
                "error: the store file is damaged (SQLite: {cause}); `oodlab store check` says what is wrong, and `oodlab store rebuild` \
                 makes a new store from the run folders (keeping the damaged file aside), or restore a copy made by `oodlab store backup`"
            );
            exit_codes::STORE_ERROR
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<CliError>().map_or(exit_codes::STORE_ERROR, |c| c.code)
        }
    };
    std::process::exit(code);
}

/// Whether SQLite said somewhere in `e`'s chain that the store file is damaged.
fn damaged_store(e: &anyhow::Error) -> bool {
    e.chain().any(oodlab_store::says_damaged)
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
