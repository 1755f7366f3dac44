//! The man pages and shell completions, rendered from the command line's
//! own definition so that they say what `--help` says. The Debian package
//! ships them (`cargo xtask package` runs `oomtrace-pages`).
use std::{fs, path::Path};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Section 8: a tool for the system administrator, as the package installs it.
const SECTION: &str = "8";

/// DIR/man/oomtrace.8 and one page per subcommand (oomtrace-report.8, …);
/// DIR/completions/ for bash, zsh and fish.
pub fn write(dir: &Path) -> Result<()> {
    // `help` is clap's own and has no page to point to; built, the
    // subcommands know their full names (`oomtrace report`).
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let man = dir.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    write_page(&command, &man)?;
    for sub in command.get_subcommands() {
        write_page(sub, &man)?;
    }
    let completions = dir.join("completions");
    fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "oomtrace", &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
    }
    Ok(())
}

/// One page, named after the command's display name (`oomtrace-report.8`).
fn write_page(command: &clap::Command, dir: &Path) -> Result<()> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    let path = dir.join(format!("{name}.{SECTION}"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name)
        .section(SECTION)
        .render(&mut page)?;
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}
