//! Where the machine's CPU goes while a scenario runs: every process's user + system time
//! from `/proc/<pid>/stat`, summed by command name, over the scenario's wall time. It tells a
//! scenario limited by its own service from one limited by the stores sharing the cores.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

/// CPU ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks used so far, by command name.
fn ticks_by_command() -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ..."; comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        // The kernel cuts `comm` at 15 bytes; the command line's first word is whole.
        let command = std::fs::read(entry.path().join("cmdline"))
            .ok()
            .and_then(|line| {
                let first = line.split(|b| *b == 0).next()?.to_vec();
                let first = String::from_utf8(first).ok()?;
                let base = first.rsplit('/').next()?.to_owned();
                (!base.is_empty()).then_some(base)
            })
            .unwrap_or_else(|| stat[open + 1..close].to_owned());
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after comm.
        let ticks = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        *by.entry(command).or_insert(0) += ticks;
    }
    by
}

/// A measurement under way.
pub struct CpuSample {
    started: Instant,
    before: BTreeMap<String, u64>,
}

impl CpuSample {
    /// Starts measuring.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            before: ticks_by_command(),
        }
    }

    /// Cores each command kept busy since [`CpuSample::start`], busiest first (those above
    /// 2 % of a core).
    pub fn finish(self) -> Value {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut used: Vec<(String, f64)> = ticks_by_command()
            .into_iter()
            .map(|(command, ticks)| {
                let before = self.before.get(&command).copied().unwrap_or(0);
                let cores = ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds;
                (command, cores)
            })
            .filter(|(_, cores)| *cores >= 0.02)
            .collect();
        used.sort_by(|a, b| b.1.total_cmp(&a.1));
        Value::Array(
            used.into_iter()
                .map(|(command, cores)| json!({"command": command, "cores": (cores * 100.0).round() / 100.0}))
                .collect(),
        )
    }
}
