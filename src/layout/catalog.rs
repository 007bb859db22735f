//! The built-in catalog: the layout files of `layouts/`, compiled in.
//!
//! ```
//! let names = xstate::layout::catalog::names();
//! assert!(names.contains(&"intel-sapphire-rapids"));
//! assert!(names.contains(&"intel-diamond-rapids"));
//! ```

use std::sync::OnceLock;

use super::Layout;

/// The layout files compiled into the crate, by file name.
const FILES: [(&str, &str); 6] = [
    (
        "intel-skylake-sp",
        include_str!("../../layouts/intel-skylake-sp.toml"),
    ),
    (
        "intel-sapphire-rapids",
        include_str!("../../layouts/intel-sapphire-rapids.toml"),
    ),
    (
        "intel-lunar-lake",
        include_str!("../../layouts/intel-lunar-lake.toml"),
    ),
    (
        "intel-diamond-rapids",
        include_str!("../../layouts/intel-diamond-rapids.toml"),
    ),
    ("amd-zen3", include_str!("../../layouts/amd-zen3.toml")),
    ("amd-zen4", include_str!("../../layouts/amd-zen4.toml")),
];

/// Every catalog layout, parsed and validated once.
pub fn all() -> &'static [Layout] {
    static CATALOG: OnceLock<Vec<Layout>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, text)| {
                // The files are part of the crate; a test parses each one.
                Layout::from_toml(text)
                    .unwrap_or_else(|e| panic!("catalog layout {name} is invalid: {e}"))
            })
            .collect()
    })
}

/// The catalog layout called `name`.
pub fn get(name: &str) -> Option<&'static Layout> {
    all().iter().find(|l| l.name() == name)
}

/// The catalog's names, in catalog order.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(name, _)| *name).collect()
}
