//! cargo's `--message-format=json` lines: which executables a build produced.

use std::path::PathBuf;

use serde::Deserialize;

/// An executable cargo built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The target's first kind: `bin`, `test`, `lib`, ...
    pub kind: String,
    /// The target's name.
    pub name: String,
    /// Built with the test harness (a test executable, not the program itself).
    pub test: bool,
    pub executable: PathBuf,
}

/// The fields read of one message; everything else in it is ignored.
#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    profile: Profile,
    /// `null` for artifacts that are not executables (libraries, build scripts' outputs).
    #[serde(default)]
    executable: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
struct Target {
    #[serde(default)]
    kind: Vec<String>,
    #[serde(default)]
    name: String,
}

#[derive(Default, Deserialize)]
struct Profile {
    #[serde(default)]
    test: bool,
}

/// The executable a line announces: `None` for other messages, for artifacts without an
/// executable, and for lines that are not JSON (cargo's stdout may carry a build script's).
pub fn parse_line(line: &str) -> Option<Artifact> {
    let m: Message = serde_json::from_str(line).ok()?;
    if m.reason != "compiler-artifact" {
        return None;
    }
    Some(Artifact {
        kind: m.target.kind.into_iter().next().unwrap_or_default(),
        name: m.target.name,
        test: m.profile.test,
        executable: m.executable?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_executable_artifact() {
        let a = parse_line(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#0.1.0","target":{"kind":["test"],"crate_types":["bin"],"name":"drsnoop","src_path":"/w/tests/tests/drsnoop.rs"},"profile":{"opt_level":"0","debuginfo":2,"test":true},"features":[],"filenames":["/w/target/debug/deps/drsnoop-1f"],"executable":"/w/target/debug/deps/drsnoop-1f\u00e9","fresh":false}"#,
        );
        assert_eq!(
            a,
            Some(Artifact {
                kind: "test".to_owned(),
                name: "drsnoop".to_owned(),
                test: true,
                executable: PathBuf::from("/w/target/debug/deps/drsnoop-1fé"),
            })
        );
    }

    #[test]
    fn reads_a_program_artifact() {
        let a = parse_line(
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"mm-workload"},"profile":{"test":false},"executable":"/w/target/debug/mm-workload","fresh":true}"#,
        )
        .unwrap();
        assert_eq!(
            (a.kind.as_str(), a.name.as_str(), a.test),
            ("bin", "mm-workload", false)
        );
        assert_eq!(a.executable, PathBuf::from("/w/target/debug/mm-workload"));
    }

    #[test]
    fn skips_what_is_not_an_executable() {
        // A library: no executable.
        assert_eq!(
            parse_line(
                r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"tests"},"profile":{"test":false},"executable":null}"#
            ),
            None
        );
        // Other messages, even with an executable field.
        assert_eq!(
            parse_line(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(
            parse_line(r#"{"reason":"build-script-executed","executable":"/x"}"#),
            None
        );
        // Not JSON, or broken JSON.
        assert_eq!(parse_line("warning: unused variable"), None);
        assert_eq!(parse_line(r#"{"reason":}"#), None);
    }
}
