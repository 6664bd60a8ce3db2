// Rebuild the programs when the linker changes: aya-build only tracks this package's sources.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
