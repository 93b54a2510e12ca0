//! The `fanout` chart: delivered messages/s and p99 latency against offered load, one
//! line per room size, drawn as SVG from the results file (`results.jsonl`). Also the
//! layout of that file's lines, which `cargo xtask bench` writes.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// One line of `results.jsonl`: a run of `loadgen` as one step of a bench scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultLine {
    /// `fanout`, `idle`, `rooms`, `durable`, `cluster`, …
    pub scenario: String,
    /// Names one `cargo xtask bench` invocation (its start time, RFC 3339-ish).
    pub run: String,
    /// Which server was measured: `huddle` (also when absent: lines written before the
    /// floor existed) or `floor` (`loadgen floor`).
    #[serde(default = "huddle")]
    pub server: String,
    pub report: Report,
}

fn huddle() -> String {
    "huddle".to_owned()
}

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub offered_per_s: f64,
    pub delivered_per_s: f64,
    pub p99_ms: f64,
}

/// Points per room size (clients), ordered by offered load. Where several runs measured
/// the same size at the same offered load, the newest run's measurement is the point.
pub fn fanout_points(jsonl: &str, scenario: &str) -> BTreeMap<usize, Vec<Point>> {
    let mut newest: BTreeMap<(usize, u64), ResultLine> = BTreeMap::new();
    let lines = jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<ResultLine>(l).ok())
        // A step whose room never formed, or fell apart (members closed), measured no
        // fan-out to N members; its failure is in the file, not on the chart.
        .filter(|l| {
            l.scenario == scenario
                && l.server == "huddle"
                && l.report.offered_per_s > 0.0
                && l.report.connect.ready == l.report.params.clients as u64
                && l.report.disconnected == 0
        });
    for l in lines {
        let key = (
            l.report.params.clients,
            l.report.offered_per_s.round() as u64,
        );
        if newest.get(&key).is_none_or(|old| l.run >= old.run) {
            newest.insert(key, l);
        }
    }
    let mut out: BTreeMap<usize, Vec<Point>> = BTreeMap::new();
    // Keys are ordered by (clients, offered), so each size's points come in order.
    for ((clients, _), l) in newest {
        out.entry(clients).or_default().push(Point {
            offered_per_s: l.report.offered_per_s,
            delivered_per_s: l.report.delivered_per_s,
            p99_ms: l.report.latency.p99_us as f64 / 1000.0,
        });
    }
    out
}

/// Drawing the chart failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {why}")]
pub struct PlotError {
    path: String,
    why: String,
}

/// Draws delivered msg/s (top) and p99 (bottom) against offered deliveries/s, log
/// scales, one colour per room size, with the 100 ms p99 line of the targets.
pub fn draw_fanout(
    series: &BTreeMap<usize, Vec<Point>>,
    title: &str,
    out: &Path,
) -> Result<(), PlotError> {
    draw(series, title, out).map_err(|why| PlotError {
        path: out.display().to_string(),
        why,
    })
}

fn draw(series: &BTreeMap<usize, Vec<Point>>, title: &str, out: &Path) -> Result<(), String> {
    let all: Vec<&Point> = series.values().flatten().collect();
    if all.is_empty() {
        return Err("no fanout results to plot (run `cargo xtask bench fanout` first)".into());
    }
    let fmax = |f: fn(&Point) -> f64| all.iter().map(|p| f(p)).fold(f64::MIN, f64::max);
    let fmin = |f: fn(&Point) -> f64| all.iter().map(|p| f(p)).fold(f64::MAX, f64::min);
    let x_range = (fmin(|p| p.offered_per_s) / 2.0).max(1.0)..fmax(|p| p.offered_per_s) * 2.0;
    let top = fmax(|p| p.offered_per_s.max(p.delivered_per_s)) * 2.0;
    let y_delivered = (fmin(|p| p.delivered_per_s.max(1.0)) / 2.0).max(1.0)..top;
    // At least 1 ms .. 2 s, so the 100 ms line always sits between labelled decades.
    let y_p99 = (fmin(|p| p.p99_ms.max(0.01)) / 2.0).min(1.0)..fmax(|p| p.p99_ms).max(1000.0) * 2.0;

    let root = SVGBackend::new(out, (960, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| x.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|x| x.to_string())?;
    let (upper, lower) = root.split_vertically(430);
    draw_panel(
        &upper,
        series,
        x_range.clone(),
        Panel {
            caption: "delivered messages/s",
            y_desc: "delivered/s",
            y_range: y_delivered,
            y_label: si,
            value: |p| p.delivered_per_s.max(1.0),
            // Delivered = offered: the server keeps up.
            reference: [(x_range.start, x_range.start), (x_range.end, x_range.end)],
            reference_label: "delivered = offered",
            reference_shade: 0.3,
        },
    )?;
    draw_panel(
        &lower,
        series,
        x_range.clone(),
        Panel {
            caption: "p99 latency (send → receive)",
            y_desc: "p99",
            y_range: y_p99,
            y_label: ms_label,
            value: |p| p.p99_ms.max(0.01),
            reference: [(x_range.start, 100.0), (x_range.end, 100.0)],
            reference_label: "target: p99 ≤ 100 ms",
            reference_shade: 0.5,
        },
    )?;
    root.present().map_err(|x| x.to_string())?;
    Ok(())
}

/// What one of the chart's two panels shows: a measure per point against offered load,
/// and a grey reference line.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    y_range: std::ops::Range<f64>,
    y_label: fn(f64) -> String,
    value: fn(&Point) -> f64,
    reference: [(f64, f64); 2],
    reference_label: &'static str,
    /// How dark the reference line is (0 to 1).
    reference_shade: f64,
}

/// Draws one panel: log scales, one coloured line with dots per room size, the legend.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &BTreeMap<usize, Vec<Point>>,
    x_range: std::ops::Range<f64>,
    panel: Panel,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let colours = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .caption(panel.caption, ("sans-serif", 18))
        .build_cartesian_2d(x_range.log_scale(), panel.y_range.log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("offered deliveries/s (send rate × room members)")
        .y_desc(panel.y_desc)
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&|v| si(*v))
        .y_label_formatter(&|v| (panel.y_label)(*v))
        .draw()
        .map_err(|x| e(&x))?;
    let grey = BLACK.mix(panel.reference_shade);
    chart
        .draw_series(LineSeries::new(
            panel.reference,
            ShapeStyle::from(&grey).stroke_width(1),
        ))
        .map_err(|x| e(&x))?
        .label(panel.reference_label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    for (i, (clients, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.offered_per_s, (panel.value)(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(format!("N = {clients}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(line.iter().map(|&xy| Circle::new(xy, 4, colour.filled())))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// 1500 → "1.5k", 2000000 → "2M".
fn si(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if scaled >= 10.0 || scaled.fract() < 0.05 {
        0
    } else {
        1
    };
    format!("{scaled:.digits$}{unit}")
}

/// 0.5 → "0.5 ms", 20 → "20 ms", 2000 → "2 s".
fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", si(ms / 1000.0))
    } else {
        format!("{} ms", si(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(2_000_000.0), "2M");
        assert_eq!(si(50_000.0), "50k");
        assert_eq!(si(3.0), "3");
        assert_eq!(ms_label(0.5), "0.5 ms");
        assert_eq!(ms_label(2000.0), "2 s");
    }
}
