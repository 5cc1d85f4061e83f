use std::net::Ipv4Addr;

use super::*;

const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

#[test]
fn lists_round_trip_as_ranges() {
    let ports = parse("8080, 100-103,9,65535, bad, 7-x");
    assert_eq!(
        ports.iter().copied().collect::<Vec<_>>(),
        [9, 100, 101, 102, 103, 8080, 65535]
    );
    assert_eq!(format(&ports), "9,100-103,8080,65535");
    assert_eq!(format(&BTreeSet::new()), "");
    assert_eq!(format(&parse("1-65535")), "1-65535");
}

fn lab() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sysctl = dir.path().join("ip_local_reserved_ports");
    let file = dir.path().join("reserved-ports");
    (dir, sysctl, file)
}

fn read(sysctl: &Path) -> String {
    std::fs::read_to_string(sysctl).unwrap().trim().to_string()
}

#[test]
fn published_ports_join_the_operators_and_leave_them_when_unpublished() {
    let (_dir, sysctl, file) = lab();
    std::fs::write(&sysctl, "22,5000-5001\n").unwrap();
    let mut r = ReservedPorts::open_at(&file, &sysctl);
    r.add([(6, ANY, 8080), (6, ANY, 8081), (17, ANY, 8080)])
        .unwrap();
    // Published again (as a restart does): nothing changes.
    r.add([(6, ANY, 8080)]).unwrap();
    assert_eq!(read(&sysctl), "22,5000-5001,8080-8081");
    // 8080 is published for TCP and UDP: it stays until both go.
    r.remove([(6, ANY, 8080), (6, ANY, 8081)]).unwrap();
    assert_eq!(read(&sysctl), "22,5000-5001,8080");
    r.remove([(17, ANY, 8080), (6, ANY, 9999)]).unwrap();
    assert_eq!(read(&sysctl), "22,5000-5001");
}

#[test]
fn a_restart_tells_the_operators_ports_from_netds() {
    let (_dir, sysctl, file) = lab();
    std::fs::write(&sysctl, "22").unwrap();
    let mut r = ReservedPorts::open_at(&file, &sysctl);
    r.add([(6, ANY, 8080)]).unwrap();
    // Restarted: what is there now is what netd wrote, so 8080 is not the operator's.
    let mut again = ReservedPorts::open_at(&file, &sysctl);
    assert_eq!(format(&again.ports()), "22");
    again.add([(6, ANY, 9090)]).unwrap();
    assert_eq!(read(&sysctl), "22,9090");
    // The operator changed it meanwhile: theirs now.
    std::fs::write(&sysctl, "22,23").unwrap();
    let r = ReservedPorts::open_at(&file, &sysctl);
    assert_eq!(format(&r.ports()), "22-23");
}
