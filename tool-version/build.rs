//! Names the commit the workspace is built from, for `--version` (`TOOL_GIT_COMMIT`).

/// The commit `--version` names: `git rev-parse --short HEAD` of this workspace's own
/// repository, or "unknown commit" where there is none (a source tarball, no git, or a tree
/// unpacked inside some other repository, whose commit would be a lie). Cargo runs this again
/// when HEAD moves: when it names another branch or commit, or its branch gets a new commit.
fn git_commit(workspace: &std::path::Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            // Root building a user's clone: reading its commit id is safe.
            .arg("-c")
            .arg(format!("safe.directory={}", workspace.display()))
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let ours = git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| {
        std::fs::canonicalize(top).ok() == std::fs::canonicalize(workspace).ok()
    });
    if !ours {
        return "unknown commit".to_owned();
    }
    // HEAD itself, the branch it names (loose or packed): whatever a commit or checkout changes.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = workspace.join(path);
            // A path that does not exist would make cargo run this script every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => format!("commit {commit}"),
        None => "unknown commit".to_owned(),
    }
}

fn main() {
    // CARGO_MANIFEST_DIR is always set for a build script; without it there is no workspace to
    // ask, which `git_commit` reports as an unknown commit.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let workspace = std::path::Path::new(&manifest_dir).join("..");
    println!("cargo:rustc-env=TOOL_GIT_COMMIT={}", git_commit(&workspace));
}
