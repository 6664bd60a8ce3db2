//! Builds the eBPF objects (`tracer-ebpf`'s two bins) into OUT_DIR with nightly and bpf-linker.
//! `cargo xtask setup` installs both.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir).join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path to tracer-ebpf")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs failed; `cargo xtask setup` installs the nightly rust-src \
         component and bpf-linker they need",
    )
}
