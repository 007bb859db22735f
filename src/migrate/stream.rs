//! The migration stream: the XSAVE state of one or many vCPUs, independent
//! of the source layout, and since version 2 each vCPU's XCR0, IA32_XSS,
//! IA32_XFD and IA32_XFD_ERR beside it. `docs/stream-format.md` documents
//! the bytes; the fixed-size parts are the zerocopy types of [`wire`].
//!
//! ```
//! use xstate::layout::catalog;
//! use xstate::migrate::stream::{decode, encode, Source, Vcpu};
//! use xstate::prelude::*;
//! use xstate::xregs::XstateRegisters;
//! use xstate::RegisterFile;
//!
//! let zen4 = catalog::get("amd-zen4").unwrap();
//! let mut state = RegisterFile::new();
//! state.set_xmm(2, 42).unwrap();
//! let vcpu = Vcpu::new(state, XstateRegisters::with_xcr0(zen4.xcr0_supported()));
//! let bytes = encode(&[vcpu.clone()], &Source::of(zen4)).unwrap();
//! let (header, vcpus) = decode(&bytes).unwrap();
//! assert_eq!((header.version, header.source_fingerprint), (2, zen4.fingerprint()));
//! assert_eq!(vcpus, vec![vcpu]);
//! ```

use alloc::vec::Vec;

use zerocopy::{FromBytes, IntoBytes};

use crate::access::XstateRead;
use crate::area::legacy;
use crate::component::{ComponentId, Xfeatures};
use crate::xregs::{Xreg, XregsError, XstateRegisters};
use crate::{Layout, RegisterFile};

pub use views::{encode_views, encode_views_into, VcpuArea};
pub use wire::{RecordHeader, StreamHeaderBytes, VcpuHeader, VcpuHeaderV2, MAGIC};

mod views;

/// The stream's fixed-size parts, little-endian, as `docs/stream-format.md`
/// gives them.
pub mod wire {
    use core::mem::{offset_of, size_of};

    use zerocopy::little_endian::{U16, U32, U64};
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

    /// The stream's first eight bytes.
    pub const MAGIC: [u8; 8] = *b"XSTATEMS";

    /// The stream header (32 bytes).
    #[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub struct StreamHeaderBytes {
        /// `XSTATEMS`.
        pub magic: [u8; 8],
        /// The format version.
        pub version: U16,
        /// Reserved, 0.
        pub flags: U16,
        /// The number of vCPU sections.
        pub vcpu_count: U32,
        /// The source's XCR0.
        pub source_xcr0: U64,
        /// `Layout::fingerprint()` of the source layout.
        pub source_fingerprint: U64,
    }

    /// A version 1 vCPU section's header (16 bytes).
    #[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub struct VcpuHeader {
        /// The section's position, from 0.
        pub vcpu_index: U32,
        /// The number of records that follow.
        pub record_count: U32,
        /// The live components: exactly the records' components.
        pub xstate_bv: U64,
    }

    /// A version 2 vCPU section's header (48 bytes): version 1's fields,
    /// then the vCPU's four extended-state control registers.
    #[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub struct VcpuHeaderV2 {
        /// The section's position, from 0.
        pub vcpu_index: U32,
        /// The number of records that follow.
        pub record_count: U32,
        /// The live components: exactly the records' components.
        pub xstate_bv: U64,
        /// XCR0.
        pub xcr0: U64,
        /// IA32_XSS (MSR 0xDA0).
        pub xss: U64,
        /// IA32_XFD (MSR 0x1C4).
        pub xfd: U64,
        /// IA32_XFD_ERR (MSR 0x1C5).
        pub xfd_err: U64,
    }

    /// A record's header (8 bytes); `length` bytes of data follow.
    #[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
    #[repr(C)]
    pub struct RecordHeader {
        /// The component number (0..=63).
        pub component: u8,
        /// Reserved, 0.
        pub reserved: [u8; 3],
        /// Bytes of data.
        pub length: U32,
    }

    const _: () = {
        assert!(size_of::<StreamHeaderBytes>() == 32);
        assert!(offset_of!(StreamHeaderBytes, version) == 8);
        assert!(offset_of!(StreamHeaderBytes, flags) == 10);
        assert!(offset_of!(StreamHeaderBytes, vcpu_count) == 12);
        assert!(offset_of!(StreamHeaderBytes, source_xcr0) == 16);
        assert!(offset_of!(StreamHeaderBytes, source_fingerprint) == 24);
        assert!(size_of::<VcpuHeader>() == 16);
        assert!(offset_of!(VcpuHeader, record_count) == 4);
        assert!(offset_of!(VcpuHeader, xstate_bv) == 8);
        assert!(size_of::<VcpuHeaderV2>() == 48);
        assert!(offset_of!(VcpuHeaderV2, record_count) == 4);
        assert!(offset_of!(VcpuHeaderV2, xstate_bv) == 8);
        assert!(offset_of!(VcpuHeaderV2, xcr0) == 16);
        assert!(offset_of!(VcpuHeaderV2, xss) == 24);
        assert!(offset_of!(VcpuHeaderV2, xfd) == 32);
        assert!(offset_of!(VcpuHeaderV2, xfd_err) == 40);
        assert!(size_of::<RecordHeader>() == 8);
        assert!(offset_of!(RecordHeader, reserved) == 1);
        assert!(offset_of!(RecordHeader, length) == 4);
    };
}

