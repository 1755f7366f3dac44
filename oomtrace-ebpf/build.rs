//! Rebuild the kernel programs when bpf-linker changes (it is an undeclared
//! dependency of the bpfel-unknown-none link step).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf")
        && let Ok(linker) = which::which("bpf-linker")
    {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
