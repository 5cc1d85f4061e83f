//! netd-cni on a macvlan network: a runtime's pod gets a macvlan of the LAN in the
//! namespace the runtime made, an address of the network's range, the router as gateway
//! and the embedded DNS in its own namespace; DEL takes it all back.

use integration_tests::{
    cni::{cni, Call, Netns},
    lan::{first_node, in_netns, macvlan_net, ROUTER},
    privileged,
};
use serde_json::json;

/// What `cmd` prints in namespace `ns`.
fn in_netns_of(ns: &str, cmd: &[&str]) -> String {
    String::from_utf8_lossy(&in_netns(ns, cmd).stdout).into_owned()
}

#[test]
fn a_cni_pod_on_a_macvlan_network_sits_on_the_lan() {
    if !privileged("a_cni_pod_on_a_macvlan_network_sits_on_the_lan") {
        return;
    }
    let (node01, lan) = first_node();
    let links = node01.host_links();
    macvlan_net(&node01, "lanpods", "192.168.0.64/28", "bridge");
    let conf = json!({"cniVersion": "1.1.0", "name": "lanpods", "type": "netd-cni",
        "socket": node01.socket()})
    .to_string();
    let ns = Netns::new();
    let path = ns.path();
    let add = Call {
        container_id: "c0ffee00000000aa",
        netns: &path,
        ..Call::new("ADD")
    };
    let (code, result) = cni(&add, &conf);
    assert_eq!(code, 0, "{result}");
    // No host end: the pod's own interface is the only one, and the result says so.
    assert_eq!(
        result["interfaces"].as_array().unwrap().len(),
        1,
        "{result}"
    );
    assert_eq!(result["interfaces"][0]["sandbox"], path.as_str());
    assert_eq!(result["ips"][0]["interface"], 0);
    let address = result["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("192.168.0.6"), "{address}");
    assert_eq!(result["ips"][0]["gateway"], ROUTER);
    assert_eq!(result["dns"]["nameservers"], json!(["127.0.0.11"]));
    let ip = address.split('/').next().unwrap().to_string();
    // Nothing serves in the pod: ping, a few bounded tries (the first waits on ARP).
    let pinged = (0..20).any(|_| {
        in_netns(&lan.router, &["ping", "-c", "1", "-W", "1", &ip])
            .status
            .success()
    });
    assert!(pinged, "the router pings the pod at {ip}");
    let dns = in_netns_of(&ns.0, &["ss", "-Hlun", "sport = :53"]);
    assert!(
        dns.contains("127.0.0.11:53"),
        "the pod's own DNS server: {dns}"
    );

    let del = Call {
        container_id: "c0ffee00000000aa",
        netns: &path,
        ..Call::new("DEL")
    };
    let (code, out) = cni(&del, &conf);
    assert_eq!(code, 0, "{out}");
    let left = in_netns_of(&ns.0, &["ip", "-o", "link", "show"]);
    assert!(!left.contains("eth0"), "{left}");
    assert!(in_netns_of(&ns.0, &["ss", "-Hlun", "sport = :53"])
        .trim()
        .is_empty());
    node01.ok(&["network", "rm", "lanpods"]);
    assert_eq!(node01.host_links(), links);
}
