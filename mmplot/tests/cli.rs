//! mmplot's command line through the real binary, without the kernel: a file in
//! plot-fragmentation's format (written here from its documented layout) renders with the
//! kernel's migrate-type names and its exact counts, and bad input gets one sentence naming the
//! file and line, with the right exit status.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const MMPLOT: &str = env!("CARGO_BIN_EXE_mmplot");

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmplot-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a scratch directory");
    d
}

fn mmplot(args: &[&str]) -> Output {
    Command::new(MMPLOT)
        .args(args)
        .output()
        .expect("running mmplot")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Every `<text>` of an SVG, in document order.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).expect("reading the SVG");
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .collect()
}

/// The two cells that follow a table row's label.
fn row<'a>(texts: &'a [String], label: &str) -> (&'a str, &'a str) {
    let at = texts
        .iter()
        .position(|t| t == label)
        .unwrap_or_else(|| panic!("no row {label:?} in {texts:?}"));
    (&texts[at + 1], &texts[at + 2])
}

/// An extfrag event as plot-fragmentation's tracker writes it: `migrate_from` is the
/// fallback's type, `migrate_to` the allocation's, `is_steal` the opposite of the kernel's
/// `change_ownership`; `fragmentation_index` and `node` are its placeholders.
fn extfrag(t: f64, order: u32, fb: u32, from: &str, to: &str, steal: bool) -> String {
    format!(
        r#"    {{
      "timestamp": {t},
      "absolute_time": "2025-09-03T13:03:33.518124",
      "event_type": "extfrag",
      "pid": 48702,
      "tid": 48702,
      "comm": "mount",
      "order": {order},
      "fallback_order": {fb},
      "migrate_from": "{from}",
      "migrate_to": "{to}",
      "is_steal": {steal},
      "node": -1,
      "fragmentation_index": 700
    }}"#
    )
}

fn plot_fragmentation_file(dir: &Path) -> PathBuf {
    let events = [
        extfrag(1.5, 0, 3, "MOVABLE", "UNMOVABLE", true),
        extfrag(2.5, 0, 10, "MOVABLE", "UNMOVABLE", false),
        extfrag(3.5, 2, 4, "MOVABLE", "RECLAIMABLE", true),
        extfrag(4.5, 0, 9, "UNMOVABLE", "MOVABLE", false),
        // Written "PCPTYPES" by its table: the kernel's type 3, HighAtomic.
        extfrag(5.5, 0, 0, "PCPTYPES", "UNMOVABLE", true),
        r#"    {
      "timestamp": 10.25, "absolute_time": "x", "event_type": "compaction_success",
      "pid": 49335, "comm": "thpcompact", "order": 9, "fragmentation_index": -1000,
      "zone": "Normal", "node": 0
    }"#
        .to_owned(),
        r#"    {
      "timestamp": 11.25, "absolute_time": "x", "event_type": "compaction_success",
      "pid": 49335, "comm": "thpcompact", "order": 9, "fragmentation_index": 985,
      "zone": "Normal", "node": 0
    }"#
        .to_owned(),
        r#"    {
      "timestamp": 12.25, "absolute_time": "x", "event_type": "compaction_failure",
      "pid": 49335, "comm": "thpcompact", "order": 9, "fragmentation_index": -1
    }"#
        .to_owned(),
    ];
    let doc = format!(
        r#"{{
  "metadata": {{
    "start_time": 1756929774.1973147,
    "end_time": 1756929804.1973147,
    "duration": 30.0,
    "total_events": {n},
    "kernel_version": "6.17.0-rc4-test"
  }},
  "events": [
{events}
  ],
  "statistics": {{
    "extfrag": {{"0": 4, "2": 1}},
    "compaction": {{"9": {{"success": 2, "failure": 1}}}}
  }}
}}
"#,
        n = events.len(),
        events = events.join(",\n")
    );
    let p = dir.join("fragmentation_data.json");
    std::fs::write(&p, doc).expect("writing the fixture");
    p
}

