//! Any bytes as the body of any Docker plugin call: a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 13] = [
    "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork",
    "NetworkDriver.CreateEndpoint",
    "NetworkDriver.DeleteEndpoint",
    "NetworkDriver.Join",
    "NetworkDriver.Leave",
    "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity",
    "NetworkDriver.EndpointOperInfo",
    "IpamDriver.RequestPool",
    "IpamDriver.RequestAddress",
    "IpamDriver.ReleaseAddress",
    "IpamDriver.ReleasePool",
];

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(*which) % METHODS.len()];
    let _ = netd::docker::check(method, body);
});
