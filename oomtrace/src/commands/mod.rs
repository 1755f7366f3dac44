//! One module per command; `main.rs` only parses flags and dispatches here.
pub mod demo;
pub mod doctor;
pub mod report;
pub mod run;

use std::path::PathBuf;

use anyhow::Result;

/// A command with its options resolved from the command line.
pub enum Invocation {
    Run(run::RunOptions),
    Demo {
        limit_mib: u64,
        run: run::RunOptions,
    },
    Report {
        paths: Vec<PathBuf>,
        json: bool,
        top: usize,
        /// `--summary`: one line per group instead of one card per decision.
        summary: bool,
    },
    Doctor(doctor::DoctorOptions),
}

impl Invocation {
    /// Runs the command; returns how many decisions it produced.
    pub fn execute(self) -> Result<u64> {
        match self {
            Invocation::Run(options) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run::run(options, || Ok(()))),
            Invocation::Demo { limit_mib, run } => demo::run(limit_mib, run),
            Invocation::Report {
                paths,
                json,
                top,
                summary,
            } => report::run(&paths, json, top, summary),
            Invocation::Doctor(options) => doctor::run(&options),
        }
    }
}
