//! The tables under the charts: one run's totals and rates per minute, and the comparison's
//! rates with the better run marked. Each cell is one text element (in the SVG, one `<text>`),
//! written row by row, left to right.

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    panels::Res,
    style::{GREY, bold, text},
};
use crate::{
    stats::{Better, Compared, Row, fmt_rate, per_minute},
    time::human_duration,
};

pub const ROW_H: u32 = 20;
/// Room above the rows (caption, header) and below them (the notes).
pub const HEAD_H: u32 = 58;
pub const FOOT_H: u32 = 60;

const NOT_RECORDED: &str = "not recorded";

/// Where a row's label starts: parts of a total further in.
fn indent(part: bool) -> i32 {
    if part { 40 } else { 20 }
}

fn left(size: u32) -> TextStyle<'static> {
    text(size).pos(Pos::new(HPos::Left, VPos::Top))
}

fn right(size: u32) -> TextStyle<'static> {
    text(size).pos(Pos::new(HPos::Right, VPos::Top))
}

/// One run: each row's amount and its rate per minute of the run's length.
pub fn single<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Row],
    duration_ns: i64,
) -> Res<DB> {
    area.draw(&Text::new(
        format!(
            "Totals, and per minute of the recording's {}",
            human_duration(duration_ns)
        ),
        (12, 4),
        bold(15).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let (count_x, rate_x) = (560, 720);
    let head = bold(13).pos(Pos::new(HPos::Right, VPos::Top));
    area.draw(&Text::new("count".to_owned(), (count_x, 32), head.clone()))?;
    area.draw(&Text::new("per minute".to_owned(), (rate_x, 32), head))?;
    for (i, r) in rows.iter().enumerate() {
        let y = HEAD_H as i32 + i as i32 * ROW_H as i32;
        if i % 2 == 0 {
            area.draw(&Rectangle::new(
                [(16, y - 3), (rate_x + 8, y + ROW_H as i32 - 3)],
                RGBColor(244, 246, 248).filled(),
            ))?;
        }
        area.draw(&Text::new(r.label.clone(), (indent(r.part), y), left(13)))?;
        match r.amount {
            Some(a) => {
                area.draw(&Text::new(a.shown(), (count_x, y), right(13)))?;
                if let Some(rate) = per_minute(a.value(), duration_ns) {
                    area.draw(&Text::new(fmt_rate(rate), (rate_x, y), right(13)))?;
                }
            }
            None => area.draw(&Text::new(NOT_RECORDED.to_owned(), (count_x, y), right(13)))?,
        }
    }
    let y = HEAD_H as i32 + rows.len() as i32 * ROW_H as i32 + 8;
    area.draw(&Text::new(
        "per minute = amount × 60 ÷ the recording's length in seconds; counts are exact (every event of the file)."
            .to_owned(),
        (20, y),
        left(12).color(&GREY),
    ))?;
    Ok(())
}

/// The rule the comparison table applies, as the dashboard states it.
pub const RULE: &str = "Better: the run with the lowest rate per minute as shown (each row counts a cost to the workload: \
compaction and reclaim stalls, fallbacks, pages reclaimed); = when the lowest is shared; – when fewer than two runs record the row.";

/// Several runs: each cost row's rate per minute, and the better run.
pub fn compared<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Compared],
    labels: &[String],
) -> Res<DB> {
    area.draw(&Text::new(
        "Rates per minute of each recording's length (runs differ in length: no raw counts)"
            .to_owned(),
        (12, 4),
        bold(15).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let col = |k: usize| 560 + 190 * k as i32;
    let head = bold(13).pos(Pos::new(HPos::Right, VPos::Top));
    for (k, l) in labels.iter().enumerate() {
        area.draw(&Text::new(l.clone(), (col(k), 32), head.clone()))?;
    }
    let better_x = col(labels.len());
    area.draw(&Text::new("better".to_owned(), (better_x, 32), head))?;
    for (i, r) in rows.iter().enumerate() {
        let y = HEAD_H as i32 + i as i32 * ROW_H as i32;
        if i % 2 == 0 {
            area.draw(&Rectangle::new(
                [(16, y - 3), (better_x + 8, y + ROW_H as i32 - 3)],
                RGBColor(244, 246, 248).filled(),
            ))?;
        }
        if let Better::Run(k) = r.better {
            area.draw(&Rectangle::new(
                [(col(k) - 150, y - 3), (col(k) + 8, y + ROW_H as i32 - 3)],
                RGBColor(212, 237, 218).filled(),
            ))?;
        }
        area.draw(&Text::new(r.label.clone(), (indent(r.part), y), left(13)))?;
        for (k, rate) in r.rates.iter().enumerate() {
            let cell = rate.map_or_else(|| NOT_RECORDED.to_owned(), fmt_rate);
            area.draw(&Text::new(cell, (col(k), y), right(13)))?;
        }
        let verdict = match r.better {
            Better::Run(k) => labels[k].clone(),
            Better::Tie => "=".to_owned(),
            Better::Undecided => "–".to_owned(),
        };
        area.draw(&Text::new(verdict, (better_x, y), right(13)))?;
    }
    let y = HEAD_H as i32 + rows.len() as i32 * ROW_H as i32 + 8;
    area.draw(&Text::new(RULE.to_owned(), (20, y), left(12).color(&GREY)))?;
    area.draw(&Text::new(
        "per minute = amount × 60 ÷ the recording's length in seconds; amounts are exact (every event of each file)."
            .to_owned(),
        (20, y + 18),
        left(12).color(&GREY),
    ))?;
    Ok(())
}
