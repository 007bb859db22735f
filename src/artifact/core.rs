//! ELF core files in: each thread's `NT_X86_XSTATE` and `NT_PRFPREG`, and
//! the process's `NT_X86_XSAVE_LAYOUT`, read with the `object` crate.
//!
//! A Linux x86_64 core (`ET_CORE`, `EM_X86_64`) holds its notes in
//! `PT_NOTE` segments. Each thread's notes start with `NT_PRSTATUS` (its
//! pid, a u32 at byte 32 of `struct elf_prstatus`), followed by
//! `NT_PRFPREG` (2: the 512-byte FXSAVE image) and `NT_X86_XSTATE` (0x202:
//! the standard-format area of the kernel's user components, its XCR0 at
//! byte 464). Linux 6.12 and later also write `NT_X86_XSAVE_LAYOUT`
//! (0x205, name "LINUX"): one `{u32 type, u32 size, u32 offset, u32
//! flags}` per extended user component, exactly the layout of the
//! `NT_X86_XSTATE` notes (`arch/x86/include/uapi/asm/elf.h`,
//! `struct x86_xfeat_component`; flags are 0: the note says nothing of
//! compacted alignment). gdb 13's `gcore` does not write it (measured
//! here); the kernel does.
//!
//! Only the notes are read: [`Core::open`] reads a file through
//! `object`'s `ReadCache`, so a large core costs its program headers and
//! notes in memory, at most [`MAX_NOTES`] bytes of them.
//!
//! ```no_run
//! use xstate::artifact::core::Core;
//!
//! let core = Core::open("core".as_ref())?;
//! let thread = &core.threads()[0];
//! let layout = core.layout("core")?; // from NT_X86_XSAVE_LAYOUT, or None
//! # let _ = (thread, layout);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use object::elf::{self, FileHeader64};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{LittleEndian, ReadCache, ReadRef};

use crate::component::{ComponentId, Xfeatures};
use crate::layout::{catalog, ComponentGeometry, Layout, LayoutError, LayoutParts};

/// `NT_PRSTATUS`: a thread's general registers; starts its notes.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_PRFPREG`: the 512-byte FXSAVE image.
pub const NT_PRFPREG: u32 = 2;
/// `NT_X86_XSTATE`: the standard-format XSAVE area, XCR0 at 464.
pub const NT_X86_XSTATE: u32 = 0x202;
/// `NT_X86_XSAVE_LAYOUT`: the layout of the `NT_X86_XSTATE` notes.
pub const NT_X86_XSAVE_LAYOUT: u32 = 0x205;
/// The size in bytes of one `NT_X86_XSAVE_LAYOUT` record.
pub const LAYOUT_RECORD_SIZE: usize = 16;
/// The most bytes of `PT_NOTE` segments read from a core: 16 MiB (a
/// thread's notes take about 14 KiB with AMX; a thousand threads fit).
pub const MAX_NOTES: u64 = 16 << 20;

/// The most threads (`NT_PRSTATUS` notes) read from a core.
pub const MAX_THREADS: usize = 1 << 16;

