//! `bench --chart FILE.svg`: each stage's throughput and each link's occupancy over one sync,
//! drawn with plotters' SVG backend (no fonts, browser or system library needed), so a user
//! sees the pipeline fill, saturate and drain.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use pulp_rs::stages::Timeline;

/// Distinct colours for up to 12 series (cycled beyond).
const COLOURS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 215, 0),
];

/// Writes the SVG: throughput per stage (top), occupancy per link (bottom).
pub fn write_svg(timeline: &Timeline, title: &str, path: &Path) -> anyhow::Result<()> {
    let svg = render_svg(timeline, title)?;
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// The SVG text. Each series is one `<polyline>`; its legend entry names the stage or link.
pub fn render_svg(timeline: &Timeline, title: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (top, bottom) = root.split_vertically(420);
        let t_max = timeline
            .samples
            .last()
            .map(|s| s.t)
            .unwrap_or(1.0)
            .max(1e-3);

        let rates: Vec<Vec<(f64, f64)>> = (0..timeline.stages.len())
            .map(|i| timeline.stage_rates(i))
            .collect();
        let r_max = rates
            .iter()
            .flatten()
            .map(|&(_, r)| r)
            .fold(1.0f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(&top)
            .caption(
                "throughput per stage (items out per second)",
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, 0f64..r_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("items/s")
            .draw()
            .map_err(err)?;
        for (i, name) in timeline.stages.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    rates[i].iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;

        let mut chart = ChartBuilder::on(&bottom)
            .caption("link occupancy (queued / capacity)", ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, 0f64..1.05f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("occupancy")
            .draw()
            .map_err(err)?;
        for (i, name) in timeline.links.iter().enumerate() {
            let colour = COLOURS[(i + 1) % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    timeline.link_occupancy(i),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {e}")
}
