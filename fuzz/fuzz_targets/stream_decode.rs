#![no_main]
//! The migration stream decoder on arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| xstate::fuzzing::stream_decode(data));
