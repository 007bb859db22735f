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
use crate::component::Xfeatures;
use crate::layout::{FileError, LayoutFile};

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
}

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

impl HostProfile {
    /// Parses a profile's JSON (see the module docs).
    ///
    /// # Errors
    ///
    /// [`ProfileError::Json`] for text that is not a profile,
    /// [`ProfileError::BadField`] for a value that does not parse (the
    /// guest XCR0 is required for the KVM part), [`ProfileError::Layout`]
    /// for an invalid host layout.
    pub fn from_json(text: &str) -> Result<HostProfile, ProfileError> {
        let file: ProfileFile = serde_json::from_str(text).map_err(ProfileError::Json)?;
        let layout = file.host_layout.to_layout().map_err(ProfileError::Layout)?;
        let kvm = match &file.guest_xcr0 {
            None => None,
            Some(xcr0) => {
                let mask = match &file.mxcsr_mask {
                    Some(m) => u32::try_from(hex("mxcsr_mask", m)?).map_err(|_| {
                        ProfileError::BadField {
                            field: "mxcsr_mask",
                            value: m.clone(),
                        }
                    })?,
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
                let buffer_size = file
                    .buffer_size
                    .or(file.xsave2_size)
                    .unwrap_or(4096)
                    .max(4096);
                if buffer_size > 1 << 24 {
                    return Err(ProfileError::BadField {
                        field: "buffer_size",
                        value: buffer_size.to_string(),
                    });
                }
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
            let mut offer = KvmOffer::new(layout.xcr0_supported(), 4096, 0xffff);
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
}
