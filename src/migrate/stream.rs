//! The migration stream: the XSAVE state of one or many vCPUs, independent
//! of the source layout. `docs/stream-format.md` documents the bytes.
//!
//! ```
//! use xstate::layout::catalog;
//! use xstate::migrate::stream::{decode, encode, Source};
//! use xstate::RegisterFile;
//!
//! let zen4 = catalog::get("amd-zen4").unwrap();
//! let mut vcpu = RegisterFile::new();
//! vcpu.set_xmm(2, 42).unwrap();
//! let bytes = encode(&[vcpu.clone()], &Source::of(zen4));
//! let (header, vcpus) = decode(&bytes).unwrap();
//! assert_eq!(header.source_fingerprint, zen4.fingerprint());
//! assert_eq!(vcpus, vec![vcpu]);
//! ```

use thiserror::Error;

use crate::area::legacy;
use crate::component::{self, name_of, COMPONENTS, KNOWN_COMPONENTS};
use crate::{Layout, RegisterFile};

/// The stream's first eight bytes.
pub const MAGIC: [u8; 8] = *b"XSTATEMS";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the stream header.
pub const HEADER_LEN: usize = 32;
/// Bytes of a vCPU section's header.
pub const VCPU_HEADER_LEN: usize = 16;
/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = 8;
/// The largest record accepted for a component this code has no size for.
pub const MAX_UNKNOWN_RECORD: usize = 1 << 20;

/// Where the state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The source's XCR0.
    pub xcr0: u64,
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

/// What a stream's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The format version.
    pub version: u16,
    /// The number of vCPUs.
    pub vcpus: u32,
    /// The source's XCR0.
    pub source_xcr0: u64,
    /// The source layout's fingerprint.
    pub source_fingerprint: u64,
}

/// Why a stream was refused; `offset` is where in the input.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
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
    #[error("record at offset {offset} is for unknown component {component}")]
    UnknownComponent {
        /// Where.
        offset: usize,
        /// The component number.
        component: u8,
    },
    /// A component recorded twice, or out of ascending order.
    #[error("record at offset {offset}: {} (component {component}) is duplicated or out of order", name_of(*component))]
    Duplicate {
        /// Where.
        offset: usize,
        /// The component.
        component: u8,
    },
    /// A record whose size is not the component's.
    #[error("record at offset {offset}: {} (component {component}) is {length} bytes, expected {expected}", name_of(*component))]
    RecordSize {
        /// Where.
        offset: usize,
        /// The component.
        component: u8,
        /// The length read.
        length: u32,
        /// The component's size.
        expected: usize,
    },
    /// XSTATE_BV that does not list exactly the recorded components.
    #[error("vCPU section at offset {offset}: XSTATE_BV {xstate_bv:#x} does not match its records {records:#x}")]
    XstateBv {
        /// Where.
        offset: usize,
        /// XSTATE_BV read.
        xstate_bv: u64,
        /// The components recorded.
        records: u64,
    },
    /// Bytes after the last vCPU section, before the checksum.
    #[error("{count} bytes of trailing garbage at offset {offset}")]
    Trailing {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
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

/// The canonical record size of component `index`, if fixed: x87 152 bytes
/// (legacy bytes 0..24 and 32..160), SSE 260 (MXCSR, then XMM0-15), the
/// others their architectural size.
pub fn record_size(index: u8) -> Option<usize> {
    match index {
        0 => Some(152),
        1 => Some(260),
        i if (i as usize) < KNOWN_COMPONENTS => Some(COMPONENTS[i as usize].size as usize),
        _ => None,
    }
}

/// CRC-32 (IEEE 802.3, reflected), as zlib computes it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn record_bytes(regs: &RegisterFile, index: u8, out: &mut Vec<u8>) {
    let bytes = regs.component(index).expect("live");
    match index {
        0 => legacy::X87_RANGES
            .iter()
            .for_each(|r| out.extend_from_slice(&bytes[r.clone()])),
        1 => {
            let m = legacy::MXCSR as usize;
            out.extend_from_slice(&bytes[m..m + 4]);
            out.extend_from_slice(&bytes[legacy::SSE_RANGE]);
        }
        _ => out.extend_from_slice(bytes),
    }
}

