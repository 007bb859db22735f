//! Kernel and debugger artifacts that carry XSAVE state, in and out.
//!
//! | artifact | format | software bytes (464..512) |
//! |---|---|---|
//! | `PTRACE_GETREGSET` / `SETREGSET` `NT_X86_XSTATE` | standard, user components, the kernel's user xstate size | XCR0 at 464 |
//! | core dump `NT_X86_XSTATE` (note 0x202) | as ptrace | XCR0 at 464 |
//! | core dump `NT_X86_XSAVE_LAYOUT` (note 0x205, Linux 6.12+) | `{u32 type, size, offset, flags}` per extended user component | - |
//! | `NT_PRFPREG`, `PTRACE_GETFPREGS`, `KVM_GET_FPU` | 512-byte FXSAVE image ([`fxsave`]) | - |
//! | signal frame `fpstate` | standard, the thread's user XCR0 | `_fpx_sw_bytes`, magic2 after the area |
//! | `KVM_GET_XSAVE` / `KVM_GET_XSAVE2` | standard, 4096 bytes or `KVM_CAP_XSAVE2` | the host's user XCR0 at 464 |
//!
//! [`swbytes`] reads the software bytes and refuses a layout that cannot
//! have written them; [`fxsave`] reads FXSAVE images; `core` (`std`) reads
//! core files' notes. Out, every consumer takes the standard format:
//! [`ptrace`] builds `PTRACE_SETREGSET` buffers (the kernel refuses a
//! compacted one), [`sigframe`] signal-frame areas `sigreturn` restores,
//! [`notes`] the `NT_X86_XSTATE` and `NT_X86_XSAVE_LAYOUT` descriptors of
//! a core gdb reads.

#[cfg(feature = "std")]
pub mod core;
pub mod fxsave;
#[cfg(feature = "alloc")]
pub mod notes;
#[cfg(feature = "alloc")]
pub mod ptrace;
#[cfg(feature = "alloc")]
pub mod sigframe;
pub mod swbytes;
#[cfg(feature = "alloc")]
mod user;

#[cfg(feature = "alloc")]
pub use user::UserAreaError;