/// Why a core file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The file could not be opened.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file (a FIFO, a device, a directory): not opened.
    #[error("{} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// Not a 64-bit little-endian ELF file, or a malformed one.
    #[error("not a readable 64-bit ELF file")]
    Elf(#[source] object::read::Error),
    /// An ELF file that is not a core file.
    #[error("ELF type {0} is not a core file (ET_CORE, 4)")]
    NotCore(u16),
    /// A core file of another machine.
    #[error("ELF machine {0} is not x86_64 (EM_X86_64, 62)")]
    NotX86_64(u16),
    /// Notes larger than [`MAX_NOTES`].
    #[error("PT_NOTE segments of {size} bytes exceed {max} bytes")]
    NotesTooLarge {
        /// Their size in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// More than [`MAX_THREADS`] threads.
    #[error("more than {max} threads (NT_PRSTATUS notes)")]
    TooManyThreads {
        /// The limit.
        max: usize,
    },
    /// A note of a size its kind never has: an `NT_PRFPREG` other than 512
    /// bytes (FXSAVE), an `NT_X86_XSTATE` under 576 bytes or over
    /// [`crate::layout::MAX_AREA_SIZE`].
    #[error("{note} note of {size} bytes: {expected}")]
    NoteSize {
        /// The note type's name.
        note: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The sizes it may have.
        expected: &'static str,
    },
    /// Two `NT_X86_XSAVE_LAYOUT` notes: which one describes the areas is
    /// not said.
    #[error("two NT_X86_XSAVE_LAYOUT notes: a core has one")]
    LayoutNoteTwice,
    /// No thread with an `NT_X86_XSTATE` or `NT_PRFPREG` note.
    #[error("no thread has an NT_X86_XSTATE or NT_PRFPREG note")]
    NoXstate,
    /// An `NT_X86_XSAVE_LAYOUT` note whose size is not a whole number of
    /// records.
    #[error("NT_X86_XSAVE_LAYOUT note of {0} bytes is not a whole number of 16-byte records")]
    LayoutNoteSize(usize),
    /// An `NT_X86_XSAVE_LAYOUT` record of a component number over 63.
    #[error("NT_X86_XSAVE_LAYOUT record {index} names component {component}, above 63")]
    LayoutNoteComponent {
        /// The record's index.
        index: usize,
        /// Its type field.
        component: u32,
    },
    /// An `NT_X86_XSAVE_LAYOUT` note that gives no valid layout.
    #[error("NT_X86_XSAVE_LAYOUT note")]
    LayoutNote(#[source] LayoutError),
}

/// One thread of a core file: its XSAVE notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreThread {
    /// Its pid (`NT_PRSTATUS`'s `pr_pid`), when it has an `NT_PRSTATUS`.
    pub pid: Option<u32>,
    /// Its `NT_X86_XSTATE` descriptor: a standard-format area.
    pub xstate: Option<Vec<u8>>,
    /// Its `NT_PRFPREG` descriptor: an FXSAVE image (512 bytes).
    pub fpregs: Option<Vec<u8>>,
}

/// One `NT_X86_XSAVE_LAYOUT` record (`struct x86_xfeat_component`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutRecord {
    /// The component (`type`).
    pub component: ComponentId,
    /// Its size in bytes.
    pub size: u32,
    /// Its offset in bytes in the standard format.
    pub offset: u32,
    /// Flags (0 in Linux 6.12..6.18).
    pub flags: u32,
}

/// The XSAVE notes of a core file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    threads: Vec<CoreThread>,
    layout_note: Option<Vec<LayoutRecord>>,
}

/// Whether `bytes` start as an ELF file does (`\x7fELF`).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Whether the file at `path` is a regular file that starts as an ELF
/// file does. `false` when it cannot be read, and for anything but a
/// regular file (a FIFO or a device is never opened here).
pub fn is_elf_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && is_elf(&magic)
}