/// The format version [`encode`] writes; [`decode`] reads it and version 1.
pub const VERSION: u16 = 2;
/// The first version, without the registers; [`encode_v1`] writes it.
pub const VERSION_1: u16 = 1;
/// Bytes of the stream header.
pub const HEADER_LEN: usize = core::mem::size_of::<StreamHeaderBytes>();
/// Bytes of a version 2 vCPU section's header.
pub const VCPU_HEADER_LEN: usize = core::mem::size_of::<VcpuHeaderV2>();
/// Bytes of a version 1 vCPU section's header.
pub const VCPU_HEADER_V1_LEN: usize = core::mem::size_of::<VcpuHeader>();
/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();
/// Bytes of the trailing checksum.
const CHECKSUM_LEN: usize = 4;
/// The largest record in bytes accepted for a component without a fixed
/// size (arch LBR, numbers 20..=63): the register file's limit.
pub const MAX_UNKNOWN_RECORD: usize = crate::regfile::MAX_VARIABLE_SIZE;
/// The most vCPUs a stream may hold: KVM's limit on x86 (KVM_MAX_VCPUS),
/// which bounds what a hostile header can make a decoder allocate.
pub const MAX_VCPUS: u32 = 4096;

/// The x87 record: legacy bytes 0..24 and 32..160.
const X87_RECORD: usize = legacy::X87_BYTES;
/// The SSE record: MXCSR, then XMM0-15.
const SSE_RECORD: usize = 4 + legacy::XMM_BYTES;

const _: () = {
    assert!(X87_RECORD == 152);
    assert!(SSE_RECORD == 260);
};

/// The bytes a reader allows each vCPU section of a stream before it
/// decodes one: 64 KiB, several times what every known component live
/// takes (about 12 KiB: AMX TILEDATA alone is 8192), so memory for a
/// stream read stays in proportion to the vCPUs its header claims
/// ([`length_bound`]). Streams with large unknown components need more:
/// a reader may take a larger bound from its user.
pub const VCPU_BYTES_BOUND: u64 = 64 << 10;

/// The most bytes one vCPU section can take: its header and 64 records of
/// the largest size ([`MAX_UNKNOWN_RECORD`]); no per-vCPU bound above it
/// means anything.
pub const MAX_VCPU_SECTION: u64 =
    VCPU_HEADER_LEN as u64 + 64 * (RECORD_HEADER_LEN as u64 + MAX_UNKNOWN_RECORD as u64);

/// The most bytes a reader takes for a whole stream, whatever bound per
/// vCPU it is given: 1 GiB, tens of times a stream of 4096 vCPUs with
/// every known component live (about 48 MiB).
pub const MAX_STREAM_READ: u64 = 1 << 30;

/// The vCPU count the stream header starting `head` claims, unchecked;
/// `None` when `head` is not the first 16 bytes of a stream header.
pub fn claimed_vcpus(head: &[u8]) -> Option<u32> {
    let at = core::mem::offset_of!(StreamHeaderBytes, vcpu_count);
    let count = head.get(at..at + 4).filter(|_| is_stream(head))?;
    Some(u32::from_le_bytes(count.try_into().ok()?))
}

/// The most bytes a stream whose header starts `head` may take, at
/// `per_vcpu` bytes (at most [`MAX_VCPU_SECTION`]) for each vCPU its header
/// claims (at most [`MAX_VCPUS`]), with the stream and checksum headers,
/// and never more than [`MAX_STREAM_READ`]: what a reader
/// should read before [`decode`] refuses or takes it. `None` when `head`
/// is not the first 16 bytes of a stream header.
pub fn length_bound(head: &[u8], per_vcpu: u64) -> Option<u64> {
    let vcpus = claimed_vcpus(head)?.min(MAX_VCPUS);
    Some(
        ((HEADER_LEN + CHECKSUM_LEN) as u64)
            .saturating_add(u64::from(vcpus).saturating_mul(per_vcpu.min(MAX_VCPU_SECTION)))
            .min(MAX_STREAM_READ),
    )
}

/// Where the state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The source's XCR0.
    pub xcr0: Xfeatures,
    /// [`Layout::fingerprint`] of the source layout.
    pub fingerprint: u64,
}

