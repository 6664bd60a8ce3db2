//! The charts of a dashboard, each drawn for one run into an area of its own: compaction runs
//! by fragmentation index, the lanes of runs without one, latencies, fallbacks over time, and
//! the fallback-pattern heatmap.
//!
//! Scatter charts draw every event, but not the same mark twice: a marker identical to a later
//! one on the same pixel (same colour, same size) changes no pixel of the picture, so only the
//! last of them is drawn (`distinct_last`). The picture is the one all events would give; the
//! SVG stays small and a million events draw in seconds.

use std::{collections::HashSet, hash::Hash, ops::Range};

use plotters::{
    coord::{Shift, ranged1d::SegmentValue},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::style::{GREY, LIGHT, SERIES, bold, heat, order_radius, text};
use crate::{
    model::{Run, Sym},
    stats::{self, Patterns},
};

pub type Res<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

pub fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// The items whose keys are not repeated later on, in their order.
pub fn distinct_last<K: Hash + Eq, T>(items: Vec<(K, T)>) -> Vec<T> {
    let mut seen = HashSet::with_capacity(items.len().min(1 << 16));
    let mut kept: Vec<T> = items
        .into_iter()
        .rev()
        .filter_map(|(k, t)| seen.insert(k).then_some(t))
        .collect();
    kept.reverse();
    kept
}

/// A named, coloured series of points or counts.
type Series<T> = (String, RGBColor, Vec<T>);

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
pub enum Mark {
    Dot(RGBColor),
    Line(RGBColor),
    Square(RGBColor),
}

/// A row of legend entries across the top of `area`.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Mark)],
) -> Res<DB> {
    let style = text(12).pos(Pos::new(HPos::Left, VPos::Center));
    let (mut x, y) = (70i32, 11i32);
    let width = area.dim_in_pixel().0 as i32;
    for (label, mark) in entries {
        let w = area.estimate_text_size(label, &style)?.0 as i32 + 34;
        if x + w > width && x > 70 {
            break;
        }
        match *mark {
            Mark::Dot(c) => area.draw(&Circle::new((x + 6, y), 4, c.filled()))?,
            Mark::Line(c) => area.draw(&PathElement::new(
                vec![(x, y), (x + 14, y)],
                c.stroke_width(3),
            ))?,
            Mark::Square(c) => area.draw(&Rectangle::new(
                [(x + 1, y - 5), (x + 11, y + 5)],
                c.filled(),
            ))?,
        }
        area.draw(&Text::new(label.clone(), (x + 18, y), style.clone()))?;
        x += w;
    }
    Ok(())
}

