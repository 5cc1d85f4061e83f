//! Any text to the port, subnet, alias and name parsers: a value or a named error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::config::{
    alias::Lb,
    names::{parse_hostname, IfName, Name},
    network::SubnetSpec,
    port::{parse_expose, parse_publish},
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (
        parts.next().unwrap_or_default(),
        parts.next(),
        parts.next(),
    );
    let _ = parse_publish(a);
    let _ = parse_expose(a);
    let _ = SubnetSpec::parse(a, b, c);
    let _ = Lb::parse(a);
    let _ = Name::parse("name", a);
    let _ = IfName::parse(a);
    let _ = parse_hostname(a);
    if let Ok(mappings) = parse_publish(a) {
        // What parses names its ports in range.
        assert!(mappings.len() <= 65_535 * 2, "{a:?}");
    }
});
