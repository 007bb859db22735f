//! Naming a layout on a command line or in a config: `host`, a catalog
//! name, a layout file or a CPUID dump.

use std::path::{Path, PathBuf};

use super::{catalog, dump, DumpError, FileError, Layout, LayoutError};
use crate::profile::{HostProfile, ProfileError};

/// Why a named layout could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A name that is neither a catalog layout nor an existing file.
    #[error("no catalog layout named {name:?} and no such file (the catalog has {})", catalog::names().join(", "))]
    UnknownName {
        /// The name given.
        name: String,
    },
    /// A file that could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file read as a CPUID dump that gave no layout.
    #[error("{} (a CPUID dump)", path.display())]
    Dump {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: DumpError,
    },
    /// A file read as a layout file that gave no layout.
    #[error("{} (a layout file)", path.display())]
    File {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: FileError,
    },
    /// A file read as a host profile (JSON) that gave no profile.
    #[error("{} (a host profile)", path.display())]
    Profile {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ProfileError,
    },
    /// The host's layout could not be read.
    #[error("the host's CPUID leaf 0xD")]
    Host(#[source] LayoutError),
    /// `host` was asked for on a CPU that is not x86_64.
    #[error("the host is not x86_64: it has no XSAVE layout")]
    NotX86,
}

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
    /// A file: a TOML layout file, a CPUID dump or a host profile (JSON),
    /// told apart by content.
    File(PathBuf),
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

    /// Loads and validates the layout (a host profile's host layout).
    ///
    /// # Errors
    ///
    /// A [`SourceError`] naming what was wrong: an unknown name (with the
    /// catalog's names), an unreadable file, or the file's dump, layout
    /// file or profile error.
    pub fn load(&self) -> Result<Layout, SourceError> {
        self.load_profile().map(|p| p.layout)
    }

    /// Loads the source as a host profile: a profile file gives its layout
    /// and what its KVM offers; every other source gives a layout alone
    /// (the CPU only, `kvm` `None`).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_profile(&self) -> Result<HostProfile, SourceError> {
        match self {
            #[cfg(target_arch = "x86_64")]
            LayoutSource::Host => crate::host::layout()
                .map(HostProfile::from)
                .map_err(SourceError::Host),
            #[cfg(not(target_arch = "x86_64"))]
            LayoutSource::Host => Err(SourceError::NotX86),
            LayoutSource::Catalog(name) => catalog::get(name)
                .cloned()
                .map(HostProfile::from)
                .ok_or_else(|| SourceError::UnknownName { name: name.clone() }),
            LayoutSource::File(path) => load_file(path),
        }
    }
}

/// The most bytes a layout file, dump or profile may have: the largest
/// real ones are a few KiB.
const MAX_FILE: u64 = 1 << 20;

fn load_file(path: &Path) -> Result<HostProfile, SourceError> {
    let text = read_bounded(path).map_err(|source| {
        // A bare word that is no file was meant as a catalog name.
        let bare = path.components().count() == 1 && path.extension().is_none();
        if bare && source.kind() == std::io::ErrorKind::NotFound {
            SourceError::UnknownName {
                name: path.display().to_string(),
            }
        } else {
            SourceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if text.trim_start().starts_with('{') {
        HostProfile::from_json(&text).map_err(|source| SourceError::Profile {
            path: path.to_path_buf(),
            source,
        })
    } else if dump::detect(&text).is_some() {
        let name = path
            .file_stem()
            .map_or_else(|| "dump".into(), |s| s.to_string_lossy().into_owned());
        Layout::from_dump(&name, &text)
            .map(HostProfile::from)
            .map_err(|source| SourceError::Dump {
                path: path.to_path_buf(),
                source,
            })
    } else {
        Layout::from_toml(&text)
            .map(HostProfile::from)
            .map_err(|source| SourceError::File {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Reads a text file of at most [`MAX_FILE`] bytes.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes: not a layout, dump or profile"),
        ));
    }
    Ok(text)
}