impl Core {
    /// Reads the notes of the core file at `path`, reading only its
    /// headers and notes.
    ///
    /// # Errors
    ///
    /// [`CoreError::Io`] when it cannot be opened,
    /// [`CoreError::NotRegular`] for anything but a regular file (it is not
    /// opened); else as [`parse`](Self::parse).
    pub fn open(path: &Path) -> Result<Core, CoreError> {
        // As every input (crate::input): a FIFO's open would block, a
        // device never ends; only regular files are opened.
        let meta = std::fs::metadata(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(CoreError::NotRegular(path.to_path_buf()));
        }
        let file = std::fs::File::open(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cache = ReadCache::new(file);
        Core::read(&cache)
    }

    /// Reads the notes of a core file held in memory.
    ///
    /// # Errors
    ///
    /// [`CoreError::Elf`] for a file `object` cannot read as 64-bit
    /// little-endian ELF; [`CoreError::NotCore`], [`CoreError::NotX86_64`];
    /// [`CoreError::NotesTooLarge`]; [`CoreError::NoXstate`] when no thread
    /// has XSAVE state; the layout note's errors
    /// ([`CoreError::LayoutNoteSize`], [`CoreError::LayoutNoteComponent`]).
    pub fn parse(bytes: &[u8]) -> Result<Core, CoreError> {
        Core::read(bytes)
    }

    fn read<'data, R: ReadRef<'data>>(data: R) -> Result<Core, CoreError> {
        let file = ElfFile64::<LittleEndian, R>::parse(data).map_err(CoreError::Elf)?;
        let endian = file.endian();
        let header: &FileHeader64<LittleEndian> = file.elf_header();
        let e_type = header.e_type(endian);
        if e_type != elf::ET_CORE {
            return Err(CoreError::NotCore(e_type.0));
        }
        let machine = header.e_machine(endian);
        if machine != elf::EM_X86_64 {
            return Err(CoreError::NotX86_64(machine.0));
        }
        let segments = file.elf_program_headers();
        let size: u64 = segments
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_NOTE)
            .map(|p| p.p_filesz(endian))
            .fold(0u64, u64::saturating_add);
        if size > MAX_NOTES {
            return Err(CoreError::NotesTooLarge {
                size,
                max: MAX_NOTES,
            });
        }
        let mut threads: Vec<CoreThread> = Vec::new();
        let mut layout_note = None;
        for segment in segments {
            let Some(mut notes) = segment.notes(endian, data).map_err(CoreError::Elf)? else {
                continue;
            };
            while let Some(note) = notes.next().map_err(CoreError::Elf)? {
                let desc = note.desc();
                match note.n_type(endian).0 {
                    NT_PRSTATUS if note.name() == b"CORE" => {
                        if threads.len() >= MAX_THREADS {
                            return Err(CoreError::TooManyThreads { max: MAX_THREADS });
                        }
                        threads.push(CoreThread {
                            pid: desc
                                .get(32..36)
                                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
                            ..CoreThread::default()
                        });
                    }
                    NT_PRFPREG if note.name() == b"CORE" => {
                        if desc.len() != 512 {
                            return Err(CoreError::NoteSize {
                                note: "NT_PRFPREG",
                                size: desc.len(),
                                expected: "an FXSAVE image is 512 bytes",
                            });
                        }
                        current(&mut threads).fpregs = Some(desc.to_vec());
                    }
                    NT_X86_XSTATE if note.name() == b"LINUX" => {
                        if desc.len() < 576 || desc.len() > crate::layout::MAX_AREA_SIZE as usize {
                            return Err(CoreError::NoteSize {
                                note: "NT_X86_XSTATE",
                                size: desc.len(),
                                expected: "an XSAVE area is 576 bytes to 1 MiB",
                            });
                        }
                        current(&mut threads).xstate = Some(desc.to_vec());
                    }
                    NT_X86_XSAVE_LAYOUT if note.name() == b"LINUX" => {
                        if layout_note.is_some() {
                            return Err(CoreError::LayoutNoteTwice);
                        }
                        layout_note = Some(parse_layout_note(desc)?);
                    }
                    _ => {}
                }
            }
        }
        threads.retain(|t| t.xstate.is_some() || t.fpregs.is_some());
        if threads.is_empty() {
            return Err(CoreError::NoXstate);
        }
        Ok(Core {
            threads,
            layout_note,
        })
    }

    /// The threads with XSAVE state, in the core's order.
    pub fn threads(&self) -> &[CoreThread] {
        &self.threads
    }

    /// The `NT_X86_XSAVE_LAYOUT` records, when the core has the note.
    pub fn layout_note(&self) -> Option<&[LayoutRecord]> {
        self.layout_note.as_deref()
    }

    /// The layout the `NT_X86_XSAVE_LAYOUT` note gives, named `name`, or
    /// `None` without the note: XCR0 x87, SSE and the recorded components,
    /// their sizes and standard offsets from the note; compacted alignment
    /// and XFD as the catalog's CPUs give them for the component (the note
    /// does not say); the MXCSR mask from the first `NT_X86_XSTATE` (bytes
    /// 28..32), or 0xFFFF.
    ///
    /// # Errors
    ///
    /// [`CoreError::LayoutNote`] when the records give no valid layout.
    pub fn layout(&self, name: &str) -> Result<Option<Layout>, CoreError> {
        let Some(records) = &self.layout_note else {
            return Ok(None);
        };
        let mxcsr_mask = self
            .threads
            .iter()
            .find_map(|t| t.xstate.as_ref())
            .and_then(|a| a.get(28..32))
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .filter(|&m| m & 0xFFBF == 0xFFBF)
            .unwrap_or(0xFFFF);
        layout_from_records(name, records, mxcsr_mask).map(Some)
    }

