//! The kernel's port-list syntax: `1,3-5,8`.

use std::collections::BTreeSet;

/// The ports of a list; what does not parse is skipped (the kernel wrote it).
pub fn parse(list: &str) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for part in list
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
            ports.extend(lo..=hi);
        }
    }
    ports
}

/// The shortest list of `ports`: consecutive ports as ranges.
pub fn format(ports: &BTreeSet<u16>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u16, u16)> = None;
    for &p in ports {
        run = match run {
            Some((lo, hi)) if u32::from(hi) + 1 == u32::from(p) => Some((lo, p)),
            Some(done) => {
                parts.push(range(done));
                Some((p, p))
            }
            None => Some((p, p)),
        };
    }
    parts.extend(run.map(range));
    parts.join(",")
}

fn range((lo, hi): (u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}
