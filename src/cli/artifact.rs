//! `xstate convert --to-core-notes / --to-ptrace / --to-sigframe`: an area
//! as the kernel's and debuggers' artifacts take it, always the standard
//! format (a compacted area, an MSHV or WHP buffer, is converted).

use std::path::{Path, PathBuf};

use xstate::artifact::{notes, ptrace, sigframe, UserAreaError};
use xstate::{Layout, Xfeatures};

use super::{fail, output, REJECTED, USAGE};

/// The artifact options of `convert`.
#[derive(Debug, Default, clap::Args)]
pub struct ArtifactArgs {
    /// Write core-file note descriptors instead of an area: PREFIX.xstate
    /// (NT_X86_XSTATE: standard format of the --to layout, XCR0 at 464)
    /// and PREFIX.layout (NT_X86_XSAVE_LAYOUT records), as a Linux core of
    /// that CPU holds them and gdb reads them.
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["to_ptrace", "to_sigframe", "kvm", "compacted"])]
    pub to_core_notes: Option<PathBuf>,
    /// Write a PTRACE_SETREGSET NT_X86_XSTATE buffer instead: standard
    /// format, exactly the kernel's user size for the XCR0 (the kernel
    /// refuses a compacted one).
    #[arg(long, value_name = "OUT", conflicts_with_all = ["to_sigframe", "kvm", "compacted"])]
    pub to_ptrace: Option<PathBuf>,
    /// Write a signal-frame fpstate instead: the standard-format area with
    /// _fpx_sw_bytes (xfeatures the XCR0) and magic2 after it, which
    /// sigreturn restores.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["kvm", "compacted"])]
    pub to_sigframe: Option<PathBuf>,
}

impl ArtifactArgs {
    /// The files the artifact asked for is written to.
    pub fn outputs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .to_core_notes
            .iter()
            .flat_map(|p| [with_ext(p, ".layout"), with_ext(p, ".xstate")])
            .collect();
        out.extend(self.to_ptrace.iter().cloned());
        out.extend(self.to_sigframe.iter().cloned());
        out
    }

    /// Whether an artifact is asked for.
    pub fn any(&self) -> bool {
        self.to_core_notes.is_some() || self.to_ptrace.is_some() || self.to_sigframe.is_some()
    }
}

/// `prefix` with `ext` appended (`notes` + `.xstate`).
fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut p = prefix.as_os_str().to_owned();
    p.push(ext);
    PathBuf::from(p)
}

/// The XCR0 the artifact carries: `--guest-xcr0`, else this host's XCR0
/// (XGETBV) for `--to host`, else the layout's user components.
fn artifact_xcr0(to_spec: &str, to: &Layout, guest_xcr0: Option<Xfeatures>) -> Xfeatures {
    if let Some(x) = guest_xcr0 {
        return x;
    }
    #[cfg(target_arch = "x86_64")]
    if to_spec == "host" {
        if let Some(x) = xstate::host::xcr0() {
            return x & to.xcr0_supported();
        }
    }
    let _ = to_spec;
    to.xcr0_supported()
}

/// Writes the artifact asked for from `area` (layout `from`) in layout
/// `to`.
pub fn write(
    args: &ArtifactArgs,
    what: &str,
    area: &[u8],
    from: &Layout,
    to_spec: &str,
    to: &Layout,
    guest_xcr0: Option<Xfeatures>,
) -> u8 {
    let xcr0 = artifact_xcr0(to_spec, to, guest_xcr0);
    let refused = |e: UserAreaError| fail(REJECTED, format_args!("{what}: {e}"));
    let written = |path: &Path, bytes: &[u8]| {
        output::write_atomically(path, bytes)
            .map_err(|e| fail(USAGE, format_args!("{}: {e}", path.display())))
    };
    let result = if let Some(prefix) = &args.to_core_notes {
        notes::xstate_descriptor(area, from, to, xcr0)
            .map_err(refused)
            .and_then(|x| {
                let layout = notes::layout_descriptor(to, xcr0);
                let with = |ext: &str| with_ext(prefix, ext);
                // Neither may be a directory: found before anything is
                // written, so a refusal changes nothing.
                for path in [with(".layout"), with(".xstate")] {
                    if path.is_dir() {
                        return Err(fail(
                            USAGE,
                            format_args!("{}: a directory: not written", path.display()),
                        ));
                    }
                }
                // The second write failing removes the first file only
                // when this run created it.
                let layout_existed = std::fs::symlink_metadata(with(".layout")).is_ok();
                written(&with(".layout"), &layout)?;
                written(&with(".xstate"), &x).inspect_err(|_| {
                    if !layout_existed {
                        let _ = std::fs::remove_file(with(".layout"));
                    }
                })
            })
    } else if let Some(out) = &args.to_ptrace {
        ptrace::setregset_buffer(area, from, to, xcr0)
            .map_err(refused)
            .and_then(|b| written(out, &b))
    } else if let Some(out) = &args.to_sigframe {
        sigframe::frame(area, from, to, xcr0)
            .map_err(refused)
            .and_then(|b| written(out, &b))
    } else {
        Ok(())
    };
    match result {
        Ok(()) => 0,
        Err(code) => code,
    }
}
