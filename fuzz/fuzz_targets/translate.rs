//! Bytes as a frame of each supported link type, translated with the seed table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dnatsim_fuzz::translate(data));