/// A panel's frame: the caption, a legend strip, and the rest for the chart.
pub fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    entries: &[(String, Mark)],
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let (head, rest) = area.split_vertically(24);
    head.draw(&Text::new(
        caption.to_owned(),
        (12, 4),
        bold(15).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let (strip, chart) = rest.split_vertically(22);
    legend(&strip, entries)?;
    Ok(chart)
}

/// The colour of each status, by symbol in `run`.
pub type StatusColour<'a> = &'a dyn Fn(&Run, Sym) -> RGBColor;

/// Statuses of a run's compactions with their counts, most frequent first.
fn statuses(run: &Run) -> Vec<(Sym, usize)> {
    let mut counts: Vec<(Sym, usize)> = Vec::new();
    for c in &run.compactions {
        match counts.iter_mut().find(|(s, _)| *s == c.status) {
            Some(e) => e.1 += 1,
            None => counts.push((c.status, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
}

/// Compaction runs for an order over time, at the fragmentation index of the zone when they
/// began, on the kernel's scale: -1000 (a free block of the order existed: no fragmentation
/// to speak of) to 1000 (free memory only in blocks too small), every value on the axis.
/// Colour: the status the run ended with; size: the order.
pub fn compaction<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &Run,
    x: Range<f64>,
    caption: &str,
    colour: StatusColour<'_>,
) -> Res<DB> {
    let entries: Vec<(String, Mark)> = statuses(run)
        .into_iter()
        .map(|(s, n)| {
            (
                format!("{} {n}", run.names.name(s)),
                Mark::Dot(colour(run, s)),
            )
        })
        .chain([(
            "size: order 0 → 10".to_owned(),
            Mark::Dot(RGBColor(200, 200, 200)),
        )])
        .collect();
    let area = frame(area, caption, &entries)?;
    let indexed: Vec<(f64, i32, i32, Sym)> = run
        .compactions
        .iter()
        .filter(|c| c.order >= 0)
        .filter_map(|c| Some((secs(c.t_ns), c.fragidx?, c.order, c.status)))
        .collect();
    let (lo, hi) = indexed
        .iter()
        .fold((-1000, 1000), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let y = f64::from(lo) - 80.0..f64::from(hi) + 80.0;
    let mut chart = ChartBuilder::on(&area)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), y)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc("fragmentation index")
        .x_label_formatter(&|v| seconds_label(*v, &x))
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(12))
        .axis_desc_style(text(12))
        .light_line_style(LIGHT.mix(0.4))
        .draw()?;
    // The scale's bounds, where many runs sit: -1000 (a free block of the order existed) and
    // 1000.
    for (level, c) in [(-1000.0, GREY), (1000.0, GREY)] {
        chart.draw_series(LineSeries::new(
            [(x.start, level), (x.end, level)],
            c.stroke_width(1),
        ))?;
    }
    let marks: Vec<_> = indexed
        .iter()
        .map(|&(t, idx, order, s)| {
            let p = (t, f64::from(idx));
            let r = order_radius(order);
            let (px, py) = chart.backend_coord(&p);
            ((px, py, r, s), (p, r, s))
        })
        .collect();
    let marks = distinct_last(marks);
    chart.draw_series(
        marks
            .iter()
            .map(|&(p, r, s)| Circle::new(p, r, colour(run, s).filled())),
    )?;
    Ok(())
}

/// The runs the index chart cannot place: whole-zone compactions (order -1, where the index
/// does not apply) and runs whose recording has no index, each in a lane of its own, over the
/// same time axis.
pub fn lanes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &Run,
    x: Range<f64>,
    caption: &str,
    colour: StatusColour<'_>,
) -> Res<DB> {
    let whole = run.compactions.iter().filter(|c| c.order < 0).count();
    let unindexed = run
        .compactions
        .iter()
        .filter(|c| c.order >= 0 && c.fragidx.is_none())
        .count();
    let entries = [
        (format!("order -1: {whole}"), Mark::Dot(GREY)),
        (format!("no index: {unindexed}"), Mark::Dot(GREY)),
    ];
    let area = frame(area, caption, &entries)?;
    let mut chart = ChartBuilder::on(&area)
        .margin_right(16)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), (0..2).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_label_formatter(&|v| seconds_label(*v, &x))
        .y_labels(2)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(0) => "order -1".to_owned(),
            SegmentValue::CenterOf(1) => "no index".to_owned(),
            _ => String::new(),
        })
        .label_style(text(12))
        .light_line_style(LIGHT.mix(0.4))
        .draw()?;
    let marks: Vec<_> = run
        .compactions
        .iter()
        .filter(|c| c.order < 0 || c.fragidx.is_none())
        .map(|c| {
            let lane = i32::from(c.order >= 0);
            let p = (secs(c.t_ns), SegmentValue::CenterOf(lane));
            let r = order_radius(c.order);
            let (px, py) = chart.backend_coord(&p);
            ((px, py, r, c.status), (p, r, c.status))
        })
        .collect();
    let marks = distinct_last(marks);
    chart.draw_series(
        marks
            .into_iter()
            .map(|(p, r, s)| Circle::new(p, r, colour(run, s).filled())),
    )?;
    Ok(())
}

