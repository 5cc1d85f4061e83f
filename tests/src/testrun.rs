//! Program test-runs: the real datapath object, loaded with its maps under a throwaway bpffs
//! dir, run by BPF_PROG_TEST_RUN on crafted frames.

use std::{net::Ipv4Addr, path::PathBuf};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use netd::datapath::{
    isolation::{endpoint, NetworkRule},
    Datapath,
};

use netd_common::isolation::{DropKey, DropReason};

use crate::unique;

fn reason_is(k: &DropKey, reason: &str) -> bool {
    DropReason::from_u8(k.reason).is_some_and(|r| r.name() == reason)
}

/// TC_ACT_UNSPEC / TCX_NEXT: the packet goes on.
pub const CONTINUE: u32 = -1i32 as u32;
/// TC_ACT_SHOT: dropped.
pub const SHOT: u32 = 2;
/// The kernel runs test packets as if they arrived on lo, ifindex 1, unless told otherwise.
pub const LO: u32 = 1;
/// The source MAC of the frames `packet` builds, and the address they come from in most
/// tests: the container behind the test port.
pub const CONTAINER_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0, 2];
pub const CONTAINER_IP: &str = "172.17.0.2";
/// The network the test port belongs to: 172.17.0.0/16, gateway 172.17.0.1.
pub const NETWORK_ID: u32 = 17;
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0x4e, 0x44, 0x11, 0, 1];

/// The `__sk_buff` fields a test may set: where the packet entered the host, and on which
/// device the program runs.
#[derive(Clone, Copy, Default)]
pub struct Skb {
    pub ingress_ifindex: u32,
    pub ifindex: u32,
}

impl Skb {
    /// The leading part of a `struct __sk_buff` (the kernel zero-fills the rest).
    fn bytes(self) -> [u8; 44] {
        let mut b = [0u8; 44];
        b[36..40].copy_from_slice(&self.ingress_ifindex.to_ne_bytes());
        b[40..44].copy_from_slice(&self.ifindex.to_ne_bytes());
        b
    }
}

pub struct Programs {
    pub dp: Datapath,
    bpffs: PathBuf,
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bpffs);
    }
}

impl Programs {
    pub fn bpffs(&self) -> &std::path::Path {
        &self.bpffs
    }

    /// Loads the object in the calling thread's namespace.
    pub fn load(prefix: &str) -> Self {
        let bpffs = PathBuf::from("/sys/fs/bpf").join(unique(prefix));
        match Datapath::load(&bpffs) {
            Ok(dp) => Self { dp, bpffs },
            Err(e) => {
                // The maps may be pinned already: leave nothing behind.
                let _ = std::fs::remove_dir_all(&bpffs);
                panic!("loading the datapath object: {e:?}");
            }
        }
    }