/// Encodes the states of `vcpus` (in order) as a stream from `source`.
pub fn encode(vcpus: &[RegisterFile], source: &Source) -> Vec<u8> {
    let records: usize = vcpus
        .iter()
        .flat_map(|v| component::bits(v.xstate_bv()).map(move |i| (v, i)))
        .map(|(v, i)| {
            RECORD_HEADER_LEN
                + record_size(i).unwrap_or_else(|| v.component(i).map_or(0, <[u8]>::len))
        })
        .sum();
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + vcpus.len() * VCPU_HEADER_LEN + records);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(vcpus.len() as u32).to_le_bytes());
    out.extend_from_slice(&source.xcr0.to_le_bytes());
    out.extend_from_slice(&source.fingerprint.to_le_bytes());
    for (n, regs) in vcpus.iter().enumerate() {
        let live = regs.xstate_bv();
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&live.count_ones().to_le_bytes());
        out.extend_from_slice(&live.to_le_bytes());
        for i in component::bits(live) {
            out.push(i);
            out.extend_from_slice(&[0; 3]);
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let start = out.len();
            record_bytes(regs, i, &mut out);
            let len = (out.len() - start) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
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
    fn take(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(StreamError::Truncated {
                offset: self.at,
                needed: self.at + n - self.bytes.len(),
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, StreamError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StreamError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, StreamError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, StreamError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
}

/// One validated record: component and where its bytes are.
type Record = (u8, core::ops::Range<usize>);

/// Validates the whole stream, then decodes every vCPU's state. Nothing is
/// produced for an input with any fault.
pub fn decode(bytes: &[u8]) -> Result<(StreamHeader, Vec<RegisterFile>), StreamError> {
    let (header, sections) = validate(bytes)?;
    let vcpus = sections
        .iter()
        .map(|records| {
            let mut regs = RegisterFile::new();
            for (i, range) in records {
                let data = &bytes[range.clone()];
                let mut legacy_image = [0u8; 512];
                let image: &[u8] = match i {
                    0 => {
                        legacy_image[0..24].copy_from_slice(&data[..24]);
                        legacy_image[32..160].copy_from_slice(&data[24..]);
                        &legacy_image
                    }
                    1 => {
                        let m = legacy::MXCSR as usize;
                        legacy_image[m..m + 4].copy_from_slice(&data[..4]);
                        legacy_image[legacy::SSE_RANGE].copy_from_slice(&data[4..]);
                        &legacy_image
                    }
                    _ => data,
                };
                regs.set_component(*i, image)
                    .expect("validated record sizes");
            }
            regs
        })
        .collect();
    Ok((header, vcpus))
}

/// [`decode`], requiring exactly `expected` vCPUs.
pub fn decode_vcpus(bytes: &[u8], expected: usize) -> Result<Vec<RegisterFile>, StreamError> {
    let (_, vcpus) = decode(bytes)?;
    if vcpus.len() != expected {
        return Err(StreamError::VcpuCount {
            expected,
            found: vcpus.len(),
        });
    }
    Ok(vcpus)
}

fn validate(bytes: &[u8]) -> Result<(StreamHeader, Vec<Vec<Record>>), StreamError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(StreamError::BadMagic);
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(StreamError::UnknownVersion { offset: 8, version });
    }
    if bytes.len() < HEADER_LEN + 4 {
        return Err(StreamError::Truncated {
            offset: bytes.len(),
            needed: HEADER_LEN + 4 - bytes.len(),
        });
    }
    let body = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[body..].try_into().expect("4"));
    let computed = crc32(&bytes[..body]);
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
        at: 10,
    };
    if r.u16()? != 0 {
        return Err(StreamError::Reserved { offset: 10 });
    }
    let vcpus = r.u32()?;
    let header = StreamHeader {
        version,
        vcpus,
        source_xcr0: r.u64()?,
        source_fingerprint: r.u64()?,
    };
    let mut sections = Vec::new();
    for n in 0..vcpus {
        let at = r.at;
        let index = r.u32()?;
        if index != n {
            return Err(StreamError::VcpuIndex {
                offset: at,
                expected: n,
                found: index,
            });
        }
        let count = r.u32()?;
        let xstate_bv = r.u64()?;
        let mut records = Vec::new();
        let mut seen = 0u64;
        let mut last: Option<u8> = None;
        for _ in 0..count {
            let at = r.at;
            let component = r.u8()?;
            if r.take(3)? != [0; 3] {
                return Err(StreamError::Reserved { offset: at + 1 });
            }
            let length = r.u32()?;
            if component >= 64 {
                return Err(StreamError::UnknownComponent {
                    offset: at,
                    component,
                });
            }
            if last.is_some_and(|l| component <= l) {
                return Err(StreamError::Duplicate {
                    offset: at,
                    component,
                });
            }
            let expected = record_size(component).unwrap_or(length as usize);
            if length as usize != expected || length == 0 || expected > MAX_UNKNOWN_RECORD {
                return Err(StreamError::RecordSize {
                    offset: at,
                    component,
                    length,
                    expected: record_size(component).unwrap_or(MAX_UNKNOWN_RECORD),
                });
            }
            let start = r.at;
            let data = r.take(length as usize)?;
            // Reserved bytes of a component (PKRU's 4..8) travel as zero.
            let reserved = component::reserved_bytes(component);
            if let Some(i) = data[reserved.clone()].iter().position(|&b| b != 0) {
                return Err(StreamError::Reserved {
                    offset: start + reserved.start + i,
                });
            }
            records.push((component, start..r.at));
            seen |= 1 << component;
            last = Some(component);
        }
        if seen != xstate_bv {
            return Err(StreamError::XstateBv {
                offset: at + 8,
                xstate_bv,
                records: seen,
            });
        }
        sections.push(records);
    }
    if r.at != body {
        return Err(StreamError::Trailing {
            offset: r.at,
            count: body - r.at,
        });
    }
    Ok((header, sections))
}
