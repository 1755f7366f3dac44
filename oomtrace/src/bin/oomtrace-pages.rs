//! `oomtrace-pages DIR`: writes the man pages and shell completions for the
//! Debian package (`cargo xtask package`); not installed itself.
use std::path::PathBuf;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: oomtrace-pages DIR")?
        .into();
    oomtrace::cli::pages::write(&dir)
}
