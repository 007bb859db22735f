//! `xstate kvm`: KVM capabilities and pre-flight checks.

/// KVM subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KvmCommand {
    /// KVM's XSAVE capabilities on this host.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(_cmd: &KvmCommand) -> u8 {
    super::fail(
        super::USAGE,
        "the kvm subcommands are not available in this build",
    )
}

/// The KVM part of `xstate report`.
pub fn report() -> String {
    "not available in this build\n".into()
}
