//! The Grafana dashboard (`exporter/grafana/memstall.json`) and the alerting rules
//! (`exporter/prometheus/alerts.yml`) against promtool and a real exporter: the rules pass
//! `promtool check rules` and their unit tests (`alerts_test.yml`), each alert with a case where
//! it fires and one where it stays quiet; every metric the dashboard and the rules name is a
//! family the exporter serves, in a scrape taken after the kernel compacted, reclaimed and fell
//! back; every expression evaluates in a real Prometheus scraping that exporter, and the
//! compaction panels show the compaction the test made.
//!
//! Every test here has `prometheus` in its name: the kernel matrix's VMs have no Prometheus and
//! skip them (`HOST_ONLY` in xtask/src/vmtest.rs).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use tests::{
    http, kernel_available,
    prometheus::{self, Prometheus},
    serial, tool,
    tracefs::wait_quiet,
    workload::{Squeeze, Workload},
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_mm-workload");

fn exporter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../exporter")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// An alerting rule of alerts.yml: its name, its lines, and its expression.
#[derive(Debug)]
struct Rule {
    alert: String,
    lines: Vec<String>,
    expr: String,
}

/// The alerting rules of a rule file, read line by line: the file is ours and keeps to
/// `- alert: NAME` items whose `expr:` is inline or a block scalar (`|`), which is all this
/// reads. Anything else in an item fails the test where it is used (no expression, say).
fn rules(yaml: &str) -> Vec<Rule> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out: Vec<Rule> = Vec::new();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            out.push(Rule {
                alert: name.trim().to_owned(),
                lines: Vec::new(),
                expr: String::new(),
            });
        } else if let Some(rule) = out.last_mut()
            && !trimmed.starts_with('#')
        {
            if let Some(rest) = trimmed.strip_prefix("expr:") {
                let rest = rest.trim();
                if rest.starts_with('|') || rest.starts_with('>') {
                    let mut expr = Vec::new();
                    while i + 1 < lines.len()
                        && (lines[i + 1].trim().is_empty() || indent(lines[i + 1]) > indent(line))
                    {
                        i += 1;
                        expr.push(lines[i].trim());
                    }
                    rule.expr = expr.join("\n").trim().to_owned();
                } else {
                    rule.expr = rest.trim_matches(|c| c == '\'' || c == '"').to_owned();
                }
            }
            rule.lines.push(trimmed.to_owned());
        }
        i += 1;
    }
    out
}

/// Per alert of a promtool test file, whether some test (`- name:`) expects it to fire, and
/// whether some test expects it quiet throughout (every case `exp_alerts: []`; a case inside a
/// firing test, still pending, does not count).
fn alert_cases(yaml: &str) -> BTreeMap<String, (bool, bool)> {
    // (test, alert) → fires in some case.
    let mut tests: BTreeMap<(usize, String), bool> = BTreeMap::new();
    let lines: Vec<&str> = yaml
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut test = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("- name:") {
            test += 1;
        }
        let Some(name) = l.strip_prefix("alertname:") else {
            continue;
        };
        let fires = tests.entry((test, name.trim().to_owned())).or_default();
        match (lines.get(i + 1), lines.get(i + 2)) {
            (Some(&"exp_alerts: []"), _) => {}
            (Some(&"exp_alerts:"), Some(next)) if next.starts_with("- exp_labels:") => {
                *fires = true
            }
            other => panic!("alert {name}: cannot read what the case expects: {other:?}"),
        }
    }
    let mut out: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for ((_, alert), fires) in tests {
        let e = out.entry(alert).or_default();
        if fires {
            e.0 = true;
        } else {
            e.1 = true;
        }
    }
    out
}

