//! Typed errors of the layout engine and the views.

use thiserror::Error;

use crate::component::name_of;

/// Why a layout could not be built: every message names the components and
/// offsets at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// XCR0 must enumerate x87 and SSE.
    #[error("supported XCR0 {xcr0:#x} lacks x87 or SSE (bits 0 and 1)")]
    MissingLegacy {
        /// The XCR0 bits read.
        xcr0: u64,
    },
    /// A bit is enumerated both in XCR0 and IA32_XSS.
    #[error("components {mask:#x} are enumerated in both XCR0 and IA32_XSS")]
    BothXcr0AndXss {
        /// The bits in both.
        mask: u64,
    },
    /// A component number outside 2..=63 in the extended table.
    #[error("component number {index} is not an extended component (2..=63)")]
    BadIndex {
        /// The number.
        index: u8,
    },
    /// Geometry for a component that XCR0/XSS does not enumerate.
    #[error("{} (component {index}) has geometry but is not enumerated in XCR0 or IA32_XSS", name_of(*index))]
    NotEnumerated {
        /// The component.
        index: u8,
    },
    /// Two geometry entries for one component.
    #[error("{} (component {index}) is described twice", name_of(*index))]
    Duplicate {
        /// The component.
        index: u8,
    },
    /// A component of size 0.
    #[error("{} (component {index}) has size 0", name_of(*index))]
    ZeroSize {
        /// The component.
        index: u8,
    },
    /// The supervisor flag disagrees with the XCR0/XSS bit.
    #[error("{} (component {index}) is flagged {} but enumerated in {}", name_of(*index),
        if *supervisor { "supervisor" } else { "user" }, if *supervisor { "XCR0" } else { "IA32_XSS" })]
    SupervisorMismatch {
        /// The component.
        index: u8,
        /// Its supervisor flag.
        supervisor: bool,
    },
    /// An enumerated component without geometry.
    #[error("{} (component {index}) is enumerated but its size and offset are missing", name_of(*index))]
    MissingGeometry {
        /// The component.
        index: u8,
    },
    /// A component whose end does not fit in 32 bits.
    #[error("{} (component {index}) at offset {offset} with size {size} ends past 4 GiB", name_of(*index))]
    EndOverflow {
        /// The component.
        index: u8,
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
    },
    /// The compacted area for every supported component would not fit in 32 bits.
    #[error("the compacted area for every supported component would be {size} bytes, past 4 GiB")]
    CompactedTooLarge {
        /// Its size.
        size: u64,
    },
    /// A user component placed inside the legacy region or header.
    #[error("{} (component {index}) at offset {offset} lies inside the legacy region and header (0..576)", name_of(*index))]
    InLegacyRegion {
        /// The component.
        index: u8,
        /// Its standard offset.
        offset: u32,
    },
    /// A component running past the enumerated size.
    #[error("{} (component {index}) at {offset}..{} runs past the enumerated size {standard_size}", name_of(*index), offset + size)]
    PastEnd {
        /// The component.
        index: u8,
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
        /// The enumerated standard size.
        standard_size: u32,
    },
    /// Two user components overlapping in the standard format.
    #[error("{} (component {a}) at {a_offset}..{a_end} overlaps {} (component {b}) at {b_offset}..{b_end}",
        name_of(*a), name_of(*b))]
    Overlap {
        /// First component.
        a: u8,
        /// Its offset.
        a_offset: u32,
        /// Its end.
        a_end: u32,
        /// Second component.
        b: u8,
        /// Its offset.
        b_offset: u32,
        /// Its end.
        b_end: u32,
    },
    /// MPX and APX are both enumerated: they share offset 960 and are
    /// mutually exclusive.
    #[error("{} (component {mpx}) at offset {mpx_offset} and APX (component 19) at offset {apx_offset} are both enumerated; MPX and APX are mutually exclusive", name_of(*mpx))]
    MpxAndApx {
        /// The MPX component enumerated.
        mpx: u8,
        /// Its offset.
        mpx_offset: u32,
        /// APX's offset.
        apx_offset: u32,
    },
    /// A CPUID dump without leaf 0xD sub-leaf 0.
    #[error("no CPUID leaf 0xD sub-leaf 0 found")]
    NoLeaf0xD,
    /// Text that is neither a known CPUID dump format nor a layout file.
    #[error("not a CPUID dump in a known format")]
    UnknownDumpFormat,
    /// A field of a layout file with a bad value.
    #[error("layout file field {field} has a bad value {value:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// A layout file that is not valid TOML for the schema.
    #[error("not a layout file or CPUID dump: {0}")]
    Toml(String),
    /// A catalog name that does not exist.
    #[error("no catalog layout named {0:?}")]
    UnknownName(String),
    /// A file that could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The host layout was asked for on a CPU that is not x86_64.
    #[error("the host is not x86_64")]
    NotX86,
}

