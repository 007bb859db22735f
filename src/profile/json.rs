//! The profile's JSON form: what `xstate kvm info --json` writes.
//!
//! ```json
//! {
//!   "kernel_release": "6.18.44",
//!   "xsave2_size": 4096,
//!   "buffer_size": 4096,
//!   "guest_xcr0": "0x2e7",
//!   "guest_xss": "0x0",
//!   "guest_xfd": false,
//!   "guest_apx": false,
//!   "mxcsr_mask": "0xffff",
//!   "pkru": { "on_clear_bit": "reset", "keeps_reserved_bytes": false },
//!   "host_layout": { "name": "host", "xcr0_supported": "0x602e7", ... }
//! }
//! ```
//!
//! `host_layout` is a layout file's fields ([`LayoutFile`]). `pkru` is null
//! where KVM offers no PKRU; `on_clear_bit` is `reset`, `kept`, `loaded` or
//! the hex value read back. `kvm` facts are absent (every KVM field null or
//! missing) in the profile of a host known only by its CPU. Other fields
//! (`amx`, `host_mxcsr_mask`, ...) are informational and ignored on input.

use serde::{Deserialize, Serialize};

use super::{HostProfile, KvmOffer, PkruBehaviour, PkruOnClearBit};
use crate::component::{ComponentId, Xfeatures};
use crate::layout::{FileError, LayoutFile, MXCSR_MASK_MIN};

/// Why a profile file gave no profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not JSON, or not this schema.
    #[error("not a host profile")]
    Json(#[source] serde_json::Error),
    /// A field with a bad value.
    #[error("host profile field {field} has a bad value {value:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The host layout it holds is invalid.
    #[error("host profile's host_layout")]
    Layout(#[source] FileError),
    /// A guest XCR0 without x87 and SSE: XSETBV refuses an XCR0 without
    /// x87, and AVX needs SSE; KVM always offers both.
    #[error("host profile's guest_xcr0 {guest_xcr0} lacks x87 or SSE (bits 0 and 1), which every guest XCR0 has")]
    GuestXcr0Legacy {
        /// The guest XCR0 read.
        guest_xcr0: Xfeatures,
    },
    /// A guest XCR0 with components the host layout does not support: KVM
    /// offers guests only what the host CPU has.
    #[error("host profile's guest_xcr0 {guest_xcr0} has {extra}, which the host layout's XCR0 {host_xcr0} lacks")]
    GuestXcr0 {
        /// The guest XCR0 read.
        guest_xcr0: Xfeatures,
        /// The host layout's supported XCR0.
        host_xcr0: Xfeatures,
        /// The bits outside it.
        extra: Xfeatures,
    },
    /// A guest IA32_XSS with components the host layout does not support.
    #[error("host profile's guest_xss {guest_xss} has {extra}, which the host layout's IA32_XSS {host_xss} lacks")]
    GuestXss {
        /// The guest IA32_XSS read.
        guest_xss: Xfeatures,
        /// The host layout's supported IA32_XSS.
        host_xss: Xfeatures,
        /// The bits outside it.
        extra: Xfeatures,
    },
    /// KVM's MXCSR mask without every bit of the architectural minimum
    /// ([`MXCSR_MASK_MIN`]).
    #[error("host profile's mxcsr_mask {mask:#x} lacks bits {missing:#x} of {min:#x}, the architectural minimum every CPU lets software set",
        missing = MXCSR_MASK_MIN & !*mask, min = MXCSR_MASK_MIN)]
    MxcsrMask {
        /// The mask read.
        mask: u32,
    },
    /// KVM's MXCSR mask with bits the host layout's MXCSR mask lacks:
    /// `KVM_SET_XSAVE` refuses MXCSR bits outside the host CPU's FXSAVE
    /// MXCSR_MASK (Linux `copy_uabi_to_xstate()` against
    /// `mxcsr_feature_mask`), so KVM never takes more than the host does.
    #[error("host profile's mxcsr_mask {mask:#x} has bits {extra:#x} outside the host layout's MXCSR mask {host_mask:#x}: KVM_SET_XSAVE takes no MXCSR bit the host CPU does not",
        extra = *mask & !*host_mask)]
    MxcsrMaskWider {
        /// KVM's mask read.
        mask: u32,
        /// The host layout's mask.
        host_mask: u32,
    },
    /// A guest XCR0 that breaks an XSETBV rule (a half of AVX-512 or AMX,
    /// AVX-512 without AVX, ...): KVM offers guests only what XSETBV takes
    /// ([`crate::cpuid::xcr0`]).
    #[error("host profile's guest_xcr0 is no XCR0 KVM offers guests: {violation}")]
    GuestXcr0Rule {
        /// The first rule broken.
        violation: crate::cpuid::xcr0::Violation,
    },
    /// `guest_apx` says the opposite of the guest XCR0's bit 19 (APX),
    /// from which KVM's APX offer follows.
    #[error("host profile's guest_apx {guest_apx} disagrees with its guest_xcr0 {guest_xcr0}, whose bit 19 (APX) is {}",
        if *guest_apx { "clear" } else { "set" })]
    GuestApx {
        /// The `guest_apx` read.
        guest_apx: bool,
        /// The guest XCR0 read.
        guest_xcr0: Xfeatures,
    },
    /// A KVM buffer size (`buffer_size` or `xsave2_size`) below 4096
    /// bytes: KVM's buffers are never smaller than `struct kvm_xsave`, and
    /// `KVM_CAP_XSAVE2` reports at least its size (Linux
    /// `kvm_vm_ioctl_check_extension()`).
    #[error("host profile's {field} {size} is below 4096 bytes, the size of struct kvm_xsave, which KVM's XSAVE buffers never go below")]
    BufferTooSmall {
        /// `buffer_size` or `xsave2_size`.
        field: &'static str,
        /// The size read, in bytes.
        size: usize,
    },
    /// A buffer size smaller than the standard-format area of the guest
    /// XCR0: KVM sizes `KVM_CAP_XSAVE2` for every XCR0 bit it offers.
    #[error("host profile's buffer_size {buffer_size} is smaller than the {needs} bytes of the standard-format area for its guest_xcr0 {guest_xcr0}, for which KVM sizes its buffers")]
    BufferTooSmallForXcr0 {
        /// The buffer size, in bytes.
        buffer_size: usize,
        /// The guest XCR0.
        guest_xcr0: Xfeatures,
        /// The host layout's standard size for it, in bytes.
        needs: u32,
    },
}

