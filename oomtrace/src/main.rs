//! Entry point: parse and resolve the command line, run, turn any error into
//! one line.
use std::{io::Write, process::ExitCode};

use clap::Parser;
use oomtrace::{cli::Cli, commands::demo};
use oomtrace_core::base::text::escape;

fn main() -> ExitCode {
    if demo::is_hog() {
        demo::hog();
    }
    fixed_mmap_threshold();
    match Cli::parse().resolve().execute() {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            // A stderr that cannot be written (/dev/full) must not turn the
            // error into a panic; the exit status still says it failed.
            let _ = writeln!(std::io::stderr().lock(), "oomtrace: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Blocks of 128 KiB and more are mmapped, and unmapped when freed. glibc
/// otherwise raises that threshold to the largest block freed so far: once
/// the start-up frees the kernel BTF's file buffer (5 MiB), the next large
/// blocks (aya's parse) land on the heap on top of what is there, which
/// raised the start-up peak by 4 MiB (docs/bench.md).
fn fixed_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; no thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// "context: cause: root cause" on one line, inert on a terminal (paths and
/// names in errors may come from untrusted input).
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    escape(&parts.join(": ").replace('\n', " ")).into_owned()
}