impl Source {
    /// The source described by `layout` (XCR0: every supported user component).
    pub fn of(layout: &Layout) -> Source {
        Source {
            xcr0: layout.xcr0_supported(),
            fingerprint: layout.fingerprint(),
        }
    }
}

/// One vCPU of a stream: its XSAVE state and, from version 2 on, its
/// XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcpu {
    /// The XSAVE state.
    pub state: RegisterFile,
    /// The extended-state control registers: `None` only for a vCPU
    /// decoded from a version 1 stream, which does not carry them.
    pub registers: Option<XstateRegisters>,
}

impl Vcpu {
    /// A vCPU with its registers.
    pub fn new(state: RegisterFile, registers: XstateRegisters) -> Vcpu {
        Vcpu {
            state,
            registers: Some(registers),
        }
    }
}

/// What a stream's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The format version.
    pub version: u16,
    /// The number of vCPUs.
    pub vcpus: u32,
    /// The source's XCR0.
    pub source_xcr0: Xfeatures,
    /// The source layout's fingerprint.
    pub source_fingerprint: u64,
}

/// Why a stream was refused; `offset` is where in the input, in bytes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The input ends before a field it needs.
    #[error("truncated at offset {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// Not a stream.
    #[error("not an xstate migration stream (bad magic at offset 0)")]
    BadMagic,
    /// A version this code does not read.
    #[error("unknown stream version {version} at offset {offset}")]
    UnknownVersion {
        /// Where.
        offset: usize,
        /// The version.
        version: u16,
    },
    /// The checksum does not match the content.
    #[error(
        "checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    Checksum {
        /// Where the checksum is.
        offset: usize,
        /// Stored.
        stored: u32,
        /// Computed over the stream.
        computed: u32,
    },
    /// A field that must be zero is not.
    #[error("reserved field at offset {offset} is not zero")]
    Reserved {
        /// Where.
        offset: usize,
    },
    /// More vCPUs than [`MAX_VCPUS`] (decoding: the count of the stream
    /// header, at offset 12).
    #[error("{0} vCPUs, more than the {MAX_VCPUS} KVM allows")]
    TooManyVcpus(u32),
    /// A vCPU section out of order.
    #[error("vCPU section at offset {offset} has index {found}, expected {expected}")]
    VcpuIndex {
        /// Where.
        offset: usize,
        /// Its position.
        expected: u32,
        /// The index read.
        found: u32,
    },
    /// A component number no record may carry.
    #[error(
        "record at offset {offset} is for component {component}, not a component number (0..=63)"
    )]
    UnknownComponent {
        /// Where.
        offset: usize,
        /// The number read.
        component: u8,
    },
    /// A component recorded twice, or out of ascending order.
    #[error("record at offset {offset}: {component} (component {n}) is duplicated or out of order", n = .component.index())]
    Duplicate {
        /// Where.
        offset: usize,
        /// The component.
        component: ComponentId,
    },
    /// A record of a component without a fixed size that is empty or
    /// larger than [`MAX_UNKNOWN_RECORD`].
    #[error("record at offset {offset}: {component} (component {n}) is {length} bytes, expected 1 to {max}", n = .component.index(), max = MAX_UNKNOWN_RECORD)]
    VariableRecordSize {
        /// Where.
        offset: usize,
        /// The component.
        component: ComponentId,
        /// The length read.
        length: u32,
    },
    /// A record whose size is not the component's.
    #[error("record at offset {offset}: {component} (component {n}) is {length} bytes, expected {expected}", n = .component.index())]
    RecordSize {
        /// Where.
        offset: usize,
        /// The component.
        component: ComponentId,
        /// The length read.
        length: u32,
        /// The component's size in bytes.
        expected: usize,
    },
    /// XSTATE_BV that does not list exactly the recorded components.
    #[error("vCPU section at offset {offset}: XSTATE_BV {xstate_bv} does not match its records {records}")]
    XstateBv {
        /// Where.
        offset: usize,
        /// XSTATE_BV read.
        xstate_bv: Xfeatures,
        /// The components recorded.
        records: Xfeatures,
    },
    /// Bytes after the last vCPU section, before the checksum.
    #[error("{count} bytes of trailing garbage at offset {offset}")]
    Trailing {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
    },
    /// A version 2 vCPU section whose registers are impossible, or whose
    /// state IA32_XFD disables; `offset` is the register's field.
    #[error("vCPU section register at offset {offset}: {source}")]
    Registers {
        /// Where the register is.
        offset: usize,
        /// What is wrong.
        #[source]
        source: XregsError,
    },
    /// Encoding: a vCPU without registers (decoded from a version 1
    /// stream) cannot go into a version 2 stream.
    #[error("vCPU {vcpu} has no XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR (it came from a version 1 stream), which version 2 carries for every vCPU")]
    NoRegisters {
        /// The vCPU's position.
        vcpu: usize,
    },
    /// Encoding: a vCPU whose registers are impossible, or whose state
    /// IA32_XFD disables.
    #[error("vCPU {vcpu}: {source}")]
    VcpuRegisters {
        /// The vCPU's position.
        vcpu: usize,
        /// What is wrong.
        #[source]
        source: XregsError,
    },
    /// Encoding from XSAVE areas ([`encode_views`]): a vCPU's area that
    /// does not hold a live component whole, or holds it at another size
    /// than its canonical one.
    #[error("vCPU {vcpu}'s XSAVE area: {source}")]
    VcpuArea {
        /// The vCPU's position.
        vcpu: usize,
        /// What is wrong.
        #[source]
        source: crate::access::AccessError,
    },
    /// Decoding into an XSAVE area ([`Parsed::decode_into_view`]): a vCPU
    /// the stream does not hold.
    #[error("no vCPU {vcpu}: the stream holds {vcpus}")]
    NoSuchVcpu {
        /// The position asked for.
        vcpu: usize,
        /// The vCPUs in the stream.
        vcpus: usize,
    },
    /// Decoding into an XSAVE area ([`Parsed::decode_into_view`]): a vCPU
    /// whose state the area's layout or the area itself cannot take: every
    /// reason the rules of [`check`](crate::migrate::check()) find, or else
    /// the first component the area has no room for.
    #[error("vCPU {vcpu} cannot go to the destination area: {}", Reasons(.incompatibilities))]
    Incompatible {
        /// The vCPU's position.
        vcpu: usize,
        /// Every reason found.
        incompatibilities: Vec<crate::migrate::Incompatibility>,
    },
    /// The stream holds a different number of vCPUs than expected.
    #[error("the stream holds {found} vCPUs, expected {expected}")]
    VcpuCount {
        /// Expected.
        expected: usize,
        /// In the stream.
        found: usize,
    },
}