/// The smallest KVM XSAVE buffer: `sizeof(struct kvm_xsave)`, 4096 bytes
/// (Linux `arch/x86/include/uapi/asm/kvm.h`).
const KVM_XSAVE_MIN: usize = 4096;

/// The serialized form of a profile.
#[derive(Serialize, Deserialize)]
struct ProfileFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel_release: Option<String>,
    #[serde(default)]
    xsave2_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buffer_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_xcr0: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_xss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_xfd: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guest_apx: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mxcsr_mask: Option<String>,
    #[serde(default)]
    pkru: Option<PkruFile>,
    host_layout: LayoutFile,
}

#[derive(Serialize, Deserialize)]
struct PkruFile {
    on_clear_bit: String,
    keeps_reserved_bytes: bool,
}

fn hex(field: &'static str, s: &str) -> Result<u64, ProfileError> {
    crate::hex::parse_u64(s).ok_or_else(|| ProfileError::BadField {
        field,
        value: s.to_string(),
    })
}

/// What KVM offers must be possible on the host it runs on: a guest XCR0
/// with x87 and SSE within the host layout's XCR0 that XSETBV accepts, a
/// guest IA32_XSS within its IA32_XSS, an MXCSR mask with the architectural
/// minimum and within the host's mask.
fn check_offer(
    layout: &crate::Layout,
    guest_xcr0: Xfeatures,
    guest_xss: Xfeatures,
    mask: u32,
) -> Result<(), ProfileError> {
    if !guest_xcr0.contains_all(Xfeatures::LEGACY) {
        return Err(ProfileError::GuestXcr0Legacy { guest_xcr0 });
    }
    let host_xcr0 = layout.xcr0_supported();
    if !(guest_xcr0 - host_xcr0).is_empty() {
        return Err(ProfileError::GuestXcr0 {
            guest_xcr0,
            host_xcr0,
            extra: guest_xcr0 - host_xcr0,
        });
    }
    let host_xss = layout.xss_supported();
    if !(guest_xss - host_xss).is_empty() {
        return Err(ProfileError::GuestXss {
            guest_xss,
            host_xss,
            extra: guest_xss - host_xss,
        });
    }
    if mask & MXCSR_MASK_MIN != MXCSR_MASK_MIN {
        return Err(ProfileError::MxcsrMask { mask });
    }
    let host_mask = layout.mxcsr_mask();
    if mask & !host_mask != 0 {
        return Err(ProfileError::MxcsrMaskWider { mask, host_mask });
    }
    if let Some(violation) = crate::cpuid::xcr0::violations(guest_xcr0).next() {
        return Err(ProfileError::GuestXcr0Rule { violation });
    }
    Ok(())
}