/// Why a view could not be opened over a buffer, or a register not accessed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewError {
    /// The buffer is shorter than the format needs.
    #[error("buffer of {len} bytes is too small: the {format} format needs {needed}")]
    TooSmall {
        /// Buffer length.
        len: usize,
        /// Bytes needed.
        needed: usize,
        /// "standard" or "compacted".
        format: &'static str,
    },
    /// A reserved byte of the XSAVE header is not zero.
    #[error("reserved XSAVE header byte at offset {offset} is {value:#04x}, must be 0")]
    ReservedHeader {
        /// Offset in the buffer (528..576).
        offset: usize,
        /// The byte.
        value: u8,
    },
    /// XCOMP_BV is not valid for the format: a compacted buffer must set
    /// bit 63, a standard one must have XCOMP_BV = 0.
    #[error("XCOMP_BV {xcomp_bv:#x} is not valid for the {format} format")]
    BadXcompBv {
        /// The XCOMP_BV read.
        xcomp_bv: u64,
        /// The format expected.
        format: &'static str,
    },
    /// XSTATE_BV or XCOMP_BV names components the layout does not support
    /// (or, in the standard format, supervisor components).
    #[error("{field} {value:#x} has components {unsupported:#x} that the layout {layout} does not support{}",
        if *field == "XSTATE_BV" { " in this format" } else { "" })]
    Unsupported {
        /// "XSTATE_BV" or "XCOMP_BV".
        field: &'static str,
        /// The field's value.
        value: u64,
        /// The offending bits.
        unsupported: u64,
        /// The layout's name.
        layout: String,
    },
    /// A compacted buffer with XSTATE_BV bits not present in XCOMP_BV.
    #[error("XSTATE_BV {xstate_bv:#x} has components {missing:#x} not in XCOMP_BV {xcomp_bv:#x}")]
    NotInXcompBv {
        /// XSTATE_BV.
        xstate_bv: u64,
        /// XCOMP_BV.
        xcomp_bv: u64,
        /// The bits missing.
        missing: u64,
    },
    /// A register of a component the layout does not have.
    #[error("{} (component {index}) is not supported by the layout {layout}", name_of(*index))]
    NoComponent {
        /// The component.
        index: u8,
        /// The layout's name.
        layout: String,
    },
    /// Writing to a component a compacted buffer has no room for.
    #[error("{} (component {index}) is not in this compacted buffer's XCOMP_BV", name_of(*index))]
    NotInBuffer {
        /// The component.
        index: u8,
    },
    /// A component whose size at the destination differs from the state's.
    #[error("{} (component {index}) is {layout_size} bytes in the layout but {state_size} bytes in the state", name_of(*index))]
    SizeMismatch {
        /// The component.
        index: u8,
        /// Its size in the layout.
        layout_size: usize,
        /// Its size in the state.
        state_size: usize,
    },
    /// A component number past 63.
    #[error("component number {index} is out of range (0..=63)")]
    BadComponent {
        /// The number given.
        index: u8,
    },
    /// A value whose length is not the register's width.
    #[error("{register} is {expected} bytes wide, the value given is {got}")]
    WrongWidth {
        /// The register.
        register: String,
        /// Its width.
        expected: usize,
        /// The value's length.
        got: usize,
    },
    /// A register index out of range (xmm16, k8, r40, ...).
    #[error("no register {name}{index}")]
    NoRegister {
        /// Register family name.
        name: &'static str,
        /// The index given.
        index: usize,
    },
}
