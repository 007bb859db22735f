//! Hex numbers as xstate's text formats write them (layout files, host
//! profiles, `cpuid -r` and InstLatx64 dumps, command-line masks): an
//! optional `0x` or `0X`, then one or more hex digits, and nothing else.
//!
//! `u64::from_str_radix` also takes a leading `+`; these parsers do not, so
//! `+7` is refused wherever a hex value is read. Whitespace around the value
//! is ignored.

/// `s` as a hex number of at most 64 bits, or `None`.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// `s` as a hex number of at most 32 bits, or `None`.
#[cfg(feature = "std")]
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    u32::try_from(parse_u64(s)?).ok()
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn hex_is_digits_with_an_optional_prefix() {
        for (text, value) in [
            ("0x2e7", Some(0x2e7)),
            ("0X2E7", Some(0x2e7)),
            ("2e7", Some(0x2e7)),
            (" 0x7 ", Some(7)),
            ("0000000000000000007", Some(7)),
            ("0xffffffffffffffff", Some(u64::MAX)),
            ("0x10000000000000000", None),
            ("+7", None),
            ("0x+7", None),
            ("-1", None),
            ("0x", None),
            ("", None),
            ("0x 7", None),
            ("7_0", None),
            ("0xzz", None),
            ("0x0x7", None),
        ] {
            assert_eq!(parse_u64(text), value, "{text:?}");
        }
        assert_eq!(parse_u32("0xffffffff"), Some(u32::MAX));
        assert_eq!(parse_u32("0x100000000"), None);
        assert_eq!(parse_u32("+1"), None);
    }
}
