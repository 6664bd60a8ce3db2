//! The initramfs: a cpio (newc) archive, gzipped, written here so that owners and modes are
//! the guest's (root, whatever the host files' owners) and no staging tree is needed.
//!
//! Host files keep their host paths; the host's directory symlinks on the way (`/bin` →
//! `usr/bin`, `/lib64` → `usr/lib64` on a merged-/usr Debian) are reproduced, so that ELF
//! interpreters and library paths found by `ldd` resolve in the guest as on the host.

use std::{
    collections::BTreeMap,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

#[derive(Debug)]
enum Entry {
    Dir,
    /// Contents from a host file.
    File {
        host: PathBuf,
        mode: u32,
    },
    Bytes {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// Files for the guest, by absolute guest path.
#[derive(Default, Debug)]
pub struct Archive {
    entries: BTreeMap<PathBuf, Entry>,
}

fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    pub fn contains(&self, guest: &Path) -> bool {
        self.entries.contains_key(guest)
    }

    pub fn dir(&mut self, guest: impl AsRef<Path>) {
        self.entries.insert(guest.as_ref().to_owned(), Entry::Dir);
    }

    pub fn bytes(&mut self, guest: impl AsRef<Path>, data: impl Into<Vec<u8>>, mode: u32) {
        self.entries.insert(
            guest.as_ref().to_owned(),
            Entry::Bytes {
                data: data.into(),
                mode,
            },
        );
    }

    pub fn file(&mut self, guest: impl AsRef<Path>, host: impl AsRef<Path>, mode: u32) {
        self.entries.insert(
            guest.as_ref().to_owned(),
            Entry::File {
                host: host.as_ref().to_owned(),
                mode,
            },
        );
    }

    pub fn symlink(&mut self, guest: impl AsRef<Path>, target: impl Into<String>) {
        self.entries
            .insert(guest.as_ref().to_owned(), Entry::Symlink(target.into()));
    }

    pub fn char_dev(&mut self, guest: impl AsRef<Path>, major: u32, minor: u32) {
        self.entries
            .insert(guest.as_ref().to_owned(), Entry::CharDev { major, minor });
    }

    /// The guest path of a host directory, reproducing every symlink on the way as the host
    /// has it.
    pub fn mirror_dir(&mut self, host: &Path) -> Result<PathBuf> {
        self.mirror_dir_depth(host, 0)
    }

    fn mirror_dir_depth(&mut self, host: &Path, depth: u32) -> Result<PathBuf> {
        if depth > 40 {
            bail!("too many symlinks at {}", host.display());
        }
        let host = lexical_normalize(host);
        let mut cur = PathBuf::from("/");
        let comps: Vec<_> = host.components().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let meta =
                std::fs::symlink_metadata(&cur).with_context(|| format!("{}", cur.display()))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&cur)?;
                self.symlink(&cur, target.to_string_lossy());
                let mut resolved = cur.parent().unwrap_or(Path::new("/")).join(&target);
                for rest in &comps[i + 1..] {
                    resolved.push(rest);
                }
                return self.mirror_dir_depth(&resolved, depth + 1);
            }
        }
        Ok(cur)
    }

    /// Adds a host file (following a final symlink as the host does, and keeping the link),
    /// at its host path; returns its guest path.
    pub fn host_file(&mut self, host: &Path) -> Result<PathBuf> {
        self.host_file_as(host, None)
    }

    /// As `host_file`, with the contents taken from `contents` (a stripped copy).
    pub fn host_file_as(&mut self, host: &Path, contents: Option<&Path>) -> Result<PathBuf> {
        let mut path = host.to_owned();
        for _ in 0..40 {
            let parent = path.parent().context("a file path")?;
            let name = path.file_name().context("a file name")?.to_owned();
            let guest = self.mirror_dir(parent)?.join(&name);
            let meta = std::fs::symlink_metadata(&guest)
                .with_context(|| format!("{}", guest.display()))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&guest)?;
                self.symlink(&guest, target.to_string_lossy());
                path = lexical_normalize(&guest.parent().unwrap_or(Path::new("/")).join(target));
                continue;
            }
            let mode = meta.permissions().mode() & 0o7777;
            self.file(&guest, contents.unwrap_or(&guest), mode);
            return Ok(guest);
        }
        bail!("too many symlinks at {}", host.display())
    }

    /// A dynamically linked host executable with its shared libraries and ELF interpreter.
    pub fn host_binary(&mut self, host: &Path, contents: Option<&Path>) -> Result<PathBuf> {
        let guest = self.host_file_as(host, contents)?;
        for lib in shared_libraries(host)? {
            self.host_file(&lib)?;
        }
        Ok(guest)
    }

    /// Writes the archive, cpio newc, uncompressed.
    pub fn write_cpio(&self, out: &mut impl std::io::Write) -> Result<()> {
        // Directories every entry needs, parents first (BTreeMap order puts a parent before
        // what is in it).
        let mut all: BTreeMap<&Path, &Entry> = BTreeMap::new();
        for (p, e) in &self.entries {
            for a in p.ancestors().skip(1) {
                if a != Path::new("/") && !self.entries.contains_key(a) {
                    all.insert(a, &Entry::Dir);
                }
            }
            all.insert(p, e);
        }
        let mut ino = 1u32;
        for (path, entry) in all {
            let name = path.strip_prefix("/").unwrap_or(path);
            let (mode, data, rdev): (u32, std::borrow::Cow<'_, [u8]>, (u32, u32)) = match entry {
                Entry::Dir => (0o040755, (&[][..]).into(), (0, 0)),
                Entry::File { host, mode } => (
                    0o100000 | mode,
                    std::fs::read(host)
                        .with_context(|| format!("{}", host.display()))?
                        .into(),
                    (0, 0),
                ),
                Entry::Bytes { data, mode } => (0o100000 | mode, data.as_slice().into(), (0, 0)),
                Entry::Symlink(t) => (0o120777, t.as_bytes().into(), (0, 0)),
                Entry::CharDev { major, minor } => (0o020600, (&[][..]).into(), (*major, *minor)),
            };
            write_entry(
                out,
                ino,
                mode,
                rdev,
                name.to_string_lossy().as_bytes(),
                &data,
            )?;
            ino += 1;
        }
        write_entry(out, ino, 0, (0, 0), b"TRAILER!!!", &[])?;
        Ok(())
    }

    /// Writes the archive gzipped to `path`.
    pub fn write_gz(&self, path: &Path) -> Result<()> {
        let raw = path.with_extension("cpio");
        {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&raw).with_context(|| format!("{}", raw.display()))?,
            );
            self.write_cpio(&mut f)?;
            f.flush()?;
        }
        let gz = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
        crate::run_cmd(
            Command::new("gzip")
                .args(["-1", "-n", "-c"])
                .arg(&raw)
                .stdout(gz),
        )?;
        std::fs::remove_file(&raw)?;
        Ok(())
    }
}

