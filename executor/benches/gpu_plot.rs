//! Two small hand-written SVG charts for the GPU benchmark (no font backend needed): the
//! bundling curve (invocations/s against bundle size, log2 x axis) and the cold-vs-warm
//! breakdown (one stacked bar of cold-start stages per built-in, next to its warm latency).

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 360.0;
const L: f64 = 70.0;
const B: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn head(s: &mut String, title: &str) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="Helvetica,Arial,sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{}" y="18" font-size="13" font-weight="bold" text-anchor="middle">{title}</text>"#,
        W / 2.0
    );
}

fn nice_max(v: f64) -> f64 {
    let p = 10f64.powf(v.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|x| *x >= v)
        .unwrap_or(10.0 * p)
}

/// Lines of (x, y) per series; x on a log2 axis.
pub fn lines(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> String {
    let mut s = String::new();
    head(&mut s, title);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    let (x0, x1) = (
        xs.iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
            .log2(),
        xs.iter().cloned().fold(1.0, f64::max).log2().max(1.0),
    );
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max),
    );
    let px = |x: f64| L + (x.log2() - x0) / (x1 - x0).max(1e-9) * (W - L - 150.0);
    let py = |y: f64| H - B - y / ymax * (H - B - 40.0);
    for i in 0..=4 {
        let y = ymax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{y:.0}</text>"##,
            W - 150.0,
            py(y),
            py(y),
            L - 5.0,
            py(y) + 4.0
        );
    }
    for x in xs
        .iter()
        .map(|x| *x as u64)
        .collect::<std::collections::BTreeSet<u64>>()
    {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x}</text>"#,
            px(x as f64),
            H - B + 15.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{xlabel}</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{ylabel}</text>"#,
        (L + W - 150.0) / 2.0,
        H - 12.0,
        H / 2.0,
        H / 2.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                px(*x),
                py(*y)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{c}"/><text x="{}" y="{}">{name}</text>"#,
            W - 140.0,
            50.0 + 20.0 * k as f64,
            W - 124.0,
            60.0 + 20.0 * k as f64
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One bar group: its name, its (stage, ms) segments, and the warm latency in ms.
pub type Group = (String, Vec<(String, f64)>, f64);

/// Per group: a stacked bar of (stage, ms) segments and a thin bar of the warm latency.
pub fn stacked(title: &str, ylabel: &str, groups: &[Group]) -> String {
    let mut s = String::new();
    head(&mut s, title);
    let ymax = nice_max(
        groups
            .iter()
            .map(|(_, st, w)| st.iter().map(|x| x.1).sum::<f64>().max(*w))
            .fold(0.0, f64::max),
    );
    let py = |y: f64| H - B - y / ymax * (H - B - 40.0);
    for i in 0..=4 {
        let y = ymax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{y:.0}</text>"##,
            W - 150.0,
            py(y),
            py(y),
            L - 5.0,
            py(y) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{ylabel}</text>"#,
        H / 2.0,
        H / 2.0
    );
    let mut stage_names: Vec<&str> = Vec::new();
    for (_, st, _) in groups {
        for (n, _) in st {
            if !stage_names.contains(&n.as_str()) {
                stage_names.push(n);
            }
        }
    }
    let slot = (W - L - 150.0) / groups.len().max(1) as f64;
    for (g, (name, st, warm)) in groups.iter().enumerate() {
        let x = L + g as f64 * slot + slot * 0.2;
        let mut y = 0.0;
        for (n, v) in st {
            let k = stage_names.iter().position(|m| m == n).unwrap_or(0);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{n}: {v:.1} ms</title></rect>"#,
                py(y + v),
                slot * 0.35,
                py(y) - py(y + v),
                COLORS[k % COLORS.len()]
            );
            y += v;
        }
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#222"><title>warm: {warm:.3} ms</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle">warm {warm:.2} ms</text><text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"##,
            x + slot * 0.4,
            py(*warm).min(H - B - 1.0),
            slot * 0.1,
            (H - B - py(*warm)).max(1.0),
            x + slot * 0.45,
            py(*warm).min(H - B - 1.0) - 4.0,
            x + slot * 0.25,
            H - B + 15.0
        );
    }
    for (k, n) in stage_names.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{n}</text>"#,
            W - 140.0,
            50.0 + 20.0 * k as f64,
            COLORS[k % COLORS.len()],
            W - 124.0,
            60.0 + 20.0 * k as f64
        );
    }
    s.push_str("</svg>\n");
    s
}
