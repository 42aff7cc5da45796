//! Bytes as a capture file, read to the end strict and lenient, from memory and as a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dnatsim_fuzz::capture_reader(data));