/// promtool, run in exporter/prometheus: its status and everything it printed.
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(exporter_dir().join("prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_rules_pass_promtool_check_and_their_unit_tests() {
    prometheus::ensure_installed().unwrap_or_else(|e| panic!("{e:#}"));
    let alerts = rules(&read(&exporter_dir().join("prometheus/alerts.yml")));
    assert!(!alerts.is_empty(), "no `- alert:` in alerts.yml");

    let (ok, out) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules alerts.yml:\n{out}");
    let found = format!("SUCCESS: {} rules found", alerts.len());
    assert!(
        out.contains(&found),
        "promtool check rules: expected {found:?}, got:\n{out}"
    );
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool test rules alerts_test.yml:\n{out}"
    );

    // Each alert waits (`for:`), says how bad (severity) and what happened.
    for r in &alerts {
        assert!(!r.expr.is_empty(), "{}: no expression", r.alert);
        for key in ["for:", "severity:", "summary:", "description:"] {
            assert!(
                r.lines.iter().any(|l| l.starts_with(key)),
                "{}: no `{key}`",
                r.alert
            );
        }
    }
    // ... and is tested both ways.
    let cases = alert_cases(&read(&exporter_dir().join("prometheus/alerts_test.yml")));
    let names: BTreeSet<&str> = alerts.iter().map(|r| r.alert.as_str()).collect();
    for r in &alerts {
        let (fires, quiet) = cases.get(&r.alert).copied().unwrap_or_default();
        assert!(fires, "{}: no test case where it fires", r.alert);
        assert!(quiet, "{}: no test case where it stays quiet", r.alert);
    }
    for name in cases.keys() {
        assert!(
            names.contains(name.as_str()),
            "alerts_test.yml tests {name}, which alerts.yml does not have"
        );
    }
}

/// Where an expression comes from, for messages.
#[derive(Debug, Clone)]
struct Expr {
    from: String,
    expr: String,
}

/// The dashboard's variables (name → query; the data-source variable has none) and the PromQL
/// of its panels' targets, rows' panels included.
fn dashboard(json: &Value) -> (BTreeMap<String, String>, Vec<Expr>) {
    let mut vars = BTreeMap::new();
    for v in json["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        let name = v["name"].as_str().expect("a variable's name").to_owned();
        let query = match &v["query"] {
            Value::Object(o) => o.get("query").and_then(Value::as_str).unwrap_or_default(),
            q => q.as_str().unwrap_or_default(),
        };
        vars.insert(
            name,
            if v["type"] == "query" {
                query.to_owned()
            } else {
                String::new()
            },
        );
    }
    let mut exprs = Vec::new();
    let mut panels: Vec<&Value> = json["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            exprs.push(Expr {
                from: format!("panel {title:?} target {}", t["refId"]),
                expr: expr.to_owned(),
            });
        }
    }
    (vars, exprs)
}

/// The data source every panel and target of the dashboard uses must be the `datasource`
/// variable: then an import asks for none, and one dashboard serves any Prometheus.
fn check_datasources(json: &Value) {
    let ds = |v: &Value, what: &str| {
        assert_eq!(
            v["datasource"]["uid"], "${datasource}",
            "{what}: data source {}",
            v["datasource"]
        );
    };
    let vars = json["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus data-source variable named `datasource`"
    );
    for v in vars.iter().filter(|v| v["type"] == "query") {
        ds(v, &format!("variable {}", v["name"]));
    }
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = json["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "panel id {} twice",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        ds(p, &format!("panel {}", p["title"]));
        for t in p["targets"].as_array().expect("targets") {
            ds(t, &format!("panel {} target {}", p["title"], t["refId"]));
        }
    }
}

/// The Grafana variables an expression uses (`$name`, `${name}`), built-ins (`$__...`) too.
fn variables(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = rest.trim_start_matches('{');
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        out.insert(body[..end].to_owned());
        rest = &body[end + usize::from(braced && body[end..].starts_with('}'))..];
    }
    out
}

