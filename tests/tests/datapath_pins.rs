//! Tier 2: pinned maps across builds. A pin whose layout is this build's is reused with its
//! entries; one whose value grew since or whose size changed is made anew with its entries
//! moved in; one of another kind (a shrunk value, another meaning version) is made anew
//! empty; the load says which.

use std::process::Command;

use integration_tests::{
    packet::{Builder, ACK, SYN},
    privileged,
    testrun::Programs,
};
use netd::datapath::{isolation::endpoint, nat::Publication, Datapath};
use netd_common::{isolation::NET_ROUTED, maps};

fn publication(port: u16) -> Publication {
    Publication {
        proto: 6,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: port,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port: 80,
    }
}

#[test]
fn a_pin_of_another_layout_is_made_anew_and_a_matching_one_kept() {
    if !privileged("a_pin_of_another_layout_is_made_anew_and_a_matching_one_kept") {
        return;
    }
    let mut l = Programs::load("netd-pins");
    assert_eq!(l.dp.maps_reset(), [] as [String; 0], "a fresh bpffs");
    l.dp.publish(&[publication(8080)]).unwrap();
    let bpffs = l.bpffs().to_path_buf();
    // The next start of the same build keeps every pin, entries included.
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert_eq!(l.dp.maps_reset(), [] as [String; 0]);
    assert_eq!(l.dp.published().len(), 1, "the published port survived");

    // An older build's NETD_PORTS, whose value was 16 bytes.
    let pin = bpffs.join("maps").join(maps::PORTS);
    std::fs::remove_file(&pin).unwrap();
    let made = Command::new("bpftool")
        .args(["map", "create"])
        .arg(&pin)
        .args(["type", "hash", "key", "8", "value", "16", "entries", "1024"])
        .args(["name", "NETD_PORTS"])
        .status()
        .unwrap();
    assert!(made.success(), "bpftool map create");
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert_eq!(l.dp.maps_reset(), [maps::PORTS.to_string()]);
    l.dp.publish(&[publication(8081)]).unwrap();
    assert_eq!(l.dp.published().len(), 1, "a map of this build's layout");
}

fn bpftool(args: &[&str]) {
    let status = Command::new("bpftool").args(args).status().unwrap();
    assert!(status.success(), "bpftool {args:?}");
}

#[test]
fn an_older_value_and_a_resized_table_keep_their_entries() {
    if !privileged("an_older_value_and_a_resized_table_keep_their_entries") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-move").with_container_port(NET_ROUTED);
    let bpffs = l.bpffs().to_path_buf();
    l.dp.set_local_addrs(&["10.9.0.1".parse().unwrap()])
        .unwrap();
    l.dp.publish(&[publication(8080)]).unwrap();
    // An answered connection through the published port: in the main table.
    let client = "192.0.2.9:40000";
    let ack = Builder::tcp(client, "10.9.0.1:8080", ACK).build();
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(client, "10.9.0.1:8080", SYN).build(),
    );
    l.run(
        maps::PROG_PORT_INGRESS,
        &Builder::tcp("172.17.0.2:80", client, SYN | ACK).build(),
    );
    l.run(maps::PROG_UPLINK_INGRESS, &ack);
    let sorted = |mut e: Vec<_>| {
        e.sort_by_key(|(k, _): &(netd_common::nat::CtKey, _)| (k.saddr_be, k.sport_be));
        e
    };
    let before = sorted(l.dp.conntrack_entries());
    assert_eq!(before.len(), 2, "both directions");

    // `--conntrack-max` changed: both tables are made with the new size, entries moved.
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load_sized(&bpffs, 65_536).unwrap(),
    ));
    l.dp.finish_moves().unwrap();
    assert_eq!(l.dp.maps_reset(), [] as [String; 0]);
    let mut moved = l.dp.maps_moved().to_vec();
    moved.sort();
    assert_eq!(
        moved,
        [maps::CONNTRACK.to_string(), maps::CONNTRACK_NEW.to_string()]
    );
    assert_eq!(
        sorted(l.dp.conntrack_entries()),
        before,
        "the connection is kept"
    );
    l.dp.set_local_addrs(&["10.9.0.1".parse().unwrap()])
        .unwrap();
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &ack);
    assert_eq!(
        integration_tests::packet::parse(&out).dst.to_string(),
        "172.17.0.2:80",
        "and still translated"
    );

    // An older build's NETD_PORTS whose value was the target address alone: moved, the
    // port it lacked zero.
    let pin = bpffs.join("maps").join(maps::PORTS);
    std::fs::remove_file(&pin).unwrap();
    let pin = pin.to_str().unwrap();
    bpftool(&[
        "map",
        "create",
        pin,
        "type",
        "hash",
        "key",
        "8",
        "value",
        "4",
        "entries",
        "1024",
        "name",
        "NETD_PORTS",
    ]);
    // 0.0.0.0:8082/tcp -> 172.17.0.3
    bpftool(&[
        "map", "update", "pinned", pin, "key", "hex", "00", "00", "00", "00", "1f", "92", "06",
        "00", "value", "hex", "ac", "11", "00", "03",
    ]);
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    l.dp.finish_moves().unwrap();
    assert!(l.dp.maps_moved().contains(&maps::PORTS.to_string()));
    let published = l.dp.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let (key, target) = published[0];
    assert_eq!(u16::from_be(key.port_be), 8082);
    assert_eq!(
        std::net::Ipv4Addr::from(u32::from_be(target.addr_be)),
        std::net::Ipv4Addr::new(172, 17, 0, 3)
    );
    assert_eq!(target.port_be, 0, "the field it lacked starts at zero");

    // The same sizes with another meaning version: made anew, empty.
    let layouts = bpffs.join("layouts");
    std::fs::remove_dir(layouts.join(format!("{}@1", maps::PORTS))).unwrap();
    std::fs::create_dir(layouts.join(format!("{}@0", maps::PORTS))).unwrap();
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert_eq!(l.dp.maps_reset(), [maps::PORTS.to_string()]);
    assert!(l.dp.published().is_empty());
    assert!(
        layouts.join(format!("{}@1", maps::PORTS)).exists(),
        "recorded anew"
    );
    assert!(!layouts.join(format!("{}@0", maps::PORTS)).exists());
}

