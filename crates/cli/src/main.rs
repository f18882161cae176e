//! `tollgate`: the command-line entry point. Parses configuration, then runs a subcommand.
//! Bad configuration ends the process with one line naming the option and exit code 2.

mod config;
mod health;
mod lifecycle;
mod limits;
mod logging;
mod metrics;
mod serve;
mod telemetry;
mod tls;

use std::process::ExitCode;

use clap::Parser as _;

/// A failure that ends the process.
#[derive(Debug)]
pub enum Fatal {
    /// Bad configuration: exit code 2.
    Config(String),
    /// Anything else: exit code 1.
    Runtime(String),
}

impl Fatal {
    /// A configuration error naming the flag and its environment variable.
    pub fn option(flag: &str, env: &str, msg: impl std::fmt::Display) -> Self {
        Self::Config(format!("invalid --{flag} ({env}): {msg}"))
    }
}

fn main() -> ExitCode {
    let cli = config::Cli::parse();
    // Logging starts inside `run`: trace export needs the runtime.
    let result = cli.validate().and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal::Config(msg)) => {
            eprintln!("tollgate: error: {msg}");
            ExitCode::from(2)
        }
        Err(Fatal::Runtime(msg)) => {
            eprintln!("tollgate: error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: config::Config) -> Result<(), Fatal> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::Runtime(format!("cannot start the async runtime: {e}")))?;
    let telemetry = match telemetry::Telemetry::init(rt.handle()) {
        Ok((telemetry, layer)) => {
            logging::init(cfg.log_format, layer);
            telemetry
        }
        Err(e) => {
            logging::init(cfg.log_format, None);
            return Err(e);
        }
    };
    // actix-web's servers run inside a `System` on top of this runtime.
    actix_web::rt::System::with_tokio_rt(|| rt).block_on(async move {
        let result = match cfg.command {
            config::Command::Serve(ref serve) => serve::serve(&cfg, serve).await,
            config::Command::Migrate => serve::migrate(&cfg).await,
        };
        // The spans of the last requests are still buffered: export them before exiting.
        telemetry.shutdown().await;
        result
    })
}
