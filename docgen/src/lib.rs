//! Man pages and shell completions of every binary the package installs, generated from the
//! clap definitions they parse (`<crate>::options`) and the texts beside them (`MANUAL`), so
//! that neither can drift from the command line. `cargo xtask package` runs the `docgen` binary.
//!
//! Every page has NAME, SYNOPSIS, DESCRIPTION and OPTIONS (clap_mangen, from the options' help),
//! COMMANDS for a binary with subcommands (each one's synopsis and options), then the sections
//! of its kind, and SEE ALSO. The tracers have bcc's: EXAMPLES and COLUMNS (the very texts `-h`
//! prints), EXIT STATUS, KERNEL REQUIREMENTS, LOST EVENTS. The exporter, a daemon: EXAMPLES and
//! METRICS (`-h`'s), EXIT STATUS, KERNEL REQUIREMENTS, FILES. mmplot, a user command: EXAMPLES
//! (`-h`'s), EXIT STATUS, KERNEL REQUIREMENTS.

pub mod sections;

use std::io;

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::{
    Man,
    roff::{Roff, roman},
};

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// What a section says: prose, or a text `-h` prints too, shown line for line.
#[derive(Clone, Debug)]
pub enum Body {
    /// Paragraphs, lists and indented blocks (see `prose`).
    Prose(String),
    /// The text `-h` prints under `heading:`.
    Help {
        heading: &'static str,
        text: &'static str,
    },
}

/// One man page: a binary's command line and what its page says beyond it.
pub struct Page {
    pub command: clap::Command,
    /// 8 for what needs root and lives in /usr/sbin (the tracers, the exporter, as bcc's tools
    /// are in Debian), 1 for a user command in /usr/bin (mmplot: only `record` needs root).
    pub section: &'static str,
    pub description: &'static str,
    /// The sections after OPTIONS (and COMMANDS), in order.
    pub sections: Vec<(&'static str, Body)>,
    /// Pages beyond this package's own that SEE ALSO names, as `name(section)` or words.
    pub see_also: &'static [&'static str],
}

impl Page {
    pub fn name(&self) -> &str {
        self.command.get_name()
    }

    /// This page as SEE ALSO names it: `drsnoop(8)`.
    pub fn reference(&self) -> String {
        format!("{}({})", self.name(), self.section)
    }

    /// The file docgen writes it to, and the package installs gzipped in `man<section>/`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.name(), self.section)
    }
}

/// A tracer's page: bcc's sections, with the texts both tracers share (`sections`).
fn tracer(
    command: clap::Command,
    manual: tracer_user::cli::Manual,
    see_also: &'static [&'static str],
) -> Page {
    let name = command.get_name().to_owned();
    let kernel = format!(
        "{}\n\n{}",
        sections::for_tool(sections::KERNEL_REQUIREMENTS, &name),
        manual.kernel
    );
    Page {
        section: "8",
        description: manual.description,
        sections: vec![
            ("EXAMPLES", help("examples", manual.examples)),
            ("COLUMNS", help("columns", manual.columns)),
            (
                "EXIT STATUS",
                Body::Prose(sections::for_tool(sections::EXIT_STATUS, &name)),
            ),
            ("KERNEL REQUIREMENTS", Body::Prose(kernel)),
            (
                "LOST EVENTS",
                Body::Prose(sections::for_tool(sections::LOST_EVENTS, &name)),
            ),
        ],
        see_also,
        command,
    }
}

fn help(heading: &'static str, text: &'static str) -> Body {
    Body::Help { heading, text }
}

