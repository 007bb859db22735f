#![no_main]
//! The view opener (and every register read) on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| xstate::fuzzing::view_open(data));
