//! Man pages and shell completions of both tools, generated from the clap definitions their
//! binaries parse (`<tool>::options::Opts`) and the texts beside them (`MANUAL`), so that
//! neither can drift from the command line. `cargo xtask package` runs the `docgen` binary.
//!
//! A man page has bcc's sections: NAME, SYNOPSIS, DESCRIPTION, OPTIONS (clap_mangen, from the
//! options' help), then EXAMPLES and COLUMNS (the very texts `-h` prints), EXIT STATUS,
//! KERNEL REQUIREMENTS, LOST EVENTS and SEE ALSO.

pub mod sections;

use std::io;

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::{
    Man,
    roff::{Roff, roman},
};
use tracer_user::cli::Manual;

/// The man section: the tools need root, so they are system administration commands
/// (`/usr/sbin`), as bcc's are in Debian.
pub const MAN_SECTION: &str = "8";

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// A tool: its command line and what its man page says beyond it.
pub struct Tool {
    pub command: clap::Command,
    pub manual: Manual,
}

impl Tool {
    pub fn name(&self) -> &str {
        self.command.get_name()
    }
}

/// Both tools, as their binaries parse their command lines.
pub fn tools() -> [Tool; 2] {
    [
        Tool {
            command: compactsnoop::options::Opts::command(),
            manual: compactsnoop::options::MANUAL,
        },
        Tool {
            command: drsnoop::options::Opts::command(),
            manual: drsnoop::options::MANUAL,
        },
    ]
}

/// What the man pages cannot know: when they were made, and where the README is installed.
#[derive(Clone, Debug, Default)]
pub struct PageInfo {
    /// The date in the title line, `YYYY-MM-DD` (the commit's, for reproducible packages).
    pub date: String,
    /// Where SEE ALSO sends the reader for the full documentation.
    pub readme: Option<String>,
}

