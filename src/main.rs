//! `supernet`: train a once-for-all supernet on an IDX dataset, write one weight-sharing
//! artifact, and inspect or evaluate it through the no_std runtime.

mod eval_cmd;
mod import_cmd;
mod info_cmd;
mod modelfile;
mod npy;
mod run_cmd;
mod switch_cmd;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "supernet",
    version,
    about = "Train a once-for-all supernet once; run any of its subnets on a device."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an elastic supernet, recalibrate BN per stored subnet, write the artifact, and
    /// evaluate the stored subnets through the runtime on the test split.
    Train(train_cmd::TrainArgs),
    /// Run the test split through the runtime for every stored subnet.
    Eval(EvalArgs),
    /// Show an artifact's header, search space and stored subnets.
    Info(InfoArgs),
    /// Convert a supernet trained by the original Once-for-All code (OFAMobileNetV3 state
    /// dict, safetensors) into an artifact.
    #[command(name = "import-ofa")]
    ImportOfa(import_cmd::ImportArgs),
    /// Run one subnet on inputs from a .npy file and print logits and classes.
    Run(run_cmd::RunArgs),
    /// Time the stored subnets here, then switch between them as a simulated battery
    /// drains and a latency budget tightens, running test images at each step.
    Switch(SwitchArgs),
}

#[derive(Args)]
struct SwitchArgs {
    /// The artifact (.snet).
    model: PathBuf,
    /// Directory with the IDX test files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).
    #[arg(long)]
    data: PathBuf,
    /// Test images run at each step (the first N of the test split).
    #[arg(long, value_name = "N", default_value_t = 300)]
    images: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// The artifact (.snet).
    model: PathBuf,
    /// Directory with the IDX test files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).
    #[arg(long)]
    data: PathBuf,
    /// Print JSON (documented in the README) instead of a table.
    #[arg(long)]
    json: bool,
    /// Evaluate only the first N test images.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
}

#[derive(Args)]
struct InfoArgs {
    /// The artifact (.snet).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn init_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    let n = match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))?;
    Ok(n)
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(a) => {
            let threads = init_threads(a.threads.map(|t| t as usize))?;
            train_cmd::run(a, threads)
        }
        Command::Eval(a) => {
            init_threads(a.threads.map(|t| t as usize))?;
            eval_cmd::run(&a.model, &a.data, a.json, a.limit)
        }
        Command::Info(a) => info_cmd::run(&a.model, a.json),
        Command::ImportOfa(a) => {
            init_threads(None)?;
            import_cmd::run(a)
        }
        Command::Run(a) => run_cmd::run(a),
        Command::Switch(a) => switch_cmd::run(&a.model, &a.data, a.images, a.json),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's output to stdout; a closed pipe (`supernet info x | head`) ends the
/// program quietly instead of panicking.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let r = out.write_all(text.as_bytes()).and_then(|_| {
        if text.ends_with('\n') {
            Ok(())
        } else {
            out.write_all(b"\n")
        }
    });
    match r.and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}
