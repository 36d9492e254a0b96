//! The mem mode: memory (RSS, PSS, peak RSS) and CPU ticks of a process tree, from Linux /proc; Watch: a process's peak threads and RSS during a load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::Args;

fn status_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn mem(a: &Args) {
    let root = a.n("pid", 0) as u32;
    let comm = a.opt("comm");
    // (pid, ppid, comm, CPU ticks) for every process
    let mut procs: Vec<(u32, u32, String, u64)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let pid: u32 = match e.file_name().to_str().and_then(|n| n.parse().ok()) {
                Some(p) => p,
                None => continue,
            };
            let st = match std::fs::read_to_string(format!("/proc/{}/stat", pid)) {
                Ok(s) => s,
                Err(_) => continue,
            };
            let (open, close) = match (st.find('('), st.rfind(')')) {
                (Some(o), Some(c)) if c > o => (o, c),
                _ => continue,
            };
            let name = st[open + 1..close].to_string();
            // after the comm: state ppid ... utime(11) stime cutime cstime(14)
            let fields: Vec<&str> = st[close + 1..].split_whitespace().collect();
            let field = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
            let ppid = field(1) as u32;
            let ticks = (11..=14).map(field).sum();
            procs.push((pid, ppid, name, ticks));
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut cpu: HashMap<u32, u64> = HashMap::new();
    for (pid, ppid, name, ticks) in procs {
        children.entry(ppid).or_default().push(pid);
        names.insert(pid, name);
        cpu.insert(pid, ticks);
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(c) = children.get(&tree[i]) {
            tree.extend(c.iter().copied().filter(|&p| p != 0));
        }
        i += 1;
    }
    let (mut rss, mut pss, mut n, mut nc, mut hwm_max, mut rss_max) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let cpu_ticks: u64 = tree.iter().filter_map(|p| cpu.get(p)).sum();
    for pid in &tree {
        let st = match std::fs::read_to_string(format!("/proc/{}/status", pid)) {
            Ok(s) => s,
            Err(_) => continue,
        };
        n += 1;
        let r = status_kb(&st, "VmRSS:");
        rss += r;
        if let Ok(sm) = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pid)) {
            pss += status_kb(&sm, "Pss:");
        }
        let name = names.get(pid).map(|s| s.as_str()).unwrap_or("");
        if comm == Some(name) {
            nc += 1;
            hwm_max = hwm_max.max(status_kb(&st, "VmHWM:"));
            rss_max = rss_max.max(r);
        }
    }
    println!(
        "RESULT procs={} rss_kb={} pss_kb={} comm_procs={} comm_hwm_max_kb={} comm_rss_max_kb={} cpu_ticks={}",
        n, rss, pss, nc, hwm_max, rss_max, cpu_ticks
    );
}

/// A process's thread count and RSS, sampled every `WATCH_EVERY` from
/// /proc/PID/status on a thread of its own while a load runs: their peaks.
pub struct Watch {
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<(u64, u64)>>,
}

const WATCH_EVERY: Duration = Duration::from_millis(5);

impl Watch {
    /// Starts sampling process `pid` (0: nothing is watched).
    pub fn start(pid: u32) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = (pid != 0).then(|| {
            thread::spawn(move || {
                let (mut threads, mut rss) = (0, 0);
                while !flag.load(Ordering::Relaxed) {
                    if let Ok(st) = std::fs::read_to_string(format!("/proc/{}/status", pid)) {
                        threads = threads.max(status_kb(&st, "Threads:"));
                        rss = rss.max(status_kb(&st, "VmRSS:"));
                    }
                    thread::sleep(WATCH_EVERY);
                }
                (threads, rss)
            })
        });
        Watch { stop, sampler }
    }

    /// Stops sampling: ` peak_threads=N peak_rss_kb=N` for the RESULT line ("" when nothing was watched).
    pub fn stop(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        match self.sampler.map(|s| s.join()) {
            Some(Ok((threads, rss))) => format!(" peak_threads={} peak_rss_kb={}", threads, rss),
            _ => String::new(),
        }
    }
}
