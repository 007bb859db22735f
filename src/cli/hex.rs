//! Hex formatting of register values for the CLI.

use std::fmt::Write;

/// `0x` and the value's bytes, most significant first for numbers
/// (`memory_order == false`) or in memory order for byte strings.
pub fn format(bytes: &[u8], memory_order: bool) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    let mut push = |b: &u8| {
        let _ = write!(s, "{b:02x}");
    };
    if memory_order {
        bytes.iter().for_each(&mut push);
    } else {
        bytes.iter().rev().for_each(&mut push);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_most_significant_first() {
        assert_eq!(super::format(&[0x80, 0x1f, 0, 0], false), "0x00001f80");
        assert_eq!(super::format(&[1, 2], true), "0x0102");
    }
}
