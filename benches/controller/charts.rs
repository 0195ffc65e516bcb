//! Charts of a run as SVG (plotters' SVG backend writes text as SVG text, so no font files are
//! needed): the latency distributions and the operator's memory over time.

use plotters::prelude::*;

/// One latency distribution to draw: its name and samples (ms).
pub struct Series<'a> {
    pub name: &'a str,
    pub samples: &'a [f64],
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing the chart: {e}")
}

/// The cumulative distribution of each series on a logarithmic millisecond axis: how many
/// builds (%) got their Pod (or status) within x ms. Returns the SVG text.
pub fn latency_cdf(title: &str, series: &[Series]) -> Result<String, String> {
    let max = series
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.2;
    let min = series
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .filter(|v| *v > 0.0)
        .fold(max, f64::min)
        .clamp(0.01, 1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((min..max).log_scale(), 0f64..100f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("% of builds within")
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut sorted = s.samples.to_vec();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let n = sorted.len().max(1) as f64;
            let points = sorted
                .iter()
                .enumerate()
                .map(|(k, v)| (v.max(min), (k + 1) as f64 * 100.0 / n));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (n = {})", s.name, s.samples.len()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The operator's RSS (MiB) over time (s), with the goal as a dashed line.
pub fn rss_over_time(title: &str, samples: &[(f64, f64)], goal_mib: f64) -> Result<String, String> {
    let t_max = samples.iter().map(|s| s.0).fold(1.0f64, f64::max);
    let m_max = samples.iter().map(|s| s.1).fold(goal_mib, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..t_max, 0f64..m_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the scenario began")
            .y_desc("operator RSS (MiB)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                samples.iter().copied(),
                COLORS[0].stroke_width(2),
            ))
            .map_err(err)?
            .label("RSS")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], COLORS[0].stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, goal_mib), (t_max, goal_mib)],
                8,
                6,
                COLORS[3].stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("goal {goal_mib:.0} MiB"))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], COLORS[3].stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