fn write_entry(
    out: &mut impl std::io::Write,
    ino: u32,
    mode: u32,
    rdev: (u32, u32),
    name: &[u8],
    data: &[u8],
) -> Result<()> {
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0, // uid
        0, // gid
        0, // mtime
        data.len(),
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() + 1,
        0, // check
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name)?;
    out.write_all(&[0])?;
    let pad = |n: usize| (4 - n % 4) % 4;
    out.write_all(&[0u8; 3][..pad(header.len() + name.len() + 1)])?;
    out.write_all(data)?;
    out.write_all(&[0u8; 3][..pad(data.len())])?;
    Ok(())
}

/// The shared libraries and ELF interpreter `ldd` names for a binary (none when static).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot start ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // `not a dynamic executable`: a static binary.
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        } else if line.contains("not found") {
            bail!("{}: {line}", binary.display());
        }
    }
    Ok(libs)
}

/// A copy of an ELF file without its debug sections (the debug builds carry hundreds of MB),
/// in `dir`; the original where `strip` is not there or fails.
pub fn stripped(binary: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join(name);
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status()
        .is_ok_and(|s| s.success());
    Ok(if ok { out } else { binary.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_padded_to_four_bytes() {
        let mut a = Archive::new();
        a.bytes("/etc/x", b"hello".to_vec(), 0o644);
        a.symlink("/bin", "usr/bin");
        let mut out = Vec::new();
        a.write_cpio(&mut out).unwrap();
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        // `etc` is created before `etc/x`.
        let (etc, x) = (text.find("etc\0").unwrap(), text.find("etc/x\0").unwrap());
        assert!(etc < x);
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        assert!(out.starts_with(b"070701"));
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(
            lexical_normalize(Path::new("/usr/lib64/../lib/x86_64-linux-gnu/./ld.so")),
            PathBuf::from("/usr/lib/x86_64-linux-gnu/ld.so")
        );
    }
}
