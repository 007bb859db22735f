//! Naming a layout on a command line or in a config: `host`, a catalog
//! name, or a file (a SRC): a host profile, a CPUID or a layout file, told
//! apart by content.
//!
//! - A JSON object with `host_layout` is a host profile (`xstate kvm info
//!   --json`); its layout's source says it came from that profile.
//! - A JSON array, or a JSON object with `entries`, is a CPUID as KVM
//!   `kvm_cpuid2` entries; text with a `cpuid -r` or InstLatx64 CPUID line
//!   is a CPUID dump. Both are read by [`crate::cpuid::CpuidSet`]
//!   ([`Layout::from_dump`]).
//! - An ELF core file gives the layout of its `NT_X86_XSTATE` notes: its
//!   `NT_X86_XSAVE_LAYOUT` note's (Linux 6.12+), else the host's or the
//!   catalog's layout that can have written their XCR0 (byte 464) and size,
//!   as gdb identifies it ([`crate::artifact::core`]).
//! - Anything else is read as a TOML layout file.
//!
//! Errors say what the file was taken for. A file larger than
//! [`MAX_SOURCE_FILE`], not a regular file, or not UTF-8 text is refused as
//! input ([`SourceError::TooLarge`], [`SourceError::NotRegular`],
//! [`SourceError::NotText`]); one that cannot
//! be read at all is an I/O error ([`SourceError::Io`]).

use std::path::{Path, PathBuf};

use super::{catalog, dump, DumpError, FileError, Layout, LayoutError};
use crate::cpuid::CpuidSet;
use crate::input::InputError;
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
    /// A file that could not be read (missing, unreadable, a directory).
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file (a device, a FIFO, a directory): refused unread.
    #[error("{} is a {kind}, not a regular file: not a layout file, CPUID or host profile", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is ([`crate::input::InputError::NotRegular`]).
        kind: &'static str,
    },
    /// A file larger than [`MAX_SOURCE_FILE`]: no layout file, CPUID or
    /// profile is that large.
    #[error("{} is larger than {max} bytes: not a layout file, CPUID or host profile", path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit in bytes.
        max: u64,
    },
    /// A file that is not UTF-8 text.
    #[error("{} is not UTF-8 text (byte {at} is not): not a layout file, CPUID or host profile", path.display())]
    NotText {
        /// The path.
        path: PathBuf,
        /// The offset in bytes of the first byte that is not UTF-8.
        at: usize,
    },
    /// A file read as a CPUID (`cpuid -r`, InstLatx64 or `kvm_cpuid2`
    /// JSON) that gave no layout.
    #[error("{} (read as a CPUID: cpuid -r, InstLatx64 or kvm_cpuid2 JSON)", path.display())]
    Dump {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: DumpError,
    },
    /// A file read as a TOML layout file that gave no layout.
    #[error("{} (read as a TOML layout file)", path.display())]
    File {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: FileError,
    },
    /// A file read as a host profile (JSON) that gave no profile.
    #[error("{} (read as a host profile)", path.display())]
    Profile {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ProfileError,
    },
    /// A file read as an ELF core file that gave no layout.
    #[error("{} (read as a core file)", path.display())]
    Core {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::artifact::core::CoreError,
    },
    /// A core file without `NT_X86_XSAVE_LAYOUT` whose first thread's
    /// XCR0 and size no known layout (the host's, the catalog's) produces.
    #[error("{} (read as a core file): no NT_X86_XSAVE_LAYOUT note, and no known layout produces its NT_X86_XSTATE (XCR0 {xcr0}, {size} bytes)", path.display())]
    CoreLayoutUnknown {
        /// The path.
        path: PathBuf,
        /// The XCR0 at byte 464 (0 when it has none).
        xcr0: crate::Xfeatures,
        /// The note's size in bytes.
        size: usize,
    },
    /// The host's layout could not be read.
    #[error("the host's CPUID leaf 0xD")]
    Host(#[source] LayoutError),
    /// `host` was asked for on a CPU that is not x86_64.
    #[error("the host is not x86_64: it has no XSAVE layout")]
    NotX86,
}

