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
use netd::datapath::{nat::Publication, Datapath};
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
