//! Validates JSON Lines files against docs/schema.json: prints one line per
//! invalid record and exits non-zero if any. Used by `cargo xtask vm-test`
//! on every guest's oomtrace output (xtask does not link the schema
//! validator), so records only real kernels produce are checked too.
use std::process::ExitCode;

use serde_json::Value;

fn main() -> anyhow::Result<ExitCode> {
    let schema: Value = serde_json::from_str(include_str!("../../docs/schema.json"))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| anyhow::anyhow!("docs/schema.json is not a valid schema: {e}"))?;
    let mut invalid = 0usize;
    for path in std::env::args_os().skip(1) {
        let text = std::fs::read_to_string(&path)?;
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = format!("{}:{}", path.to_string_lossy(), number + 1);
            let record: Value = match serde_json::from_str(line) {
                Ok(record) => record,
                Err(e) => {
                    println!("{at}: not JSON: {e}");
                    invalid += 1;
                    continue;
                }
            };
            let errors: Vec<String> = validator
                .iter_errors(&record)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            if !errors.is_empty() {
                println!("{at}: {} record: {}", record["type"], errors.join("; "));
                invalid += 1;
            }
        }
    }
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
