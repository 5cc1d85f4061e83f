//! The netfilter arms of the published-port benchmark: a lab with nothing of netd in it (its
//! own host, container and external client namespaces, a plain Linux bridge) where the same
//! servers are published the way Docker does it with iptables, or with one nftables map.
//! Its addresses are the netd lab's (other namespaces), so clients use the same targets.

use std::{
    io::Write,
    path::Path,
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use super::host::{sh, BenchHost, CLIENT_IP, UPLINK_IP};

/// How a netfilter lab publishes ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Docker 20.10's rules (iptables-nft here): per port a DNAT rule in nat/DOCKER, an ACCEPT
    /// in filter/DOCKER and a hairpin MASQUERADE in nat/POSTROUTING, walked one by one.
    Iptables,
    /// The best netfilter offers: one hash lookup `meta l4proto . th dport` in a map whose
    /// values are the DNAT targets (what a verdict map would jump to, without the jump).
    Nftables,
}

pub struct NetfilterLab {
    pub rules: Rules,
    pub host: String,
    pub external: String,
    container: String,
    server: String,
    servers: Vec<Child>,
    /// Namespaces of [`NetfilterLab::add_client`].
    clients: Vec<String>,
}

impl NetfilterLab {
    /// The lab, its servers on core 0 (as in the netd lab) listening on `ports` (TCP, UDP,
    /// iperf3) at `server`/16, and the base rules with no port published yet.
    pub fn start(rules: Rules, xtask: &Path, server: &str, ports: (u16, u16, u16)) -> Result<Self> {
        let tag = match rules {
            Rules::Iptables => "ipt",
            Rules::Nftables => "nft",
        };
        let base = format!("netd-bench-{}-{tag}", std::process::id());
        let mut lab = Self {
            rules,
            host: base.clone(),
            external: format!("{base}-ext"),
            container: format!("{base}-ctr"),
            server: server.to_string(),
            servers: Vec::new(),
            clients: Vec::new(),
        };
        lab.topology()?;
        let xtask = xtask.display().to_string();
        let (tcp, udp, iperf) = (
            ports.0.to_string(),
            ports.1.to_string(),
            ports.2.to_string(),
        );
        let pinned = ["ip", "netns", "exec", &lab.container, "taskset", "-c", "0"];
        for cmd in [
            vec![xtask.as_str(), "bench-peer", "serve", &tcp, &udp, "3600"],
            vec!["iperf3", "-s", "-p", &iperf],
        ] {
            let child = Command::new(pinned[0])
                .args(&pinned[1..])
                .args(&cmd)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting a netfilter lab server")?;
            lab.servers.push(child);
        }
        lab.base_rules()?;
        Ok(lab)
    }