    /// Loads the object from a private network namespace of the calling thread, so that the
    /// programs' FIB lookups see an empty table, never the machine's.
    pub fn in_private_netns(prefix: &str) -> Self {
        // SAFETY: unshare on this test's own thread; nothing else runs on it.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "unshare(CLONE_NEWNET)"
        );
        Self::load(prefix)
    }

    /// Describes the test port (lo) as the interface of the container at `CONTAINER_IP` on
    /// network `NETWORK_ID` (172.17.0.0/16) with `flags`.
    pub fn with_container_port(mut self, flags: u32) -> Self {
        self.set_network(NETWORK_ID, "172.17.0.0/16", flags, 0);
        self.dp
            .set_endpoint(
                LO,
                endpoint(CONTAINER_IP.parse().unwrap(), CONTAINER_MAC, NETWORK_ID),
            )
            .unwrap();
        self
    }

    /// Makes the datapath's networks exactly the given one plus those set before.
    pub fn set_network(&mut self, id: u32, subnet: &str, flags: u32, bridge_ifindex: u32) {
        let subnet: ipnetwork::Ipv4Network = subnet.parse().unwrap();
        let mut rules: Vec<NetworkRule> = self
            .dp
            .network_rules()
            .into_iter()
            .filter(|r| r.id != id)
            .collect();
        let [_, b, c, d] = Ipv4Addr::from(u32::from(subnet.network()) + 1).octets();
        rules.push(NetworkRule {
            id,
            subnet,
            gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
            gateway_mac: if id == NETWORK_ID {
                GATEWAY_MAC
            } else {
                [0x02, 0x4e, 0x44, b, c, d]
            },
            flags,
            bridge_ifindex,
        });
        self.dp.set_networks(&rules).unwrap();
    }

    pub fn run(&mut self, program: &'static str, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_with(program, frame, None)
    }

    pub fn run_with(
        &mut self,
        program: &'static str,
        frame: &[u8],
        skb: Option<Skb>,
    ) -> (u32, Vec<u8>) {
        let (verdict, out, _) = self.test_run(program, frame, skb, 1);
        (verdict, out)
    }

    /// Runs `program` on `frame` `repeat` times in the kernel: the verdict and the kernel's
    /// mean time per run (what the program costs a packet, without the traffic around it).
    pub fn time(
        &mut self,
        program: &'static str,
        frame: &[u8],
        skb: Option<Skb>,
        repeat: u32,
    ) -> (u32, std::time::Duration) {
        let (verdict, _, per_run) = self.test_run(program, frame, skb, repeat);
        (verdict, per_run)
    }

    fn test_run(
        &mut self,
        program: &'static str,
        frame: &[u8],
        skb: Option<Skb>,
        repeat: u32,
    ) -> (u32, Vec<u8>, std::time::Duration) {
        let ctx = skb.map(Skb::bytes);
        let prog = self.dp.classifier(program).expect("loaded");
        let mut out = vec![0u8; frame.len() + 64];
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: ctx.as_ref().map(|c| c.as_slice()),
                repeat,
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(r.data_size_out as usize);
        (r.return_value, out, r.duration)
    }

    /// Runs `program` on each frame twice at once, from two threads on two CPUs that meet at
    /// a barrier before each frame: what two CPUs seeing the first packets of one flow do.
    /// The two outputs of each frame.
    pub fn run_on_two_cpus(
        &mut self,
        program: &'static str,
        frames: &[Vec<u8>],
    ) -> Vec<[Vec<u8>; 2]> {
        let prog: &SchedClassifier = self.dp.classifier(program).expect("loaded");
        let barrier = std::sync::Barrier::new(2);
        let outputs: Vec<Vec<Vec<u8>>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..2)
                .map(|cpu| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        pin_to_cpu(cpu);
                        frames
                            .iter()
                            .map(|frame| {
                                barrier.wait();
                                let mut out = vec![0u8; frame.len() + 64];
                                let r = prog
                                    .test_run(TestRunOptions {
                                        data_in: Some(frame),
                                        data_out: Some(&mut out),
                                        ..Default::default()
                                    })
                                    .expect("BPF_PROG_TEST_RUN");
                                out.truncate(r.data_size_out as usize);
                                out
                            })
                            .collect()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let [a, b] = <[_; 2]>::try_from(outputs).unwrap();
        a.into_iter().zip(b).map(|(a, b)| [a, b]).collect()
    }

    /// Packets dropped for `reason` (a `DropReason` name), all networks and directions.
    pub fn drops(&self, reason: &str) -> u64 {
        self.count_drops(|k| reason_is(k, reason))
    }

    /// Packets dropped for `reason` on `network` in `direction`.
    pub fn drops_of(&self, network: u32, reason: &str, direction: u8) -> u64 {
        self.count_drops(|k| {
            k.network == network && k.direction == direction && reason_is(k, reason)
        })
    }

    fn count_drops(&self, which: impl Fn(&DropKey) -> bool) -> u64 {
        self.dp
            .drops()
            .iter()
            .filter(|(k, _)| which(k))
            .map(|(_, c)| c.packets)
            .sum()
    }
}

/// In this thread's private namespace (the `ip` processes inherit it; it goes with the
/// thread): a stand-in for the bridge (172.17.0.1/16, where the container is) and an uplink
/// (10.9.0.1/24, the host's address, and a default route via 10.9.0.2), with forwarding on,
/// so that FIB lookups of translated packets answer with an interface and the programs
/// redirect, as on a real host.
pub fn routes_for_the_fib() {
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {}", args.join(" "));
    };
    for (dev, addr) in [("nbr0", "172.17.0.1/16"), ("nup0", "10.9.0.1/24")] {
        // A veth pair, both ends up (the kernel here has no dummy driver built in).
        let peer = format!("{dev}p");
        ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        ip(&["addr", "add", addr, "dev", dev]);
        ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", dev, "up"]);
    }
    ip(&["route", "add", "default", "via", "10.9.0.2"]);
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding on");
}

/// Pins the calling thread to `cpu` (modulo the CPUs there are).
fn pin_to_cpu(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