/// Splits an expression into what lies outside strings, `{...}` and `[...]` (metric names,
/// functions, label lists of `by`) and what lies inside `{...}` (matchers): identifiers
/// outside, each with the matchers written right after it.
fn selectors(expr: &str) -> Vec<(String, Option<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string outside matchers (a label_values argument, say): skipped.
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            // Matchers with no name before them (`{__name__=...}`) name no family we check.
            i = matchers_end(&chars, i);
        } else if ident(c) && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == '$')) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let matchers = (j < chars.len() && chars[j] == '{').then(|| {
                let end = matchers_end(&chars, j);
                i = end;
                chars[j + 1..end - 1].iter().collect()
            });
            if !(c.is_ascii_digit()) {
                out.push((name, matchers));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The index after the `}` closing the matchers that open at `open`, strings skipped.
fn matchers_end(chars: &[char], open: usize) -> usize {
    let mut i = open + 1;
    while i < chars.len() && chars[i] != '}' {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            let q = chars[i];
            i += 1;
            while i < chars.len() && chars[i] != q {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
        }
        i += 1;
    }
    i + 1
}

/// A label matcher: `label op "value"`.
#[derive(Debug, PartialEq)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// The metric names an expression reads, each with the matchers it selects with: identifiers
/// outside strings and matchers that are ours (`memstall_...`) or Prometheus' own `up`.
/// Function names and the labels of `by (...)` are neither.
fn metric_names(expr: &str) -> BTreeMap<String, Vec<Matcher>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (name, matchers) in selectors(expr) {
        if !(name.starts_with("memstall_") || name == "up") {
            continue;
        }
        let list = out.entry(name).or_default();
        for m in split_matchers(matchers.as_deref().unwrap_or_default()) {
            let op_at = m
                .find(['=', '!'])
                .unwrap_or_else(|| panic!("a matcher without an operator: {m:?} in {expr}"));
            let label = m[..op_at].trim().to_owned();
            let rest = m[op_at..].trim_start();
            let quote = rest
                .find('"')
                .unwrap_or_else(|| panic!("a matcher without a \"value\": {m:?} in {expr}"));
            let op = rest[..quote].trim().to_owned();
            let value = rest[quote..].trim_matches('"').to_owned();
            list.push(Matcher { label, op, value });
        }
    }
    out
}

/// A selector's matchers, split at the commas outside strings.
fn split_matchers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None if c == ',' => out.push(std::mem::take(&mut cur)),
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                cur.push(c);
            }
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// A scrape in Prometheus' text format: each family's type (`# TYPE`) and help (`# HELP`), and
/// each sample's name and labels.
struct Scrape {
    families: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>)>,
}

fn parse_scrape(body: &str) -> Scrape {
    let mut families = BTreeMap::new();
    let mut help = BTreeMap::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            families.insert(name.to_owned(), kind.to_owned());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help.insert(name.to_owned(), text.to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            let series = line.rsplit_once(' ').expect("a sample's value").0;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("labels end with }")),
                None => (series, ""),
            };
            let labels = split_matchers(labels)
                .into_iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            samples.push((name.to_owned(), labels));
        }
    }
    for f in families.keys() {
        assert!(
            help.contains_key(f),
            "family {f} has a # TYPE but no # HELP"
        );
    }
    Scrape {
        families,
        help,
        samples,
    }
}

impl Scrape {
    /// The family a sample name belongs to: itself, or the histogram whose `_bucket`, `_sum`
    /// or `_count` it is.
    fn family_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.families.contains_key(name) {
            return Some(name);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let stem = name.strip_suffix(suffix)?;
            (self.families.get(stem).map(String::as_str) == Some("histogram")).then_some(stem)
        })
    }

    /// The label sets of the samples named `name`.
    fn labels_of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a BTreeMap<String, String>> {
        self.samples
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, l)| l)
    }
}

