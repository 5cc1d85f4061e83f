//! Tier 2: pinned maps across builds. A pin whose layout is this build's is reused with its
//! entries; one of another layout (an older build's map, its value grown since) is made
//! anew, and the load says which.

use std::process::Command;

use integration_tests::{privileged, testrun::Programs};
use netd::datapath::{nat::Publication, Datapath};
use netd_common::maps;

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