/// The latency range of the runs drawn together, in ms, for a shared log axis: from a power of
/// ten below the shortest to one above the longest (at least 1 µs .. 1 ms).
pub fn latency_range(runs: &[&Run]) -> Range<f64> {
    let all = runs.iter().flat_map(|r| {
        r.compactions
            .iter()
            .filter_map(|c| c.latency_ns)
            .chain(r.reclaims.iter().map(|r| r.latency_ns))
    });
    let (lo, hi) = all.fold((u64::MAX, 0u64), |(lo, hi), l| {
        (lo.min(l.max(1)), hi.max(l))
    });
    if hi == 0 {
        return 0.001..1.0;
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let lo = 10f64.powf(ms(lo).log10().floor()).min(0.001);
    let hi = 10f64.powf(ms(hi).log10().ceil()).max(1.0);
    lo..hi
}

/// How long each compaction run and each reclaim took, over time, on a log scale (ms).
pub fn latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &Run,
    x: Range<f64>,
    y: Range<f64>,
    caption: &str,
) -> Res<DB> {
    // Series: compaction runs, then each kind of reclaim.
    let mut series: Vec<Series<(i64, u64)>> = Vec::new();
    if run.meta.holds.compaction_latency {
        let pts = run
            .compactions
            .iter()
            .filter_map(|c| Some((c.t_ns, c.latency_ns?)))
            .collect();
        series.push(("compaction".to_owned(), SERIES[0], pts));
    }
    let mut kinds: Vec<Sym> = run.reclaims.iter().map(|r| r.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for (i, k) in kinds.into_iter().enumerate() {
        let pts = run
            .reclaims
            .iter()
            .filter(|r| r.kind == k)
            .map(|r| (r.t_ns, r.latency_ns))
            .collect();
        let name = format!("{} reclaim", run.names.name(k));
        series.push((name, SERIES[(1 + i) % SERIES.len()], pts));
    }
    let entries: Vec<(String, Mark)> = if series.is_empty() {
        vec![("no latencies in this recording".to_owned(), Mark::Dot(GREY))]
    } else {
        series
            .iter()
            .map(|(n, c, p)| (format!("{n} {}", p.len()), Mark::Dot(*c)))
            .collect()
    };
    let area = frame(area, caption, &entries)?;
    let floor = y.start;
    let mut chart = ChartBuilder::on(&area)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), y.log_scale())?;
    let x_axis = x;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc("latency, ms (log)")
        .x_label_formatter(&|v| seconds_label(*v, &x_axis))
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(text(12))
        .axis_desc_style(text(12))
        .light_line_style(LIGHT.mix(0.4))
        .draw()?;
    for (_, c, pts) in &series {
        let marks: Vec<_> = pts
            .iter()
            .map(|&(t, ns)| {
                let p = (secs(t), (ns as f64 / 1e6).max(floor));
                (chart.backend_coord(&p), p)
            })
            .collect();
        chart.draw_series(
            distinct_last(marks)
                .into_iter()
                .map(|p| Circle::new(p, 2, c.filled())),
        )?;
    }
    Ok(())
}

/// Fallbacks per bin of `width_ns` over time: steal against claim on the left, fragmenting
/// against not on the right. `y_max` is shared by the runs compared.
pub fn fallbacks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &Run,
    x: Range<f64>,
    width_ns: i64,
    y_max: u64,
    caption: &str,
) -> Res<DB> {
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let origin = (x.start * 1e9).floor() as i64;
    let end = (x.end * 1e9).ceil() as i64;
    let bins = |pick: &dyn Fn(&crate::model::Fallback) -> bool| {
        stats::bin_counts(
            run.fallbacks.iter().filter(|f| pick(f)).map(|f| f.t_ns),
            origin,
            end,
            width_ns,
        )
    };
    let bin_s = width_ns as f64 / 1e9;
    let ownership = vec![
        ("steal".to_owned(), SERIES[0], bins(&|f| !f.claim)),
        ("claim".to_owned(), SERIES[2], bins(&|f| f.claim)),
    ];
    let fragmenting = if run.fallbacks.iter().any(|f| f.fragmenting.is_none()) {
        vec![(
            "fragmenting unknown".to_owned(),
            GREY,
            bins(&|f| f.fragmenting.is_none()),
        )]
    } else {
        vec![
            (
                "fragmenting".to_owned(),
                SERIES[1],
                bins(&|f| f.fragmenting == Some(true)),
            ),
            (
                "not fragmenting".to_owned(),
                SERIES[4],
                bins(&|f| f.fragmenting == Some(false)),
            ),
        ]
    };
    let steps =
        |half, cap: String, series| step_chart(half, &cap, series, &x, y_max, origin, width_ns);
    steps(
        &left,
        format!("{caption}: steal / claim per {bin_s} s"),
        ownership,
    )?;
    steps(
        &right,
        format!("{caption}: fragmenting or not per {bin_s} s"),
        fragmenting,
    )
}

/// Counts per bin as steps (each bin's count held across it), one line per series.
fn step_chart<DB: DrawingBackend>(
    half: &DrawingArea<DB, Shift>,
    cap: &str,
    series: Vec<Series<u64>>,
    x: &Range<f64>,
    y_max: u64,
    origin: i64,
    width_ns: i64,
) -> Res<DB> {
    let bin_s = width_ns as f64 / 1e9;
    let entries: Vec<(String, Mark)> = series
        .iter()
        .map(|(n, c, b)| (format!("{n} {}", b.iter().sum::<u64>()), Mark::Line(*c)))
        .collect();
    let area = frame(half, cap, &entries)?;
    // Small counts get a label per whole number, not fractions rounded alike.
    let (top, labels) = if y_max < 10 {
        (y_max as f64 + 1.0, y_max as usize + 2)
    } else {
        (y_max as f64 * 1.08, 10)
    };
    let mut chart = ChartBuilder::on(&area)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), 0.0..top)?;
    chart
        .configure_mesh()
        .y_labels(labels)
        .x_desc("seconds since the start")
        .y_desc(format!("fallbacks per {bin_s} s"))
        .x_label_formatter(&|v| seconds_label(*v, x))
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(12))
        .axis_desc_style(text(12))
        .light_line_style(LIGHT.mix(0.4))
        .draw()?;
    for (_, c, b) in series {
        let steps = b.iter().enumerate().flat_map(|(i, &n)| {
            let t0 = (origin + i as i64 * width_ns) as f64 / 1e9;
            let t1 = (origin + (i as i64 + 1) * width_ns) as f64 / 1e9;
            [(t0, n as f64), (t1.min(x.end), n as f64)]
        });
        chart.draw_series(LineSeries::new(steps, c.stroke_width(2)))?;
    }
    Ok(())
}