    fn topology(&self) -> Result<()> {
        let (h, e, c) = (&self.host, &self.external, &self.container);
        for ns in [h, e, c] {
            sh("ip", &["netns", "add", ns])?;
            sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        let veth = |ns: &str, name: &str, peer: &str, peer_ns: &str| {
            sh(
                "ip",
                &[
                    "-n", ns, "link", "add", name, "type", "veth", "peer", "name", peer, "netns",
                    peer_ns,
                ],
            )
        };
        veth(h, "up0", "eth0", e)?;
        veth(h, "veth0", "eth0", c)?;
        sh("ip", &["-n", h, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", h, "link", "set", "veth0", "master", "br0"])?;
        let cidr = |ip: &str, len: u8| format!("{ip}/{len}");
        let gateway = gateway_of(&self.server);
        for (ns, dev, addr) in [
            (h.as_str(), "up0", cidr(UPLINK_IP, 24)),
            (h, "br0", cidr(&gateway, 16)),
            (e, "eth0", cidr(CLIENT_IP, 24)),
            (c, "eth0", cidr(&self.server, 16)),
        ] {
            sh("ip", &["-n", ns, "addr", "add", &addr, "dev", dev])?;
            sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
        }
        sh("ip", &["-n", h, "link", "set", "veth0", "up"])?;
        sh(
            "ip",
            &["-n", e, "route", "add", "default", "via", UPLINK_IP],
        )?;
        sh("ip", &["-n", c, "route", "add", "default", "via", &gateway])?;
        sh(
            "ip",
            &["-n", h, "route", "add", "default", "via", CLIENT_IP],
        )?;
        BenchHost::run_in(h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]).map(drop)
    }

    fn base_rules(&self) -> Result<()> {
        match self.rules {
            Rules::Iptables => self.iptables_restore(&format!(
                "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 :POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
                 -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
                 -A POSTROUTING -s {net} ! -o br0 -j MASQUERADE\n\
                 COMMIT\n\
                 *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 :DOCKER - [0:0]\n\
                 -A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -o br0 -j DOCKER\n\
                 -A FORWARD -i br0 -j ACCEPT\n\
                 -A FORWARD -o br0 -j DROP\n\
                 COMMIT\n",
                net = subnet_of(&self.server)
            )),
            Rules::Nftables => self.nft(&format!(
                "table ip netdbench {{\n\
                 map ports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
                 chain prerouting {{\n\
                   type nat hook prerouting priority dstnat; policy accept;\n\
                   fib daddr type local dnat ip addr . port to meta l4proto . th dport map @ports\n\
                 }}\n\
                 chain postrouting {{\n\
                   type nat hook postrouting priority srcnat; policy accept;\n\
                   ip saddr {net} oifname != \"br0\" masquerade\n\
                 }}\n\
                 chain forward {{\n\
                   type filter hook forward priority filter; policy drop;\n\
                   ct state established,related accept\n\
                   ct status dnat accept\n\
                   iifname \"br0\" accept\n\
                 }}\n\
                 }}\n",
                net = subnet_of(&self.server)
            )),
        }
    }

    /// Publishes `host_port` -> server `port` for each `(proto, host_port, port)` in one
    /// transaction (iptables-restore --noflush, or one nft file); returns the time it took.
    pub fn publish(&self, ports: &[(&str, u32, u32)]) -> Result<f64> {
        if ports.is_empty() {
            return Ok(0.0);
        }
        let t = Instant::now();
        match self.rules {
            Rules::Iptables => {
                let (mut nat, mut filter) = (String::new(), String::new());
                for (proto, host_port, port) in ports {
                    let [dnat, accept, hairpin] = self.docker_rules(proto, *host_port, *port);
                    nat.push_str(&format!("-A {dnat}\n-A {hairpin}\n"));
                    filter.push_str(&format!("-A {accept}\n"));
                }
                self.iptables_restore_noflush(&format!(
                    "*nat\n{nat}COMMIT\n*filter\n{filter}COMMIT\n"
                ))?;
            }
            Rules::Nftables => {
                let elements: Vec<String> = ports
                    .iter()
                    .map(|(proto, host_port, port)| {
                        format!("{proto} . {host_port} : {} . {port}", self.server)
                    })
                    .collect();
                self.nft(&format!(
                    "add element ip netdbench ports {{ {} }}\n",
                    elements.join(", ")
                ))?;
            }
        }
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }

    /// Publishes one more port the way the tool is used for one container: Docker runs
    /// iptables once per rule (3 processes), nft takes one element. Returns the time it took;
    /// [`NetfilterLab::unpublish_one`] takes it back.
    pub fn publish_one(&self, host_port: u32, port: u32) -> Result<f64> {
        let t = Instant::now();
        self.change_one("-A", "add", host_port, port)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }

    pub fn unpublish_one(&self, host_port: u32, port: u32) -> Result<()> {
        self.change_one("-D", "delete", host_port, port)
    }

    /// Appends (`-A`, `add`) or deletes (`-D`, `delete`) one TCP port's rules or element.
    fn change_one(&self, iptables_op: &str, nft_op: &str, host_port: u32, port: u32) -> Result<()> {
        match self.rules {
            Rules::Iptables => {
                let [dnat, accept, hairpin] = self.docker_rules("tcp", host_port, port);
                for (table, rule) in [("nat", dnat), ("filter", accept), ("nat", hairpin)] {
                    let mut args = vec!["iptables", "-t", table, iptables_op];
                    args.extend(rule.split(' '));
                    self.exec(&args, "")?;
                }
            }
            Rules::Nftables => {
                let element = match nft_op {
                    "add" => format!("{{ tcp . {host_port} : {} . {port} }}", self.server),
                    _ => format!("{{ tcp . {host_port} }}"),
                };
                let args = [
                    "nft",
                    nft_op,
                    "element",
                    "ip",
                    "netdbench",
                    "ports",
                    &element,
                ];
                self.exec(&args, "")?;
            }
        }
        Ok(())
    }

    /// One more container namespace on the bridge at `ip` (in the server's /16): returns its
    /// name.
    pub fn add_client(&mut self, ip: &str) -> Result<String> {
        let ns = format!("{}-cli{}", self.host, self.clients.len());
        sh("ip", &["netns", "add", &ns])?;
        self.clients.push(ns.clone());
        let port = format!("veth{}", self.clients.len());
        sh(
            "ip",
            &[
                "-n", &self.host, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ],
        )?;
        sh(
            "ip",
            &["-n", &self.host, "link", "set", &port, "master", "br0"],
        )?;
        sh("ip", &["-n", &self.host, "link", "set", &port, "up"])?;
        sh(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ip}/16"), "dev", "eth0"],
        )?;
        for dev in ["lo", "eth0"] {
            sh("ip", &["-n", &ns, "link", "set", dev, "up"])?;
        }
        let gateway = gateway_of(&self.server);
        sh(
            "ip",
            &["-n", &ns, "route", "add", "default", "via", &gateway],
        )?;
        Ok(ns)
    }

    /// A virtual IP for the server's TCP `port`, as kube-proxy makes one: DNAT at prerouting,
    /// and masquerade for clients on the server's own bridge so that replies come back.
    pub fn add_vip(&self, vip: &str, port: u16) -> Result<()> {
        let (server, net) = (&self.server, subnet_of(&self.server));
        self.iptables_restore_noflush(&format!(
            "*nat\n\
             -A PREROUTING -d {vip}/32 -p tcp -m tcp --dport {port} -j DNAT --to-destination {server}:{port}\n\
             -A POSTROUTING -s {net} -d {server}/32 -m conntrack --ctstate DNAT -j MASQUERADE\n\
             COMMIT\n"
        ))
    }

    /// Takes every published port back to the base rules.
    pub fn clear(&self) -> Result<()> {
        match self.rules {
            Rules::Iptables => {
                for table in ["nat", "filter"] {
                    self.exec(&["iptables", "-t", table, "-F"], "")?;
                    self.exec(&["iptables", "-t", table, "-X"], "")?;
                }
            }
            Rules::Nftables => self.exec(&["nft", "delete", "table", "ip", "netdbench"], "")?,
        }
        self.base_rules()
    }

    /// Docker's three rules for one port, without the -A/-D: DNAT (nat), ACCEPT (filter),
    /// hairpin MASQUERADE (nat).
    fn docker_rules(&self, proto: &str, host_port: u32, port: u32) -> [String; 3] {
        let server = &self.server;
        [
            format!("DOCKER -p {proto} -m {proto} --dport {host_port} -j DNAT --to-destination {server}:{port}"),
            format!("DOCKER -d {server}/32 ! -i br0 -o br0 -p {proto} -m {proto} --dport {port} -j ACCEPT"),
            format!("POSTROUTING -s {server}/32 -d {server}/32 -p {proto} -m {proto} --dport {port} -j MASQUERADE"),
        ]
    }

    fn iptables_restore(&self, rules: &str) -> Result<()> {
        self.exec(&["iptables-restore"], rules)
    }

    fn iptables_restore_noflush(&self, rules: &str) -> Result<()> {
        self.exec(&["iptables-restore", "--noflush"], rules)
    }

    fn nft(&self, script: &str) -> Result<()> {
        self.exec(&["nft", "-f", "-"], script)
    }

    /// Runs `cmd` in the lab's host namespace with `input` on its stdin. Through nsenter,
    /// which only joins the namespace (as dockerd's own iptables calls run in it), not
    /// `ip netns exec`, which also remounts /sys: that would be timed too.
    fn exec(&self, cmd: &[&str], input: &str) -> Result<()> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.host))
            .args(cmd)
            .stdin(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())?;
        if !child.wait()?.success() {
            bail!("{} in {} failed", cmd.join(" "), self.host);
        }
        Ok(())
    }
}

impl Drop for NetfilterLab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.host, &self.external, &self.container]
            .into_iter()
            .chain(&self.clients)
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The .1 of the /16 that `server` is in (the netd lab's network is a /16 too).
fn gateway_of(server: &str) -> String {
    let octets: Vec<&str> = server.split('.').collect();
    format!("{}.{}.0.1", octets[0], octets[1])
}

fn subnet_of(server: &str) -> String {
    let octets: Vec<&str> = server.split('.').collect();
    format!("{}.{}.0.0/16", octets[0], octets[1])
}
