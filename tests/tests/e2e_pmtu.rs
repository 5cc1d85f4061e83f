//! Tier 3: path-MTU discovery through netd's translations. Between the host and a far client
//! there is a router (the lab's external namespace) whose link to the client has a 1,280-byte
//! MTU. The client advertises a 1,460-byte MSS, as a client behind more hops would, so
//! full-sized segments leave the host and the router answers "fragmentation needed". Unless
//! netd translates that error back, the container never hears of it and the transfer stalls
//! (a PMTU black hole).

use integration_tests::{
    child::{output_of, spawn_exec, spawn_in_namespace, wait_ready},
    peer_script, privileged, wait_until, Lab, UPLINK_IP,
};

const FAR_IP: &str = "10.98.0.2";
const BYTES: usize = 2 * 1024 * 1024;

/// The lab, and the far client's namespace behind the external one, which routes.
fn lab_with_far_client() -> (Lab, String) {
    let mut lab = Lab::with_external();
    let far = lab.add_namespace("nf");
    let router = lab.external.clone().expect("an external namespace");
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&[
        "-n", &router, "link", "add", "lan0", "mtu", "1280", "type", "veth", "peer", "name",
        "eth0", "netns", &far,
    ]);
    ip(&["-n", &router, "addr", "add", "10.98.0.1/24", "dev", "lan0"]);
    ip(&["-n", &router, "link", "set", "lan0", "up"]);
    ip(&["-n", &far, "link", "set", "eth0", "mtu", "1280"]);
    ip(&["-n", &far, "addr", "add", "10.98.0.2/24", "dev", "eth0"]);
    ip(&["-n", &far, "link", "set", "eth0", "up"]);
    ip(&["-n", &far, "link", "set", "lo", "up"]);
    ip(&[
        "-n",
        &far,
        "route",
        "add",
        "default",
        "via",
        "10.98.0.1",
        "advmss",
        "1460",
    ]);
    let forward = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
        .status()
        .unwrap();
    assert!(forward.success());
    (lab, far)
}

/// The tuple embedded in the "fragmentation needed" that `container` receives while `run`
/// makes it send full-sized segments.
fn frag_needed_seen_by(lab: &Lab, container: &str, run: impl FnOnce()) -> String {
    let script = peer_script();
    let mut watch = spawn_exec(lab, container, &["python3", &script, "frag-needed", "60"]);
    wait_ready(&mut watch);
    run();
    output_of(watch).trim().to_string()
}

#[test]
fn a_download_through_a_published_port_learns_the_path_mtu() {
    if !privileged("a_download_through_a_published_port_learns_the_path_mtu") {
        return;
    }
    let (lab, far) = lab_with_far_client();
    let script = peer_script();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "--",
        "python3",
        &script,
        "bulk-server",
        "80",
        &BYTES.to_string(),
    ]);
    lab.wait_listening("web", "tcp", 80);
    let web = lab.ip("web", "bridge");
    let seen = frag_needed_seen_by(&lab, "web", || {
        let client = spawn_in_namespace(
            &far,
            &[
                "timeout",
                "60",
                "python3",
                &script,
                "bulk-client",
                UPLINK_IP,
                "8080",
            ],
        );
        let got = output_of(client);
        assert_eq!(
            got.trim(),
            BYTES.to_string(),
            "every byte arrives: the container learnt the path's MTU"
        );
    });
    // The error names the container's own segment, as it sent it, to the far client.
    assert!(seen.starts_with("mtu=1280 embedded="), "{seen}");
    let embedded = seen.trim_start_matches("mtu=1280 embedded=");
    let (src, dst) = embedded.split_once('>').expect("src>dst");
    assert_eq!(src, format!("{web}:80"));
    assert!(dst.starts_with(&format!("{FAR_IP}:")), "{dst}");
}

#[test]
fn an_upload_from_a_masqueraded_container_learns_the_path_mtu() {
    if !privileged("an_upload_from_a_masqueraded_container_learns_the_path_mtu") {
        return;
    }
    let (lab, far) = lab_with_far_client();
    let script = peer_script();
    lab.run_d("up", &[]);
    let up = lab.ip("up", "bridge");
    let sink = spawn_in_namespace(
        &far,
        &["timeout", "60", "python3", &script, "sink-server", "9000"],
    );
    let listening = wait_until(std::time::Duration::from_secs(20), || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &far, "ss", "-Htln", "sport = :9000"])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    });
    assert!(listening, "the far client's sink listens");
    let seen = frag_needed_seen_by(&lab, "up", || {
        let out = lab.exec(
            "up",
            &[
                "timeout",
                "60",
                "python3",
                &script,
                "bulk-push",
                FAR_IP,
                "9000",
                &BYTES.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert_eq!(
        output_of(sink).trim(),
        BYTES.to_string(),
        "every byte arrives"
    );
    let embedded = seen.trim_start_matches("mtu=1280 embedded=");
    let (src, dst) = embedded.split_once('>').expect(&seen);
    assert!(
        src.starts_with(&format!("{up}:")),
        "the container's own address: {seen}"
    );
    assert_eq!(dst, format!("{FAR_IP}:9000"));
}