/// Incompatibilities, joined by "; ".
struct Reasons<'r>(&'r [crate::migrate::Incompatibility]);

impl core::fmt::Display for Reasons<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The canonical record size in bytes of `component`, if fixed: x87 152
/// (legacy bytes 0..24 and 32..160), SSE 260 (MXCSR, then XMM0-15), the
/// other known components their architectural size (from the component
/// table); `None` for arch LBR, whose size follows the CPU, and unknown
/// numbers (1 to [`MAX_UNKNOWN_RECORD`] bytes).
pub fn record_size(component: ComponentId) -> Option<usize> {
    match component {
        ComponentId::X87 => Some(X87_RECORD),
        ComponentId::SSE => Some(SSE_RECORD),
        c => c.fixed_size().map(|size| size as usize),
    }
}

/// CRC-32 (IEEE 802.3, reflected), as zlib computes it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Bytes of the chunks [`crc32_front_last`] checksums in turn.
const CRC_BACKWARD_CHUNK: usize = 512 << 10;

/// [`crc32`] of `bytes`, computed chunk by chunk from the last chunk to the
/// first (each chunk's CRC combined with the CRC of what follows it), for
/// inputs of more than two chunks: the bytes the checksum pass leaves in
/// the cache are then the stream's first ones, where the decoding pass
/// that follows starts. A stream of 256 vCPUs with AMX live (2.8 MB) does
/// not fit a 2 MB L2; checksummed front to back, its decoding pass would
/// find none of its first bytes there (measured here: a checksum then a
/// read of every cache line of 2.8 MB takes 160-220 µs front to back,
/// 120-175 µs back to front).
fn crc32_front_last(bytes: &[u8]) -> u32 {
    if bytes.len() <= 2 * CRC_BACKWARD_CHUNK {
        return crc32(bytes);
    }
    let mut rest = crc32fast::Hasher::new();
    for chunk in bytes.rchunks(CRC_BACKWARD_CHUNK) {
        let mut h = crc32fast::Hasher::new();
        h.update(chunk);
        h.combine(&rest);
        rest = h;
    }
    rest.finalize()
}

/// Zeros: the init XMM registers and a component's reserved bytes, as
/// records carry them.
static ZEROS: [u8; legacy::XMM_BYTES] = [0; legacy::XMM_BYTES];

/// A vCPU's state as a stream records it: the components it records and
/// each one's canonical bytes, in up to three parts. The register file is
/// one; a view over an XSAVE area another ([`encode_views`]); both give a
/// record the same bytes for the same state.
trait Canonical {
    /// The components recorded, in ascending order.
    fn recorded(&self) -> Xfeatures;
    /// The canonical bytes of recorded component `c`, in parts.
    fn parts(&self, c: ComponentId) -> [&[u8]; 3];
}

impl Canonical for &RegisterFile {
    fn recorded(&self) -> Xfeatures {
        self.xstate_bv()
    }

    fn parts(&self, c: ComponentId) -> [&[u8]; 3] {
        legacy_parts(self.component(c).expect("live"), c)
    }
}