/// Where a layout comes from: `host`, a catalog name, or a file.
///
/// A file is told apart by content. A JSON object with `host_layout` is a
/// host profile (`xstate kvm info --json`; its layout's source then says
/// it came from that profile). A JSON array, or a JSON object with
/// `entries`, is a CPUID as KVM `kvm_cpuid2` entries, and text with a
/// `cpuid -r` or InstLatx64 CPUID line a CPUID dump: both are read by
/// [`crate::cpuid::CpuidSet`] ([`Layout::from_dump`]). Anything else is read
/// as a TOML layout file. Errors say what the file was taken for.
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
    /// A file: a host profile (JSON), a CPUID (`cpuid -r`, InstLatx64 or
    /// `kvm_cpuid2` JSON) or a TOML layout file, told apart by content (see
    /// [`LayoutSource`]).
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
    /// catalog's names), an unreadable file, one too large or not text, or
    /// the error of what the file was read as: a CPUID, a layout file or a
    /// profile.
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
        self.load_with_cpuid().map(|(profile, _)| profile)
    }

    /// As [`load_profile`](Self::load_profile), and the whole CPUID when
    /// the source is a CPUID dump (its feature flags, for a pool baseline).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_with_cpuid(&self) -> Result<(HostProfile, Option<CpuidSet>), SourceError> {
        let layout_only = |p: HostProfile| (p, None);
        match self {
            #[cfg(target_arch = "x86_64")]
            LayoutSource::Host => crate::host::layout()
                .map(|l| layout_only(HostProfile::from(l)))
                .map_err(SourceError::Host),
            #[cfg(not(target_arch = "x86_64"))]
            LayoutSource::Host => Err(SourceError::NotX86),
            LayoutSource::Catalog(name) => catalog::get(name)
                .cloned()
                .map(|l| layout_only(HostProfile::from(l)))
                .ok_or_else(|| SourceError::UnknownName { name: name.clone() }),
            LayoutSource::File(path) => load_file(path),
        }
    }
}

/// The most bytes a file read as a layout file, CPUID or host profile may
/// have: 4 MiB. The largest real ones are a few KiB; a `CpuidSet` of its
/// most entries (4096) as `kvm_cpuid2` JSON is about 650 KiB.
pub const MAX_SOURCE_FILE: u64 = 4 << 20;

/// What a file's content says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Profile,
    Cpuid,
    LayoutFile,
}

/// Tells a host profile, a CPUID and a layout file apart by content.
fn kind_of(text: &str) -> Kind {
    let start = text.trim_start();
    if start.starts_with('[') {
        // TOML tables start with '[' too, but a layout file has keys
        // (name, vendor, ...) before any table.
        return Kind::Cpuid;
    }
    if start.starts_with('{') {
        return match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) if o.contains_key("host_layout") => Kind::Profile,
            Ok(serde_json::Value::Object(o)) if o.contains_key("entries") => Kind::Cpuid,
            _ => Kind::Profile,
        };
    }
    if dump::detect(text).is_some() {
        Kind::Cpuid
    } else {
        Kind::LayoutFile
    }
}

