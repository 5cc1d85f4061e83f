//! Medians, ratios, the table printed at the end, and a PNG plot of rate against N.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Direct,
    Netd,
    Iptables,
}

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
    publish: BTreeMap<(Mode, u32), f64>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Figures {
    pub fn add(&mut self, mode: Mode, n: u32, values: [f64; 6]) {
        self.samples.entry((mode, n)).or_default().push(values);
    }

    pub fn publish_ms(&mut self, mode: Mode, n: u32, ms: f64) {
        self.publish.insert((mode, n), ms);
    }

    fn med(&self, mode: Mode, n: u32, metric: usize) -> Option<f64> {
        let runs = self.samples.get(&(mode, n))?;
        Some(median(runs.iter().map(|r| r[metric]).collect()))
    }

    /// The median of per-run ratios a/b: runs of a and b alternate, so each pair saw the
    /// same state of the machine.
    fn paired_ratio(&self, a: Mode, b: Mode, n: u32, metric: usize) -> Option<f64> {
        let (ra, rb) = (self.samples.get(&(a, n))?, self.samples.get(&(b, n))?);
        let ratios: Vec<f64> = ra
            .iter()
            .zip(rb)
            .filter(|(_, y)| y[metric] > 0.0)
            .map(|(x, y)| x[metric] / y[metric])
            .collect();
        (!ratios.is_empty()).then(|| median(ratios))
    }

    fn counts(&self) -> Vec<u32> {
        let mut ns: Vec<u32> = self.samples.keys().map(|(_, n)| *n).collect();
        ns.dedup();
        ns.sort();
        ns.dedup();
        ns
    }

    /// The markdown table of medians, with netd/direct (median of paired runs) and
    /// netd/iptables (ratio of medians; iptables runs separately) ratios.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| metric | N | direct | netd | iptables | netd/direct | netd/iptables |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
        for (m, name) in METRICS.iter().enumerate() {
            for n in self.counts() {
                let (d, nd, ipt) = (
                    self.med(Mode::Direct, n, m),
                    self.med(Mode::Netd, n, m),
                    self.med(Mode::Iptables, n, m),
                );
                let fmt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "| {name} | {n} | {} | {} | {} | {} | {} |",
                    fmt(d),
                    fmt(nd),
                    fmt(ipt),
                    self.paired_ratio(Mode::Netd, Mode::Direct, n, m)
                        .map(|r| format!("{r:.2}"))
                        .unwrap_or_default(),
                    ratio(nd, ipt)
                );
            }
        }
        for n in self.counts() {
            let fmt = |mode| {
                self.publish
                    .get(&(mode, n))
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                out,
                "| publish N ports, ms | {n} | | {} | {} | | |",
                fmt(Mode::Netd),
                fmt(Mode::Iptables)
            );
        }
        out
    }

    /// Writes `rates.dat` and plots new connections and UDP flows per second against N.
    pub fn plot(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut dat =
            String::from("# N direct_crr netd_crr iptables_crr direct_udp netd_udp iptables_udp\n");
        for n in self.counts() {
            let v = |mode, m| self.med(mode, n, m).unwrap_or(0.0);
            let _ = writeln!(
                dat,
                "{} {} {} {} {} {} {}",
                n.max(1),
                v(Mode::Direct, 4),
                v(Mode::Netd, 4),
                v(Mode::Iptables, 4),
                v(Mode::Direct, 5),
                v(Mode::Netd, 5),
                v(Mode::Iptables, 5)
            );
        }
        let data = dir.join("rates.dat");
        std::fs::write(&data, dat)?;
        let png = dir.join("rates.png");
        let script = format!(
            "set terminal png size 1000,500\nset output '{}'\nset logscale x\nset xlabel 'other published ports (N, 0 shown as 1)'\nset ylabel 'per second'\nset key outside\nset title 'New connections and UDP flows per second through a published port'\nplot '{d}' u 1:2 w lp t 'TCP conn direct', '{d}' u 1:3 w lp t 'TCP conn netd', '{d}' u 1:4 w lp t 'TCP conn iptables', '{d}' u 1:5 w lp t 'UDP flows direct', '{d}' u 1:6 w lp t 'UDP flows netd', '{d}' u 1:7 w lp t 'UDP flows iptables'\n",
            png.display(),
            d = data.display()
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
