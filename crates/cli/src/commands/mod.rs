//! One file per command.

mod audit;
mod audit_guard;
mod bench_load;
mod bench_step;
mod check_kernels;
mod compare;
mod daemon;
mod export;
mod gc;
mod grid;
mod metrics;
mod plan;
mod queue;
mod report;
mod report_audit;
mod rescore;
mod results;
mod rm;
mod run;
mod schedule;
mod serve;
mod status;
mod status_tune;
mod store;
mod tuning_stage;
mod where_to_mix;
mod worker;

use std::path::Path;

use oodlab_protocol::exit_codes;
use oodlab_spec::Experiment;

use crate::args::{Cli, Command, ExportCommand, QueueCommand, SpecArgs, StoreCommand};
use crate::CliError;

pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Plan(a) => runtime()?.block_on(plan::plan(&cli.home, a)),
        Command::Audit(a) => runtime()?.block_on(audit::audit(&cli.home, a)),
        Command::Run(a) => runtime()?.block_on(run::run(&cli.home, a)),
        Command::Queue(QueueCommand::Add(a)) => runtime()?.block_on(queue::add(&cli.home, a)),
        Command::Queue(QueueCommand::Ls(a)) => runtime()?.block_on(queue::ls(&cli.home, a)),
        Command::Queue(QueueCommand::Rm(a)) => runtime()?.block_on(queue::rm(&cli.home, a)),
        Command::Cancel(a) => runtime()?.block_on(queue::cancel(&cli.home, a)),
        Command::Rm(a) => runtime()?.block_on(rm::rm(&cli.home, a)),
        Command::Gc(a) => runtime()?.block_on(gc::gc(&cli.home, a)),
        Command::Store(StoreCommand::Check) => runtime()?.block_on(store::check(&cli.home)),
        Command::Store(StoreCommand::Backup(a)) => runtime()?.block_on(store::backup(&cli.home, a)),
        Command::Store(StoreCommand::Rebuild) => runtime()?.block_on(store::rebuild(&cli.home)),
        Command::Rescore(a) => runtime()?.block_on(rescore::rescore(&cli.home, a)),
        Command::Daemon(a) => runtime()?.block_on(daemon::daemon(&cli.home, a)),
        Command::Status(a) => runtime()?.block_on(status::status(&cli.home, a)),
        Command::Results(a) => runtime()?.block_on(results::results(&cli.home, a)),
        Command::Compare(a) => runtime()?.block_on(compare::compare(&cli.home, a)),
        Command::Metrics(a) => metrics::metrics(a),
        Command::Export(ExportCommand::Mlflow(a)) => runtime()?.block_on(export::mlflow(&cli.home, a)),
        Command::Export(ExportCommand::Tensorboard(a)) => runtime()?.block_on(export::tensorboard(&cli.home, a)),
        Command::Worker(a) => Ok(worker::worker(a)),
        Command::BenchStep(a) => bench_step::bench_step(a),
        Command::BenchLoad(a) => bench_load::bench_load(a),
        Command::CheckKernels(a) => check_kernels::check_kernels(a),
        Command::Report(a) => runtime()?.block_on(report::report(&cli.home, a)),
        Command::Serve(a) => runtime()?.block_on(serve::serve(&cli.home, a)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// Loads and validates a spec; a bad spec is an input error, reported before anything else.
pub fn load_spec(args: &SpecArgs) -> anyhow::Result<Experiment> {
    oodlab_spec::load(&args.spec, &args.set, oodlab_train::CODE_VERSION)
        .map_err(|e| CliError { code: exit_codes::INVALID_INPUT, message: e.to_string() }.into())
}

/// A spec path or an experiment name → the experiment name.
pub fn experiment_name(target: &str) -> anyhow::Result<String> {
    let path = Path::new(target);
    if path.is_file() {
        Ok(load_spec(&SpecArgs { spec: path.to_path_buf(), set: Vec::new() })?.name)
    } else {
        Ok(target.to_string())
    }
}

/// The store for reading, or an input error saying there is none yet.
pub async fn read_store(home: &Path) -> anyhow::Result<oodlab_store::Store> {
    let db = crate::settings::db_path(home);
    // (A store made by an older oodlab gets this version's migrations first.)
    oodlab_store::Store::open_read_only(&db)
        .await?
        .ok_or_else(|| crate::invalid(format!("no store at {}; run `oodlab run SPEC` first, or pass --home", db.display())))
}
