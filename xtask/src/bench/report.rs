//! Medians with their spread, paired ratios, the published-port table, and a PNG plot of rate
//! against N.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result};

/// The arms of the published-port benchmark, in the order each round runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// The client routed to the container's own address: no translation, but netd's
    /// programs are attached (and redirect known flows past the kernel's forwarding path).
    Direct,
    Netd,
    /// Docker's iptables rules, in a lab with nothing of netd in it.
    Iptables,
    /// One nftables map lookup, in a lab with nothing of netd in it.
    Nftables,
}

pub const MODES: [Mode; 4] = [Mode::Direct, Mode::Netd, Mode::Iptables, Mode::Nftables];

pub const METRICS: [&str; 6] = [
    "throughput Gbit/s",
    "req/resp per s",
    "rr p50 us",
    "rr p99 us",
    "new TCP conn/s",
    "new UDP flows/s",
];

#[derive(Default)]
pub struct Figures {
    samples: BTreeMap<(Mode, u32), Vec<[f64; 6]>>,
}

/// The `p` quantile (0 to 1) of `v`, nearest rank below.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `median (min-max)` of `v`, with `digits` decimals.
pub fn spread(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        return String::new();
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.digits$} ({min:.digits$}-{max:.digits$})",
        median(v.to_vec())
    )
}

/// Every sample, as printed under a suite's table.
pub fn raw(v: &[f64], digits: usize) -> String {
    let all: Vec<String> = v.iter().map(|x| format!("{x:.digits$}")).collect();
    all.join(" ")
}

impl Figures {
    pub fn add(&mut self, mode: Mode, n: u32, values: [f64; 6]) {
        self.samples.entry((mode, n)).or_default().push(values);
    }

    fn values(&self, mode: Mode, n: u32, metric: usize) -> Vec<f64> {
        self.samples
            .get(&(mode, n))
            .map(|runs| runs.iter().map(|r| r[metric]).collect())
            .unwrap_or_default()
    }

    fn med(&self, mode: Mode, n: u32, metric: usize) -> Option<f64> {
        let v = self.values(mode, n, metric);
        (!v.is_empty()).then(|| median(v))
    }

    /// Per-round ratios a/b: the arms of one round run back to back, so each pair saw the
    /// same state of the machine.
    fn paired_ratios(&self, a: Mode, b: Mode, n: u32, metric: usize) -> Vec<f64> {
        let (ra, rb) = (self.values(a, n, metric), self.values(b, n, metric));
        ra.iter()
            .zip(&rb)
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| x / y)
            .collect()
    }

    fn counts(&self) -> Vec<u32> {
        let mut ns: Vec<u32> = self.samples.keys().map(|(_, n)| *n).collect();
        ns.sort();
        ns.dedup();
        ns
    }

    /// The markdown table: per arm the median (min-max) of its runs, and the medians (and
    /// ranges) of the paired per-round ratios of netd to each other arm.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| metric | N | direct | netd | iptables | nftables | netd/direct | netd/iptables | netd/nftables |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for (m, name) in METRICS.iter().enumerate() {
            for n in self.counts() {
                let arms: Vec<String> = MODES
                    .iter()
                    .map(|&mode| spread(&self.values(mode, n, m), 1))
                    .collect();
                let ratios: Vec<String> = [Mode::Direct, Mode::Iptables, Mode::Nftables]
                    .iter()
                    .map(|&other| spread(&self.paired_ratios(Mode::Netd, other, n, m), 2))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {name} | {n} | {} | {} |",
                    arms.join(" | "),
                    ratios.join(" | ")
                );
            }
        }
        out
    }

    /// Every run's figures, one line per arm, N and metric.
    pub fn raw_samples(&self) -> String {
        let mut out = String::new();
        for (mode, n) in self.samples.keys() {
            for (m, name) in METRICS.iter().enumerate() {
                let v = self.values(*mode, *n, m);
                let _ = writeln!(out, "{mode:?} N={n} {name}: {}", raw(&v, 1));
            }
        }
        out
    }

    /// Writes `rates.dat` and plots new connections and UDP flows per second against N.
    pub fn plot(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut dat = String::from("# N then crr and udp for direct netd iptables nftables\n");
        for n in self.counts() {
            let v = |mode, m| self.med(mode, n, m).unwrap_or(0.0);
            let crr: Vec<String> = MODES.iter().map(|&md| v(md, 4).to_string()).collect();
            let udp: Vec<String> = MODES.iter().map(|&md| v(md, 5).to_string()).collect();
            let _ = writeln!(dat, "{} {} {}", n.max(1), crr.join(" "), udp.join(" "));
        }
        let data = dir.join("rates.dat");
        std::fs::write(&data, dat)?;
        let png = dir.join("rates.png");
        let d = data.display();
        let mut lines = Vec::new();
        for (i, what) in ["TCP conn", "UDP flows"].iter().enumerate() {
            for (j, mode) in MODES.iter().enumerate() {
                let col = 2 + i * MODES.len() + j;
                lines.push(format!("'{d}' u 1:{col} w lp t '{what} {mode:?}'"));
            }
        }
        let script = format!(
            "set terminal png size 1000,500\nset output '{}'\nset logscale x\nset xlabel 'other published ports (N, 0 shown as 1)'\nset ylabel 'per second'\nset key outside\nset title 'New connections and UDP flows per second through a published port'\nplot {}\n",
            png.display(),
            lines.join(", ")
        );
        let mut gp = std::process::Command::new("gnuplot")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("starting gnuplot")?;
        use std::io::Write;
        gp.stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())?;
        gp.wait()?;
        println!("plot: {}", png.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_and_range_and_ratios_are_paired_by_round() {
        assert_eq!(spread(&[3.0, 1.0, 2.0], 1), "2.0 (1.0-3.0)");
        assert_eq!(spread(&[], 1), "");
        let mut f = Figures::default();
        for (netd, ipt) in [(10.0, 5.0), (30.0, 10.0)] {
            f.add(Mode::Netd, 0, [netd; 6]);
            f.add(Mode::Iptables, 0, [ipt; 6]);
        }
        assert_eq!(
            f.paired_ratios(Mode::Netd, Mode::Iptables, 0, 0),
            vec![2.0, 3.0]
        );
        assert!(f.table().contains("| 3.00 (2.00-3.00) |"), "{}", f.table());
    }
}