/// Every binary's page, as the binaries parse their command lines.
pub fn pages() -> Vec<Page> {
    use memstall_exporter::options as exporter;
    use mmplot::options as mmplot;
    vec![
        tracer(
            compactsnoop::options::Opts::command(),
            compactsnoop::options::MANUAL,
            &["bcc's compactsnoop"],
        ),
        tracer(
            drsnoop::options::Opts::command(),
            drsnoop::options::MANUAL,
            &["bcc's drsnoop"],
        ),
        Page {
            command: exporter::Opts::command(),
            section: "8",
            description: exporter::MANUAL.description,
            sections: vec![
                ("EXAMPLES", help("examples", exporter::MANUAL.examples)),
                (
                    "METRICS",
                    help(exporter::METRICS_HEADING, exporter::MANUAL.metrics),
                ),
                (
                    "EXIT STATUS",
                    Body::Prose(exporter::MANUAL.exit_status.to_owned()),
                ),
                (
                    "KERNEL REQUIREMENTS",
                    Body::Prose(exporter::MANUAL.kernel.to_owned()),
                ),
                ("FILES", Body::Prose(exporter::MANUAL.files.to_owned())),
            ],
            see_also: &["systemctl(1)", "promtool(1)", "prometheus(1)"],
        },
        Page {
            command: mmplot::Cli::command(),
            section: "1",
            description: mmplot::MANUAL.description,
            sections: vec![
                ("EXAMPLES", help("examples", mmplot::MANUAL.examples)),
                (
                    "EXIT STATUS",
                    Body::Prose(mmplot::MANUAL.exit_status.to_owned()),
                ),
                (
                    "KERNEL REQUIREMENTS",
                    Body::Prose(mmplot::MANUAL.kernel.to_owned()),
                ),
            ],
            see_also: &["plot-fragmentation of kdevops"],
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

/// The man page of `page`, in roff; `others` are the other pages' references (`drsnoop(8)`).
pub fn man_page(page: &Page, others: &[String], info: &PageInfo) -> io::Result<Vec<u8>> {
    let name = page.name().to_owned();
    // The footer's "source": the version alone (with the commit it outgrows the line).
    let version = page.command.get_version().unwrap_or_default();
    let version = version.split(" (").next().unwrap_or_default();
    let man = Man::new(page.command.clone())
        .title(name.to_uppercase())
        .section(page.section)
        .date(&info.date)
        .source(format!("{name} {version}"))
        .manual(if page.section == "8" {
            "System Manager's Manual"
        } else {
            "User Commands"
        });
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    prose(&mut roff, page.description);
    roff.to_writer(&mut out)?;

    man.render_options_section(&mut out)?;
    commands(&page.command, &mut out)?;

    let mut roff = Roff::new();
    for (title, body) in &page.sections {
        roff.control("SH", [*title]);
        match body {
            Body::Prose(text) => prose(&mut roff, text),
            Body::Help { text, .. } => verbatim(&mut roff, text),
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let see_also: Vec<&str> = others
        .iter()
        .map(String::as_str)
        .chain(page.see_also.iter().copied())
        .collect();
    roff.text([roman(format!("{}.", see_also.join(", ")))]);
    if let Some(readme) = &info.readme {
        roff.control("PP", []);
        roff.text([roman(format!(
            "The README, {readme}, has the rest: the JSON fields, the metrics, the hooks each \
             kernel gets, and how the binaries are built and tested."
        ))]);
    }
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// COMMANDS: each subcommand (but `help`) under a heading of its own, with what it does, its
/// synopsis and its options, as clap_mangen renders them for the subcommand alone.
fn commands(command: &clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    let mut command = command.clone();
    // Names the subcommands `mmplot record`, as their synopses should.
    command.build();
    let subcommands: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    if subcommands.is_empty() {
        return Ok(());
    }
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.to_writer(out)?;
    for sub in subcommands {
        let mut roff = Roff::new();
        roff.control("SS", [sub.get_bin_name().unwrap_or(sub.get_name())]);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            prose(&mut roff, &about.to_string());
        }
        roff.control("PP", []);
        roff.to_writer(out)?;
        let man = Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        out.extend_from_slice(&without_heading(&section));
        section.clear();
        man.render_options_section(&mut section)?;
        out.extend_from_slice(&without_heading(&section));
    }
    Ok(())
}

/// A section clap_mangen rendered, without its heading (`.SH OPTIONS`, after the string
/// definitions every rendering starts with).
fn without_heading(section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(section.len());
    let mut skipped = false;
    for line in section.split_inclusive(|&b| b == b'\n') {
        if !skipped && line.starts_with(b".SH ") {
            skipped = true;
        } else {
            out.extend_from_slice(line);
        }
    }
    out
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

/// The completion script of `page`'s binary for `shell`, and the name clap_complete gives its
/// file (`compactsnoop.bash`, `_compactsnoop`, `compactsnoop.fish`).
pub fn completion(page: &Page, shell: Shell) -> (String, Vec<u8>) {
    use clap_complete::Generator as _;
    let name = page.name().to_owned();
    let mut command = page.command.clone();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, &name, &mut script);
    (shell.file_name(&name), script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(page: &Page) -> String {
        let info = PageInfo {
            date: "2026-12-01".to_owned(),
            readme: Some("/usr/share/doc/x/README.md.gz".to_owned()),
        };
        String::from_utf8(man_page(page, &["other(8)".to_owned()], &info).unwrap()).unwrap()
    }

    /// The section titles as roff writes them: quoted when they hold a space.
    fn heading(title: &str) -> String {
        if title.contains(' ') {
            format!("\"{title}\"")
        } else {
            title.to_owned()
        }
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
    fn help_block(page: &Page, heading: &str) -> Vec<String> {
        let help = page.command.clone().render_help().to_string();
        let start = format!("\n{heading}:\n");
        let rest = &help[help.find(&start).expect(heading) + start.len()..];
        let block = rest.split("\n\n").next().unwrap();
        dedent(block).into_iter().map(str::to_owned).collect()
    }

    /// Every long flag of `command` and of its subcommands.
    fn long_flags(command: &clap::Command) -> Vec<String> {
        let mut flags: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        for sub in command.get_subcommands() {
            flags.extend(long_flags(sub));
        }
        flags
    }

    #[test]
    fn texts_of_help_are_those_of_help() {
        let mut shown_somewhere = 0;
        for page in pages() {
            let rendered = render(&page);
            for (title, body) in &page.sections {
                if let Body::Help { heading: help, .. } = body {
                    let shown = section(&rendered, &heading(title));
                    assert!(shown.len() > 2, "{}: {title}: {shown:?}", page.name());
                    assert_eq!(shown, help_block(&page, help), "{}: {title}", page.name());
                    shown_somewhere += 1;
                }
            }
            assert!(
                page.sections.iter().any(|(t, _)| *t == "EXAMPLES"),
                "{}",
                page.name()
            );
        }
        // compactsnoop's and drsnoop's EXAMPLES and COLUMNS, the exporter's EXAMPLES and
        // METRICS, mmplot's EXAMPLES.
        assert_eq!(shown_somewhere, 7);
    }

    #[test]
    fn pages_have_their_kinds_sections_in_order() {
        let tracer = [
            "EXAMPLES",
            "COLUMNS",
            "\"EXIT STATUS\"",
            "\"KERNEL REQUIREMENTS\"",
            "\"LOST EVENTS\"",
        ];
        let daemon = [
            "EXAMPLES",
            "METRICS",
            "\"EXIT STATUS\"",
            "\"KERNEL REQUIREMENTS\"",
            "FILES",
        ];
        let plotter = [
            "COMMANDS",
            "EXAMPLES",
            "\"EXIT STATUS\"",
            "\"KERNEL REQUIREMENTS\"",
        ];
        for page in pages() {
            let name = page.name().to_owned();
            let rendered = render(&page);
            let headings: Vec<&str> = rendered
                .lines()
                .filter_map(|l| l.strip_prefix(".SH "))
                .collect();
            let own: &[&str] = match name.as_str() {
                "compactsnoop" | "drsnoop" => &tracer,
                "memstall_exporter" => &daemon,
                "mmplot" => &plotter,
                other => panic!("a page for {other}: which sections?"),
            };
            let expected: Vec<&str> = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"]
                .into_iter()
                .chain(own.iter().copied())
                .chain(["\"SEE ALSO\""])
                .collect();
            assert_eq!(headings, expected, "{name}");
            let title = format!(
                ".TH {} {} 2026-12-01 \"{name} {}\"",
                name.to_uppercase(),
                page.section,
                env!("CARGO_PKG_VERSION")
            );
            assert!(rendered.lines().any(|l| l.starts_with(&title)), "{title}");
            assert!(!rendered.contains("{tool}"), "{name}");
            let see_also = section(&rendered, "\"SEE ALSO\"").join(" ");
            assert!(see_also.starts_with("other(8), "), "{see_also}");
            for flag in long_flags(&page.command) {
                let flag = format!("\\-\\-{}", flag.replace('-', "\\-"));
                assert!(rendered.contains(&flag), "{name}: {flag}");
            }
        }
    }

    #[test]
    fn tracers_count_their_lost_events() {
        for page in &pages()[..2] {
            let lost = section(&render(page), "\"LOST EVENTS\"").join("\n");
            assert!(
                lost.contains(&format!("{}: N events lost", page.name())),
                "{lost}"
            );
        }
    }

    /// mmplot's subcommands each get a heading, their synopsis and their options.
    #[test]
    fn commands_have_synopsis_and_options() {
        let pages = pages();
        let mmplot = pages.iter().find(|p| p.name() == "mmplot").unwrap();
        let rendered = render(mmplot);
        let commands = &rendered[rendered.find(".SH COMMANDS\n").unwrap()..];
        let commands = &commands[..commands.find(".SH EXAMPLES").unwrap()];
        for (heading, flag) in [
            (".SS \"mmplot record\"", "\\fB\\-\\-tools\\-dir\\fR"),
            (".SS \"mmplot render\"", "\\fB\\-\\-labels\\fR"),
        ] {
            let at = commands.find(heading).expect(heading);
            assert!(commands[at..].contains(flag), "{heading}: {flag}");
        }
        assert!(!commands.contains("mmplot help"), "{commands}");
        assert!(!commands.contains(".SH OPTIONS"), "{commands}");
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
        let pages = pages();
        let (_, script) = completion(&pages[0], Shell::Bash);
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
        for page in pages() {
            for shell in SHELLS {
                let (file, script) = completion(&page, shell);
                assert!(file.contains(page.name()), "{file}");
                let script = String::from_utf8(script).unwrap();
                for flag in long_flags(&page.command) {
                    assert!(script.contains(&flag), "{}: {shell}: {flag}", page.name());
                }
            }
        }
    }
}