#[test]
fn a_plot_fragmentation_file_renders_with_the_kernels_migrate_type_names() {
    let d = dir("pf");
    let input = plot_fragmentation_file(&d);
    let (png, svg) = (d.join("pf.png"), d.join("pf.svg"));
    let out = mmplot(&[
        "render",
        s(&input),
        "-o",
        s(&png),
        "-o",
        s(&svg),
        "--pageblock-order",
        "9",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("the PNG"),
    ));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    reader.next_frame(&mut buf).expect("a PNG frame");

    let texts = svg_texts(&svg);
    // Heatmap rows: allocation's type → the fallback's, as the kernel names them, with totals.
    for label in [
        "Unmovable → Movable (2)",
        "Reclaimable → Movable (1)",
        "Movable → Unmovable (1)",
        "Unmovable → HighAtomic (1)",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no {label:?} in {texts:?}"
        );
    }
    for written in ["PCPTYPES", "MOVABLE", "UNMOVABLE"] {
        assert!(
            !texts.iter().any(|t| t.contains(written)),
            "{written} shown as plot-fragmentation wrote it"
        );
    }
    // Counts and rates (30 s: twice the count per minute).
    for (label, count, rate) in [
        ("compaction runs", "3", "6.00"),
        ("status success", "2", "4.00"),
        ("status failure", "1", "2.00"),
        ("fallbacks", "5", "10.00"),
        ("steal", "3", "6.00"),
        ("claim", "2", "4.00"),
        // Below pageblock order 9: fallback orders 3, 4 and 0.
        ("fragmenting", "3", "6.00"),
        ("not fragmenting", "2", "4.00"),
    ] {
        assert_eq!(row(&texts, label), (count, rate), "{label}");
    }
    assert_eq!(row(&texts, "reclaim time, ms").0, "not recorded");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("host not recorded") && t.contains("kernel 6.17.0-rc4-test")),
        "title: {texts:?}"
    );
}

/// One line on stderr, `mmplot: ` and then the sentence.
fn one_sentence(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err.trim_end()
        .strip_prefix("mmplot: ")
        .unwrap_or_else(|| panic!("named: {err:?}"))
        .to_owned()
}

const START: &str = r#"{"source":"mmplot","event":"start","schema":1,"tool":"mmplot","version":"0.1.0","host":"h","kernel":"k","time":"2026-12-01T00:00:00.000000000Z","ts_ns":1000}"#;

/// drsnoop's start line in a recording: the recording holds reclaims.
const DRSNOOP: &str = r#"{"source":"reclaim","event":"start","schema":1,"tool":"drsnoop","version":"0.1.0","ts_ns":2000}"#;

#[test]
fn bad_input_gets_one_sentence_naming_file_and_line_and_status_1() {
    let d = dir("bad");
    let out_png = d.join("x.png");
    let cases: [(&str, String, &str); 5] = [
        ("empty.jsonl", String::new(), ": empty: no recording in it"),
        ("text.jsonl", "hello\n".to_owned(), ":1: not JSON ("),
        (
            "schema.jsonl",
            format!("{START}\n{{\"event\":\"reclaim\",\"ts_ns\":5}}\n"),
            ":2: a `reclaim` line without `kind`",
        ),
        (
            "middle.jsonl",
            format!("{START}\n{{\"event\":\"reclaim\",\n{START}\n"),
            ":2: not a recording line (",
        ),
        (
            "pf.json",
            "{\n  \"metadata\": {},\n  \"events\": [\n    {\"timestamp\": \"soon\"}\n  ]\n}\n"
                .to_owned(),
            ":4: not a plot-fragmentation file (invalid type",
        ),
    ];
    for (name, text, what) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).expect("writing the input");
        let out = mmplot(&["render", s(&p), "-o", s(&out_png)]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let said = one_sentence(&out);
        assert!(
            said.starts_with(&format!("{}{what}", p.display())),
            "{name}: {said:?}"
        );
    }
    let missing = d.join("missing.jsonl");
    let out = mmplot(&["render", s(&missing), "-o", s(&out_png)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_sentence(&out).contains("No such file"));
    assert!(!out_png.exists(), "nothing drawn from bad input");
    // Usage errors: status 2.
    let out = mmplot(&["render", s(&missing), "-o", "x.gif"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_cut_last_line_is_drawn_without_with_a_warning() {
    let d = dir("cut");
    let p = d.join("cut.jsonl");
    let reclaim = r#"{"source":"reclaim","event":"reclaim","ts_ns":60000001000,"latency_ns":1000,"kind":"direct","pages":3}"#;
    std::fs::write(
        &p,
        format!(
            "{START}\n{DRSNOOP}\n{reclaim}\n{}",
            &reclaim[..reclaim.len() - 9]
        ),
    )
    .expect("writing the input");
    let svg = d.join("cut.svg");
    let out = mmplot(&["render", s(&p), "-o", s(&svg)]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "mmplot: warning: {}:4: the last line is cut short",
            p.display()
        )),
        "{err}"
    );
    assert!(err.contains("has no end line"), "{err}");
    let texts = svg_texts(&svg);
    // One minute long (to the last whole line), one reclaim.
    assert_eq!(row(&texts, "direct reclaims"), ("1", "1.00"));
    assert_eq!(row(&texts, "pages reclaimed"), ("3", "3.00"));
}
