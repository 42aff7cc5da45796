//! Bytes as UTF-8 rules text, parsed, validated and written back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dnatsim_fuzz::rules_parser(data));
