//! Any bytes as any API request body: a value or a named error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::api::check::{check, Body};

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    let kind = Body::ALL[usize::from(*which) % Body::ALL.len()];
    let _ = check(kind, body);
});
