//! mmplot against the running kernel: the fragment workload and the huge-page squeeze recorded
//! by `mmplot record` with the real tools (ended by SIGINT and SIGTERM), an idle recording
//! ended by `-d`; single-run and comparison dashboards rendered as PNG and SVG. The images
//! decode, the SVG tables hold exactly the counts and rates computed here from the recordings,
//! and the titles name the host and the kernel.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tests::{
    kernel_available, serial, sys,
    tool::{self, Finished},
    workload::{HugepagesGuard, Squeeze, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");
const STOP: Duration = Duration::from_secs(30);

fn proc_value(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .expect("reading /proc/sys/kernel")
        .trim()
        .to_owned()
}

/// A recording, read as plain JSON lines.
struct Recording {
    lines: Vec<Value>,
}

impl Recording {
    fn read(path: &Path) -> Recording {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            text.ends_with('\n'),
            "{}: the last line is whole",
            path.display()
        );
        let lines = text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
            })
            .collect();
        Recording { lines }
    }

    fn events(&self, event: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["event"] == event).collect()
    }

    fn duration_ns(&self) -> i64 {
        let ts = |l: &Value| l["ts_ns"].as_i64().expect("ts_ns");
        ts(self.lines.last().expect("an end")) - ts(&self.lines[0])
    }

    /// The recorder's first and last lines, and each tool's: started, ended cleanly, every
    /// event line it wrote is in the file, none lost in the kernel.
    fn check_complete(&self, reason: &str) {
        let (first, last) = (&self.lines[0], self.lines.last().expect("lines"));
        assert_eq!(
            (&first["source"], &first["event"]),
            (&"mmplot".into(), &"start".into())
        );
        assert_eq!(first["host"], proc_value("hostname"), "{first}");
        assert_eq!(first["kernel"], proc_value("osrelease"), "{first}");
        assert_eq!(
            (&last["source"], &last["event"]),
            (&"mmplot".into(), &"end".into())
        );
        assert_eq!(last["reason"], reason, "{last}");
        for (source, event) in [
            ("compaction", "compaction"),
            ("extfrag", "extfrag"),
            ("reclaim", "reclaim"),
        ] {
            let of = |e: &str| {
                self.lines
                    .iter()
                    .filter(|l| l["source"] == source && l["event"] == e)
                    .collect::<Vec<_>>()
            };
            assert_eq!(of("start").len(), 1, "{source}: one start line");
            let ends = of("end");
            assert_eq!(ends.len(), 1, "{source}: one end line");
            let end = ends[0];
            assert_eq!(
                end["events"].as_u64(),
                Some(of(event).len() as u64),
                "{source}: every line the tool wrote is in the recording: {end}"
            );
            assert_eq!(end["lost"], 0, "{source}: {end}");
        }
        let statuses: Vec<&Value> = last["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| &t["status"])
            .collect();
        assert_eq!(statuses, [&Value::from(0); 3], "{last}");
    }

    /// The single-run table as mmplot must draw it: (label, amount, rate per minute).
    fn table(&self) -> Vec<(String, String, String)> {
        let dur = self.duration_ns();
        let rate = |amount: f64| format!("{:.2}", amount * 60.0 / (dur as f64 / 1e9));
        let mut rows = Vec::new();
        let mut count = |label: String, n: usize| {
            rows.push((label, n.to_string(), rate(n as f64)));
        };
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("unknown").to_owned();
        let tally = |vs: &[&Value], k: &str| {
            let mut m: BTreeMap<String, usize> = BTreeMap::new();
            for v in vs {
                *m.entry(text(v, k)).or_default() += 1;
            }
            m
        };
        let c = self.events("compaction");
        count("compaction runs".into(), c.len());
        for (k, n) in tally(&c, "status") {
            count(format!("status {k}"), n);
        }
        for (k, n) in tally(&c, "trigger") {
            count(format!("trigger {k}"), n);
        }
        count(
            "whole zone (order -1)".into(),
            c.iter().filter(|v| v["order"] == -1).count(),
        );
        let f = self.events("extfrag");
        count("fallbacks".into(), f.len());
        let claims = f.iter().filter(|v| v["ownership"] == "claim").count();
        count("steal".into(), f.len() - claims);
        count("claim".into(), claims);
        let frag = f.iter().filter(|v| v["fragmenting"] == true).count();
        count("fragmenting".into(), frag);
        count("not fragmenting".into(), f.len() - frag);
        let r = self.events("reclaim");
        let kinds = tally(&r, "kind");
        count(
            "direct reclaims".into(),
            kinds.get("direct").copied().unwrap_or(0),
        );
        for (k, n) in kinds.iter().filter(|(k, _)| *k != "direct") {
            count(format!("{k} reclaims"), *n);
        }
        let pages: u64 = r.iter().map(|v| v["pages"].as_u64().expect("pages")).sum();
        rows.push((
            "pages reclaimed".into(),
            pages.to_string(),
            rate(pages as f64),
        ));
        for (label, events) in [("compaction time, ms", &c), ("reclaim time, ms", &r)] {
            let ns: u64 = events
                .iter()
                .map(|v| v["latency_ns"].as_u64().expect("latency_ns"))
                .sum();
            let ms = ns as f64 / 1e6;
            rows.push((label.into(), format!("{ms:.1}"), rate(ms)));
        }
        rows
    }
}

