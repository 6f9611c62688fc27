//! Command-line flags, as typed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "oodlab", version, about = "Plan, run and compare OOD-detection experiments")]
pub struct Cli {
    /// Folder holding oodlab.db and runs/.
    #[arg(long, global = true, env = "OODLAB_HOME", default_value = ".oodlab")]
    pub home: PathBuf,
    /// More log output on stderr (-v info, -vv debug); OODLAB_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Command {
    /// Whether the command only reads the store and prints: piped into `head` or `less`, it stops
    /// quietly when the reader goes, as `ls` and `grep` do. Not the commands that schedule, train or
    /// serve: there a closed pipe or socket is an error to handle, never a reason to die.
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Plan(_)
                | Command::Audit(_)
                | Command::Queue(_)
                | Command::Store(_)
                | Command::Status(_)
                | Command::Results(_)
                | Command::Compare(_)
                | Command::Metrics(_)
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a spec and list its runs with their status in the store.
    Plan(PlanArgs),
    /// Find images that play two data roles (ID train/validation/test, held-out classes, outliers,
    /// validation and test OOD sets): exact and near duplicates between every pair of roles.
    Audit(AuditArgs),
    /// Run what is not done yet of a spec's plan.
    Run(RunArgs),
    /// The queue across grids: add a grid, list the queue, remove a grid's pending runs.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Stop an experiment's running runs and drop its pending ones from the queue.
    Cancel(TargetArgs),
    /// Remove an experiment from the store with its runs and their folders (runs another
    /// experiment shares stay); asks first unless --yes.
    Rm(RmArgs),
    /// Delete run folders that no run in the store owns (left by a deleted store or by hand).
    Gc(GcArgs),
    /// The store's health: check it against SQLite and the run folders, or copy it safely.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Add post-hoc detectors (knn, vim, ...) to a spec's finished runs, from their saved
    /// features or their checkpoints, without training again.
    Rescore(RescoreArgs),
    /// Work through the home's queue in the background (what `oodlab run --detach` starts).
    Daemon(DaemonArgs),
    /// Show experiments, the runs of one, or one run in detail.
    Status(StatusArgs),
    /// One row per (run, score, OOD set) of an experiment's finished runs.
    Results(ResultsArgs),
    /// A comparison table of one metric: mean ± std (n) per method and OOD set, paired tests.
    Compare(CompareArgs),
    /// Compute OOD metrics from two files of scores (one number a line, larger = more ID-like).
    Metrics(MetricsArgs),
    /// Write an experiment's finished runs where curves are read: MLflow or TensorBoard.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Train and evaluate one run (started by the scheduler); writes JSON-lines events to stdout.
    Worker(WorkerArgs),
    /// Time training steps of a network on random inputs (images/s), for benchmarks.
    BenchStep(BenchStepArgs),
    /// Time the data loader alone over a spec's first run (images/s, memory), for benchmarks.
    BenchLoad(BenchLoadArgs),
    /// Check the device's convolution (cuDNN's on a GPU) against candle's on fixed inputs.
    CheckKernels(CheckKernelsArgs),
    /// Write a report of an experiment: grid status, comparison tables and figures, as Markdown and
    /// HTML with SVG and PNG figures.
    Report(ReportArgs),
    /// Serve the dashboard: experiments, live progress, runs, curves and comparison tables in a
    /// browser, read-only.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the first line of output names it).
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub addr: String,
    /// Folder of dashboard files (*.yaml); default: ./dashboards if it exists, else the built-in
    /// ones.
    #[arg(long)]
    pub dashboards: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The folder to write report.md, report.html and figures/ into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The OOD score of the tables and figures: msp, maxlogit, energy or a post-hoc detector (default: the spec's first).
    #[arg(long)]
    pub score: Option<String>,
    /// The row the comparison tables test every other row against (Wilcoxon, marked †).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Paired comparisons A:B of two method entries on AUROC and FPR@95 (repeatable).
    #[arg(long = "pair", value_name = "A:B")]
    pub pairs: Vec<String>,
    /// A claims file (docs/results/claims.yaml): each claim's paired tests and verdict, in the
    /// report and in claims.md beside it.
    #[arg(long)]
    pub claims: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchLoadArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Training epochs to load.
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// One JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// The experiment spec (YAML).
    pub spec: PathBuf,
    /// Override a field, Hydra-style: --set train.epochs=3 (repeatable; values are YAML).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Write each split's contact sheet (the closest pairs side by side, a PNG) into this folder.
    #[arg(long, value_name = "DIR")]
    pub sheets: Option<std::path::PathBuf>,
    /// `table` (default) or `json`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The flags that choose where work runs (`oodlab run`, `daemon`, `rescore`).
#[derive(Args, Debug)]
pub struct MachineArgs {
    /// Concurrent CPU runs (default: resources.jobs, else cores / threads per job).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// CPU threads per run (default: resources.threads_per_job).
    #[arg(long)]
    pub threads: Option<usize>,
    /// `auto`, `none`, or comma-separated GPU indices (default: resources.gpus).
    #[arg(long)]
    pub gpus: Option<String>,
    /// `local` or `slurm` (default: resources.backend).
    #[arg(long)]
    pub backend: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Extra attempts for a failed run (default: resources.retries).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Served before grids of lower priority (default 0; higher first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Queue the grid and return; a background scheduler works through the queue, logging to
    /// <home>/scheduler.log.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// SQLite's integrity and foreign-key checks, the migrations' version, and the store against
    /// the run folders; exit 0 when all is well, 3 when not.
    Check,
    /// A consistent copy of the store into a new file, also while a grid runs.
    Backup(StoreBackupArgs),
    /// A new store from the run folders alone (each experiment's `experiment.json`, each run's
    /// events); the old file, if any, is kept aside as `oodlab.db.damaged-<time>`. Refused while
    /// a scheduler holds the home.
    Rebuild,
}

#[derive(Args, Debug)]
pub struct StoreBackupArgs {
    /// The copy to write (a new file; an existing one is refused).
    pub dest: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Each finished (or failed) run as an MLflow run of the experiment of the same name: params
    /// (the run's settings), epoch curves, OOD metrics, tags and artifacts. Exporting again
    /// logs only what is new.
    Mlflow(ExportMlflowArgs),
    /// Each finished (or failed) run as a TensorBoard run (`<out>/<entry>/seed<S>-split<P>-<id>`)
    /// of scalars: epoch curves and OOD metrics. Exporting again rewrites the same files.
    Tensorboard(ExportTensorboardArgs),
}

#[derive(Args, Debug)]
pub struct ExportMlflowArgs {
    /// The experiment's name (or its spec file).
    pub target: String,
    /// A tracking server (`http://127.0.0.1:5000`) or a file store folder (`mlruns`,
    /// `file:///abs/mlruns`).
    #[arg(long, value_name = "DIR_OR_URL")]
    pub tracking_uri: String,
    /// Also log this report's figures (`oodlab report ... --out DIR`: its `figures/`) with every run.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExportTensorboardArgs {
    /// The experiment's name (or its spec file).
    pub target: String,
    /// The log folder (`tensorboard --logdir DIR`); the experiment's runs go under `DIR/<experiment>/`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Add a spec's grid to the queue (the running scheduler picks it up; without one, it waits
    /// for `oodlab daemon` or `oodlab run`).
    Add(QueueAddArgs),
    /// The grids of the queue with their progress, and the scheduler at work.
    Ls(QueueLsArgs),
    /// Drop a grid's pending runs from the queue; its running runs finish.
    Rm(TargetArgs),
}

#[derive(Args, Debug)]
pub struct QueueAddArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Served before grids of lower priority (default 0; higher first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// The most slots this grid uses at once (default: resources.jobs, else all).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Extra attempts for a failed run (default: resources.retries).
    #[arg(long)]
    pub retries: Option<u32>,
}

#[derive(Args, Debug)]
pub struct QueueLsArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// A spec file or an experiment name.
    pub target: String,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct RescoreArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Comma-separated detectors (default: the post-hoc detectors of the spec's eval.scores):
    /// gen, knn, react, ash, mahalanobis, rmds, vim, odin.
    #[arg(long, value_delimiter = ',')]
    pub scores: Vec<String>,
    #[command(flatten)]
    pub machine: MachineArgs,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// A spec file or an experiment name.
    pub target: String,
    /// Remove without asking.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Stop when the queue is empty instead of waiting for more.
    #[arg(long)]
    pub until_empty: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A spec file or an experiment name; without it, every experiment.
    pub target: Option<String>,
    /// Show one run in detail (config, failure, stderr tail, epochs).
    #[arg(long)]
    pub run: Option<String>,
    /// Show the search of this entry of the experiment (its `tune:` block): budget spent, every
    /// trial with its values and objective, best so far against epochs spent, the choice.
    #[arg(long, value_name = "ENTRY", conflicts_with = "run", requires = "target")]
    pub tune: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// A spec file or an experiment name.
    pub target: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only this score (msp, maxlogit, energy, or a post-hoc detector such as knn).
    #[arg(long)]
    pub score: Option<String>,
    /// Only this OOD set.
    #[arg(long)]
    pub ood_set: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// A spec file or an experiment name.
    pub target: String,
    /// auroc, fpr95, aupr_in, aupr_out, tnr95, id_acc, or an interpolation-path statistic
    /// path.<input|logit>.<tv_mean|tv_median|tv_p90|jump_mean|jump_median|jump_p90> (docs/analyses.md).
    #[arg(long, default_value = "auroc")]
    pub metric: String,
    /// The OOD score: msp, maxlogit, energy, or a post-hoc detector (gen, knn, react, ash,
    /// mahalanobis, rmds, vim, odin) the runs were scored with.
    #[arg(long, default_value = "msp")]
    pub score: String,
    /// What a row is: `entry` (the spec's method entries, with their grid values), `method`,
    /// `score` (every score and detector of one --entry), or any field of a run's settings such
    /// as `train.optimizer.lr` or `method.consistency.loss`.
    #[arg(long, default_value = "entry")]
    pub rows: String,
    /// Only the runs of this method entry (needed by --rows score when there are several).
    #[arg(long)]
    pub entry: Option<String>,
    /// The row every other row is tested against (Wilcoxon signed-rank over matched cells).
    #[arg(long)]
    pub baseline: Option<String>,
    /// A paired comparison A:B printed under the table (repeatable), e.g. --pair lmoe:mixoe.
    #[arg(long = "pair", value_name = "A:B")]
    pub pairs: Vec<String>,
    /// Only this split (index into data.splits): cells are then across seeds of one split.
    #[arg(long)]
    pub split: Option<u64>,
    /// Significance level of the marks against the baseline.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Values × 100.
    #[arg(long)]
    pub percent: bool,
    #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
    pub format: CompareFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    Table,
    Markdown,
    Csv,
    Latex,
    Json,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Scores of ID samples, one number a line.
    #[arg(long)]
    pub id: PathBuf,
    /// Scores of OOD samples, one number a line.
    #[arg(long)]
    pub ood: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The job file the scheduler wrote (run.json).
    #[arg(long, required_unless_present = "tasks", conflicts_with = "tasks")]
    pub run: Option<PathBuf>,
    /// A file of job files, one per line: this worker runs line $SLURM_ARRAY_TASK_ID (from 0), as
    /// a task of a Slurm job array does.
    #[arg(long)]
    pub tasks: Option<PathBuf>,
    /// Append the events to `events.jsonl` in the run's folder instead of writing them to stdout
    /// (a worker on another node, followed through the shared filesystem).
    #[arg(long)]
    pub events_file: bool,
}

#[derive(Args, Debug)]
pub struct BenchStepArgs {
    /// cnn, resnet18 or resnet50.
    #[arg(long, default_value = "cnn")]
    pub arch: String,
    /// The CNN's three conv widths.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128")]
    pub channels: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Channels x height x width of the inputs.
    #[arg(long, default_value = "1x28x28")]
    pub image: String,
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// cpu, or cuda (device 0 of CUDA_VISIBLE_DEVICES).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Load these weights first (safetensors with torchvision's names).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Whether f32 convolutions on a GPU may use TF32 (a spec's `train.tf32`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tf32: bool,
    /// Also time each part of the timed steps (phases, layers, backward ops), waiting for the
    /// device around each: where the time goes, not the throughput.
    #[arg(long)]
    pub profile: bool,
    /// One JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CheckKernelsArgs {
    /// cpu, or cuda (device 0 of CUDA_VISIBLE_DEVICES).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Markdown,
}
