//! Coordinates inside a CPUID result: which register, which feature bit.

use core::fmt;

use crate::layout::CpuidRegs;

/// One of the four registers a CPUID sub-leaf returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

impl Reg {
    /// The four registers in the order CPUID tools print them.
    pub const ALL: [Reg; 4] = [Reg::Eax, Reg::Ebx, Reg::Ecx, Reg::Edx];

    /// Lower-case name (`"eax"`), as in `cpuid -r` output and KVM JSON keys.
    pub const fn name(self) -> &'static str {
        match self {
            Reg::Eax => "eax",
            Reg::Ebx => "ebx",
            Reg::Ecx => "ecx",
            Reg::Edx => "edx",
        }
    }

    /// This register's value in `regs`.
    pub const fn read(self, regs: &CpuidRegs) -> u32 {
        match self {
            Reg::Eax => regs.eax,
            Reg::Ebx => regs.ebx,
            Reg::Ecx => regs.ecx,
            Reg::Edx => regs.edx,
        }
    }

    /// A mutable reference to this register in `regs`.
    pub fn slot(self, regs: &mut CpuidRegs) -> &mut u32 {
        match self {
            Reg::Eax => &mut regs.eax,
            Reg::Ebx => &mut regs.ebx,
            Reg::Ecx => &mut regs.ecx,
            Reg::Edx => &mut regs.edx,
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reg::Eax => "EAX",
            Reg::Ebx => "EBX",
            Reg::Ecx => "ECX",
            Reg::Edx => "EDX",
        })
    }
}

/// One CPUID feature flag: `CPUID.(EAX=leaf, ECX=subleaf):register[bit]`.
///
/// ```
/// use xstate::cpuid::{FeatureBit, Reg};
///
/// const AVX: FeatureBit = FeatureBit::new("AVX", 1, 0, Reg::Ecx, 28);
/// assert_eq!(AVX.mask(), 1 << 28);
/// assert_eq!(AVX.to_string(), "AVX (CPUID.(EAX=0x1,ECX=0):ECX[28])");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureBit {
    /// Name as the SDM and Linux spell it (`"AVX512F"`).
    pub name: &'static str,
    /// Leaf (EAX input).
    pub leaf: u32,
    /// Sub-leaf (ECX input); 0 for leaves without sub-leaves.
    pub subleaf: u32,
    /// The output register holding the flag.
    pub register: Reg,
    /// Bit number in that register, 0..=31.
    pub bit: u8,
}

impl FeatureBit {
    /// A feature flag at `CPUID.(leaf, subleaf):register[bit]`; `bit` must be below 32.
    pub const fn new(
        name: &'static str,
        leaf: u32,
        subleaf: u32,
        register: Reg,
        bit: u8,
    ) -> FeatureBit {
        assert!(bit < 32, "a CPUID register has 32 bits");
        FeatureBit {
            name,
            leaf,
            subleaf,
            register,
            bit,
        }
    }

    /// The flag's bit within its register.
    pub const fn mask(&self) -> u32 {
        1 << self.bit
    }
}

impl fmt::Display for FeatureBit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (CPUID.(EAX={:#x},ECX={}):{}[{}])",
            self.name, self.leaf, self.subleaf, self.register, self.bit
        )
    }
}