/// KVM's buffer size: `buffer_size`, else `xsave2_size`, else 4096; each
/// given one at least 4096 bytes, at most 1 MiB (`MAX_AREA_SIZE`), and the buffer at least
/// the standard-format size of `guest_xcr0` in `layout`.
fn buffer_size(
    file: &ProfileFile,
    layout: &crate::Layout,
    guest_xcr0: Xfeatures,
) -> Result<usize, ProfileError> {
    for (field, size) in [
        ("xsave2_size", file.xsave2_size),
        ("buffer_size", file.buffer_size),
    ] {
        match size {
            Some(size) if size < KVM_XSAVE_MIN => {
                return Err(ProfileError::BufferTooSmall { field, size });
            }
            Some(size) if size > crate::layout::MAX_AREA_SIZE as usize => {
                return Err(ProfileError::BadField {
                    field,
                    value: size.to_string(),
                });
            }
            _ => {}
        }
    }
    let buffer_size = file
        .buffer_size
        .or(file.xsave2_size)
        .unwrap_or(KVM_XSAVE_MIN);
    let needs = layout.standard_size_for(guest_xcr0);
    if buffer_size < needs as usize {
        return Err(ProfileError::BufferTooSmallForXcr0 {
            buffer_size,
            guest_xcr0,
            needs,
        });
    }
    Ok(buffer_size)
}

impl HostProfile {
    /// Parses a profile's JSON (see the module docs).
    ///
    /// # Errors
    ///
    /// [`ProfileError::Json`] for text that is not a profile,
    /// [`ProfileError::BadField`] for a value that does not parse (the
    /// guest XCR0 is required for the KVM part), [`ProfileError::Layout`]
    /// for an invalid host layout; for what KVM offers,
    /// [`ProfileError::GuestXcr0Legacy`] (a guest XCR0 without x87 and
    /// SSE), [`ProfileError::GuestXcr0`] and [`ProfileError::GuestXss`] (bits
    /// the host layout does not support), [`ProfileError::GuestXcr0Rule`]
    /// (a guest XCR0 XSETBV refuses), [`ProfileError::GuestApx`]
    /// (`guest_apx` against guest XCR0 bit 19), [`ProfileError::MxcsrMask`]
    /// (a mask without the architectural minimum 0xFFBF),
    /// [`ProfileError::MxcsrMaskWider`] (bits the host layout's mask lacks),
    /// [`ProfileError::BufferTooSmall`] (a KVM buffer size below 4096
    /// bytes) and [`ProfileError::BufferTooSmallForXcr0`] (one below the
    /// guest XCR0's standard-format size); [`ProfileError::BadField`] for
    /// one over 16 MiB.
    pub fn from_json(text: &str) -> Result<HostProfile, ProfileError> {
        let file: ProfileFile = serde_json::from_str(text).map_err(ProfileError::Json)?;
        let layout = file.host_layout.to_layout().map_err(ProfileError::Layout)?;
        let kvm = match &file.guest_xcr0 {
            None => None,
            Some(xcr0) => {
                let mask = match &file.mxcsr_mask {
                    Some(m) => u32::try_from(hex("mxcsr_mask", m)?)
                        .map_err(|_| ProfileError::BadField {
                            field: "mxcsr_mask",
                            value: m.clone(),
                        })
                        .map(crate::layout::mxcsr_mask_from_saved)?,
                    None => layout.mxcsr_mask(),
                };
                let pkru = match &file.pkru {
                    None => None,
                    Some(p) => Some(PkruBehaviour {
                        on_clear_bit: match p.on_clear_bit.as_str() {
                            "reset" => PkruOnClearBit::Reset,
                            "kept" => PkruOnClearBit::Kept,
                            "loaded" => PkruOnClearBit::Loaded,
                            other => PkruOnClearBit::Other(
                                u32::try_from(hex("pkru.on_clear_bit", other)?).map_err(|_| {
                                    ProfileError::BadField {
                                        field: "pkru.on_clear_bit",
                                        value: other.to_string(),
                                    }
                                })?,
                            ),
                        },
                        keeps_reserved_bytes: p.keeps_reserved_bytes,
                    }),
                };
                let guest_xcr0 = Xfeatures::from_bits(hex("guest_xcr0", xcr0)?);
                let guest_xss = match &file.guest_xss {
                    Some(x) => Xfeatures::from_bits(hex("guest_xss", x)?),
                    None => Xfeatures::EMPTY,
                };
                check_offer(&layout, guest_xcr0, guest_xss, mask)?;
                if let Some(guest_apx) = file.guest_apx {
                    if guest_apx != guest_xcr0.contains(ComponentId::APX) {
                        return Err(ProfileError::GuestApx {
                            guest_apx,
                            guest_xcr0,
                        });
                    }
                }
                let buffer_size = buffer_size(&file, &layout, guest_xcr0)?;
                Some(KvmOffer {
                    kernel_release: file.kernel_release.clone().unwrap_or_default(),
                    guest_xcr0,
                    guest_xss,
                    guest_xfd: file.guest_xfd.unwrap_or(false),
                    xsave2_size: file.xsave2_size,
                    buffer_size,
                    mxcsr_mask: mask,
                    pkru,
                })
            }
        };
        Ok(HostProfile { layout, kvm })
    }