fn load_file(path: &Path) -> Result<(HostProfile, Option<CpuidSet>), SourceError> {
    if crate::artifact::core::is_elf_file(path) {
        return load_core(path).map(|layout| (HostProfile::from(layout), None));
    }
    let text = read_source_file(path).map_err(|e| match e {
        // A bare word that is no file was meant as a catalog name.
        SourceError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound
                && path.components().count() == 1
                && path.extension().is_none() =>
        {
            SourceError::UnknownName {
                name: path.display().to_string(),
            }
        }
        e => e,
    })?;
    match kind_of(&text) {
        Kind::Profile => {
            let mut profile =
                HostProfile::from_json(&text).map_err(|source| SourceError::Profile {
                    path: path.to_path_buf(),
                    source,
                })?;
            let source = format!(
                "host profile {}: {}",
                path.display(),
                profile.layout.source()
            );
            profile.layout = profile.layout.with_source(&source);
            Ok((profile, None))
        }
        Kind::Cpuid => {
            let name = path
                .file_stem()
                .map_or_else(|| "dump".into(), |s| s.to_string_lossy().into_owned());
            Layout::from_dump_with_cpuid(&name, &text)
                .map(|(layout, set)| (HostProfile::from(layout), Some(set)))
                .map_err(|source| SourceError::Dump {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Kind::LayoutFile => Layout::from_toml(&text)
            .map(|layout| (HostProfile::from(layout), None))
            .map_err(|source| SourceError::File {
                path: path.to_path_buf(),
                source,
            }),
    }
}

/// The layout of a core file's `NT_X86_XSTATE` notes
/// ([`Core::layout_of`](crate::artifact::core::Core::layout_of)): its
/// `NT_X86_XSAVE_LAYOUT` note's, else the host's or the first catalog
/// layout that can have written its first thread's XCR0 and size. Named
/// after the file's stem, as a CPUID dump's layout is.
fn load_core(path: &Path) -> Result<Layout, SourceError> {
    use crate::artifact::{core::Core, swbytes::SoftwareBytes};
    let err = |source| SourceError::Core {
        path: path.to_path_buf(),
        source,
    };
    let core = Core::open(path).map_err(err)?;
    let name = path
        .file_stem()
        .map_or_else(|| "core".into(), |s| s.to_string_lossy().into_owned());
    #[cfg(target_arch = "x86_64")]
    let host = crate::host::layout().ok();
    #[cfg(not(target_arch = "x86_64"))]
    let host: Option<Layout> = None;
    let candidates = host.iter().chain(catalog::all());
    let source = format!("core file {}", path.display());
    match core.layout_of(&name, 0, candidates).map_err(err)? {
        Some(layout) if core.layout_note().is_some() => {
            let source = format!("{source}: NT_X86_XSAVE_LAYOUT");
            Ok(layout.with_source(&source))
        }
        Some(layout) => {
            let source = format!(
                "{source}: no NT_X86_XSAVE_LAYOUT; {} by its XCR0 and size ({})",
                layout.name(),
                layout.source()
            );
            Ok(layout.renamed(&name).with_source(&source))
        }
        None => {
            let area = core.threads()[0].xstate.as_deref().unwrap_or_default();
            Err(SourceError::CoreLayoutUnknown {
                path: path.to_path_buf(),
                xcr0: SoftwareBytes::read(area)
                    .map(|s| s.xcr0())
                    .unwrap_or_default(),
                size: area.len(),
            })
        }
    }
}

/// Reads a file that should be a layout file, a CPUID or a host profile:
/// UTF-8 text of at most [`MAX_SOURCE_FILE`] bytes.
///
/// # Errors
///
/// [`SourceError::Io`] when it cannot be read (an I/O error),
/// [`SourceError::NotRegular`], [`SourceError::TooLarge`] or
/// [`SourceError::NotText`] when it cannot be one (a rejected input).
pub fn read_source_file(path: &Path) -> Result<String, SourceError> {
    let path_buf = || path.to_path_buf();
    let bytes = crate::input::read_file(path, MAX_SOURCE_FILE).map_err(|e| match e {
        InputError::Io(source) => SourceError::Io {
            path: path_buf(),
            source,
        },
        InputError::NotRegular { kind } => SourceError::NotRegular {
            path: path_buf(),
            kind,
        },
        InputError::TooLarge { .. } => SourceError::TooLarge {
            path: path_buf(),
            max: MAX_SOURCE_FILE,
        },
    })?;
    String::from_utf8(bytes).map_err(|e| SourceError::NotText {
        at: e.utf8_error().valid_up_to(),
        path: path.to_path_buf(),
    })
}