/// The program netd's filter in `direction` ("ingress" or "egress") of `dev` runs, as tc
/// shows it.
fn filter_program(dev: &str, direction: &str) -> Option<u32> {
    let out = Command::new("tc")
        .args(["filter", "show", "dev", dev, direction])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let id = text.split_whitespace().skip_while(|w| *w != "id").nth(1)?;
    id.parse().ok()
}

#[test]
fn a_restart_of_the_same_build_reuses_its_programs_and_leaves_the_filters() {
    if !privileged("a_restart_of_the_same_build_reuses_its_programs_and_leaves_the_filters") {
        return;
    }
    // A private namespace of this thread: its dummy port goes with it.
    let mut l = Programs::in_private_netns("netd-reuse");
    assert!(
        !l.dp.programs_reused(),
        "a fresh bpffs has nothing to reuse"
    );
    // A veth: the kernel here has no dummy driver.
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            "nd-reuse0",
            "type",
            "veth",
            "peer",
            "name",
            "nd-reuse1",
        ])
        .status()
        .unwrap();
    assert!(made.success(), "ip link add");
    // Not /sys/class/net: that sysfs shows the namespace it was mounted in.
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(c"nd-reuse0".as_ptr()) };
    assert_ne!(index, 0, "nd-reuse0 has an index");
    let ep = endpoint(
        "172.17.0.2".parse().unwrap(),
        [2, 0x42, 0xac, 0x11, 0, 2],
        17,
    );
    let ip = "172.17.0.2".parse().unwrap();
    l.dp.attach_port("nd-reuse0", index, ep).unwrap();
    assert_eq!(l.dp.check_port("nd-reuse0", index, ip), [] as [String; 0]);
    let first = (
        filter_program("nd-reuse0", "ingress").expect("an ingress filter"),
        filter_program("nd-reuse0", "egress").expect("an egress filter"),
    );

    // The same build again: its pinned programs, and the filters keep running them.
    let bpffs = l.bpffs().to_path_buf();
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert!(l.dp.programs_reused(), "the pinned programs serve");
    l.dp.attach_port("nd-reuse0", index, ep).unwrap();
    assert_eq!(l.dp.check_port("nd-reuse0", index, ip), [] as [String; 0]);
    let second = (
        filter_program("nd-reuse0", "ingress").unwrap(),
        filter_program("nd-reuse0", "egress").unwrap(),
    );
    assert_eq!(first, second, "the filters were left as they were");

    // A map made anew behind the programs' back: they would use the old one, so they are
    // loaded again and the filters get them.
    std::fs::remove_file(bpffs.join("maps").join(maps::DROPS)).unwrap();
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert!(
        !l.dp.programs_reused(),
        "programs on a removed map are not reused"
    );
    assert!(
        l.dp.check_port("nd-reuse0", index, ip)
            .iter()
            .any(|p| p.contains("filter runs program")),
        "the old filters are seen to run other programs"
    );
    l.dp.attach_port("nd-reuse0", index, ep).unwrap();
    assert_eq!(l.dp.check_port("nd-reuse0", index, ip), [] as [String; 0]);
    let third = filter_program("nd-reuse0", "ingress").unwrap();
    assert_ne!(third, first.0, "the ingress filter runs the new program");

    // A filter removed by hand is seen, and put back.
    let removed = Command::new("tc")
        .args(["qdisc", "del", "dev", "nd-reuse0", "clsact"])
        .status()
        .unwrap();
    assert!(removed.success(), "tc qdisc del");
    assert_eq!(
        l.dp.check_port("nd-reuse0", index, ip).len(),
        2,
        "both filters gone"
    );
    l.dp.attach_port("nd-reuse0", index, ep).unwrap();
    assert_eq!(l.dp.check_port("nd-reuse0", index, ip), [] as [String; 0]);
}
