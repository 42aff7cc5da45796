//! Bytes as a capture through the whole replay pipeline, bandwidth package on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dnatsim_fuzz::replay(data));
