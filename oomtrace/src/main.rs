//! Entry point: parse and resolve the command line, run, turn any error into
//! one line.
use std::process::ExitCode;

use clap::Parser;
use oomtrace::{cli::Cli, commands::demo};

fn main() -> ExitCode {
    if demo::is_hog() {
        demo::hog();
    }
    match Cli::parse().resolve().execute() {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oomtrace: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
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
