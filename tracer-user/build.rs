//! Builds the eBPF objects (`tracer-ebpf`'s bins: one per tool and transport) into OUT_DIR with
//! nightly and bpf-linker. `cargo xtask setup` installs both.
use anyhow::Context as _;

/// The objects build_ebpf writes into OUT_DIR, `<tool>-<transport>`, which lib.rs embeds.
const TOOLS: [&str; 3] = ["compactsnoop", "drsnoop", "memstall_exporter"];
const TRANSPORTS: [&str; 2] = ["ringbuf", "perfbuf"];

/// Removes the DWARF sections from the objects (`.debug_*` and their relocations; `.BTF` and
/// `.BTF.ext` stay, the latter without its line records: `drop_line_info`). bpf-linker needs
/// full debug info to emit BTF and keeps it in its output, 1.2 of the ring buffer object's 1.45 MB, which aya parses at every start (its relocations
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

/// Drops the line records from the objects' `.BTF.ext` (its header's line-info length set to 0;
/// the function records stay): aya parses them for every program of the object at each start,
/// and keeps a copy per program, although the kernel needs them only to print source lines in
/// a verifier log. compactsnoop's ring buffer object has 120 KB of them; without them its peak
/// RSS (static build, 6.18) went from 4.09 to 3.83 MB. Any kernel takes function records
/// without line records. An object whose layout is not as expected is kept as it is, with a
/// warning.
fn drop_line_info() {
    let Ok(out_dir) = std::env::var("OUT_DIR") else {
        return;
    };
    for tool in TOOLS {
        for transport in TRANSPORTS {
            let object = format!("{tool}-{transport}");
            let path = std::path::Path::new(&out_dir).join(&object);
            let Ok(mut bytes) = std::fs::read(&path) else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            match line_info_length_at(&bytes) {
                Some(at) => {
                    bytes[at..at + 4].fill(0);
                    if let Err(e) = std::fs::write(&path, &bytes) {
                        println!("cargo:warning=cannot rewrite {object}: {e}");
                    }
                }
                None => println!(
                    "cargo:warning={object}: no .BTF.ext of the expected layout; its line records stay"
                ),
            }
        }
    }
}

/// Where the line-info length of the `.BTF.ext` header is in a little-endian ELF64 object.
fn line_info_length_at(elf: &[u8]) -> Option<usize> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    // ELF64 (class 2), little-endian (data 1).
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let (shentsize, shnum, shstrndx) = (
        usize::from(u16_at(0x3a)?),
        usize::from(u16_at(0x3c)?),
        usize::from(u16_at(0x3e)?),
    );
    let section = |i: usize| shoff + i * shentsize;
    let strtab = usize::try_from(u64_at(section(shstrndx) + 24)?).ok()?;
    for i in 0..shnum {
        let name_at = strtab + usize::try_from(u32_at(section(i))?).ok()?;
        let name = elf.get(name_at..)?.split(|&b| b == 0).next()?;
        if name != b".BTF.ext" {
            continue;
        }
        let at = usize::try_from(u64_at(section(i) + 24)?).ok()?;
        // struct btf_ext_header: magic 0xeb9f, version, flags, hdr_len, func_info_off,
        // func_info_len, line_info_off, line_info_len.
        if u16_at(at)? != 0xeb9f || u32_at(at + 4)? < 24 {
            return None;
        }
        return Some(at + 20);
    }
    None
}

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir).join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path to tracer-ebpf")?;
    // The user side's release profile optimizes for size; the eBPF programs stay at
    // opt-level 3, which their stack use needs (the nested cargo reads this variable before
    // the workspace's profile). SAFETY: the build script has no other thread.
    unsafe { std::env::set_var("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3") };
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
    drop_line_info();
    Ok(())
}
