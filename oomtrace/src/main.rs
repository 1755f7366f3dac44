//! Entry point: parse the command line, run, turn any error into one line.
use std::{process::ExitCode, time::Duration};

use clap::Parser;
use oomtrace::{
    app::{self, RunOptions},
    cli::{Cli, Command},
    demo,
    dump::DumpConfig,
    postmortem, workload,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Hog(args)) => workload::hog(&args).map(|_| 0),
        Some(Command::Faultstorm(args)) => workload::faultstorm(&args).map(|_| 0),
        Some(Command::Demo { limit_mib, json }) => demo::run(limit_mib, json, &cli.trace),
        Some(Command::Report { paths, json, top }) => postmortem::run(&paths, json, top),
        None => runtime().and_then(|rt| {
            rt.block_on(app::run(
                RunOptions {
                    cgroups: cli.trace.cgroup.clone(),
                    json: cli.trace.json,
                    count: cli.trace.count,
                    duration: cli.trace.duration.map(Duration::from_secs),
                    backend: cli.trace.backend.resolve(),
                    top: cli.trace.top,
                    btf_path: cli.trace.btf.clone(),
                    charge_hook: cli.trace.charge_hook,
                    dump: cli.trace.dump_dir.clone().map(|dir| DumpConfig {
                        dir,
                        max_files: cli.trace.dump_max_files,
                        max_bytes: cli.trace.dump_max_bytes,
                    }),
                },
                || Ok(()),
            ))
        }),
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oomtrace: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// "context: cause: root cause" on one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}