/// The parts of `c`'s record: x87's and SSE's from the legacy region
/// `bytes` (SSE's XMM registers are `xmm` when given), the others their
/// bytes with any reserved ones as zeros.
fn legacy_parts(bytes: &[u8], c: ComponentId) -> [&[u8]; 3] {
    match c {
        ComponentId::X87 => {
            let [a, b] = legacy::X87_RANGES;
            [&bytes[a], &bytes[b], &[]]
        }
        ComponentId::SSE => [
            &bytes[legacy::MXCSR..legacy::MXCSR + 4],
            &bytes[legacy::SSE_RANGE],
            &[],
        ],
        _ => {
            let r = c.reserved_bytes();
            if r.is_empty() {
                [bytes, &[], &[]]
            } else {
                [&bytes[..r.start], &ZEROS[..r.len()], &bytes[r.end..]]
            }
        }
    }
}

/// Encodes `vcpus` (in order) as a version 2 stream from `source`: each
/// vCPU's state and registers, checked first as a decoder checks them
/// ([`XstateRegisters::check_state`]), so nothing is written that
/// [`decode`] would refuse.
///
/// # Errors
///
/// [`StreamError::TooManyVcpus`] for more than [`MAX_VCPUS`],
/// [`StreamError::NoRegisters`] for a vCPU without registers,
/// [`StreamError::VcpuRegisters`] for impossible registers or state that
/// IA32_XFD disables.
pub fn encode(vcpus: &[Vcpu], source: &Source) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    encode_into(vcpus, source, &mut out)?;
    Ok(out)
}

/// [`encode`] into `out`, replacing what it held and reusing its
/// allocation: a VMM that writes stream after stream allocates nothing
/// once `out` has grown to the largest. (With glibc's allocator, which
/// keeps a freed 2.8 MB block mapped for the next one, [`encode`] takes
/// the same time: measured here.) `out` is reserved once, at the stream's
/// exact size.
///
/// # Errors
///
/// As [`encode`]; `out` is unchanged then.
pub fn encode_into(vcpus: &[Vcpu], source: &Source, out: &mut Vec<u8>) -> Result<(), StreamError> {
    check_count(vcpus.len())?;
    let mut sections = Vec::with_capacity(vcpus.len());
    for (n, v) in vcpus.iter().enumerate() {
        let registers = v.registers.ok_or(StreamError::NoRegisters { vcpu: n })?;
        registers
            .check_state(v.state.xstate_bv())
            .map_err(|source| StreamError::VcpuRegisters { vcpu: n, source })?;
        sections.push((&v.state, Some(registers)));
    }
    write(&sections, source, VERSION, out);
    Ok(())
}

/// Encodes the states of `vcpus` as a version 1 stream, for readers that
/// predate version 2: no registers travel.
///
/// # Errors
///
/// [`StreamError::TooManyVcpus`] for more than [`MAX_VCPUS`].
pub fn encode_v1(vcpus: &[RegisterFile], source: &Source) -> Result<Vec<u8>, StreamError> {
    check_count(vcpus.len())?;
    let sections: Vec<_> = vcpus.iter().map(|v| (v, None)).collect();
    let mut out = Vec::new();
    write(&sections, source, VERSION_1, &mut out);
    Ok(out)
}

fn check_count(n: usize) -> Result<(), StreamError> {
    if n > MAX_VCPUS as usize {
        return Err(StreamError::TooManyVcpus(
            u32::try_from(n).unwrap_or(u32::MAX),
        ));
    }
    Ok(())
}

/// How many written bytes the encoder lets go unchecksummed at most: it
/// updates the CRC-32 at each section's end, and within a section after
/// a record that leaves this many, so that it reads bytes it just wrote
/// while they are still in the cache (one vCPU with every known
/// component live is about 11 KiB).
const CRC_CHUNK: usize = 16 << 10;