/// A scrape in Prometheus' text format, checked for status.
fn scrape(addr: SocketAddr) -> String {
    let r = http::get(addr, "/metrics", None).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The names of the kernel's compaction statuses, as `mm_compaction_end` prints them (its
/// `__print_symbolic` table: `{8, "success"}`, ...), which the exporter's `status` uses too.
fn compaction_statuses() -> BTreeSet<String> {
    let root = tests::tracefs::try_root().unwrap_or_else(|e| panic!("{e:#}"));
    let format = read(&root.join("events/compaction/mm_compaction_end/format"));
    let table = format
        .split_once("__print_symbolic(")
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no __print_symbolic in mm_compaction_end's format:\n{format}"));
    let names: BTreeSet<String> = table
        .split('{')
        .skip(1)
        .filter_map(|entry| Some(entry.split('"').nth(1)?.to_owned()))
        .collect();
    assert!(names.contains("success"), "compaction statuses: {names:?}");
    names
}

/// An expression as Grafana sends it: `$instance` the exporter under test, the other
/// variables All (`.*`, their allValue), `$__rate_interval` and `$__range` the test's window.
fn as_grafana_sends(
    e: &Expr,
    vars: &BTreeMap<String, String>,
    instance: &str,
    window: &str,
) -> String {
    let mut out = e.expr.clone();
    for v in variables(&e.expr) {
        let value = match v.as_str() {
            "__rate_interval" | "__range" | "__interval" => window,
            "instance" => instance,
            _ if vars.contains_key(&v) => ".*",
            _ => panic!(
                "{}: `${v}` is no variable of the dashboard: {}",
                e.from, e.expr
            ),
        };
        out = out
            .replace(&format!("${{{v}}}"), value)
            .replace(&format!("${v}"), value);
    }
    out
}

#[test]
fn prometheus_dashboard_and_rules_read_only_metrics_the_exporter_serves() {
    if !kernel_available() {
        return;
    }
    let _serial = serial();
    prometheus::ensure_installed().unwrap_or_else(|e| panic!("{e:#}"));
    let json: Value = serde_json::from_str(&read(&exporter_dir().join("grafana/memstall.json")))
        .unwrap_or_else(|e| panic!("memstall.json is not JSON: {e}"));
    check_datasources(&json);
    let (vars, panel_exprs) = dashboard(&json);
    for v in ["datasource", "instance", "node", "zone"] {
        assert!(vars.contains_key(v), "the dashboard has no `{v}` variable");
    }
    let rule_exprs: Vec<Expr> = rules(&read(&exporter_dir().join("prometheus/alerts.yml")))
        .into_iter()
        .map(|r| Expr {
            from: format!("alert {}", r.alert),
            expr: r.expr,
        })
        .collect();
    // label_values(SELECTOR, LABEL) of the variables: their selectors are PromQL.
    let var_selectors: Vec<(Expr, String)> = vars
        .iter()
        .filter(|(_, q)| !q.is_empty())
        .map(|(name, q)| {
            let args = q
                .strip_prefix("label_values(")
                .and_then(|a| a.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {q}"));
            let (selector, label) = args
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            (
                Expr {
                    from: format!("variable {name}"),
                    expr: selector.trim().to_owned(),
                },
                label.trim().to_owned(),
            )
        })
        .collect();
    assert!(!panel_exprs.is_empty() && !rule_exprs.is_empty());

    // The exporter, scraped every second, while the kernel compacts (by hand, in every zone),
    // reclaims and compacts directly (the squeeze), and falls back (the fragment workload).
    let squeeze = Squeeze::prepare();
    let addr: SocketAddr = ([127, 0, 0, 1], http::free_port()).into();
    let instance = addr.to_string();
    let exporter = tool::start("memstall_exporter", &["--listen", &instance]);
    let prom = Prometheus::start(&[addr]).unwrap_or_else(|e| panic!("{e:#}"));
    let s0 = prom
        .scraped_after(prometheus::now())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let workload = |name| Workload {
        binary: WORKLOAD,
        name,
        uid: None,
    };
    workload("wl-compact").run(&["compact"]);
    squeeze.compaction_in(&workload("wl-huge"));
    squeeze.reclaim_in(&workload("wl-reclaim"));
    workload("wl-frag").run(&["fragment"]);
    wait_quiet();
    // A series' first sample already holds the runs that made it, and rate() sees only what
    // comes after. The latency histograms are served at 0 from the start; run counts by status
    // appear with their first run: once Prometheus has sampled them, a second manual
    // compaction is what their panel shows.
    prom.scraped_after(prometheus::now())
        .unwrap_or_else(|e| panic!("{e:#}"));
    workload("wl-compact").run(&["compact"]);
    wait_quiet();
    let scrape = parse_scrape(&scrape(addr));
    // Two of Prometheus' scrapes after ours: every series of ours has two samples there, as
    // rate() needs.
    let s1 = prom
        .scraped_after(prometheus::now() + 2.5)
        .unwrap_or_else(|e| panic!("{e:#}"));
    // A window over the whole run, from a sample before the compaction.
    let window = format!("{}s", (s1 - s0).ceil() as u64 + 5);

    // Every name read is a family of the scrape, sampled (the workloads made every family
    // count something); every label matched is one its samples have; every value matched
    // literally is one a sample has (or, for `!=`, one the family's help names, as
    // cgroup="other", which only cgroups beyond --top-cgroups make), and every status matched
    // by a list of names is a name of the kernel's own compaction status table.
    let statuses = compaction_statuses();
    let all = panel_exprs
        .iter()
        .chain(&rule_exprs)
        .chain(var_selectors.iter().map(|(e, _)| e));
    for e in all {
        let names = metric_names(&e.expr);
        assert!(!names.is_empty(), "{}: reads no metric: {}", e.from, e.expr);
        for (name, matchers) in &names {
            if name == "up" {
                continue; // Prometheus' own, checked below
            }
            let family = scrape.family_of(name).unwrap_or_else(|| {
                panic!(
                    "{}: {name} is no family the exporter serves (families: {:?})",
                    e.from,
                    scrape.families.keys()
                )
            });
            let labels: Vec<_> = scrape.labels_of(name).collect();
            assert!(
                !labels.is_empty(),
                "{}: no sample of {name} after the workloads: a failed workload",
                e.from
            );
            for Matcher { label, op, value } in matchers {
                if label == "instance" || label == "job" {
                    continue; // added by Prometheus
                }
                assert!(
                    labels.iter().any(|l| l.contains_key(label)),
                    "{}: {name} has no label {label} (a sample: {:?})",
                    e.from,
                    labels.first()
                );
                if value.contains('$') {
                    continue; // a variable: All here
                }
                if op == "=" || op == "!=" {
                    let documented =
                        op == "!=" && scrape.help[family].contains(&format!("{label}=\"{value}\""));
                    assert!(
                        documented || labels.iter().any(|l| l.get(label) == Some(value)),
                        "{}: no sample of {name} has {label}=\"{value}\": a wrong value, or a \
                         failed workload (values: {:?})",
                        e.from,
                        labels
                            .iter()
                            .filter_map(|l| l.get(label))
                            .collect::<BTreeSet<_>>()
                    );
                } else if label == "status" {
                    for v in value.split('|') {
                        assert!(
                            statuses.contains(v),
                            "{}: status {v:?} is not among the kernel's {statuses:?}",
                            e.from
                        );
                    }
                }
            }
        }
    }

    // `up` is Prometheus', for this exporter under job="memstall" as the rules expect.
    let up = prom
        .query("up{job=\"memstall\"}", Some(s1))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        up.iter()
            .any(|(l, v)| l.get("instance") == Some(&instance) && *v == 1.0),
        "up{{job=\"memstall\"}} of {instance}: {up:?}"
    );

    // Every expression evaluates, as Grafana would send it for this exporter. What is checked
    // is how many series it gives, so each is asked for through count(): one sample back
    // rather than a heatmap's 28 buckets.
    let count = |e: &Expr, q: &str| -> f64 {
        let result = prom
            .query(&format!("count({q})"), Some(s1))
            .unwrap_or_else(|err| panic!("{}: {err:#}", e.from));
        result.first().map_or(0.0, |(_, n)| *n)
    };
    // Whether the scrape has what an expression selects: a sample of every family it names
    // with every `label="value"` it asks for (variables are All). `up` is Prometheus'.
    let in_scrape = |e: &Expr| {
        metric_names(&e.expr).iter().all(|(name, matchers)| {
            name == "up"
                || scrape.labels_of(name).any(|l| {
                    matchers.iter().all(|m| {
                        m.label == "instance"
                            || m.label == "job"
                            || m.op != "="
                            || m.value.contains('$')
                            || l.get(&m.label) == Some(&m.value)
                    })
                })
        })
    };
    for e in panel_exprs.iter().chain(&rule_exprs) {
        let q = as_grafana_sends(e, &vars, &instance, &window);
        let n = count(e, &q);
        if e.from.starts_with("panel") && in_scrape(e) {
            assert!(
                n >= 1.0,
                "{}: no data, though the scrape has it: {q}",
                e.from
            );
        }
        // The panels of compaction and reclaim show the manual compaction and the squeeze's
        // direct reclaim: a value above 0 (runs, seconds, pages, a quantile of a group that
        // had runs). The exporter serves their series at 0 from its start, so this is what
        // tells a workload that counted from one that did not.
        if e.from.starts_with("panel")
            && metric_names(&e.expr).keys().any(|n| {
                n.starts_with("memstall_compaction_") || n.starts_with("memstall_reclaim_")
            })
        {
            assert!(
                count(e, &format!("({q}) > 0")) >= 1.0,
                "{}: nothing above 0 after a manual compaction and a direct reclaim: {q}",
                e.from
            );
        }
    }
    // The variables list the values of their label.
    for (e, label) in &var_selectors {
        let q = as_grafana_sends(e, &vars, &instance, &window);
        let with_label = match q.strip_suffix('}') {
            Some(open) => format!("{open}, {label}!=\"\"}}"),
            None => format!("{q}{{{label}!=\"\"}}"),
        };
        let n = count(e, &with_label);
        if in_scrape(e) {
            assert!(
                n >= 1.0,
                "{}: no series with a {label}: {with_label}",
                e.from
            );
        }
    }

    drop(prom);
    let done = exporter.interrupt(std::time::Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    drop(squeeze);
}

#[test]
fn prometheus_names_are_read_from_promql_as_written() {
    let names = |e: &str| -> Vec<String> { metric_names(e).into_keys().collect() };
    assert_eq!(
        names(
            "histogram_quantile(0.99, sum by (instance, le) (rate(memstall_reclaim_duration_seconds_bucket{kind=\"direct\"}[$__rate_interval])))"
        ),
        ["memstall_reclaim_duration_seconds_bucket"]
    );
    // Labels of by/on, strings and durations hold no names; `up` is one.
    assert_eq!(
        names(
            "up{job=\"memstall\", instance=~\"$instance\"} == 0 and on (instance) memstall_build_info{version=\"memstall_x\"}"
        ),
        ["memstall_build_info", "up"]
    );
    assert_eq!(
        names(
            "label_values(memstall_compaction_duration_seconds_bucket{instance=~\"$instance\"}, node)"
        ),
        ["memstall_compaction_duration_seconds_bucket"]
    );
    let m = metric_names(
        "sum(rate(memstall_extfrag_fallbacks_total{instance=~\"a,b\", fragmenting=\"true\", ownership!=\"claim\"}[5m]))",
    );
    let matcher = |label: &str, op: &str, value: &str| Matcher {
        label: label.to_owned(),
        op: op.to_owned(),
        value: value.to_owned(),
    };
    assert_eq!(
        m["memstall_extfrag_fallbacks_total"],
        [
            matcher("instance", "=~", "a,b"),
            matcher("fragmenting", "=", "true"),
            matcher("ownership", "!=", "claim"),
        ]
    );
    assert_eq!(
        variables("rate(x{a=~\"$instance\", b=\"${node}\"}[$__rate_interval])"),
        BTreeSet::from([
            "instance".to_owned(),
            "node".to_owned(),
            "__rate_interval".to_owned()
        ])
    );
    // The rule file reader takes inline and block expressions.
    let r = rules(
        "groups:\n  - name: g\n    rules:\n      # a comment: for: nothing\n      - alert: A\n        expr: up == 0\n        for: 5m\n      - alert: B\n        expr: |\n          sum(x)\n          > 1\n        for: 1m\n",
    );
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].alert.as_str(), r[0].expr.as_str()), ("A", "up == 0"));
    assert_eq!(
        (r[1].alert.as_str(), r[1].expr.as_str()),
        ("B", "sum(x)\n> 1")
    );
    assert!(!r[0].lines.iter().any(|l| l.contains("nothing")));
}
