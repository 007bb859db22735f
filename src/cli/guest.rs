//! The guest description options shared by `stream encode`, `stream check`
//! and `convert`: `--guest-xcr0`, `--guest-cpuid` and `--xfd`.

use std::path::PathBuf;

use xstate::migrate::{Guest, Masking};
use xstate::xregs::XstateRegisters;
use xstate::Xfeatures;

use super::{fail, REJECTED};

/// What is known of the guest whose state this is.
#[derive(Debug, Default, clap::Args)]
pub struct GuestArgs {
    /// The vCPU's XCR0 (hex, obeying the XSETBV rules): live components it
    /// does not enable are masked (not PKRU, which CR4.PKE reaches alone),
    /// and the destination must be able to set it.
    #[arg(long, value_name = "MASK", value_parser = parse_xcr0)]
    guest_xcr0: Option<Xfeatures>,
    /// The guest's CPUID (`cpuid -r` text, an InstLatx64 dump, or KVM
    /// `kvm_cpuid2` entries as JSON): components its leaf 0xD does not
    /// expose are masked.
    #[arg(long, value_name = "FILE")]
    guest_cpuid: Option<PathBuf>,
    /// The vCPU's IA32_XFD (hex; XFD-capable components only, AMX tile
    /// data): disabled components are saved as init.
    #[arg(long, value_name = "MASK", value_parser = parse_xfd)]
    xfd: Option<Xfeatures>,
}

impl GuestArgs {
    /// `--guest-xcr0`, when given.
    pub fn xcr0(&self) -> Option<Xfeatures> {
        self.guest_xcr0
    }
}

/// A hex mask (`0x2e7`, `2e7`; no sign).
pub fn parse_mask(s: &str) -> Result<Xfeatures, String> {
    s.parse().map_err(|_| format!("{s:?} is not a hex mask"))
}

/// An XCR0 a vCPU can hold: a hex mask obeying the XSETBV rules.
fn parse_xcr0(s: &str) -> Result<Xfeatures, String> {
    let xcr0 = parse_mask(s)?;
    XstateRegisters::with_xcr0(xcr0)
        .check()
        .map(|()| xcr0)
        .map_err(|e| e.to_string())
}

/// An IA32_XFD a vCPU can hold: a hex mask of XFD-capable components.
fn parse_xfd(s: &str) -> Result<Xfeatures, String> {
    let xfd = parse_mask(s)?;
    let regs = XstateRegisters {
        xfd,
        ..XstateRegisters::with_xcr0(Xfeatures::LEGACY)
    };
    regs.check().map(|()| xfd).map_err(|e| e.to_string())
}

impl GuestArgs {
    /// The guest these options describe (everything unknown without them).
    pub fn guest(&self) -> Result<Guest, u8> {
        let model_xcr0 = match &self.guest_cpuid {
            None => None,
            Some(path) => Some(cpuid_xcr0(path)?),
        };
        Ok(Guest {
            xcr0: self.guest_xcr0,
            model_xcr0,
            xss: None,
            xfd: self.xfd.unwrap_or_default(),
        })
    }
}

/// Leaf 0xD sub-leaf 0's XCR0 bits in a guest CPUID file (any format
/// `CpuidSet` reads).
fn cpuid_xcr0(path: &std::path::Path) -> Result<Xfeatures, u8> {
    let (set, _) = super::cpuid::load(path)?;
    if set.entry(0xd, 0).is_none() {
        return Err(fail(
            REJECTED,
            format_args!(
                "{}: no CPUID leaf 0xD sub-leaf 0 found (a `cpuid -r` file or kvm_cpuid2 entries as JSON)",
                path.display()
            ),
        ));
    }
    // A CPU model whose XCR0 bits break an XSETBV rule describes no guest.
    let xcr0 = set.xcr0_supported();
    XstateRegisters::with_xcr0(xcr0).check().map_err(|e| {
        fail(
            REJECTED,
            format_args!("{}: leaf 0xD sub-leaf 0: {e}", path.display()),
        )
    })?;
    Ok(xcr0)
}

/// Prints every masking to stderr: nothing is dropped silently.
pub fn report(what: &str, masked: &[Masking]) {
    for m in masked {
        eprintln!("xstate: {what}: {m}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_are_hex_without_a_sign() {
        assert_eq!(
            super::parse_mask("0x2e7"),
            Ok(xstate::Xfeatures::from_bits(0x2e7))
        );
        assert_eq!(super::parse_mask("e7").unwrap().bits(), 0xe7);
        assert_eq!(
            super::parse_mask("+7").unwrap_err(),
            "\"+7\" is not a hex mask"
        );
        assert!(super::parse_mask("0x+7").is_err());
    }
}