/// Writes the sections as `version`; in version 2 every section carries
/// its registers (checked by the caller). `out` is cleared and reserved
/// once, at the stream's exact size, and checksummed as it is written.
fn write<S: Canonical>(
    sections: &[(S, Option<XstateRegisters>)],
    source: &Source,
    version: u16,
    out: &mut Vec<u8>,
) {
    let v2 = version == VERSION;
    let section_len = if v2 {
        VCPU_HEADER_LEN
    } else {
        VCPU_HEADER_V1_LEN
    };
    let record_len = |s: &S, c| -> usize { s.parts(c).iter().map(|p| p.len()).sum() };
    let records: usize = sections
        .iter()
        .map(|(s, _)| {
            s.recorded()
                .iter()
                .map(|c| RECORD_HEADER_LEN + record_len(s, c))
                .sum::<usize>()
        })
        .sum();
    let total = HEADER_LEN + sections.len() * section_len + records + CHECKSUM_LEN;
    out.clear();
    out.reserve(total);
    let mut crc = crc32fast::Hasher::new();
    let mut hashed = 0;
    let header = StreamHeaderBytes {
        magic: MAGIC,
        version: version.into(),
        flags: 0.into(),
        vcpu_count: (sections.len() as u32).into(),
        source_xcr0: source.xcr0.bits().into(),
        source_fingerprint: source.fingerprint.into(),
    };
    out.extend_from_slice(header.as_bytes());
    for (n, (state, registers)) in sections.iter().enumerate() {
        let live = state.recorded();
        let section = VcpuHeader {
            vcpu_index: (n as u32).into(),
            record_count: live.len().into(),
            xstate_bv: live.bits().into(),
        };
        match registers {
            Some(r) if v2 => out.extend_from_slice(
                VcpuHeaderV2 {
                    vcpu_index: section.vcpu_index,
                    record_count: section.record_count,
                    xstate_bv: section.xstate_bv,
                    xcr0: r.xcr0.bits().into(),
                    xss: r.xss.bits().into(),
                    xfd: r.xfd.bits().into(),
                    xfd_err: r.xfd_err.bits().into(),
                }
                .as_bytes(),
            ),
            _ => out.extend_from_slice(section.as_bytes()),
        }
        for c in live {
            let parts = state.parts(c);
            let record = RecordHeader {
                component: c.index(),
                reserved: [0; 3],
                length: (parts.iter().map(|p| p.len()).sum::<usize>() as u32).into(),
            };
            out.extend_from_slice(record.as_bytes());
            for p in parts {
                out.extend_from_slice(p);
            }
            if out.len() - hashed >= CRC_CHUNK {
                crc.update(&out[hashed..]);
                hashed = out.len();
            }
        }
        crc.update(&out[hashed..]);
        hashed = out.len();
    }
    crc.update(&out[hashed..]);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    debug_assert_eq!(out.len(), total);
}

/// Whether `bytes` starts like a stream.
pub fn is_stream(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A bounds-checked reader over the stream.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(StreamError::Truncated {
                offset: self.at,
                needed: self.at.saturating_add(n) - self.bytes.len(),
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// The next fixed-size part, read in place.
    #[inline(always)]
    fn read<T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned>(
        &mut self,
    ) -> Result<&'a T, StreamError> {
        let bytes = self.take(core::mem::size_of::<T>())?;
        Ok(T::ref_from_bytes(bytes).expect("sized and unaligned"))
    }
}

/// The records of a validated vCPU section, read in place: each one's
/// component and canonical bytes, in ascending component order.
#[derive(Clone, Debug)]
struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = (ComponentId, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(ComponentId, &'a [u8])> {
        self.left = self.left.checked_sub(1)?;
        let start = self.at + RECORD_HEADER_LEN;
        let record =
            RecordHeader::ref_from_bytes(&self.bytes[self.at..start]).expect("sized and unaligned");
        self.at = start + record.length.get() as usize;
        let c = ComponentId::new(record.component).expect("validated component");
        Some((c, &self.bytes[start..self.at]))
    }
}

/// A validated vCPU section, read in place.
#[derive(Debug)]
struct SectionRef<'a> {
    registers: Option<XstateRegisters>,
    xstate_bv: Xfeatures,
    records: Records<'a>,
}

/// A stream validated whole, whose vCPUs are decoded one at a time, on
/// demand, straight from the input's bytes: the only memory it takes is
/// where each vCPU section after the first starts (8 bytes a vCPU, none
/// for a stream of one vCPU), however large the stream. [`decode`]
/// decodes every vCPU at once.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The stream without its checksum.
    body: &'a [u8],
    header: StreamHeader,
    /// Where sections 1.. start (section 0 starts at [`HEADER_LEN`]).
    starts: Vec<usize>,
}

impl<'a> Parsed<'a> {
    /// What the stream's header says.
    pub fn header(&self) -> StreamHeader {
        self.header
    }

    /// The number of vCPUs.
    pub fn len(&self) -> usize {
        self.header.vcpus as usize
    }

    /// Whether the stream holds no vCPU.
    pub fn is_empty(&self) -> bool {
        self.header.vcpus == 0
    }

