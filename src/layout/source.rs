//! Naming a layout on a command line or in a config: `host`, a catalog
//! name, a layout file or a CPUID dump.

use std::path::Path;

use super::{catalog, dump, Layout};
use crate::error::LayoutError;

/// Where a layout comes from.
///
/// ```
/// use xstate::layout::LayoutSource;
///
/// let zen4 = LayoutSource::parse("amd-zen4").load().unwrap();
/// assert_eq!(zen4.name(), "amd-zen4");
/// assert!(matches!(LayoutSource::parse("host"), LayoutSource::Host));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutSource {
    /// The CPU this code runs on.
    Host,
    /// A layout of the built-in catalog.
    Catalog(String),
    /// A file: a TOML layout file or a CPUID dump, told apart by content.
    File(std::path::PathBuf),
}

impl LayoutSource {
    /// Interprets `spec`: `host`, a catalog name, or else a path.
    pub fn parse(spec: &str) -> LayoutSource {
        if spec == "host" {
            LayoutSource::Host
        } else if catalog::get(spec).is_some() {
            LayoutSource::Catalog(spec.to_string())
        } else {
            LayoutSource::File(spec.into())
        }
    }

    /// Loads and validates the layout.
    pub fn load(&self) -> Result<Layout, LayoutError> {
        match self {
            #[cfg(target_arch = "x86_64")]
            LayoutSource::Host => Layout::host(),
            #[cfg(not(target_arch = "x86_64"))]
            LayoutSource::Host => Err(LayoutError::NotX86),
            LayoutSource::Catalog(name) => catalog::get(name)
                .cloned()
                .ok_or_else(|| LayoutError::UnknownName(name.clone())),
            LayoutSource::File(path) => load_file(path),
        }
    }
}

fn load_file(path: &Path) -> Result<Layout, LayoutError> {
    let text = std::fs::read_to_string(path).map_err(|e| LayoutError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if dump::detect(&text).is_some() {
        let name = path
            .file_stem()
            .map_or_else(|| "dump".into(), |s| s.to_string_lossy().into_owned());
        Layout::from_dump(&name, &text)
    } else {
        Layout::from_toml(&text)
    }
}
