//! `loadgen report FILE`: from a finished `latest.json`, writes `summary.md` (the tables the
//! README links to) and `chart.svg` (ratios to the limits, and the concurrency curves) next
//! to it. The SVG is written by hand: a chart library would bring fonts and image codecs for
//! three panels of bars and lines.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Writes `summary.md` and `chart.svg` next to `file`.
pub fn write(file: &Path) -> anyhow::Result<()> {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::write(dir.join("summary.md"), markdown(&report)?)?;
    std::fs::write(dir.join("chart.svg"), chart(&report)?)?;
    println!(
        "bench: {} and {}",
        dir.join("summary.md").display(),
        dir.join("chart.svg").display()
    );
    Ok(())
}

fn markdown(r: &Value) -> anyhow::Result<String> {
    let mut md = String::new();
    let m = &r["machine"];
    let b = &r["build"];
    writeln!(md, "# Benchmark summary\n")?;
    writeln!(
        md,
        "Written by `cargo xtask bench` on {} at commit `{}`{} ({} build, {}).\n",
        s(&r["date"]),
        s(&b["commit"]),
        if b["dirty"].as_bool().unwrap_or(false) {
            " with uncommitted changes"
        } else {
            ""
        },
        s(&b["profile"]),
        s(&b["rustc"]),
    )?;
    writeln!(
        md,
        "Machine: {} cores ({}), {} GiB, Linux {}. Every service, every store, the load \
         generator and wrk share these cores, so a figure here is a ratio to what the same \
         machine did in the same run, not an absolute capacity.\n",
        m["cores"],
        s(&m["cpu"]),
        m["memory_gib"],
        s(&m["kernel"]),
    )?;
    writeln!(
        md,
        "![ratios and curves](chart.svg)\n\n## Scenarios and their limits\n\n{} runs of {} s \
         each after a warm-up, {} connections; the median with the runs' range. Each ratio is \
         computed within a run (the scenario over its limit measured minutes before it), then \
         the median is taken.\n",
        r["runs"], r["measure_seconds"], r["connections"]
    )?;
    writeln!(
        md,
        "| scenario | driver | req/s (min–max) | p50 ms | p99 ms | errors | ratio to limit (min–max) | target |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for row in r["scenarios"].as_array().into_iter().flatten() {
        let ratio = if row["ratio"].is_null() {
            "limit".to_owned()
        } else {
            format!(
                "{:.2} of {} ({:.2}–{:.2})",
                f(&row["ratio"]["median"]),
                s(&row["limit"]),
                f(&row["ratio"]["min"]),
                f(&row["ratio"]["max"])
            )
        };
        writeln!(
            md,
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {} | {} | {} |",
            s(&row["scenario"]),
            s(&row["driver"]),
            f(&row["rps"]["median"]),
            f(&row["rps"]["min"]),
            f(&row["rps"]["max"]),
            f(&row["p50_ms"]),
            f(&row["p99_ms"]),
            row["errors"],
            ratio,
            row["target"]
                .as_f64()
                .map_or(String::new(), |t| format!("≥ {t}")),
        )?;
    }
    if let Some(by) = r["cpu_by_scenario"].as_object() {
        writeln!(
            md,
            "\nWhere the CPU went (cores kept busy, by process, during the last run):\n"
        )?;
        for (scenario, used) in by {
            let busiest: Vec<String> = used
                .as_array()
                .into_iter()
                .flatten()
                .take(8)
                .map(|p| format!("{} {:.2}", s(&p["command"]), f(&p["cores"])))
                .collect();
            writeln!(md, "- {scenario}: {}", busiest.join(", "))?;
        }
    }
    let checkout = &r["checkout"];
    if !checkout.is_null() {
        writeln!(
            md,
            "\n## Checkout\n\n{} shoppers in a closed loop, each putting a product in the cart, \
             checking out with `tok_visa` and waiting for `confirmed` (reserve, authorize, \
             capture, commit). Latency: from the checkout request to the time of the \
             `confirmed` transition.\n\n| | per s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|",
            r["connections"]
        )?;
        for (key, name) in [
            ("raw_order", "raw order transaction (`POST /orders`)"),
            ("checkout_to_confirmed", "checkout, request to `confirmed`"),
        ] {
            let m = &checkout[key];
            writeln!(
                md,
                "| {name} | {:.1} | {:.2} | {:.2} | {} |",
                f(&m["per_s"]),
                f(&m["p50_ms"]),
                f(&m["p99_ms"]),
                m["failed"]
            )?;
        }
        writeln!(
            md,
            "\nConfirmed checkouts per second: {:.3}x the raw order transaction in the same run.",
            f(&checkout["vs_raw_order"])
        )?;
    }
    let hung = &r["redis_hung"];
    writeln!(
        md,
        "\nWith Redis hung (it accepts connections and never answers), the gateway's `order(id)` \
         ran {:.0} req/s with p50 {:.2} ms, {:.2}x its p50 with Redis, and {} errors.\n",
        f(&hung["measured"]["rps"]),
        f(&hung["measured"]["p50_ms"]),
        f(&hung["p50_vs_normal"]),
        hung["measured"]["errors"]
    )?;
    writeln!(
        md,
        "## Concurrency\n\n| scenario | connections | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|"
    )?;
    for (key, points) in r["curves"].as_object().into_iter().flatten() {
        for p in points.as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {key} | {} | {:.0} | {:.2} | {:.2} |",
                p["connections"],
                f(&p["rps"]),
                f(&p["p50_ms"]),
                f(&p["p99_ms"])
            )?;
        }
    }
    let ev = &r["event_latency"];
    writeln!(
        md,
        "\n## Event latency\n\nOrders posted at a fixed rate for 5 s; stored: the order's \
         `createdAt` (MySQL) to the notification's `sentAt` (MongoDB); client: a 201 to the \
         notification readable over gRPC (1 order in 10). Rates rise until one loses an event \
         or its p99 reaches 50 ms.\n\n| rate/s | sent | notified | p50 ms | p99 ms | max ms | client p50 ms | client p99 ms |\n|---|---|---|---|---|---|---|---|"
    )?;
    for e in ev["rates"].as_array().into_iter().flatten() {
        writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            e["rate_per_s"],
            e["sent"],
            e["notified"],
            f(&e["p50_ms"]),
            f(&e["p99_ms"]),
            f(&e["max_ms"]),
            f(&e["client_p50_ms"]),
            f(&e["client_p99_ms"])
        )?;
    }
    writeln!(
        md,
        "\nHighest rate with nothing lost and p99 < 50 ms: {}.",
        ev["highest_rate_kept"]
            .as_u64()
            .map_or("none of those tried".to_owned(), |r| format!("{r}/s"))
    )?;
    if let Some(d) = r["data_size"].as_object() {
        writeln!(
            md,
            "\n## Data size\n\nThe same reads with {} and with {} orders and notifications \
             loaded (the probe user has {} of each at both sizes; order ids are random over \
             every loaded order). Loading took {:.0} s and {:.0} s.\n\n| read | p99 ms small | p99 ms large | large/small | req/s small | req/s large |\n|---|---|---|---|---|---|",
            d["small_rows"],
            d["large_rows"],
            d["probe"]["rows_per_user"],
            f(&d["load_seconds"]["small"]),
            f(&d["load_seconds"]["large"]),
        )?;
        for row in d["reads"].as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
                s(&row["read"]),
                f(&row["small"]["p99_ms"]),
                f(&row["large"]["p99_ms"]),
                f(&row["p99_large_vs_small"]),
                f(&row["small"]["rps"]),
                f(&row["large"]["rps"]),
            )?;
        }
    }
    writeln!(
        md,
        "\n## Memory\n\n| process | idle RSS MiB | peak RSS MiB |\n|---|---|---|"
    )?;
    for (name, rss) in r["rss"].as_object().into_iter().flatten() {
        writeln!(
            md,
            "| {name} | {:.1} | {:.1} |",
            f(&rss["idle_mib"]),
            f(&rss["peak_mib"])
        )?;
    }
    if let Some(rows) = r["scale"].as_array() {
        writeln!(
            md,
            "\n## One and two replicas of every service\n\n| scenario | replicas | req/s | x first | p99 ms | CPU busy |\n|---|---|---|---|---|---|"
        )?;
        for row in rows {
            writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} % |",
                s(&row["scenario"]),
                row["replicas"],
                f(&row["throughput_rps"]),
                f(&row["throughput_vs_first"]),
                f(&row["p99_ms"]),
                f(&row["cpu_busy"]) * 100.0
            )?;
        }
    }
    Ok(md)
}