    /// Section `n`, read in place from the validated bytes.
    #[inline(always)]
    fn section(&self, n: usize) -> Option<SectionRef<'a>> {
        let start = match n {
            _ if n >= self.len() => return None,
            0 => HEADER_LEN,
            _ => self.starts[n - 1],
        };
        let mut r = Reader {
            bytes: self.body,
            at: start,
        };
        let (h, registers) = section_header(&mut r, self.header.version).expect("validated");
        Some(SectionRef {
            registers,
            xstate_bv: Xfeatures::from_bits(h.xstate_bv.get()),
            records: Records {
                bytes: self.body,
                at: r.at,
                left: h.record_count.get(),
            },
        })
    }

    /// Decodes vCPU `n` into `state` (reusing its allocations): its
    /// registers (`None` from a version 1 stream), or `None` past the last
    /// vCPU, `state` then unchanged.
    pub fn decode_into(
        &self,
        n: usize,
        state: &mut RegisterFile,
    ) -> Option<Option<XstateRegisters>> {
        let section = self.section(n)?;
        state.retain(section.xstate_bv);
        for (c, data) in section.records {
            match c {
                ComponentId::X87 => {
                    let dst = state.legacy_live_mut(c);
                    let [a, b] = legacy::X87_RANGES;
                    let split = a.len();
                    dst[a].copy_from_slice(&data[..split]);
                    dst[b].copy_from_slice(&data[split..]);
                }
                ComponentId::SSE => {
                    let dst = state.legacy_live_mut(c);
                    let m = legacy::MXCSR;
                    dst[m..m + 4].copy_from_slice(&data[..4]);
                    dst[legacy::SSE_RANGE].copy_from_slice(&data[4..]);
                }
                _ => state
                    .set_component(c, data)
                    .expect("validated record sizes"),
            }
        }
        Some(section.registers)
    }

    /// vCPU `n`, decoded; `None` past the last vCPU.
    pub fn vcpu(&self, n: usize) -> Option<Vcpu> {
        let mut state = RegisterFile::new();
        let registers = self.decode_into(n, &mut state)?;
        Some(Vcpu { state, registers })
    }
}

/// Validates the whole stream (version 1 or 2), decoding no vCPU yet.
/// Nothing is produced for an input with any fault.
///
/// # Errors
///
/// The first [`StreamError`] found, with its offset.
// Inlined, as `validate` is: their result, returned through memory, stalls
// the loads that read it back (store forwarding, measured here).
#[inline]
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, StreamError> {
    validate(bytes)
}

/// Validates the whole stream (version 1 or 2), then decodes every vCPU.
/// Nothing is produced for an input with any fault. Each vCPU takes a
/// [`RegisterFile`] (about 600 bytes, and the bytes of its live
/// components); [`parse`] decodes one at a time.
///
/// # Errors
///
/// The first [`StreamError`] found, with its offset.
pub fn decode(bytes: &[u8]) -> Result<(StreamHeader, Vec<Vcpu>), StreamError> {
    let parsed = parse(bytes)?;
    let vcpus = (0..parsed.len())
        .map(|n| parsed.vcpu(n).expect("n < len"))
        .collect();
    Ok((parsed.header, vcpus))
}

/// [`decode`], requiring exactly `expected` vCPUs.
///
/// # Errors
///
/// As [`decode`], and [`StreamError::VcpuCount`] for another count.
pub fn decode_vcpus(bytes: &[u8], expected: usize) -> Result<Vec<Vcpu>, StreamError> {
    let (_, vcpus) = decode(bytes)?;
    if vcpus.len() != expected {
        return Err(StreamError::VcpuCount {
            expected,
            found: vcpus.len(),
        });
    }
    Ok(vcpus)
}

/// Where a version 2 section keeps `reg`, from the section's start.
const fn register_offset(reg: Xreg) -> usize {
    match reg {
        Xreg::Xcr0 => core::mem::offset_of!(VcpuHeaderV2, xcr0),
        Xreg::Xss => core::mem::offset_of!(VcpuHeaderV2, xss),
        Xreg::Xfd => core::mem::offset_of!(VcpuHeaderV2, xfd),
        Xreg::XfdErr => core::mem::offset_of!(VcpuHeaderV2, xfd_err),
    }
}

/// Reads a section's header: version 1's fields and, in version 2, the
/// registers (unchecked). Inlined: its result, returned through memory,
/// stalls the loads that read it back (store forwarding, measured here).
#[inline(always)]
fn section_header(
    r: &mut Reader<'_>,
    version: u16,
) -> Result<(VcpuHeader, Option<XstateRegisters>), StreamError> {
    if version == VERSION_1 {
        return Ok((*r.read::<VcpuHeader>()?, None));
    }
    let h: &VcpuHeaderV2 = r.read()?;
    let registers = XstateRegisters {
        xcr0: Xfeatures::from_bits(h.xcr0.get()),
        xss: Xfeatures::from_bits(h.xss.get()),
        xfd: Xfeatures::from_bits(h.xfd.get()),
        xfd_err: Xfeatures::from_bits(h.xfd_err.get()),
    };
    let common = VcpuHeader {
        vcpu_index: h.vcpu_index,
        record_count: h.record_count,
        xstate_bv: h.xstate_bv,
    };
    Ok((common, Some(registers)))
}

