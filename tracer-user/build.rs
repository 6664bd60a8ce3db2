//! Builds the eBPF objects (`tracer-ebpf`'s bins: one per tool and transport) into OUT_DIR with
//! nightly and bpf-linker. `cargo xtask setup` installs both.
use anyhow::Context as _;

/// The objects build_ebpf writes into OUT_DIR, `<tool>-<transport>`, which lib.rs embeds.
const TOOLS: [&str; 3] = ["compactsnoop", "drsnoop", "memstall_exporter"];
const TRANSPORTS: [&str; 2] = ["ringbuf", "perfbuf"];

/// Removes the DWARF sections from the objects (`.debug_*` and their relocations; `.BTF` and
/// `.BTF.ext` stay). bpf-linker needs full debug info to emit BTF and keeps it in its output,
/// 1.2 of the ring buffer object's 1.45 MB, which aya parses at every start (its relocations
/// included) although nothing reads it. Also `.rel.BTF.ext`: the relocations of the line and
/// function records, whose offsets a linked object already has in place (libbpf skips
/// relocations of sections without instructions; aya parses them into a list it drops). They
/// were 70 of drsnoop's 337 KB. Without an objcopy the objects are kept as they are.
fn strip_debug_info() {
    let Ok(out_dir) = std::env::var("OUT_DIR") else {
        return;
    };
    let objects = TOOLS
        .iter()
        .flat_map(|tool| TRANSPORTS.map(|transport| format!("{tool}-{transport}")));
    for object in objects {
        let path = std::path::Path::new(&out_dir).join(&object);
        if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
            continue;
        }
        let stripped = ["llvm-objcopy", "rust-objcopy"].iter().any(|tool| {
            std::process::Command::new(tool)
                .arg("--strip-debug")
                .arg("--remove-section=.rel.BTF.ext")
                .arg(&path)
                .status()
                .is_ok_and(|s| s.success())
        });
        if !stripped {
            println!(
                "cargo:warning=no llvm-objcopy: {object} keeps its DWARF (slower start, more memory)"
            );
        }
    }
}

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
    )?;
    strip_debug_info();
    Ok(())
}
