//! The `oomtrace` binary's own layers: `kernel` (BTF, tracefs, /dev/kmsg and
//! the loader that embeds the eBPF object) and `commands` (run, report,
//! demo). Everything without a build script is in `oomtrace-core`.
pub mod cli;
pub mod commands;
pub mod kernel;

#[cfg(test)]
mod layers {
    use std::path::Path;

    use oomtrace_core::layers::violations;

    /// kernel ← commands ← cli (main.rs sits on top). The kernel layer sits
    /// beside the core's events/cgroup/report and may use only its base and
    /// events from the core.
    #[test]
    fn binary_layers_import_only_downwards() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src, "crate", &[("kernel", 1), ("commands", 4), ("cli", 5)]);
        assert!(found.is_empty(), "{found:#?}");
        for file in ["kernel/btf.rs", "kernel/tracefs.rs", "kernel/kmsg.rs"]
            .iter()
            .map(|f| src.join(f))
            .chain(
                std::fs::read_dir(src.join("kernel/loader"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            )
        {
            let text = std::fs::read_to_string(&file).unwrap();
            // `{` too: a grouped import would hide the layer it names.
            for upper in ["model", "output", "dump", "cgroup", "report", "{"] {
                assert!(
                    !text.contains(&format!("oomtrace_core::{upper}")),
                    "{} imports oomtrace_core::{upper}",
                    file.display()
                );
            }
        }
    }
}
