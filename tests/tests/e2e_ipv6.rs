//! Tier 3: IPv6 from containers on IPv4-only networks (all of netd's today). Containers have
//! IPv6 switched off, but a process with CAP_NET_RAW still sends IPv6 frames: every one is
//! dropped at the sender's port and counted as `ipv6_disabled`, on internal networks too.

use integration_tests::{
    child::{output_of, spawn_exec, wait_ready},
    privileged, reach_script, Lab,
};
use netd::config::mac::Mac;

#[test]
fn ipv6_frames_from_containers_reach_nobody_and_are_counted() {
    if !privileged("ipv6_frames_from_containers_reach_nobody_and_are_counted") {
        return;
    }
    let lab = Lab::new();
    let before = lab.rulesets();
    lab.ok(&["network", "create", "--subnet", "10.76.0.0/24", "v4"]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--internal",
        "int",
    ]);
    let script = reach_script();
    for network in ["v4", "int"] {
        let (sender, receiver) = (format!("{network}-s"), format!("{network}-r"));
        lab.run_d(&sender, &["--network", network]);
        lab.run_d(&receiver, &["--network", network]);
        let gateway: std::net::Ipv4Addr = lab.json(&["network", "inspect", network])[0]["IPAM"]
            ["Config"][0]["Gateway"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mac = Mac::for_gateway(gateway).to_string();
        let mut listener = spawn_exec(
            &lab,
            &receiver,
            &["python3", &script, "raw-listen", "eth0", "0x86dd", "3"],
        );
        wait_ready(&mut listener);
        lab.exec_ok(&sender, &["python3", &script, "ipv6-frames", "eth0", &mac]);
        assert_eq!(
            output_of(listener).trim(),
            "0",
            "{network}: the neighbour got none"
        );
        // On an internal network the frame for the gateway's MAC is refused as such first.
        let (ipv6, internal) = if network == "int" { (2, 1) } else { (3, 0) };
        assert_eq!(lab.drops(network, "ipv6_disabled"), ipv6, "{network}");
        assert_eq!(
            lab.drops(network, "internal_network"),
            internal,
            "{network}"
        );
    }
    assert_eq!(before, lab.rulesets(), "no iptables or nftables rule");
}
