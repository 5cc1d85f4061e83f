//! Tier 3: requests that would harm the host or its other containers, tried as a new user
//! would. Each is refused with the bad value named, and changes nothing.

use integration_tests::{privileged, Lab};

/// What a refused request must leave as it was.
fn footprint(lab: &Lab) -> (Vec<String>, usize, String, u64) {
    (
        lab.host_links(),
        lab.namespaces(),
        lab.host(&["ip", "route"]),
        lab.published_entries(),
    )
}

fn refused(lab: &Lab, args: &[&str], named: &[&str]) {
    let before = footprint(lab);
    let err = lab.fails(args);
    for n in named {
        assert!(
            err.contains(n),
            "netd {}: {err} names no {n}",
            args.join(" ")
        );
    }
    assert_eq!(
        footprint(lab),
        before,
        "netd {} left something",
        args.join(" ")
    );
    assert!(!lab.ok(&["ps"]).contains(" x "), "no container record");
}

#[test]
fn harmful_requests_are_refused_and_change_nothing() {
    if !privileged("harmful_requests_are_refused_and_change_nothing") {
        return;
    }
    let lab = Lab::new();
    lab.run_d("web", &["--mac-address", "02:00:00:00:00:33"]);
    let gateway = lab.json(&["network", "inspect", "bridge"])[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway_mac = lab.host(&["cat", "/sys/class/net/netd0/address"]);
    let gateway_mac = gateway_mac.trim();

    // The daemon's own namespace: its routes are not netd's to replace. (The host's, PID 1's,
    // is refused too, as the engine's tests show; trying it here would risk the machine's.)
    let own = format!("/proc/{}/ns/net", lab.daemon_pid());
    refused(
        &lab,
        &[
            "run",
            "-d",
            "--name",
            "x",
            "--netns-path",
            &own,
            "--",
            "sleep",
            "60",
        ],
        &[&own, "daemon's own"],
    );
    // A MAC that is the gateway's or another member's: its FDB entry would go with `rm`.
    for mac in [gateway_mac, "02:00:00:00:00:33"] {
        refused(
            &lab,
            &[
                "run",
                "-d",
                "--name",
                "x",
                "--mac-address",
                mac,
                "--",
                "sleep",
                "60",
            ],
            &[mac],
        );
    }
    for mac in ["01:00:5e:00:00:01", "00:00:00:00:00:00"] {
        refused(
            &lab,
            &[
                "run",
                "-d",
                "--name",
                "x",
                "--mac-address",
                mac,
                "--",
                "sleep",
                "60",
            ],
            &[mac],
        );
    }
    // Reserved blocks are no subnets, and ports go only on the host's addresses.
    for subnet in ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/24", "240.0.0.0/4"] {
        refused(
            &lab,
            &["network", "create", "--subnet", subnet, "odd"],
            &[subnet],
        );
    }
    refused(
        &lab,
        &[
            "run",
            "-d",
            "--name",
            "x",
            "-p",
            "198.51.100.1:8080:80",
            "--",
            "sleep",
            "60",
        ],
        &["198.51.100.1", "not an address of the host"],
    );

    // The network kept its gateway: the FDB entry of its MAC and the member's path to it.
    let fdb = lab.host(&["bridge", "fdb", "show", "br", "netd0"]);
    assert!(fdb.contains(gateway_mac), "{fdb}");
    let ping = lab.exec("web", &["ping", "-c", "1", "-W", "2", &gateway]);
    assert!(ping.status.success(), "{ping:?}");
}