/// Escapes text for SVG.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn chart(r: &Value) -> anyhow::Result<String> {
    let bars = r["scenarios"].as_array().map_or(0, |rows| {
        rows.iter().filter(|row| !row["ratio"].is_null()).count()
    });
    let (w, h) = (920.0, 40.0 + 28.0 * bars as f64 + 400.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Panel 1: each scenario's ratio to its limit (median bar, min–max whisker, target tick).
    let rows: Vec<&Value> = r["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| !row["ratio"].is_null())
        .collect();
    let (left, top, width) = (340.0, 40.0, 520.0);
    writeln!(
        svg,
        "<text x=\"20\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Throughput as a share of its limit (median of {} runs, min–max; | target)</text>",
        r["runs"]
    )?;
    let max = rows
        .iter()
        .map(|row| f(&row["ratio"]["max"]).max(f(&row["target"])))
        .fold(1.0_f64, f64::max);
    let x = |v: f64| left + width * v / max;
    for tick in 0..=((max * 4.0).ceil() as u32) {
        let v = f64::from(tick) / 4.0;
        if v > max {
            break;
        }
        writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\" fill=\"#555\">{v:.2}</text>",
            x(v),
            top + 28.0 * rows.len() as f64,
            top + 28.0 * rows.len() as f64 + 14.0
        )?;
    }
    for (i, row) in rows.iter().enumerate() {
        let y = top + 28.0 * i as f64;
        let ratio = &row["ratio"];
        writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + 16.0,
            esc(&format!("{} / {}", s(&row["scenario"]), s(&row["limit"])))
        )?;
        writeln!(
            svg,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"18\" fill=\"{}\"/>",
            y + 4.0,
            x(f(&ratio["median"])) - left,
            COLORS[0]
        )?;
        writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
            x(f(&ratio["min"])),
            y + 13.0,
            x(f(&ratio["max"])),
            y + 13.0
        )?;
        if let Some(t) = row["target"].as_f64() {
            writeln!(
                svg,
                "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{3}\" stroke-width=\"3\"/>",
                x(t),
                y + 1.0,
                y + 25.0,
                COLORS[1]
            )?;
        }
    }
    // Panels 2 and 3: req/s and p99 against connections (log scale).
    let curves: Vec<(&String, &Vec<Value>)> = r["curves"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_array()?)))
        .collect();
    let panel_top = top + 28.0 * rows.len() as f64 + 60.0;
    for (p, (metric, title)) in [("rps", "req/s"), ("p99_ms", "p99 ms")].iter().enumerate() {
        let (px, pw, ph) = (70.0 + 430.0 * p as f64, 360.0, 260.0);
        let py = panel_top + 20.0;
        writeln!(
            svg,
            "<text x=\"{px}\" y=\"{:.1}\" font-size=\"15\" font-weight=\"bold\">{title} against connections</text>",
            panel_top
        )?;
        let ymax = curves
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|pt| f(&pt[*metric])))
            .fold(f64::MIN_POSITIVE, f64::max)
            * 1.1;
        let conns: Vec<f64> = curves
            .first()
            .map(|(_, pts)| pts.iter().map(|pt| f(&pt["connections"])).collect())
            .unwrap_or_default();
        let lx = |c: f64| {
            let (lo, hi) = (
                conns.first().copied().unwrap_or(1.0).ln(),
                conns.last().copied().unwrap_or(2.0).ln(),
            );
            px + pw * (c.ln() - lo) / (hi - lo).max(f64::MIN_POSITIVE)
        };
        let ly = |v: f64| py + ph - ph * v / ymax;
        writeln!(
            svg,
            "<rect x=\"{px}\" y=\"{py}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>"
        )?;
        for c in &conns {
            writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{c}</text>",
                lx(*c),
                py + ph + 14.0
            )?;
        }
        for frac in [0.0, 0.5, 1.0] {
            writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{:.0}</text>",
                px - 4.0,
                ly(ymax * frac) + 4.0,
                ymax * frac
            )?;
        }
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = pts
                .iter()
                .map(|pt| {
                    format!(
                        "{:.1},{:.1}",
                        lx(f(&pt["connections"])),
                        ly(f(&pt[*metric]))
                    )
                })
                .collect();
            writeln!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                path.join(" ")
            )?;
            writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{}</text>",
                px + 8.0,
                py + 16.0 + 16.0 * i as f64,
                esc(name)
            )?;
        }
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}