    /// The profile's JSON (see the module docs).
    pub fn to_json(&self) -> String {
        let kvm = self.kvm.as_ref();
        let file = ProfileFile {
            kernel_release: kvm.map(|k| k.kernel_release.clone()),
            xsave2_size: kvm.and_then(|k| k.xsave2_size),
            buffer_size: kvm.map(|k| k.buffer_size),
            guest_xcr0: kvm.map(|k| k.guest_xcr0.to_string()),
            guest_xss: kvm.map(|k| k.guest_xss.to_string()),
            guest_xfd: kvm.map(|k| k.guest_xfd),
            guest_apx: kvm.map(KvmOffer::guest_apx),
            mxcsr_mask: kvm.map(|k| format!("{:#x}", k.mxcsr_mask)),
            pkru: kvm.and_then(|k| k.pkru).map(|p| PkruFile {
                on_clear_bit: match p.on_clear_bit {
                    PkruOnClearBit::Reset => "reset".into(),
                    PkruOnClearBit::Kept => "kept".into(),
                    PkruOnClearBit::Loaded => "loaded".into(),
                    PkruOnClearBit::Other(v) => format!("{v:#x}"),
                },
                keeps_reserved_bytes: p.keeps_reserved_bytes,
            }),
            host_layout: LayoutFile::from_layout(&self.layout),
        };
        serde_json::to_string_pretty(&file).expect("profiles always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog;

    #[test]
    fn profiles_round_trip_and_bad_ones_are_refused() {
        for layout in catalog::all() {
            let cpu_only = HostProfile::from(layout.clone());
            assert_eq!(
                HostProfile::from_json(&cpu_only.to_json()).unwrap(),
                cpu_only
            );
            // KVM's buffers hold every XCR0 bit it offers (11008 bytes with AMX).
            let buffer = (layout.standard_size() as usize).max(4096);
            let mut offer = KvmOffer::new(layout.xcr0_supported(), buffer, 0xffff);
            offer.kernel_release = "6.5.0-foo".into();
            offer.pkru = Some(PkruBehaviour {
                on_clear_bit: PkruOnClearBit::Other(0x44),
                keeps_reserved_bytes: true,
            });
            let full = HostProfile {
                layout: layout.clone(),
                kvm: Some(offer),
            };
            let back = HostProfile::from_json(&full.to_json()).unwrap();
            assert_eq!(back, full);
            assert_eq!(back.kvm.unwrap().kernel_version(), Some((6, 5)));
        }
        let good = HostProfile {
            layout: catalog::get("amd-zen3").unwrap().clone(),
            kvm: Some(KvmOffer::new(Xfeatures::from_bits(0x7), 4096, 0x2ffff)),
        }
        .to_json();
        assert!(matches!(
            HostProfile::from_json("{"),
            Err(ProfileError::Json(_))
        ));
        assert!(matches!(
            HostProfile::from_json("[]"),
            Err(ProfileError::Json(_))
        ));
        let bad_xcr0 = good.replace("\"guest_xcr0\": \"0x7\"", "\"guest_xcr0\": \"zz\"");
        assert!(matches!(
            HostProfile::from_json(&bad_xcr0),
            Err(ProfileError::BadField {
                field: "guest_xcr0",
                ..
            })
        ));
        for (field, from, to) in [
            (
                "guest_xcr0",
                "\"guest_xcr0\": \"0x7\"",
                "\"guest_xcr0\": \"+7\"",
            ),
            (
                "guest_xss",
                "\"guest_xss\": \"0x0\"",
                "\"guest_xss\": \"+0\"",
            ),
            (
                "mxcsr_mask",
                "\"mxcsr_mask\": \"0x2ffff\"",
                "\"mxcsr_mask\": \"+2ffff\"",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let signed = good.replacen(from, to, 1);
            let e = HostProfile::from_json(&signed).unwrap_err();
            assert!(
                matches!(&e, ProfileError::BadField { field: f, .. } if *f == field),
                "{to}: {e:?}"
            );
        }
        // The host layout's fields too.
        let signed = good.replace(
            "\"xcr0_supported\": \"0x207\"",
            "\"xcr0_supported\": \"+207\"",
        );
        assert!(matches!(
            HostProfile::from_json(&signed),
            Err(ProfileError::Layout(FileError::BadField {
                field: "xcr0_supported",
                ..
            }))
        ));
        let huge = good.replace("\"buffer_size\": 4096", "\"buffer_size\": 99999999999");
        assert!(matches!(
            HostProfile::from_json(&huge),
            Err(ProfileError::BadField {
                field: "buffer_size",
                ..
            })
        ));
        let bad_layout = good.replace(
            "\"xcr0_supported\": \"0x207\"",
            "\"xcr0_supported\": \"0x204\"",
        );
        assert!(matches!(
            HostProfile::from_json(&bad_layout),
            Err(ProfileError::Layout(_))
        ));
    }

    #[test]
    fn what_kvm_offers_must_fit_the_host() {
        let zen3 = catalog::get("amd-zen3").unwrap().clone();
        let good = HostProfile {
            layout: zen3.clone(),
            kvm: Some(KvmOffer::new(Xfeatures::from_bits(0x7), 4096, 0x2ffff)),
        }
        .to_json();
        assert!(HostProfile::from_json(&good).is_ok());
        let with = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            HostProfile::from_json(&good.replacen(from, to, 1)).unwrap_err()
        };
        // The testers' guest XCR0 "0x0" and all ones.
        let e = with("\"guest_xcr0\": \"0x7\"", "\"guest_xcr0\": \"0x0\"");
        assert!(
            matches!(e, ProfileError::GuestXcr0Legacy { guest_xcr0 } if guest_xcr0.is_empty()),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host profile's guest_xcr0 0x0 lacks x87 or SSE (bits 0 and 1), which every guest XCR0 has"
        );
        let e = with(
            "\"guest_xcr0\": \"0x7\"",
            "\"guest_xcr0\": \"0xffffffffffffffff\"",
        );
        assert!(
            matches!(e, ProfileError::GuestXcr0 { extra, host_xcr0, .. }
                if extra.bits() == !0x207 && host_xcr0.bits() == 0x207),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host profile's guest_xcr0 0xffffffffffffffff has 0xfffffffffffffdf8, which the host \
             layout's XCR0 0x207 lacks"
        );
        // AVX-512 on a Zen 3 host: not the host's.
        let e = with("\"guest_xcr0\": \"0x7\"", "\"guest_xcr0\": \"0xe7\"");
        assert!(
            matches!(e, ProfileError::GuestXcr0 { extra, .. } if extra.bits() == 0xe0),
            "{e:?}"
        );
        // A guest IA32_XSS beyond the host's (CET_U and CET_S, 0x1800).
        let e = with("\"guest_xss\": \"0x0\"", "\"guest_xss\": \"0x100\"");
        assert!(
            matches!(e, ProfileError::GuestXss { extra, .. } if extra.bits() == 0x100),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host profile's guest_xss 0x100 has 0x100, which the host layout's IA32_XSS 0x1800 lacks"
        );
        assert!(HostProfile::from_json(&good.replacen(
            "\"guest_xss\": \"0x0\"",
            "\"guest_xss\": \"0x800\"",
            1
        ))
        .is_ok());
        // The testers' MXCSR mask "0x0" is what a saved MXCSR_MASK of 0
        // stands for: 0xffbf (Intel SDM vol. 1, 11.6.6).
        let zero = HostProfile::from_json(&good.replacen(
            "\"mxcsr_mask\": \"0x2ffff\"",
            "\"mxcsr_mask\": \"0x0\"",
            1,
        ))
        .unwrap();
        assert_eq!(zero.kvm.unwrap().mxcsr_mask, MXCSR_MASK_MIN);
        // One without DAZ's neighbours is refused.
        let e = with("\"mxcsr_mask\": \"0x2ffff\"", "\"mxcsr_mask\": \"0xff3f\"");
        assert!(
            matches!(e, ProfileError::MxcsrMask { mask: 0xff3f }),
            "{e:?}"
        );
        // The minimum itself (no DAZ) is taken.
        assert!(HostProfile::from_json(&good.replacen(
            "\"mxcsr_mask\": \"0x2ffff\"",
            "\"mxcsr_mask\": \"0xffbf\"",
            1
        ))
        .is_ok());
        // The host layout's own mask is held to the same minimum.
        let host_mask = good.rfind("\"mxcsr_mask\": \"0x2ffff\"").unwrap();
        let mut bad = good.clone();
        bad.replace_range(
            host_mask..host_mask + "\"mxcsr_mask\": \"0x2ffff\"".len(),
            "\"mxcsr_mask\": \"0xff3f\"",
        );
        assert!(
            matches!(
                HostProfile::from_json(&bad),
                Err(ProfileError::Layout(FileError::Layout(
                    crate::LayoutError::MxcsrMask { mask: 0xff3f }
                )))
            ),
            "{bad}"
        );
    }

    /// The shipped Emerald Rapids profile's text (guest XCR0 0x2e7, 4096-byte
    /// buffers, MXCSR mask 0xffff like its host layout's).
    fn emr() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/intel-emr-kvm-profile.json"
        ))
        .unwrap()
    }

    fn emr_with(changes: &[(&str, serde_json::Value)]) -> Result<HostProfile, ProfileError> {
        let mut v: serde_json::Value = serde_json::from_str(&emr()).unwrap();
        for (field, value) in changes {
            v[*field] = value.clone();
        }
        HostProfile::from_json(&v.to_string())
    }

    #[test]
    fn kvm_takes_no_mxcsr_bit_the_host_does_not() {
        assert_eq!(
            HostProfile::from_json(&emr())
                .unwrap()
                .kvm
                .unwrap()
                .mxcsr_mask,
            0xffff
        );
        for wide in ["0xffffffff", "0x2ffff", "0x1ffff"] {
            let e = emr_with(&[("mxcsr_mask", wide.into())]).unwrap_err();
            assert!(
                matches!(
                    e,
                    ProfileError::MxcsrMaskWider {
                        host_mask: 0xffff,
                        ..
                    }
                ),
                "{wide}: {e:?}"
            );
        }
        let e = emr_with(&[("mxcsr_mask", "0xffffffff".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host profile's mxcsr_mask 0xffffffff has bits 0xffff0000 outside the host layout's \
             MXCSR mask 0xffff: KVM_SET_XSAVE takes no MXCSR bit the host CPU does not"
        );
        // Narrower than the host's (no DAZ) is possible, and taken.
        let p = emr_with(&[("mxcsr_mask", "0xffbf".into())]).unwrap();
        assert_eq!(p.kvm.unwrap().mxcsr_mask, 0xffbf);
    }

    #[test]
    fn impossible_kvm_offers_are_refused() {
        use serde_json::json;
        // Buffers below struct kvm_xsave's 4096 bytes: refused, not raised.
        let e = emr_with(&[("buffer_size", json!(1)), ("xsave2_size", json!(1))]).unwrap_err();
        assert!(
            matches!(e, ProfileError::BufferTooSmall { size: 1, .. }),
            "{e:?}"
        );
        for field in ["buffer_size", "xsave2_size"] {
            let e = emr_with(&[(field, json!(4095))]).unwrap_err();
            assert!(
                matches!(&e, ProfileError::BufferTooSmall { field: f, size: 4095 } if *f == field),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "host profile's {field} 4095 is below 4096 bytes, the size of struct \
                     kvm_xsave, which KVM's XSAVE buffers never go below"
                )
            );
        }
        // Without either, 4096.
        let mut v: serde_json::Value = serde_json::from_str(&emr()).unwrap();
        v.as_object_mut().unwrap().remove("buffer_size");
        v.as_object_mut().unwrap().remove("xsave2_size");
        let p = HostProfile::from_json(&v.to_string()).unwrap();
        assert_eq!(p.kvm.unwrap().buffer_size, 4096);
        // AMX offered in a 4096-byte buffer: its area is 11008 bytes.
        let amx = [
            ("guest_xcr0", json!("0x602e7")),
            ("guest_xfd", json!(true)),
            ("buffer_size", json!(4096)),
            ("xsave2_size", json!(4096)),
        ];
        let e = emr_with(&amx).unwrap_err();
        assert!(
            matches!(
                e,
                ProfileError::BufferTooSmallForXcr0 {
                    buffer_size: 4096,
                    needs: 11008,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host profile's buffer_size 4096 is smaller than the 11008 bytes of the \
             standard-format area for its guest_xcr0 0x602e7, for which KVM sizes its buffers"
        );
        let mut fits = amx;
        fits[2].1 = json!(11008);
        fits[3].1 = json!(11008);
        assert_eq!(emr_with(&fits).unwrap().kvm.unwrap().buffer_size, 11008);
        // Guest XCR0 values XSETBV refuses: half of AVX-512, TILECFG alone.
        for (xcr0, says) in [("0x2a7", "AVX-512"), ("0x202e7", "TILECFG")] {
            let e = emr_with(&[("guest_xcr0", xcr0.into())]).unwrap_err();
            assert!(matches!(e, ProfileError::GuestXcr0Rule { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "host profile's guest_xcr0 is no XCR0 KVM offers guests: XCR0 {xcr0} breaks a rule"
                )) && msg.contains(says),
                "{msg}"
            );
        }
        // guest_apx against bit 19 of guest_xcr0, both ways.
        let e = emr_with(&[("guest_apx", json!(true))]).unwrap_err();
        assert!(
            matches!(
                e,
                ProfileError::GuestApx {
                    guest_apx: true,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host profile's guest_apx true disagrees with its guest_xcr0 0x2e7, whose bit 19 \
             (APX) is clear"
        );
        let dmr = crate::layout::catalog::get("intel-diamond-rapids").unwrap();
        let apx = dmr.xcr0_supported();
        assert!(apx.contains(crate::ComponentId::APX));
        let mut offer = KvmOffer::new(apx, (dmr.standard_size() as usize).max(4096), 0xffff);
        offer.guest_xfd = true;
        let text = HostProfile {
            layout: dmr.clone(),
            kvm: Some(offer),
        }
        .to_json();
        assert!(HostProfile::from_json(&text).is_ok());
        let e =
            HostProfile::from_json(&text.replace("\"guest_apx\": true", "\"guest_apx\": false"))
                .unwrap_err();
        assert!(
            matches!(
                e,
                ProfileError::GuestApx {
                    guest_apx: false,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().ends_with("whose bit 19 (APX) is set"), "{e}");
    }
}
