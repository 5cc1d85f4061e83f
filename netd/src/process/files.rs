//! The per-container /etc/hosts, /etc/resolv.conf and /etc/hostname, rendered as Docker does.

use std::net::Ipv4Addr;

pub fn hosts(hostname: &str, addresses: &[Ipv4Addr], extra: &[(Ipv4Addr, String)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (ip, names) in extra {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    for ip in addresses {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// The host's resolv.conf without loopback name servers, which a container cannot reach; if
/// none is left, public resolvers, as Docker does.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let server = words.next().unwrap_or_default();
            if server.starts_with("127.") || server == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// For a network with names: its embedded DNS server, the host's search domains, and
/// `ndots:0` so that single-label names (other containers) are asked as they are, as Docker
/// writes it.
pub fn embedded_resolv_conf(server: Ipv4Addr, host: &str) -> String {
    let mut out = String::new();
    for line in host.lines() {
        if matches!(line.split_whitespace().next(), Some("search" | "domain")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("nameserver {server}\noptions ndots:0\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_every_address_of_the_container() {
        let h = hosts(
            "web",
            &["10.0.0.2".parse().unwrap(), "10.1.0.2".parse().unwrap()],
            &[],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.2\tweb\n") && h.contains("10.1.0.2\tweb\n"));
    }

    #[test]
    fn embedded_dns_keeps_search_domains_only() {
        let r = embedded_resolv_conf(
            "10.1.0.1".parse().unwrap(),
            "search lan\nnameserver 10.0.0.1\noptions rotate\n",
        );
        assert_eq!(r, "search lan\nnameserver 10.1.0.1\noptions ndots:0\n");
    }

    #[test]
    fn loopback_resolvers_are_dropped() {
        let r = resolv_conf("search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n");
        assert_eq!(r, "search lan\nnameserver 10.0.0.1\n");
        let r = resolv_conf("nameserver 127.0.0.53\n");
        assert!(r.contains("nameserver 8.8.8.8"));
    }
}
