//! `report.svg`: the ranked latency and throughput figures as bar charts (plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Metric, Report, Row};

/// One bar: a label, a value, and whether it is a floor (drawn in grey).
struct Bar {
    label: String,
    value: f64,
    floor: bool,
}

/// The bars of latency (64 B, in µs) or throughput (64 KiB, in GiB/s), best first.
fn bars(report: &Report, latency: bool) -> Vec<Bar> {
    let size = if latency { 64 } else { 64 * 1024 };
    let mut bars: Vec<Bar> = report
        .rows
        .iter()
        .filter(|r: &&Row| r.size == size && matches!(r.metric, Metric::Latency(..)) == latency)
        // Between processes only, as in the report's rankings.
        .filter(|r| {
            !r.case.contains("SharedMemory::")
                && !r.case.contains("memcpy")
                && !r.case.contains(" vs ")
        })
        .map(|r| Bar {
            label: r.case.clone(),
            value: if latency {
                r.metric.central() / 1000.0
            } else {
                r.metric.central() / f64::from(1u32 << 30)
            },
            floor: r.baseline.is_none(),
        })
        .filter(|b| b.value > 0.0)
        .collect();
    bars.sort_by(|a, b| {
        if latency {
            a.value.total_cmp(&b.value)
        } else {
            b.value.total_cmp(&a.value)
        }
    });
    bars
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    bars: &[Bar],
    unit: &str,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let n = i32::try_from(bars.len()).unwrap_or(i32::MAX).max(1);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-3);
    let min = bars
        .iter()
        .map(|b| b.value)
        .fold(f64::INFINITY, f64::min)
        .min(max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(330)
        .build_cartesian_2d((min / 2.0..max * 2.0).log_scale(), 0..n)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len().max(1))
        .y_label_formatter(&|i| {
            usize::try_from(n - 1 - *i)
                .ok()
                .and_then(|i| bars.get(i))
                .map(|b| b.label.clone())
                .unwrap_or_default()
        })
        .x_desc(unit)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let y = n - 1 - i32::try_from(i).unwrap_or(0);
            let color = if bar.floor {
                RGBColor(170, 170, 170)
            } else {
                RGBColor(41, 98, 166)
            };
            Rectangle::new([(min / 2.0, y), (bar.value, y + 1)], color.filled())
        }))
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Writes the two charts, one above the other, to `path`.
///
/// # Errors
///
/// The file or drawing error.
pub fn write_svg(report: &Report, path: &Path) -> std::io::Result<()> {
    let latency = bars(report, true);
    let throughput = bars(report, false);
    let rows = latency.len() + throughput.len();
    let height = u32::try_from(160 + rows * 18).unwrap_or(2000);
    let draw = || -> Result<(), String> {
        let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let split = u32::try_from(80 + latency.len() * 18).unwrap_or(height / 2);
        let (top, bottom) = root.split_vertically(split);
        if !latency.is_empty() {
            panel(
                &top,
                "One-way latency, 64 B (lower is better; grey: floors)",
                &latency,
                "µs, log scale",
            )?;
        }
        if !throughput.is_empty() {
            panel(
                &bottom,
                "One-way throughput, 64 KiB messages (higher is better; grey: floors)",
                &throughput,
                "GiB/s, log scale",
            )?;
        }
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(std::io::Error::other)
}

/// Writes `report.md`, `report.json` and the charts, `report.svg`, into `dir`, creating it.
///
/// # Errors
///
/// The file system error, or the chart's.
pub fn write_report(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), report.to_markdown())?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    write_svg(report, &dir.join("report.svg"))
}
