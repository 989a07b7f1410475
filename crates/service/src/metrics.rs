//! Counters, gauges and a histogram for `/metrics`, in Prometheus' text format (written by
//! hand: a few labelled families do not need a metrics library).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Label values are instance and hook names (checked plain when the config is read) and
/// fixed outcome words; quotes and backslashes are escaped all the same.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A series' labels, in the order given.
type Labels = Vec<(&'static str, String)>;

/// One family's series: label pairs -> value.
type Series = BTreeMap<Labels, f64>;

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, Series>,
    gauges: BTreeMap<&'static str, Series>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// The upper bounds (seconds) of the run-duration buckets: a quick targeted run to a
/// full read of a large subscription at Marketo's rate limit.
const BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (cumulative when rendered).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Families>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "roster_api_calls_total",
        "counter",
        "API calls sent to the app instance",
    ),
    (
        "roster_api_retries_total",
        "counter",
        "API calls repeated after a transient failure",
    ),
    (
        "roster_rate_limited_total",
        "counter",
        "Marketo 606/615 answers (rate or concurrency limit hit)",
    ),
    (
        "roster_quota_remaining",
        "gauge",
        "Marketo daily API calls left today",
    ),
    ("roster_runs_total", "counter", "Runs by outcome"),
    (
        "roster_run_duration_seconds",
        "gauge",
        "Duration of the instance's last run",
    ),
    ("roster_steps_total", "counter", "Plan steps by outcome"),
    (
        "roster_pending_approvals",
        "gauge",
        "Plans waiting for approval (in all, and by instance)",
    ),
    (
        "roster_last_success_timestamp_seconds",
        "gauge",
        "When the instance's last run that read the app and planned ended (Unix seconds)",
    ),
    (
        "roster_build_info",
        "gauge",
        "Always 1; the labels say which Roster runs",
    ),
    (
        "roster_run_seconds",
        "histogram",
        "How long runs took, by instance",
    ),
    (
        "roster_webhook_deliveries_total",
        "counter",
        "Webhook deliveries by final status",
    ),
    (
        "roster_webhook_failures_total",
        "counter",
        "Webhook delivery attempts that failed",
    ),
];

impl Metrics {
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        let key = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut f = self.inner.lock().expect("metrics lock");
        *f.counters.entry(name).or_default().entry(key).or_default() += by;
    }

    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut f = self.inner.lock().expect("metrics lock");
        f.gauges.entry(name).or_default().insert(key, value);
    }

    /// Records one observation of a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut f = self.inner.lock().expect("metrics lock");
        let h = f
            .histograms
            .entry(name)
            .or_default()
            .entry(key)
            .or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += value;
    }

    /// A counter's current value (tests and the readiness report use it).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let f = self.inner.lock().expect("metrics lock");
        f.counters
            .get(name)
            .and_then(|series| {
                series.iter().find(|(k, _)| {
                    k.len() == labels.len()
                        && k.iter()
                            .zip(labels)
                            .all(|((a, b), (c, d))| a == c && b == d)
                })
            })
            .map_or(0.0, |(_, v)| *v)
    }

    pub fn render(&self) -> String {
        let f = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            if *kind == "histogram" {
                for (labels, h) in f.histograms.get(name).into_iter().flatten() {
                    let labels: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                        .collect();
                    let with = |extra: &str| {
                        let mut all = labels.clone();
                        if !extra.is_empty() {
                            all.push(extra.to_string());
                        }
                        if all.is_empty() {
                            String::new()
                        } else {
                            format!("{{{}}}", all.join(","))
                        }
                    };
                    for (bound, count) in BUCKETS.iter().zip(h.counts) {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}",
                            with(&format!("le=\"{bound}\""))
                        );
                    }
                    let _ = writeln!(out, "{name}_bucket{} {}", with("le=\"+Inf\""), h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", with(""), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", with(""), h.count);
                }
                continue;
            }
            let series = match *kind {
                "counter" => f.counters.get(name),
                _ => f.gauges.get(name),
            };
            for (labels, value) in series.into_iter().flatten() {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                    .collect();
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::default();
        m.add(
            "roster_api_calls_total",
            &[("instance", "marketo.prod")],
            3.0,
        );
        m.add(
            "roster_api_calls_total",
            &[("instance", "marketo.prod")],
            2.0,
        );
        m.set("roster_pending_approvals", &[], 1.0);
        let text = m.render();
        assert!(
            text.contains("roster_api_calls_total{instance=\"marketo.prod\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("roster_pending_approvals 1\n"), "{text}");
        assert!(text.contains("# TYPE roster_runs_total counter"));
        assert_eq!(
            m.counter("roster_api_calls_total", &[("instance", "marketo.prod")]),
            5.0
        );
    }

    #[test]
    fn run_durations_fall_into_cumulative_buckets() {
        let m = Metrics::default();
        for seconds in [0.2, 3.0, 3.0, 4000.0] {
            m.observe(
                "roster_run_seconds",
                &[("instance", "marketo.prod")],
                seconds,
            );
        }
        let text = m.render();
        assert!(
            text.contains("# TYPE roster_run_seconds histogram"),
            "{text}"
        );
        for line in [
            "roster_run_seconds_bucket{instance=\"marketo.prod\",le=\"0.5\"} 1",
            "roster_run_seconds_bucket{instance=\"marketo.prod\",le=\"2.5\"} 1",
            "roster_run_seconds_bucket{instance=\"marketo.prod\",le=\"5\"} 3",
            "roster_run_seconds_bucket{instance=\"marketo.prod\",le=\"3600\"} 3",
            "roster_run_seconds_bucket{instance=\"marketo.prod\",le=\"+Inf\"} 4",
            "roster_run_seconds_sum{instance=\"marketo.prod\"} 4006.2",
            "roster_run_seconds_count{instance=\"marketo.prod\"} 4",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }
}
