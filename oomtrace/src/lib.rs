//! The `oomtrace` binary's own layers: `kernel` (BTF, tracefs, /dev/kmsg and
//! the loader that embeds the eBPF object) and `commands` (run, report,
//! demo). Everything without a build script is in `oomtrace-core`.
pub mod cli;
pub mod commands;
pub mod kernel;

#[cfg(test)]
mod layers {
    use std::path::{Path, PathBuf};

    use oomtrace_core::layers::violations;

    /// kernel ← commands ← cli (main.rs sits on top). The kernel layer sits
    /// beside the core's events/cgroup/report and may use only its base and
    /// events from the core.
    #[test]
    fn binary_layers_import_only_downwards() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src, "crate", &[("kernel", 1), ("commands", 4), ("cli", 5)]);
        assert!(found.is_empty(), "{found:#?}");
        for file in rust_files(&src.join("kernel")) {
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

    /// The kernel programs import one another's helpers (`super::` paths),
    /// never in a loop.
    #[test]
    fn kernel_programs_import_without_loops() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oomtrace-ebpf/src/programs");
        let found = violations(&src, "crate::programs", &[]);
        assert!(found.is_empty(), "{found:#?}");
    }

    /// Every `.rs` file under `dir`: a module split into a directory is
    /// checked as a whole.
    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }
}
