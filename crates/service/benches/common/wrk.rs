//! Running wrk (an external load generator, in its own process) and reading what it prints.

use std::process::Command;

/// Latency percentiles (ms) and requests per second of one wrk run.
pub struct Measured {
    pub p50: f64,
    pub p99: f64,
    pub rps: f64,
}

/// Whether wrk is on this machine.
pub fn available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

fn ms(text: &str) -> f64 {
    let t = text.trim();
    if let Some(v) = t.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = t.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = t.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        panic!("wrk printed a latency I cannot read: {t}")
    }
}

/// Runs `wrk ARGS --latency URL`; every answer must be a 2xx.
pub fn run(args: &[&str], url: &str) -> Measured {
    let out = Command::new("wrk")
        .args(args)
        .arg("--latency")
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "{url} answered errors under load:\n{text}"
    );
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(ms))
            .unwrap_or_else(|| panic!("no {p} line in wrk's output:\n{text}"))
    };
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    Measured {
        p50: pct("50%"),
        p99: pct("99%"),
        rps,
    }
}
