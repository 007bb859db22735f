#![no_main]
//! CPUID dumps, layout files and host profiles on arbitrary text.

libfuzzer_sys::fuzz_target!(|data: &[u8]| xstate::fuzzing::text_sources(data));
