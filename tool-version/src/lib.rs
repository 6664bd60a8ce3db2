//! What `--version` prints after a binary's name, the same for every binary of the workspace:
//! the version and the commit it was built from (`build.rs`), as `0.1.0 (commit 4eb4f98)` or
//! `0.1.0 (unknown commit)`. A crate of its own so that the tracers (through tracer-user) and
//! mmplot, which links no tracer code, take it from one place.

pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TOOL_GIT_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_commit() {
        let (version, commit) = VERSION.split_once(" (").unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let commit = commit.strip_suffix(')').unwrap();
        let known = commit
            .strip_prefix("commit ")
            .is_some_and(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(known || commit == "unknown commit", "{VERSION}");
    }
}