/// The man page of `tool`, in roff.
pub fn man_page(tool: &Tool, others: &[&str], info: &PageInfo) -> io::Result<Vec<u8>> {
    let name = tool.name().to_owned();
    // The footer's "source": the version alone (with the commit it outgrows the line).
    let version = tool.command.get_version().unwrap_or_default();
    let version = version.split(" (").next().unwrap_or_default();
    let man = Man::new(tool.command.clone())
        .title(name.to_uppercase())
        .section(MAN_SECTION)
        .date(&info.date)
        .source(format!("{name} {version}"))
        .manual("System Manager's Manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    prose(&mut roff, tool.manual.description);
    roff.to_writer(&mut out)?;

    man.render_options_section(&mut out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    verbatim(&mut roff, tool.manual.examples);
    roff.control("SH", ["COLUMNS"]);
    verbatim(&mut roff, tool.manual.columns);
    roff.control("SH", ["EXIT STATUS"]);
    prose(&mut roff, &sections::for_tool(sections::EXIT_STATUS, &name));
    roff.control("SH", ["KERNEL REQUIREMENTS"]);
    prose(
        &mut roff,
        &sections::for_tool(sections::KERNEL_REQUIREMENTS, &name),
    );
    prose(&mut roff, tool.manual.kernel);
    roff.control("SH", ["LOST EVENTS"]);
    prose(&mut roff, &sections::for_tool(sections::LOST_EVENTS, &name));
    roff.control("SH", ["SEE ALSO"]);
    let mut see_also: Vec<String> = others
        .iter()
        .map(|o| format!("{o}({MAN_SECTION})"))
        .collect();
    see_also.push(format!("bcc's {name}"));
    roff.text([roman(format!("{}.", see_also.join(", ")))]);
    if let Some(readme) = &info.readme {
        roff.control("PP", []);
        roff.text([roman(format!(
            "The README, {readme}, has the rest: the JSON fields, the hooks each kernel gets, \
             and how the tools are built and tested."
        ))]);
    }
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// Plain text as roff: paragraphs separated by blank lines; a paragraph of lines starting with
/// `- ` is a list, one item per `- `; lines indented by 4 spaces are shown as they are.
fn prose(roff: &mut Roff, text: &str) {
    for paragraph in text.split("\n\n") {
        if paragraph.lines().all(|l| l.starts_with("    ")) {
            roff.control("RS", ["4"]);
            verbatim(roff, paragraph);
            roff.control("RE", []);
        } else if paragraph.starts_with("- ") {
            for item in paragraph.split("\n- ") {
                roff.control("IP", ["\\(bu", "2"]);
                roff.text([roman(join_lines(item.trim_start_matches("- ")))]);
            }
        } else {
            roff.control("PP", []);
            roff.text([roman(join_lines(paragraph))]);
        }
    }
}

fn join_lines(text: &str) -> String {
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// Text shown line for line, without the indentation all its lines share.
fn verbatim(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.control("nf", []);
    for line in dedent(text) {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

/// The lines of `text` without the indentation they all share.
pub fn dedent(text: &str) -> Vec<&str> {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect()
}

/// The completion script of `tool` for `shell`, and the name clap_complete gives its file
/// (`compactsnoop.bash`, `_compactsnoop`, `compactsnoop.fish`).
pub fn completion(tool: &Tool, shell: Shell) -> (String, Vec<u8>) {
    use clap_complete::Generator as _;
    let name = tool.name().to_owned();
    let mut command = tool.command.clone();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, &name, &mut script);
    (shell.file_name(&name), script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(tool: &Tool) -> String {
        let info = PageInfo {
            date: "2026-12-01".to_owned(),
            readme: Some("/usr/share/doc/x/README.md.gz".to_owned()),
        };
        String::from_utf8(man_page(tool, &["other"], &info).unwrap()).unwrap()
    }

    /// The text lines of one section, roff escapes undone.
    fn section(page: &str, heading: &str) -> Vec<String> {
        let start = format!(".SH {heading}\n");
        let rest = &page[page.find(&start).expect(heading) + start.len()..];
        let body = &rest[..rest.find("\n.SH ").map_or(rest.len(), |e| e + 1)];
        body.lines()
            .filter(|l| !l.starts_with('.'))
            .map(|l| {
                l.trim_start_matches("\\&")
                    .replace("\\*(Aq", "'")
                    .replace("\\-", "-")
                    .replace("\\\\", "\\")
            })
            .collect()
    }

    /// The lines `-h` prints under `heading:`, up to the next blank line.
    fn help_block(tool: &Tool, heading: &str) -> Vec<String> {
        let help = tool.command.clone().render_help().to_string();
        let start = format!("\n{heading}:\n");
        let rest = &help[help.find(&start).expect(heading) + start.len()..];
        let block = rest.split("\n\n").next().unwrap();
        dedent(block).into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn examples_and_columns_are_those_of_help() {
        for tool in tools() {
            let page = page(&tool);
            for (heading, help) in [("EXAMPLES", "examples"), ("COLUMNS", "columns")] {
                let shown = section(&page, heading);
                assert!(shown.len() > 3, "{}: {heading}: {shown:?}", tool.name());
                assert_eq!(shown, help_block(&tool, help), "{}: {heading}", tool.name());
            }
        }
    }

    #[test]
    fn pages_have_bccs_sections_in_order() {
        for tool in tools() {
            let page = page(&tool);
            let headings: Vec<&str> = page
                .lines()
                .filter_map(|l| l.strip_prefix(".SH "))
                .collect();
            assert_eq!(
                headings,
                [
                    "NAME",
                    "SYNOPSIS",
                    "DESCRIPTION",
                    "OPTIONS",
                    "EXAMPLES",
                    "COLUMNS",
                    "\"EXIT STATUS\"",
                    "\"KERNEL REQUIREMENTS\"",
                    "\"LOST EVENTS\"",
                    "\"SEE ALSO\"",
                ],
                "{}",
                tool.name()
            );
            let name = tool.name();
            let title = format!(
                ".TH {} 8 2026-12-01 \"{name} {}\"",
                name.to_uppercase(),
                env!("CARGO_PKG_VERSION")
            );
            assert!(page.lines().any(|l| l.starts_with(&title)), "{title}");
            let lost = section(&page, "\"LOST EVENTS\"").join("\n");
            assert!(lost.contains(&format!("{name}: N events lost")), "{lost}");
            assert!(!page.contains("{tool}"));
            let see_also = section(&page, "\"SEE ALSO\"").join(" ");
            assert!(see_also.starts_with("other(8), bcc's"), "{see_also}");
            for arg in tool.command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))));
                }
            }
        }
    }

    #[test]
    fn prose_makes_paragraphs_lists_and_verbatim_blocks() {
        let mut roff = Roff::new();
        prose(
            &mut roff,
            "One\nparagraph.\n\n- first\nitem\n- second\n\n    as-is  line\n      more",
        );
        assert_eq!(
            roff.to_roff(),
            ".PP\nOne paragraph.\n.IP \\(bu 2\nfirst item\n.IP \\(bu 2\nsecond\n\
             .RS 4\n.PP\n.nf\nas\\-is  line\n  more\n.fi\n.RE\n"
        );
    }

    /// bash, given `compactsnoop --<TAB>`, offers the long options, `--extended_fields` among
    /// them (and its alias).
    #[test]
    fn bash_completes_long_options() {
        let tools = tools();
        let (_, script) = completion(&tools[0], Shell::Bash);
        let script = String::from_utf8(script).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{script}\nCOMP_WORDS=(compactsnoop --); COMP_CWORD=1; \
                 _compactsnoop compactsnoop -- compactsnoop; printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ))
            .output()
            .expect("bash");
        assert!(out.status.success(), "{out:?}");
        let offered = String::from_utf8(out.stdout).unwrap();
        let offered: Vec<&str> = offered.lines().collect();
        for flag in [
            "--extended_fields",
            "--extended-fields",
            "--extfrag",
            "--hooks",
            "--histogram",
            "--cgroup",
        ] {
            assert!(offered.contains(&flag), "{flag} not in {offered:?}");
        }
        // drsnoop's, not compactsnoop's.
        assert!(!offered.contains(&"--memcg"), "{offered:?}");
    }

    #[test]
    fn completions_for_every_shell() {
        for tool in tools() {
            for shell in SHELLS {
                let (file, script) = completion(&tool, shell);
                assert!(file.contains(tool.name()), "{file}");
                let script = String::from_utf8(script).unwrap();
                for arg in tool.command.get_arguments() {
                    if let Some(long) = arg.get_long() {
                        assert!(script.contains(long), "{shell}: {long}");
                    }
                }
            }
        }
    }
}
