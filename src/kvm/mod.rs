//! KVM integration.
