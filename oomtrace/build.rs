//! Builds the kernel programs (crate `oomtrace-ebpf`, target bpfel-unknown-none,
//! installed nightly + bpf-linker) and leaves the object in OUT_DIR for
//! `include_bytes_aligned!`. `cargo xtask setup` installs what this needs.
fn main() -> anyhow::Result<()> {
    // aya-build forwards the inner cargo's stderr as build warnings; keep it to
    // real diagnostics rather than a "Compiling" line per crate.
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../oomtrace-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "oomtrace-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
