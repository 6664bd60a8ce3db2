//! Which tests run, and in which guest: the host lists every test executable's tests once,
//! leaves out the host-only ones and those `--filter` does not match, and splits the rest of a
//! kernel's tests over `--shards` guests by how long each took in the matrix last committed, so
//! that the guests of one kernel end at about the same time.

use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::Result;

use crate::output;

/// A test: (suite, name).
pub type Test = (String, String);

/// Every test to run, and the host-only ones left out, in suite order.
pub struct Plan {
    pub run: Vec<Test>,
    pub host_only: Vec<Test>,
}

/// Lists the tests of each suite executable (`--list --format terse`).
pub fn list(
    suites: &BTreeMap<String, std::path::PathBuf>,
    host_only: &[&str],
    filter: Option<&str>,
) -> Result<Plan> {
    let mut plan = Plan {
        run: Vec::new(),
        host_only: Vec::new(),
    };
    for (suite, exe) in suites {
        let list = output(Command::new(exe).args(["--list", "--format", "terse"]))?;
        for name in list.lines().filter_map(|l| l.strip_suffix(": test")) {
            let test = (suite.clone(), name.to_owned());
            if host_only.iter().any(|h| name.contains(h)) {
                plan.host_only.push(test);
                continue;
            }
            if filter.is_none_or(|f| {
                let full = format!("{suite}::{name}");
                f.split(',').any(|f| full.contains(f))
            }) {
                plan.run.push(test);
            }
        }
    }
    Ok(plan)
}

/// Seconds each test took in a matrix file (`| suite::name | pass 71s | pass 79s | ... |`), the
/// longest over its kernels; tests it does not have are absent.
pub fn previous_secs(matrix: &str) -> BTreeMap<String, u64> {
    let mut secs = BTreeMap::new();
    for line in matrix.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", "suite::name", cell, ..., ""]
        let Some(name) = cells.get(1).filter(|n| n.contains("::")) else {
            continue;
        };
        let longest = cells[2..]
            .iter()
            .filter_map(|c| c.rsplit(' ').next()?.strip_suffix('s')?.parse::<u64>().ok())
            .max();
        if let Some(s) = longest {
            secs.insert((*name).to_owned(), s);
        }
    }
    secs
}

/// Splits `tests` into `n` parts of about equal time: longest first, each to the part with the
/// least so far (a test the weights lack counts as their median). Each part keeps the order of
/// `tests`.
pub fn split(tests: &[Test], n: usize, weights: &BTreeMap<String, u64>) -> Vec<Vec<Test>> {
    let n = n.max(1);
    let mut known: Vec<u64> = tests
        .iter()
        .filter_map(|(s, t)| weights.get(&format!("{s}::{t}")).copied())
        .collect();
    known.sort_unstable();
    let median = known.get(known.len() / 2).copied().unwrap_or(30);
    let weight = |(s, t): &Test| weights.get(&format!("{s}::{t}")).copied().unwrap_or(median);
    let mut order: Vec<usize> = (0..tests.len()).collect();
    // Stable: equal weights keep their order, so the split is the same on every run.
    order.sort_by_key(|&i| std::cmp::Reverse(weight(&tests[i])));
    let mut load = vec![0u64; n];
    let mut part_of = vec![0usize; tests.len()];
    for i in order {
        let p = (0..n).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        load[p] += weight(&tests[i]).max(1);
        part_of[i] = p;
    }
    let mut parts = vec![Vec::new(); n];
    for (i, t) in tests.iter().enumerate() {
        parts[part_of[i]].push(t.clone());
    }
    parts
}

/// The plan file of one guest (`/vmtest/plan`, read by init.sh): `hooks` when it runs the
/// hooks summary, `host-only SUITE TEST` for the tests it reports as left to the host, and
/// `test SUITE TEST` for each test it runs, in order.
pub fn guest_file(first: bool, host_only: &[Test], tests: &[Test]) -> String {
    let mut s = String::new();
    if first {
        s.push_str("hooks\n");
        for (suite, name) in host_only {
            s.push_str(&format!("host-only {suite} {name}\n"));
        }
    }
    for (suite, name) in tests {
        s.push_str(&format!("test {suite} {name}\n"));
    }
    s
}

/// The committed matrix of the workspace, if there is one.
pub fn committed_matrix(root: &Path, matrix: &str) -> String {
    std::fs::read_to_string(root.join(matrix)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> Test {
        (s.to_owned(), n.to_owned())
    }

    #[test]
    fn previous_secs_takes_the_longest_kernel() {
        let md = "| test | 5.10 | 6.1 |\n|---|---|---|\n\
                  | a::x | pass 71s | pass 79s |\n| a::y | **FAIL** 5s | no result |\n\
                  | guest MemTotal | 8150880 kB | 1 kB |\n";
        let w = previous_secs(md);
        assert_eq!(w.get("a::x"), Some(&79));
        assert_eq!(w.get("a::y"), Some(&5));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn split_balances_by_weight_and_keeps_order() {
        let tests = vec![
            t("a", "big"),
            t("a", "s1"),
            t("b", "mid"),
            t("b", "s2"),
            t("c", "new"),
        ];
        let w: BTreeMap<String, u64> = [
            ("a::big", 100),
            ("a::s1", 10),
            ("b::mid", 60),
            ("b::s2", 30),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let parts = split(&tests, 2, &w);
        // Longest first: big (100) | mid (60) | new (the median, 60) | s2 (30) | s1 (10).
        assert_eq!(parts[0], vec![t("a", "big"), t("b", "s2")]);
        assert_eq!(parts[1], vec![t("a", "s1"), t("b", "mid"), t("c", "new")]);
        assert_eq!(split(&tests, 1, &w), vec![tests.clone()]);
    }

    #[test]
    fn the_first_guest_alone_runs_the_hooks_and_reports_host_only_tests() {
        let ho = vec![t("e", "prometheus_x")];
        let first = guest_file(true, &ho, &[t("a", "x")]);
        assert_eq!(first, "hooks\nhost-only e prometheus_x\ntest a x\n");
        assert_eq!(guest_file(false, &ho, &[t("b", "y")]), "test b y\n");
    }
}
