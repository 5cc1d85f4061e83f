//! The time to publish ports, netd vs iptables vs nftables, each timed from the client's
//! side of its interface (netd: the API over its unix socket; netfilter: the tool's
//! processes), with N other ports published:
//! - N ports at once on an existing container (netd: one `POST .../ports` with a range;
//!   iptables: one `iptables-restore --noflush` with Docker's 3 rules per port; nftables:
//!   one `nft -f` adding N map elements);
//! - one more port on an existing container (netd: `POST .../ports`; iptables: Docker's 3
//!   rule changes, one `iptables` process each, as dockerd runs them; nftables: one element);
//! - one more `run -d -p` (netd only: namespace, veth, addresses, process and the port).

use std::{fmt::Write as _, path::Path, time::Instant};

use anyhow::Result;

use super::{
    host::{api, BenchHost},
    netfilter::{NetfilterLab, Rules},
    report::{raw, spread},
};

const BASE: u32 = 10_000;
const ONE_MORE: u32 = 7000;

/// One row: what was timed, at which N, and the samples of each arm (ms).
struct Row {
    what: &'static str,
    n: u32,
    netd: Vec<f64>,
    iptables: Vec<f64>,
    nftables: Vec<f64>,
}

pub fn run(netd: &Path, xtask: &Path, counts: &[u32], runs: usize) -> Result<String> {
    let host = BenchHost::start(netd, false)?;
    let socket = host.socket();
    let ipt = NetfilterLab::start(Rules::Iptables, xtask, "172.30.0.2", (5001, 5002, 5201))?;
    let nft = NetfilterLab::start(Rules::Nftables, xtask, "172.30.0.2", (5001, 5002, 5201))?;
    let timed = |method: &str, path: &str, body: &str| -> Result<f64> {
        let t = Instant::now();
        api(&socket, method, path, body)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let container = |name: &str, publish: &str| {
        format!(
            r#"{{"name":"{name}","command":["sleep","3600"],"start":true,"publish":[{publish}]}}"#
        )
    };
    let rm = |name: &str| {
        api(
            &socket,
            "DELETE",
            &format!("/v1/containers/{name}?force=true"),
            "",
        )
    };
    let range = |n: u32| format!(r#""{BASE}-{last}:{BASE}-{last}""#, last = BASE + n - 1);
    let fillers =
        |n: u32| -> Vec<(&str, u32, u32)> { (BASE..BASE + n).map(|p| ("tcp", p, p)).collect() };

    let mut rows = Vec::new();
    for &n in counts {
        if n > 0 {
            let mut row = Row::new("publish N ports at once, existing container", n);
            for _ in 0..runs {
                api(&socket, "POST", "/v1/containers", &container("bulk", ""))?;
                let body = format!(r#"{{"publish":[{}]}}"#, range(n));
                row.netd
                    .push(timed("POST", "/v1/containers/bulk/ports", &body)?);
                rm("bulk")?;
                for (lab, samples) in [(&ipt, &mut row.iptables), (&nft, &mut row.nftables)] {
                    lab.clear()?;
                    samples.push(lab.publish(&fillers(n))?);
                }
            }
            rows.push(row);
        }
        // N ports stay published for the rows below.
        let publish = if n > 0 { range(n) } else { String::new() };
        api(
            &socket,
            "POST",
            "/v1/containers",
            &container("bulk", &publish),
        )?;
        for lab in [&ipt, &nft] {
            lab.clear()?;
            lab.publish(&fillers(n))?;
        }
        let mut one = Row::new("one more port, existing container", n);
        let mut run_p = Row::new("one more run -d -p (whole container)", n);
        for _ in 0..runs {
            api(&socket, "POST", "/v1/containers", &container("two", ""))?;
            let body = format!(r#"{{"publish":["{ONE_MORE}:80"]}}"#);
            one.netd
                .push(timed("POST", "/v1/containers/two/ports", &body)?);
            rm("two")?;
            for (lab, samples) in [(&ipt, &mut one.iptables), (&nft, &mut one.nftables)] {
                samples.push(lab.publish_one(ONE_MORE, 80)?);
                lab.unpublish_one(ONE_MORE, 80)?;
            }
            let body = container("three", &format!(r#""{ONE_MORE}:80""#));
            run_p.netd.push(timed("POST", "/v1/containers", &body)?);
            rm("three")?;
        }
        rows.extend([one, run_p]);
        rm("bulk")?;
        println!("  N={n}: done");
    }
    Ok(table(&rows))
}

impl Row {
    fn new(what: &'static str, n: u32) -> Self {
        Self {
            what,
            n,
            netd: Vec::new(),
            iptables: Vec::new(),
            nftables: Vec::new(),
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| operation | N published | netd ms | iptables ms | nftables ms |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.what,
            r.n,
            spread(&r.netd, 2),
            spread(&r.iptables, 2),
            spread(&r.nftables, 2)
        );
    }
    out.push_str("\nraw samples (ms):\n");
    for r in rows {
        for (arm, v) in [
            ("netd", &r.netd),
            ("iptables", &r.iptables),
            ("nftables", &r.nftables),
        ] {
            if !v.is_empty() {
                let _ = writeln!(out, "{} N={} {arm}: {}", r.what, r.n, raw(v, 2));
            }
        }
    }
    out
}
