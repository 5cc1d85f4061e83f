//! containerd, the runtime Kubernetes uses, on netd-cni: Debian's containerd 1.6 and
//! `ctr run --cni` (runc, a busybox rootfs made offline), as a new user would try it. Two
//! containers whose ids share their first 12 characters both run, reach each other by
//! address and by name, a task killed without DEL is released with no map entry left, and
//! nothing is left after `ctr container rm`.

use std::{cell::Cell, time::Duration};

use integration_tests::{netd_bin, privileged, unique, wait_until, Lab};
use labkit::containerd::Containerd;
use serde_json::json;

const MAPS: [&str; 3] = ["NETD_ENDPOINTS", "NETD_MEMBERS", "NETD_IFACE_CTRS"];

#[test]
fn ctr_run_cni_containers_talk_resolve_and_are_released() {
    if !privileged("ctr_run_cni_containers_talk_resolve_and_are_released") {
        return;
    }
    let lab = Lab::new();
    let base = lab.dir.path().join("ctr");
    let (conf, bin) = (base.join("net.d"), base.join("bin"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    // containerd 1.6's CNI library refuses a 1.1.0 result: 1.0.0, as the README says.
    let list = json!({"cniVersion": "1.0.0", "name": "ctrnet", "plugins": [
        {"type": "netd-cni", "socket": lab.socket(), "subnet": "10.76.0.0/24"}]});
    std::fs::write(conf.join("10-netd.conflist"), list.to_string()).unwrap();
    std::os::unix::fs::symlink(netd_bin().with_file_name("netd-cni"), bin.join("netd-cni"))
        .unwrap();
    labkit::busybox_rootfs(&base, &[]).unwrap_or_else(|e| panic!("{e}"));
    let rootfs = base.join("rootfs");
    // The embedded DNS answers on the network's gateway.
    std::fs::write(rootfs.join("etc/resolv.conf"), "nameserver 10.76.0.1\n").unwrap();
    // A static busybox's resolver wants these, as an image has them.
    std::fs::write(rootfs.join("etc/hosts"), "127.0.0.1\tlocalhost\n").unwrap();
    std::fs::write(rootfs.join("etc/nsswitch.conf"), "hosts: files dns\n").unwrap();
    // httpd serves only what others may read (the tests run with umask 077).
    let index = rootfs.join("www/index.html");
    std::fs::write(&index, "served by webserver1\n").unwrap();
    for (path, mode) in [(rootfs.join("www"), 0o755), (index, 0o644)] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let entries = || MAPS.map(|m| lab.map_entries(m));
    let (entries_before, links_before) = (entries(), lab.host_links());
    let cgroup = unique("netd-ctr");
    let ctrd = Containerd::start(&lab.netns, &base.join("containerd"), (&conf, &bin), &cgroup)
        .unwrap_or_else(|e| panic!("{e}"));
    let run = |id: &str, cmd: &[&str]| {
        ctrd.run(&rootfs, id, cmd)
            .unwrap_or_else(|e| panic!("{e}\n{}", ctrd.log()))
    };
    run(
        "webserver1",
        &["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
    );
    run("webserver2", &["/bin/sleep", "600"]);

    let names: Vec<String> = lab
        .json(&["ps", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"cni-ct-webserver1".into()), "{names:?}");
    assert!(names.contains(&"cni-ct-webserver2".into()), "{names:?}");
    let ip1 = lab.ip("cni-ct-webserver1", "ctrnet");
    let execs = Cell::new(0);
    let exec = |cmd: &[&str]| {
        execs.set(execs.get() + 1);
        let exec_id = format!("x{}", execs.get());
        let mut args = vec!["task", "exec", "--exec-id", &exec_id, "webserver2"];
        args.extend_from_slice(cmd);
        ctrd.ctr(&args)
    };
    assert!(
        exec(&["/bin/ping", "-c", "1", "-W", "2", &ip1])
            .status
            .success(),
        "ping {ip1}"
    );
    // By name, through netd's DNS (nslookup: this static busybox's wget crashes in ctr's
    // default spec), then HTTP over nc, once httpd listens.
    let get = "ip=$(nslookup cni-ct-webserver1 | awk '/^Address: /{a=$2} END{print a}'); \
               echo ip=$ip; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 80";
    let mut answer = String::new();
    let fetched = wait_until(Duration::from_secs(20), || {
        answer = String::from_utf8_lossy(&exec(&["/bin/sh", "-c", get]).stdout).into_owned();
        answer.contains(&format!("ip={ip1}")) && answer.contains("served by webserver1")
    });
    assert!(
        fetched,
        "webserver2 did not reach webserver1 by name: {answer}"
    );

    // A task killed without DEL: its namespace dies with it, and netd releases it.
    let pid = ctrd.pid("webserver1").expect("webserver1's task");
    ctrd.ok(&["task", "kill", "-s", "SIGKILL", "webserver1"])
        .unwrap();
    let released = wait_until(Duration::from_secs(20), || {
        lab.json(&["ps", "--format", "json"])
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    assert!(
        released,
        "task {pid} killed, its container still in netd:\n{}",
        lab.daemon_log()
    );
    wait_until(Duration::from_secs(10), || {
        ctrd.ctr(&["task", "rm", "webserver1"]).status.success()
    });
    ctrd.ok(&["container", "rm", "webserver1"]).unwrap();

    ctrd.ok(&["task", "kill", "-s", "SIGKILL", "webserver2"])
        .unwrap();
    wait_until(Duration::from_secs(10), || {
        ctrd.ctr(&["task", "rm", "webserver2"]).status.success()
    });
    ctrd.ok(&["container", "rm", "webserver2"]).unwrap();
    let clean = wait_until(Duration::from_secs(20), || {
        lab.json(&["ps", "--format", "json"]) == json!([]) && entries() == entries_before
    });
    assert!(
        clean,
        "left after ctr container rm: {} {:?} {:?}",
        lab.json(&["ps", "--format", "json"]),
        entries(),
        lab.host_links()
    );
    // The network CNI's first ADD made stays, as podman's does; removed, nothing is left.
    lab.ok(&["network", "rm", "ctrnet"]);
    assert_eq!(lab.host_links(), links_before);
    drop(ctrd);
}
