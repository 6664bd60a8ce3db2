//! `cargo xtask setup`: nightly's rust-src and a bpf-linker built against nightly's own
//! libLLVM (distributions ship an LLVM too old for the Rust BPF target). Idempotent: when both
//! are in place it only checks them.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{output, run_cmd};

const TOOLCHAIN: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13";

pub fn run() -> Result<()> {
    ensure_toolchain()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    Ok(())
}

fn ensure_toolchain() -> Result<()> {
    let list = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is needed to build the eBPF programs (https://rustup.rs)")?;
    if !list.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        eprintln!("xtask: installing the {TOOLCHAIN} toolchain");
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            TOOLCHAIN,
            "--profile",
            "minimal",
        ]))?;
    }
    Ok(())
}

fn ensure_rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        TOOLCHAIN,
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!(
            "xtask: adding the rust-src component to {TOOLCHAIN} (core is rebuilt for the BPF target)"
        );
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            TOOLCHAIN,
        ]))?;
    }
    Ok(())
}

/// The LLVM major version of the nightly compiler, from `rustc -vV`.
fn llvm_major() -> Result<u32> {
    let vv = output(
        Command::new("rustc")
            .arg(format!("+{TOOLCHAIN}"))
            .arg("-vV"),
    )?;
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .context("`rustc -vV` does not say which LLVM it uses")?;
    version
        .trim()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .context("unreadable LLVM version")
}

fn bpf_linker_ok() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains(&format!(" {BPF_LINKER_VERSION}."))
        })
}

fn ensure_bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        return Ok(());
    }
    let sysroot = output(
        Command::new("rustc")
            .arg(format!("+{TOOLCHAIN}"))
            .args(["--print", "sysroot"]),
    )?;
    let libdir = std::path::Path::new(sysroot.trim()).join("lib");
    let major = llvm_major()?;
    // The shared library nightly ships, e.g. libLLVM-22-rust-1.97.0-nightly.so.
    let prefix = format!("libLLVM-{major}-");
    let lib = std::fs::read_dir(&libdir)
        .with_context(|| format!("cannot list {}", libdir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(&prefix) && n.ends_with(".so"))
        .with_context(|| {
            format!(
                "the {TOOLCHAIN} toolchain has no {prefix}*.so in {} to build bpf-linker against",
                libdir.display()
            )
        })?;
    let link_name = lib.trim_start_matches("lib").trim_end_matches(".so");
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against {lib} (LLVM {major}); about a minute"
    );
    let rustflags = format!(
        "-L {dir} -l dylib={link_name} -C link-args=-Wl,-rpath,{dir}",
        dir = libdir.display()
    );
    run_cmd(
        Command::new("cargo")
            .arg(format!("+{TOOLCHAIN}"))
            .args(["install", "bpf-linker", "--locked", "--no-default-features"])
            .args(["--version", &format!("^{BPF_LINKER_VERSION}")])
            .args(["--features", &format!("llvm-{major},no-llvm-linking")])
            .env("RUSTFLAGS", rustflags),
    )
    .context("building bpf-linker failed")?;
    if !bpf_linker_ok() {
        bail!("bpf-linker was installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}
