//! Figures, side by side with their baselines: the JSON written by `--json` and the
//! Markdown table printed at the end.
//!
//! Every figure is a [`Row`]: what the chat achieved, what raw NATS of the same shape
//! achieved in the same run, their ratio, and the target when there is one.
//! The benchmark only reports whether a target was met; nothing asserts timings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::options::{Scenario, Sizes};
use crate::stats::Percentiles;

/// What a figure is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// `chat / baseline` at least this (throughputs).
    RatioAtLeast(f64),
    /// `chat / baseline` at most this (latencies).
    RatioAtMost(f64),
    /// The chat's figure below this.
    Below(f64),
    /// The chat's figure at least this.
    AtLeast(f64),
    /// The chat's figure exactly this (counts of what must never happen: 0).
    Exactly(f64),
}

impl Target {
    fn met(self, chat: Option<f64>, ratio: Option<f64>) -> Option<bool> {
        Some(match self {
            Target::RatioAtLeast(t) => ratio? >= t,
            Target::RatioAtMost(t) => ratio? <= t,
            Target::Below(t) => chat? < t,
            Target::AtLeast(t) => chat? >= t,
            Target::Exactly(t) => chat? == t,
        })
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(t) => format!("≥ {t}x"),
            Target::RatioAtMost(t) => format!("≤ {t}x"),
            Target::Below(t) => format!("< {} {unit}", number(t)),
            Target::AtLeast(t) => format!("≥ {} {unit}", number(t)),
            Target::Exactly(t) => format!("= {} {unit}", number(t)),
        }
    }
}

/// One figure of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What is measured, e.g. `p99 latency`.
    pub figure: String,
    /// Unit of `chat` and `baseline`.
    pub unit: String,
    /// The chat's figure (through the real client and workers); `None` if it could
    /// not be measured (the reason is in `note`).
    pub chat: Option<f64>,
    /// Which raw baseline `baseline` comes from, if any.
    pub baseline_name: Option<String>,
    /// The raw baseline's figure.
    pub baseline: Option<f64>,
    /// `chat / baseline`.
    pub ratio: Option<f64>,
    /// The target.
    pub target: Option<Target>,
    /// Whether the target was met.
    pub met: Option<bool>,
    /// Anything worth knowing about this figure.
    pub note: Option<String>,
}

impl Row {
    /// A figure without baseline.
    pub fn new(figure: impl Into<String>, unit: impl Into<String>, chat: Option<f64>) -> Self {
        Self {
            figure: figure.into(),
            unit: unit.into(),
            chat,
            baseline_name: None,
            baseline: None,
            ratio: None,
            target: None,
            met: None,
            note: None,
        }
    }

    /// Adds the raw baseline `name` measured as `value`, and the ratio.
    pub fn baseline(mut self, name: impl Into<String>, value: Option<f64>) -> Self {
        self.baseline_name = Some(name.into());
        self.baseline = value;
        self.ratio = match (self.chat, value) {
            (Some(chat), Some(base)) if base > 0.0 => Some(chat / base),
            _ => None,
        };
        self.met = self.target.and_then(|t| t.met(self.chat, self.ratio));
        self
    }

    /// Sets the target and whether it is met.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self.met = target.met(self.chat, self.ratio);
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The latency rows (p50, p90, p99, max) of `chat` against `baseline`; the target,
/// if any, applies to p99.
pub fn latency_rows(
    what: &str,
    chat: Option<Percentiles>,
    baseline_name: &str,
    baseline: Option<Percentiles>,
    p99_target: Option<Target>,
) -> Vec<Row> {
    type Pick = fn(&Percentiles) -> f64;
    let pick: [(&str, Pick); 4] = [
        ("p50", |p| p.p50),
        ("p90", |p| p.p90),
        ("p99", |p| p.p99),
        ("max", |p| p.max),
    ];
    pick.iter()
        .map(|(name, get)| {
            let row = Row::new(format!("{what} {name}"), "ms", chat.as_ref().map(get))
                .baseline(baseline_name, baseline.as_ref().map(get));
            match (*name, p99_target) {
                ("p99", Some(target)) => row.target(target),
                _ => row,
            }
        })
        .collect()
}

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// `nats-server --version`, or "external" with `--nats-url`.
    pub nats_server: String,
    /// CPU model and count, memory, kernel.
    pub machine: String,
    /// `/proc/loadavg` when the run started and when it ended.
    pub load_before: String,
    /// See `load_before`.
    pub load_after: String,
    /// Whether the bench was built with optimisations.
    pub release_build: bool,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// The sizes used.
    pub sizes: Sizes,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where and how.
    pub meta: Meta,
    /// The rows of each scenario that ran.
    pub scenarios: BTreeMap<Scenario, Vec<Row>>,
}

impl Report {
    /// The Markdown table of every figure.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| scenario | figure | chat | raw baseline | ratio | target | met |\n");
        out.push_str("| --- | --- | ---: | --- | ---: | --- | --- |\n");
        for (scenario, rows) in &self.scenarios {
            for row in rows {
                let chat = row
                    .chat
                    .map_or("n/a".to_string(), |v| format!("{} {}", number(v), row.unit));
                let baseline = match (&row.baseline_name, row.baseline) {
                    (Some(name), Some(v)) => format!("{} {} ({name})", number(v), row.unit),
                    (Some(name), None) => format!("n/a ({name})"),
                    _ => String::new(),
                };
                let ratio = row.ratio.map_or(String::new(), |r| match r {
                    r if r >= 0.1 => format!("{r:.2}x"),
                    r => format!("{r:.3}x"),
                });
                let target = row.target.map_or(String::new(), |t| t.describe(&row.unit));
                let met = match row.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None if row.target.is_some() => "n/a",
                    None => "",
                };
                let _ = writeln!(
                    out,
                    "| {scenario} | {} | {chat} | {baseline} | {ratio} | {target} | {met} |",
                    row.figure
                );
            }
        }
        let notes: Vec<_> = self
            .scenarios
            .iter()
            .flat_map(|(s, rows)| rows.iter().map(move |r| (s, r)))
            .filter_map(|(s, r)| Some((s, &r.figure, r.note.as_ref()?)))
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for (scenario, figure, note) in notes {
                let _ = writeln!(out, "- {scenario} / {figure}: {note}");
            }
        }
        out
    }
}

/// A figure with sensible precision: three significant digits, no exponent.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets() {
        let row = Row::new("rate", "msg/s", Some(90.0))
            .target(Target::RatioAtLeast(0.9))
            .baseline("raw", Some(100.0));
        assert_eq!(row.ratio, Some(0.9));
        assert_eq!(row.met, Some(true));
        let row = Row::new("p99", "ms", Some(3.0))
            .baseline("raw", Some(1.0))
            .target(Target::RatioAtMost(1.5));
        assert_eq!(row.met, Some(false));
        let row = Row::new("rss", "MB", None).target(Target::Below(20.0));
        assert_eq!(row.met, None);
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(0.01234), "0.012");
    }
}