    /// The layout of `thread`'s `NT_X86_XSTATE`: the note's
    /// ([`layout`](Self::layout)) when the core has one, else, as gdb
    /// identifies it, the first of `candidates` that can have written its
    /// XCR0 (byte 464) and size ([`swbytes::choose`](super::swbytes::choose)).
    /// `Ok(None)` when neither says.
    ///
    /// # Errors
    ///
    /// The note's errors ([`CoreError::LayoutNote`]).
    pub fn layout_of<'a>(
        &self,
        name: &str,
        thread: usize,
        candidates: impl IntoIterator<Item = &'a Layout>,
    ) -> Result<Option<Layout>, CoreError> {
        if let Some(layout) = self.layout(name)? {
            return Ok(Some(layout));
        }
        let Some(area) = self.threads.get(thread).and_then(|t| t.xstate.as_ref()) else {
            return Ok(None);
        };
        Ok(super::swbytes::choose(area, candidates)
            .ok()
            .flatten()
            .cloned())
    }
}

/// The thread notes go to: the last `NT_PRSTATUS`'s, or a first thread
/// without one.
fn current(threads: &mut Vec<CoreThread>) -> &mut CoreThread {
    if threads.is_empty() {
        threads.push(CoreThread::default());
    }
    threads.last_mut().expect("one thread at least")
}

fn parse_layout_note(desc: &[u8]) -> Result<Vec<LayoutRecord>, CoreError> {
    if desc.len() % LAYOUT_RECORD_SIZE != 0 {
        return Err(CoreError::LayoutNoteSize(desc.len()));
    }
    desc.chunks_exact(LAYOUT_RECORD_SIZE)
        .enumerate()
        .map(|(index, r)| {
            let word = |i: usize| u32::from_le_bytes(r[i * 4..i * 4 + 4].try_into().expect("4"));
            let component = u8::try_from(word(0))
                .ok()
                .and_then(ComponentId::new)
                .ok_or(CoreError::LayoutNoteComponent {
                    index,
                    component: word(0),
                })?;
            Ok(LayoutRecord {
                component,
                size: word(1),
                offset: word(2),
                flags: word(3),
            })
        })
        .collect()
}

/// A layout from `NT_X86_XSAVE_LAYOUT` records (see [`Core::layout`]).
fn layout_from_records(
    name: &str,
    records: &[LayoutRecord],
    mxcsr_mask: u32,
) -> Result<Layout, CoreError> {
    let known = |id: ComponentId| {
        catalog::all()
            .iter()
            .filter_map(move |l| l.geometry(id))
            .filter(|g| g.size != 0)
    };
    let components: Vec<ComponentGeometry> = records
        .iter()
        .map(|r| ComponentGeometry {
            id: r.component,
            size: r.size,
            offset: r.offset,
            supervisor: false,
            align64: known(r.component).any(|g| g.align64),
            xfd: known(r.component).any(|g| g.xfd),
        })
        .collect();
    let xcr0 = records
        .iter()
        .fold(Xfeatures::LEGACY, |x, r| x.with(r.component));
    let standard_size = components
        .iter()
        .map(|g| g.offset.saturating_add(g.size))
        .max()
        .unwrap_or(576)
        .max(576);
    Layout::from_parts(LayoutParts {
        name,
        vendor: "unknown",
        source: "core file NT_X86_XSAVE_LAYOUT",
        xcr0_supported: xcr0,
        xss_supported: Xfeatures::EMPTY,
        standard_size: Some(standard_size),
        mxcsr_mask: Some(mxcsr_mask),
        xsave_features: None,
        components: &components,
    })
    .map_err(CoreError::LayoutNote)
}
