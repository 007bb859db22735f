//! Core files as `decode` reads them: one thread's `NT_X86_XSTATE` (or
//! `NT_PRFPREG`), and the layout of its `NT_X86_XSAVE_LAYOUT` note.

use std::path::Path;

use xstate::artifact::core::{Core, CoreError};
use xstate::Layout;

use super::{fail, REJECTED, USAGE};

/// One thread of a core, as `decode` shows it.
pub struct FromCore {
    /// The area: the thread's `NT_X86_XSTATE`, or its `NT_PRFPREG` image.
    pub area: Vec<u8>,
    /// Which note the area is.
    pub note: &'static str,
    /// The thread shown (0-based) and how many the core has.
    pub thread: usize,
    pub threads: usize,
    /// The thread's pid (`NT_PRSTATUS`).
    pub pid: Option<u32>,
    /// The layout of the core's `NT_X86_XSAVE_LAYOUT` note.
    pub note_layout: Option<Layout>,
    /// Whether the core has that note.
    pub has_layout_note: bool,
}

/// Reads thread `thread` of the core file at `path`: exit 1 for a file
/// that is no x86_64 core or lacks that thread, 2 when it cannot be read.
pub fn read(path: &Path, thread: usize) -> Result<FromCore, u8> {
    let what = path.display();
    let core = Core::open(path).map_err(|e| {
        let code = if matches!(e, CoreError::Io { .. }) {
            USAGE
        } else {
            REJECTED
        };
        fail(code, format_args!("{what}: {}", super::chain(&e)))
    })?;
    let threads = core.threads().len();
    let Some(t) = core.threads().get(thread) else {
        return Err(fail(
            REJECTED,
            format_args!("{what}: no thread {thread} (the core holds {threads}, from 0)"),
        ));
    };
    let (area, note) = match (&t.xstate, &t.fpregs) {
        (Some(x), _) => (x.clone(), "NT_X86_XSTATE"),
        (None, Some(f)) => (f.clone(), "NT_PRFPREG"),
        (None, None) => unreachable!("Core keeps threads with XSAVE state only"),
    };
    let name = path
        .file_stem()
        .map_or_else(|| "core".into(), |s| s.to_string_lossy().into_owned());
    let note_layout = core
        .layout(&name)
        .map_err(|e| fail(REJECTED, format_args!("{what}: {}", super::chain(&e))))?;
    Ok(FromCore {
        has_layout_note: note_layout.is_some(),
        area,
        note,
        thread,
        threads,
        pid: t.pid,
        note_layout,
    })
}