/// Every `<text>` of an SVG in document order, and its size; panics unless it is XML.
fn svg(path: &Path) -> (Vec<String>, (u32, u32)) {
    let text = std::fs::read_to_string(path).expect("reading the SVG");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let dim = |a: &str| {
        root.attribute(a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {a} on <svg>"))
    };
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .collect();
    (texts, (dim("width"), dim("height")))
}

/// Decodes a PNG whole; returns its size, and panics if it is blank.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).expect("opening the PNG");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("a frame size")];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: does not decode: {e}", path.display()));
    assert!(
        buf[..info.buffer_size()].iter().any(|&b| b < 200),
        "{}: blank",
        path.display()
    );
    (info.width, info.height)
}

/// The cells after `label` in the table that starts at the text `caption` begins with.
fn cells<'a>(texts: &'a [String], caption: &str, label: &str, n: usize) -> &'a [String] {
    let start = texts
        .iter()
        .position(|t| t.starts_with(caption))
        .unwrap_or_else(|| panic!("no table {caption:?}"));
    let at = texts[start..]
        .iter()
        .position(|t| t == label)
        .unwrap_or_else(|| panic!("no row {label:?} in {:?}", &texts[start..]))
        + start;
    &texts[at + 1..at + 1 + n]
}

fn render(args: &[&Path]) {
    let mut cmd = Command::new(tests::tool_path("mmplot"));
    cmd.arg("render").args(args);
    let out = cmd.output().expect("running mmplot render");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stopped(f: &Finished, what: &str) {
    assert!(f.status.success(), "{what}: {:?}\n{}", f.status, f.stderr);
    assert!(
        f.header.starts_with("mmplot: recording into "),
        "{what}: {}",
        f.header
    );
}

#[test]
fn recordings_of_the_workloads_render_with_their_exact_counts_and_rates() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("tracer-mmplot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let file = |name: &str| -> PathBuf { dir.join(name) };
    let (frag, squeeze_rec, idle) = (
        file("frag.jsonl"),
        file("squeeze.jsonl"),
        file("idle.jsonl"),
    );

    // The fragment workload, ended by SIGINT. It holds huge pages; they are given back before
    // the squeeze.
    let hugepages = HugepagesGuard::new();
    let rec = tool::start("mmplot", &["record", "-o", frag.to_str().expect("path")]);
    Workload {
        binary: WORKLOAD,
        name: "wl-frag",
        uid: None,
    }
    .run(&["fragment"]);
    sys::write("/proc/sys/vm/nr_hugepages", hugepages.original()).expect("giving huge pages back");
    stopped(&rec.interrupt(STOP), "fragment recording");

    // The squeeze, ended by SIGTERM.
    let squeeze = Squeeze::prepare();
    let rec = tool::start(
        "mmplot",
        &["record", "-o", squeeze_rec.to_str().expect("path")],
    );
    squeeze.compaction_in(&Workload {
        binary: WORKLOAD,
        name: "wl-huge",
        uid: None,
    });
    squeeze.reclaim_in(&Workload {
        binary: WORKLOAD,
        name: "wl-reclaim",
        uid: None,
    });
    rec.signal(libc::SIGTERM);
    stopped(&rec.wait(STOP), "squeeze recording");
    drop(squeeze);

    // Nothing in particular, ended by -d.
    let rec = tool::start(
        "mmplot",
        &["record", "-o", idle.to_str().expect("path"), "-d", "2"],
    );
    stopped(&rec.wait(STOP), "idle recording");

    let recs = [
        Recording::read(&frag),
        Recording::read(&squeeze_rec),
        Recording::read(&idle),
    ];
    recs[0].check_complete("signal");
    recs[1].check_complete("signal");
    recs[2].check_complete("deadline");
    assert!(
        !recs[0].events("extfrag").is_empty(),
        "the fragment workload made no fallback: a failed workload"
    );
    assert!(
        !recs[1].events("compaction").is_empty()
            && recs[1]
                .events("reclaim")
                .iter()
                .any(|r| r["kind"] == "direct"),
        "the squeeze made no compaction or no direct reclaim: a failed workload"
    );

    // Each run alone: PNG and SVG for the first, SVG for the others.
    let host = proc_value("hostname");
    let kernel = format!("kernel {}", proc_value("osrelease"));
    let (frag_png, frag_svg) = (file("frag.png"), file("frag.svg"));
    render(&[
        &frag,
        Path::new("-o"),
        &frag_png,
        Path::new("-o"),
        &frag_svg,
    ]);
    let (_, size) = svg(&frag_svg);
    assert_eq!(png_size(&frag_png), size, "PNG and SVG of one dashboard");
    for (rec, path) in recs.iter().zip([&frag, &squeeze_rec, &idle]) {
        let out = path.with_extension("svg");
        if out != frag_svg {
            render(&[path, Path::new("-o"), &out]);
        }
        let (texts, _) = svg(&out);
        assert!(
            texts
                .iter()
                .any(|t| t.contains(&host) && t.contains(&kernel)),
            "{}: the title names {host} and {kernel}",
            out.display()
        );
        for (label, amount, rate) in rec.table() {
            assert_eq!(
                cells(&texts, "Totals", &label, 2),
                [amount, rate],
                "{}: row {label}",
                out.display()
            );
        }
    }

    // Compared: rates per minute of each, and the better run by the lowest rate shown.
    let labels = ["frag", "squeeze", "idle"];
    let (cmp_png, cmp_svg) = (file("compared.png"), file("compared.svg"));
    render(&[
        &frag,
        &squeeze_rec,
        &idle,
        Path::new("--labels"),
        Path::new(&labels.join(",")),
        Path::new("-o"),
        &cmp_png,
        Path::new("-o"),
        &cmp_svg,
    ]);
    let (texts, size) = svg(&cmp_svg);
    assert_eq!(png_size(&cmp_png), size, "PNG and SVG of the comparison");
    for l in labels {
        assert!(
            texts.iter().any(|t| t.starts_with(&format!("{l}: "))
                && t.contains(&host)
                && t.contains(&kernel)),
            "the comparison's title names {l}'s host and kernel"
        );
    }
    let compared = [
        "compaction runs",
        "compaction time, ms",
        "fallbacks",
        "fragmenting",
        "direct reclaims",
        "reclaim time, ms",
        "pages reclaimed",
    ];
    let tables: Vec<BTreeMap<String, String>> = recs
        .iter()
        .map(|r| {
            r.table()
                .into_iter()
                .map(|(l, _, rate)| (l, rate))
                .collect()
        })
        .collect();
    for label in compared {
        let rates: Vec<String> = tables.iter().map(|t| t[label].clone()).collect();
        let shown: Vec<f64> = rates.iter().map(|r| r.parse().expect("a rate")).collect();
        let min = shown.iter().copied().fold(f64::INFINITY, f64::min);
        let best: Vec<usize> = (0..3).filter(|&i| shown[i] == min).collect();
        let better = match best[..] {
            [i] => labels[i].to_owned(),
            _ => "=".to_owned(),
        };
        let mut want = rates;
        want.push(better);
        assert_eq!(
            cells(&texts, "Rates per minute", label, 4),
            want,
            "compared row {label}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
