//! Any network configuration and CNI_ARGS, and any container id: a CNI error or a plan,
//! never a panic; an id always gives a valid container name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::config::{names::Name, origin::Origin};

fuzz_target!(|data: &[u8]| {
    // CNI_ARGS up to the first NUL, the configuration after it.
    let (args, conf) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let args = String::from_utf8_lossy(args);
    let _ = netd::cni::check(&args, conf);
    let name = Origin::Cni { id: args.to_string() }.container_name();
    assert!(Name::parse("name", &name).is_ok(), "{args:?} gave {name:?}");
});
