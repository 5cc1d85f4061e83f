//! Docker's default address pools and overlap checks.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// 172.17.0.0/16 … 172.31.0.0/16, then the /20s of 192.168.0.0/16, in Docker's order.
pub fn default_pools() -> impl Iterator<Item = Ipv4Network> {
    let big = (17..=31).map(|b| Ipv4Network::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("/16"));
    let small =
        (0..16).map(|i| Ipv4Network::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).expect("/20"));
    big.chain(small)
}

pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The first default pool that overlaps none of `taken` (other networks and host routes).
pub fn first_free(taken: &[Ipv4Network]) -> Option<Ipv4Network> {
    default_pools().find(|pool| !taken.iter().any(|t| overlaps(*pool, *t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn pools_in_docker_order() {
        let pools: Vec<_> = default_pools().collect();
        assert_eq!(pools[0], net("172.17.0.0/16"));
        assert_eq!(pools[14], net("172.31.0.0/16"));
        assert_eq!(pools[15], net("192.168.0.0/20"));
        assert_eq!(pools.last().copied(), Some(net("192.168.240.0/20")));
    }

    #[test]
    fn skips_networks_and_routes_that_overlap() {
        assert_eq!(first_free(&[]), Some(net("172.17.0.0/16")));
        let taken = [
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("172.16.0.0/12"),
        ];
        assert_eq!(first_free(&taken[..2]), Some(net("172.19.0.0/16")));
        assert_eq!(first_free(&taken), Some(net("192.168.0.0/20")));
        let all: Vec<_> = default_pools().collect();
        assert_eq!(first_free(&all), None);
    }

    #[test]
    fn overlap_is_symmetric() {
        assert!(overlaps(net("10.0.0.0/8"), net("10.1.0.0/16")));
        assert!(overlaps(net("10.1.0.0/16"), net("10.0.0.0/8")));
        assert!(!overlaps(net("10.1.0.0/16"), net("10.2.0.0/16")));
    }
}
