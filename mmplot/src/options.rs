//! mmplot's command line: what it accepts, what `-h` says, and the checks clap cannot make.

use std::{path::PathBuf, time::Duration};

use clap::{CommandFactory as _, Parser, Subcommand, error::ErrorKind};

use crate::{
    read::ReadOptions,
    record::Settings,
    render::{ImageFormat, Options},
};

/// Examples of use: `-h` prints them under "examples:", the man page as EXAMPLES.
pub const EXAMPLES: &str = "    \
    mmplot record -o run.jsonl                        # record until SIGINT or SIGTERM
    mmplot record -o run.jsonl -d 600                 # record for 10 minutes
    mmplot render run.jsonl -o run.png -o run.svg     # one run's dashboard
    mmplot render a.jsonl b.jsonl --labels 4k,16k -o ab.png
                                                      # two runs compared
    mmplot render fragmentation_data.json -o pf.png   # a file of plot-fragmentation's";

/// What the man page says beyond the options and `-h`'s examples (`docgen` renders it, in
/// section 1: a user command; only `record` needs root).
#[derive(Clone, Copy, Debug)]
pub struct Manual {
    /// DESCRIPTION.
    pub description: &'static str,
    /// EXAMPLES: the text `-h` shows under "examples:".
    pub examples: &'static str,
    /// EXIT STATUS.
    pub exit_status: &'static str,
    /// KERNEL REQUIREMENTS: those of `record`.
    pub kernel: &'static str,
}

pub const MANUAL: Manual = Manual {
    description: "\
mmplot records memory fragmentation as it happens and draws it. mmplot record starts \
compactsnoop -j -e (compaction runs with their zone's fragmentation index), compactsnoop -x -j \
(page allocation fallbacks) and drsnoop -j -m (direct and memory-cgroup reclaims), and writes \
every line they print into one JSON Lines file, between a start line of its own (host, kernel, \
time, the tools' command lines) and an end line (why it ended, each tool's exit status). It \
prints \"mmplot: recording into FILE (...); SIGINT or SIGTERM ends it\" once all three are \
attached. A copy of the file taken at any time can be drawn.

mmplot render draws one recording as a dashboard (compaction runs at their fragmentation \
index, latencies, fallbacks over time, a heatmap of fallback patterns, a table of totals and \
rates per minute), or several side by side on shared scales with a table that names the better \
run of each row. It reads mmplot's recordings, a tool's own -j output, and the \
fragmentation_data.json of plot-fragmentation; images are PNG or SVG, by the output's \
extension.",
    examples: EXAMPLES,
    exit_status: "\
- 0: the recording ended by SIGINT, SIGTERM or -d, with every tool's end line in the file; \
the images were written; also after -h and -V.
- 1: a failure: a tool that could not start or ended by itself (the recording is closed with \
an end line that says so), a file that cannot be read or written, a file that is no \
recording (empty, not JSON), a --bin too fine for a run's length. One sentence on stderr, \
after \"mmplot: \", says which.
- 2: a usage error: an unknown flag, a bad value, an output that is neither .png nor .svg, \
labels that do not match the recordings, said in one sentence on stderr.",
    kernel: "\
mmplot render needs no privilege and no particular kernel. mmplot record runs compactsnoop \
and drsnoop, so it needs what they need (root, tracefs, BTF for all they show: see \
compactsnoop(8) and drsnoop(8)); it looks for them beside mmplot, then on PATH, or in \
--tools-dir.",
};

/// Draw dashboards of memory fragmentation: compaction runs, fallbacks and reclaims.
#[derive(Debug, Parser)]
#[command(name = "mmplot", version = tool_version::VERSION, after_help = format!("examples:\n{EXAMPLES}"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record compaction runs (with fragmentation index), fallbacks and reclaims into one file,
    /// with compactsnoop and drsnoop, until SIGINT, SIGTERM or -d (needs root).
    Record(RecordOpts),
    /// Draw one recording's dashboard, or compare several, as PNG or SVG.
    Render(RenderOpts),
}

#[derive(Debug, clap::Args)]
pub struct RecordOpts {
    /// The recording to write (JSON Lines; replaced if it exists).
    #[arg(short, long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after that many seconds.
    #[arg(short, long, value_name = "SECONDS", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Where compactsnoop and drsnoop are (default: beside mmplot, then PATH).
    #[arg(long, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n @ 1..=31_536_000) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "`{s}` is not a duration (a whole number of seconds, 1 to 31536000)"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub struct RenderOpts {
    /// Recordings (mmplot record, a tool's -j output, or plot-fragmentation's JSON): one for
    /// its dashboard, several to compare them.
    #[arg(required = true, value_name = "RECORDING")]
    pub files: Vec<PathBuf>,
    /// Image to write, .png or .svg; give it more than once for several.
    #[arg(short, long = "output", value_name = "FILE", required = true)]
    pub outputs: Vec<PathBuf>,
    /// Names of the runs compared, comma-separated, one per recording (default: file names).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub labels: Vec<String>,
    /// Width of the fallback timelines' bins, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_bin)]
    pub bin: f64,
    /// The recording machine's pageblock order (9 on x86-64), for files that do not say
    /// whether a fallback fragments (plot-fragmentation's).
    #[arg(long, value_name = "ORDER", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub pageblock_order: Option<u32>,
}