/// The largest count of any fallback series per bin, for a shared y axis.
pub fn fallback_y_max(run: &Run, origin: i64, end: i64, width_ns: i64) -> u64 {
    let max = |pick: &dyn Fn(&crate::model::Fallback) -> bool| {
        stats::bin_counts(
            run.fallbacks.iter().filter(|f| pick(f)).map(|f| f.t_ns),
            origin,
            end,
            width_ns,
        )
        .into_iter()
        .max()
        .unwrap_or(0)
    };
    [
        max(&|f| f.claim),
        max(&|f| !f.claim),
        max(&|f| f.fragmenting == Some(true)),
        max(&|f| f.fragmenting != Some(true)),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// Fallbacks by pattern (allocation's migrate type → the type it fell back to, as the kernel
/// names them) × time, each cell's count written in it; rows largest first, with totals.
pub fn heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    patterns: &Patterns,
    origin_ns: i64,
    width_ns: i64,
    caption: &str,
) -> Res<DB> {
    let entries = [(
        "colour: count in the cell (log scale)".to_owned(),
        Mark::Square(heat(0.8)),
    )];
    let area = frame(area, caption, &entries)?;
    if patterns.rows.is_empty() {
        area.draw(&Text::new(
            "no fallbacks".to_owned(),
            (70, 20),
            text(14).pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
        return Ok(());
    }
    let ncols = patterns.rows[0].1.len() as i32;
    let nrows = patterns.rows.len() as i32;
    let max = patterns
        .rows
        .iter()
        .flat_map(|r| r.1.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let labels: Vec<String> = patterns
        .rows
        .iter()
        .map(|(l, c)| format!("{l} ({})", c.iter().sum::<u64>()))
        .collect();
    let bin_s = width_ns as f64 / 1e9;
    let x0 = secs(origin_ns);
    let x = x0..x0 + f64::from(ncols) * bin_s;
    let mut chart = ChartBuilder::on(&area)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(250)
        .build_cartesian_2d(x.clone(), (0..nrows).into_segmented())?;
    // Row 0 at the top.
    let row_of = |r: i32| nrows - 1 - r;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(nrows as usize)
        .x_label_formatter(&|v| seconds_label(*v, &x))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(r) => {
                labels.get(row_of(*r) as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .x_desc(format!("seconds since the start, in cells of {bin_s} s"))
        .label_style(text(12))
        .axis_desc_style(text(12))
        .draw()?;
    let scale = (max as f64 + 1.0).ln();
    let cell = |c: usize| (x0 + c as f64 * bin_s, x0 + (c + 1) as f64 * bin_s);
    for (i, (_, counts)) in patterns.rows.iter().enumerate() {
        let r = row_of(i as i32);
        chart.draw_series(counts.iter().enumerate().map(|(c, &n)| {
            let fill = if n == 0 {
                RGBColor(250, 250, 250)
            } else {
                heat(0.15 + 0.85 * (n as f64 + 1.0).ln() / scale)
            };
            let (t0, t1) = cell(c);
            Rectangle::new(
                [
                    (t0, SegmentValue::Exact(r)),
                    (t1, SegmentValue::Exact(r + 1)),
                ],
                fill.filled(),
            )
        }))?;
        chart.draw_series(
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| {
                    let (t0, t1) = cell(c);
                    Text::new(
                        n.to_string(),
                        ((t0 + t1) / 2.0, SegmentValue::CenterOf(r)),
                        text(11).pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }),
        )?;
    }
    Ok(())
}

/// A time axis label: whole seconds on axes longer than 20 s, tenths below.
pub fn seconds_label(v: f64, axis: &Range<f64>) -> String {
    if axis.end - axis.start > 20.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A count axis label.
pub fn count_label(v: f64) -> String {
    format!("{v:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_of_identical_marks_is_kept() {
        let v = distinct_last(vec![(1, 'a'), (2, 'b'), (1, 'c'), (3, 'd'), (2, 'e')]);
        assert_eq!(v, ['c', 'd', 'e']);
    }
}
