//! `xstate stream`: encode an XSAVE area as a migration stream, decode one
//! for a destination, check a stream against a destination.

use std::path::PathBuf;

use serde_json::json;
use xstate::area::AreaHeader;
use xstate::migrate::stream::{self, Source, Vcpu};
use xstate::migrate::{check, Incompatibility};
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, RegisterFile, XcompBv};

use super::{fail, output, REJECTED, USAGE};

/// Stream subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StreamCommand {
    /// Encode an XSAVE area (standard or compacted) as a one-vCPU stream
    /// (version 2: XCR0 is the layout's supported user components, IA32_XSS
    /// the supervisor components a compacted area's XCOMP_BV holds,
    /// IA32_XFD and IA32_XFD_ERR 0).
    Encode {
        /// The XSAVE area.
        input: PathBuf,
        /// The stream to write.
        output: PathBuf,
        /// The area's layout.
        #[arg(long)]
        layout: String,
    },
    /// Decode a stream's vCPU into the destination's standard format (PKRU
    /// written with its XSTATE_BV bit set, so every kernel restores it
    /// alike).
    Decode {
        /// The stream.
        input: PathBuf,
        /// The XSAVE area to write.
        output: PathBuf,
        /// The destination layout.
        #[arg(long, required_unless_present = "kvm", conflicts_with = "kvm")]
        layout: Option<String>,
        /// Write for KVM on this host: the host layout, exactly KVM's buffer
        /// size (KVM_CAP_XSAVE2), checked as KVM_SET_XSAVE would.
        #[arg(long)]
        kvm: bool,
        /// Which vCPU of the stream.
        #[arg(long, default_value_t = 0)]
        vcpu: usize,
    },
    /// Check whether every vCPU of a stream can go to a destination (exit 1
    /// when not, listing every reason).
    Check {
        /// The stream.
        input: PathBuf,
        /// The destination layout.
        #[arg(long)]
        to: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>, u8> {
    std::fs::read(path).map_err(|e| fail(USAGE, format_args!("{}: {e}", path.display())))
}

/// Reads a stream file and decodes every vCPU.
pub fn load(path: &PathBuf) -> Result<Vec<Vcpu>, u8> {
    let bytes = read(path)?;
    stream::decode(&bytes)
        .map(|(_, v)| v)
        .map_err(|e| fail(REJECTED, format_args!("{}: {e}", path.display())))
}

/// The registers `stream encode` gives an area's vCPU, which no live vCPU
/// describes: XCR0 the layout's supported user components; IA32_XSS the
/// supervisor components a compacted area holds (XSAVES writes XCOMP_BV
/// from XCR0 | IA32_XSS), none for the standard format; no XFD.
fn area_registers(area: &[u8], layout: &xstate::Layout) -> XstateRegisters {
    let held = AreaHeader::parse(area, layout)
        .map(|h| h.xcomp_bv.components())
        .unwrap_or_default();
    XstateRegisters {
        xss: held & layout.xss_supported(),
        ..XstateRegisters::with_xcr0(layout.xcr0_supported())
    }
}

pub fn run(cmd: &StreamCommand) -> u8 {
    match try_run(cmd) {
        Ok(code) | Err(code) => code,
    }
}

fn try_run(cmd: &StreamCommand) -> Result<u8, u8> {
    match cmd {
        StreamCommand::Encode {
            input,
            output,
            layout,
        } => {
            let layout = super::load_layout(layout)?;
            let bytes = read(input)?;
            let regs = RegisterFile::decode(&bytes, &layout)
                .map_err(|e| fail(REJECTED, format_args!("{}: {e}", input.display())))?;
            let vcpu = Vcpu::new(regs, area_registers(&bytes, &layout));
            let out = stream::encode(&[vcpu], &Source::of(&layout))
                .map_err(|e| fail(REJECTED, format_args!("{}: {e}", input.display())))?;
            output::write_atomically(output, &out)
                .map_err(|e| fail(USAGE, format_args!("{}: {e}", output.display())))?;
            Ok(0)
        }
        StreamCommand::Decode {
            input,
            output,
            layout,
            kvm: _,
            vcpu,
        } => {
            let vcpus = load(input)?;
            let regs = vcpus.get(*vcpu).map(|v| &v.state).ok_or_else(|| {
                fail(
                    REJECTED,
                    format_args!(
                        "{}: no vCPU {vcpu} (the stream holds {})",
                        input.display(),
                        vcpus.len()
                    ),
                )
            })?;
            let rejected = |e: &dyn std::fmt::Display| {
                fail(
                    REJECTED,
                    format_args!("{}: vCPU {vcpu}: {e}", input.display()),
                )
            };
            let area = match layout {
                Some(spec) => {
                    let layout = super::load_layout(spec)?;
                    let mut area = vec![0u8; layout.standard_size() as usize];
                    // PKRU goes with its bit set: KVM_SET_XSAVE treats a
                    // clear bit differently on different kernels.
                    regs.encode_into_pinned(
                        &mut area,
                        &layout,
                        XcompBv::STANDARD,
                        ComponentId::PKRU.bit(),
                    )
                    .map_err(|e| rejected(&e))?;
                    area
                }
                // Without --layout, clap has required --kvm.
                None => kvm_area(regs).map_err(|e| rejected(&e))?,
            };
            output::write_atomically(output, &area)
                .map_err(|e| fail(USAGE, format_args!("{}: {e}", output.display())))?;
            Ok(0)
        }
        StreamCommand::Check { input, to, json } => {
            let layout = super::load_profile(to)?.layout;
            let vcpus = load(input)?;
            let reports: Vec<_> = vcpus.iter().map(|v| check(&v.state, &layout)).collect();
            let compatible = reports.iter().all(|r| r.is_compatible());
            if *json {
                let per_vcpu: Vec<_> = reports
                    .iter()
                    .enumerate()
                    .map(|(n, r)| {
                        json!({
                            "vcpu": n,
                            "compatible": r.is_compatible(),
                            "kvm_set_xsave_ok": r.kvm_set_xsave_ok,
                            "reasons": r.incompatibilities.iter().map(Incompatibility::to_string).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                let out = json!({"destination": layout.name(), "compatible": compatible, "vcpus": per_vcpu});
                println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            } else {
                for (n, r) in reports.iter().enumerate() {
                    if r.is_compatible() {
                        println!("vCPU {n}: compatible with {}", layout.name());
                    }
                    for reason in &r.incompatibilities {
                        println!("vCPU {n}: {reason}");
                    }
                    if r.incompatibilities.is_empty() && !r.kvm_set_xsave_ok {
                        println!(
                            "vCPU {n}: KVM_SET_XSAVE on {} would reject the state",
                            layout.name()
                        );
                    }
                }
            }
            Ok(if compatible { 0 } else { REJECTED })
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn kvm_area(regs: &RegisterFile) -> Result<Vec<u8>, String> {
    super::kvm::kvm_area(regs)
}

#[cfg(not(target_arch = "x86_64"))]
fn kvm_area(_: &RegisterFile) -> Result<Vec<u8>, String> {
    Err("KVM XSAVE buffers exist only on x86_64".into())
}