fn parse_bin(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&v) {
        return Err(format!("`{s}` is out of range (0.001 to 86400 seconds)"));
    }
    Ok(v)
}

/// A command with its options checked.
#[derive(Debug)]
pub enum Cmd {
    Record(Settings),
    Render(Render),
}

#[derive(Debug)]
pub struct Render {
    pub files: Vec<PathBuf>,
    pub outputs: Vec<PathBuf>,
    pub read: ReadOptions,
    pub render: Options,
}

impl Cli {
    /// What clap cannot say: image formats by extension, one label per run.
    pub fn check(self) -> Result<Cmd, clap::Error> {
        let usage = |msg: String| Cli::command().error(ErrorKind::ValueValidation, msg);
        match self.command {
            Command::Record(r) => Ok(Cmd::Record(Settings {
                output: r.output,
                duration: r.duration,
                tools_dir: r.tools_dir,
                options: std::env::args().skip(1).collect(),
            })),
            Command::Render(r) => {
                for o in &r.outputs {
                    if ImageFormat::of(o).is_none() {
                        return Err(usage(format!(
                            "`{}`: an output's name must end in .png or .svg",
                            o.display()
                        )));
                    }
                }
                let labels = if r.labels.is_empty() {
                    default_labels(&r.files)
                } else {
                    r.labels
                };
                if labels.len() != r.files.len() {
                    return Err(usage(format!(
                        "{} labels for {} recordings: give one per recording",
                        labels.len(),
                        r.files.len()
                    )));
                }
                if labels.iter().any(|l| l.trim().is_empty()) {
                    return Err(usage("a label is empty".to_owned()));
                }
                if let Some(twice) = labels
                    .iter()
                    .find(|l| labels.iter().filter(|m| m == l).count() > 1)
                {
                    return Err(usage(format!("the label `{twice}` names two runs")));
                }
                Ok(Cmd::Render(Render {
                    files: r.files,
                    outputs: r.outputs,
                    read: ReadOptions {
                        pageblock_order: r.pageblock_order,
                    },
                    render: Options {
                        bin_ns: (r.bin * 1e9).round() as i64,
                        labels,
                    },
                }))
            }
        }
    }
}

/// Each file's name without its extension; the whole name where two are alike.
fn default_labels(files: &[PathBuf]) -> Vec<String> {
    let stem = |f: &PathBuf| {
        f.file_stem().map_or_else(
            || f.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let stems: Vec<String> = files.iter().map(stem).collect();
    let unique = stems
        .iter()
        .all(|s| stems.iter().filter(|t| *t == s).count() == 1);
    if unique {
        stems
    } else {
        files.iter().map(|f| f.display().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(args)?.check()
    }

    #[test]
    fn options_are_consistent() {
        Cli::command().debug_assert();
    }

    /// The version and the commit, from where the tracers and the exporter take theirs.
    #[test]
    fn version_names_the_commit_as_the_tracers_do() {
        assert_eq!(
            Cli::command().render_version(),
            format!("mmplot {}\n", tool_version::VERSION)
        );
    }

    #[test]
    fn record_takes_a_file_and_a_duration() {
        let Ok(Cmd::Record(r)) = parse(&["mmplot", "record", "-o", "r.jsonl", "-d", "30"]) else {
            panic!("a plain record")
        };
        assert_eq!(r.output, PathBuf::from("r.jsonl"));
        assert_eq!(r.duration, Some(Duration::from_secs(30)));
        for bad in [
            &["mmplot", "record"][..],
            &["mmplot", "record", "-o", "r", "-d", "0"],
            &["mmplot", "record", "-o", "r", "-d", "1.5"],
        ] {
            let e = parse(bad).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn render_checks_outputs_labels_and_bins() {
        let Ok(Cmd::Render(r)) =
            parse(&["mmplot", "render", "a.jsonl", "-o", "x.png", "-o", "y.SVG"])
        else {
            panic!("a plain render")
        };
        assert_eq!(r.render.labels, ["a"]);
        assert_eq!(r.render.bin_ns, 1_000_000_000);
        let Ok(Cmd::Render(r)) = parse(&[
            "mmplot",
            "render",
            "d/a.jsonl",
            "e/a.jsonl",
            "-o",
            "x.png",
            "--bin",
            "0.5",
        ]) else {
            panic!("two runs")
        };
        assert_eq!(r.render.labels, ["d/a.jsonl", "e/a.jsonl"]);
        assert_eq!(r.render.bin_ns, 500_000_000);
        let Ok(Cmd::Render(r)) = parse(&[
            "mmplot", "render", "a", "b", "--labels", "4k,16k", "-o", "x.svg",
        ]) else {
            panic!("labels")
        };
        assert_eq!(r.render.labels, ["4k", "16k"]);
        for bad in [
            &["mmplot", "render", "a", "-o", "x.jpg"][..],
            &[
                "mmplot", "render", "a", "b", "--labels", "one", "-o", "x.png",
            ],
            &["mmplot", "render", "a", "--labels", "", "-o", "x.png"],
            &[
                "mmplot", "render", "a", "b", "--labels", "x,x", "-o", "x.png",
            ],
            &["mmplot", "render", "a", "-o", "x.png", "--bin", "0"],
            &[
                "mmplot",
                "render",
                "a",
                "-o",
                "x.png",
                "--pageblock-order",
                "0",
            ],
            &["mmplot", "render", "a"],
        ] {
            let e = parse(bad).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }
}