#[inline(always)]
fn validate(bytes: &[u8]) -> Result<Parsed<'_>, StreamError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(StreamError::BadMagic);
    }
    let version_at = r.at;
    let version = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes"));
    if version != VERSION && version != VERSION_1 {
        return Err(StreamError::UnknownVersion {
            offset: version_at,
            version,
        });
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(StreamError::Truncated {
            offset: bytes.len(),
            needed: HEADER_LEN + CHECKSUM_LEN - bytes.len(),
        });
    }
    let body = bytes.len() - CHECKSUM_LEN;
    let stored = u32::from_le_bytes(bytes[body..].try_into().expect("4 bytes"));
    let computed = crc32_front_last(&bytes[..body]);
    if stored != computed {
        return Err(StreamError::Checksum {
            offset: body,
            stored,
            computed,
        });
    }
    // Structure, read only from the checksummed body.
    let mut r = Reader {
        bytes: &bytes[..body],
        at: 0,
    };
    let h: &StreamHeaderBytes = r.read()?;
    if h.flags.get() != 0 {
        return Err(StreamError::Reserved {
            offset: core::mem::offset_of!(StreamHeaderBytes, flags),
        });
    }
    let vcpus = h.vcpu_count.get();
    if vcpus > MAX_VCPUS {
        return Err(StreamError::TooManyVcpus(vcpus));
    }
    let header = StreamHeader {
        version,
        vcpus,
        source_xcr0: Xfeatures::from_bits(h.source_xcr0.get()),
        source_fingerprint: h.source_fingerprint.get(),
    };
    // One start per section after the first: bounded by the vCPU count
    // and by the sections the body can hold.
    let mut starts = Vec::with_capacity(
        (vcpus as usize)
            .saturating_sub(1)
            .min(body / VCPU_HEADER_V1_LEN),
    );
    for n in 0..vcpus {
        let at = r.at;
        if n > 0 {
            starts.push(at);
        }
        let (section, registers) = section_header(&mut r, version)?;
        if let Some(registers) = registers {
            registers.check().map_err(|source| StreamError::Registers {
                offset: at + register_offset(source.register()),
                source,
            })?;
        }
        if section.vcpu_index.get() != n {
            return Err(StreamError::VcpuIndex {
                offset: at,
                expected: n,
                found: section.vcpu_index.get(),
            });
        }
        let xstate_bv = Xfeatures::from_bits(section.xstate_bv.get());
        let mut seen = Xfeatures::EMPTY;
        let mut last: Option<ComponentId> = None;
        for _ in 0..section.record_count.get() {
            let at = r.at;
            let record: &RecordHeader = r.read()?;
            if record.reserved != [0; 3] {
                return Err(StreamError::Reserved { offset: at + 1 });
            }
            let Some(component) = ComponentId::new(record.component) else {
                return Err(StreamError::UnknownComponent {
                    offset: at,
                    component: record.component,
                });
            };
            if last.is_some_and(|l| component <= l) {
                return Err(StreamError::Duplicate {
                    offset: at,
                    component,
                });
            }
            let length = record.length.get();
            match record_size(component) {
                Some(expected) if length as usize != expected => {
                    return Err(StreamError::RecordSize {
                        offset: at,
                        component,
                        length,
                        expected,
                    })
                }
                None if length == 0 || length as usize > MAX_UNKNOWN_RECORD => {
                    return Err(StreamError::VariableRecordSize {
                        offset: at,
                        component,
                        length,
                    })
                }
                _ => {}
            }
            let start = r.at;
            let data = r.take(length as usize)?;
            // Reserved bytes of a component (PKRU's 4..8) travel as zero.
            let reserved = component.reserved_bytes();
            if let Some(i) = data[reserved.clone()].iter().position(|&b| b != 0) {
                return Err(StreamError::Reserved {
                    offset: start + reserved.start + i,
                });
            }
            seen = seen.with(component);
            last = Some(component);
        }
        if seen != xstate_bv {
            return Err(StreamError::XstateBv {
                offset: at + core::mem::offset_of!(VcpuHeader, xstate_bv),
                xstate_bv,
                records: seen,
            });
        }
        if let Some(registers) = registers {
            registers
                .check_state(xstate_bv)
                .map_err(|source| StreamError::Registers {
                    offset: at + register_offset(source.register()),
                    source,
                })?;
        }
    }
    if r.at != body {
        return Err(StreamError::Trailing {
            offset: r.at,
            count: body - r.at,
        });
    }
    Ok(Parsed {
        body: &bytes[..body],
        header,
        starts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backward_checksum_is_crc32() {
        let bytes: Vec<u8> = (0..3 * CRC_BACKWARD_CHUNK + 5)
            .map(|i| (i * 31 + 7) as u8)
            .collect();
        for len in [
            0,
            1,
            2 * CRC_BACKWARD_CHUNK,
            2 * CRC_BACKWARD_CHUNK + 1,
            3 * CRC_BACKWARD_CHUNK,
            bytes.len(),
        ] {
            assert_eq!(
                crc32_front_last(&bytes[..len]),
                crc32(&bytes[..len]),
                "{len}"
            );
        }
    }
}
