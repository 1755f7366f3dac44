//! `oomtrace report`: dumps, saved `--json` output or saved kernel logs,
//! rendered for a person or re-emitted as JSON Lines.
use std::{io::Write, path::PathBuf};

use oomtrace_core::{
    cgroup::container,
    dump::read::{expand, load_file},
    output,
};

pub fn run(paths: &[PathBuf], json: bool, top: usize) -> anyhow::Result<u64> {
    let files = expand(paths)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0;
    for file in files {
        for mut decision in load_file(&file)? {
            decision.container = decision
                .victim
                .as_ref()
                .and_then(|v| v.memcg.as_deref())
                .and_then(container::attribute);
            if json {
                writeln!(out, "{}", serde_json::to_string(&decision)?)?;
            } else {
                writeln!(out, "{}", output::render_card(&decision, top))?;
                writeln!(out, "{}", output::render_candidate_table(&decision))?;
            }
            count += 1;
        }
    }
    Ok(count)
}
