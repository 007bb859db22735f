//! A child process holding known XSAVE state: the oracle for the kernel's
//! and debuggers' artifacts (ptrace buffers, signal frames, core files).
//!
//! [`XstateChild::spawn`] forks a child that restores an area with XRSTOR
//! and then only saves its own registers, in a loop, into memory shared
//! with the parent ([`XstateChild::own_state`]): no code between runs that
//! could change them. So what a tracer reads (`PTRACE_GETREGSET`, gdb),
//! what a core file holds and what the child itself saves must all equal
//! the area restored; and after a tracer's `PTRACE_SETREGSET` or a signal
//! handler's edit of its frame, the child's own saves say what the kernel
//! really loaded.
//!
//! With [`ChildOptions::signal`], the child sends itself SIGUSR1 right
//! after the XRSTOR; its handler copies the signal frame's `fpstate`
//! ([`XstateChild::signal_frame`]) and, when given one, writes a
//! replacement area into the frame for `sigreturn` to restore. With
//! [`ChildOptions::abort_in`], the child then aborts with a core dump
//! written into that directory (the kernel's `core_pattern` decides the
//! name; RLIMIT_CORE is raised for the child alone).
//!
//! The shared memory is a seqlock: the child's counter is odd while it
//! saves, so the parent copies only whole saves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::component::ComponentId;

use super::oracle::{halves, Host, HostArea, HostError};

/// The most bytes of an area the child restores, saves or hands over.
const MAX_AREA: usize = 64 << 10;
/// Offsets in the shared memory.
const SEQ: usize = 0;
const FRAME_LEN: usize = 8;
const REPLACEMENT_LEN: usize = 16;
const OWN: usize = 4096;
const FRAME: usize = OWN + MAX_AREA;
const REPLACEMENT: usize = FRAME + MAX_AREA;
const SHARED: usize = REPLACEMENT + MAX_AREA;

/// What the child does besides holding its state.
#[derive(Clone, Debug, Default)]
pub struct ChildOptions {
    /// Send itself SIGUSR1 right after restoring the area, its handler
    /// copying the signal frame out.
    pub signal: bool,
    /// With `signal`: the `fpstate` bytes (area, `_fpx_sw_bytes` and
    /// magic2 included) the handler writes into the frame before returning.
    pub replacement_frame: Option<Vec<u8>>,
    /// Abort (SIGABRT, core dumped) after restoring the area (and after
    /// the signal), with this directory as its working directory.
    pub abort_in: Option<std::path::PathBuf>,
}

/// A forked child holding an XSAVE area in its registers. Killed and
/// reaped on drop.
#[derive(Debug)]
pub struct XstateChild {
    pid: libc::pid_t,
    shared: *mut u8,
    own_len: usize,
    reaped: bool,
}

/// Where the signal handler finds the shared memory (set before the fork,
/// read by the child only).
static SHARED_AT: AtomicU64 = AtomicU64::new(0);
/// Held from setting [`SHARED_AT`] to the fork.
static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn os_error(what: &'static str) -> HostError {
    HostError::Os {
        what,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

impl XstateChild {
    /// Forks the child; it restores `area` (standard format, the host's
    /// layout, RFBM = XCR0 without AMX tile data) and saves its own
    /// registers with XSAVE in a loop.
    ///
    /// # Errors
    ///
    /// As [`Host::check_restorable`]; [`HostError::Os`] when the shared
    /// memory, the signal handler or the fork fails; an area or
    /// replacement over 64 KiB is [`HostError::Os`] with `EINVAL`.
    pub fn spawn(
        host: &Host,
        area: &[u8],
        options: &ChildOptions,
    ) -> Result<XstateChild, HostError> {
        host.check_restorable(area)?;
        let replacement = options.replacement_frame.as_deref().unwrap_or_default();
        if area.len() > MAX_AREA || replacement.len() > MAX_AREA {
            return Err(HostError::Os {
                what: "area too large for the child",
                errno: libc::EINVAL,
            });
        }
        let abort_dir = match &options.abort_in {
            Some(dir) => Some(
                std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
                    HostError::Os {
                        what: "directory name with a NUL",
                        errno: libc::EINVAL,
                    }
                })?,
            ),
            None => None,
        };
        let mut input = HostArea::from_bytes(area);
        // SAFETY: an anonymous shared mapping of SHARED bytes; no address
        // given, no file; the result is checked.
        let shared = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                SHARED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if shared == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        let shared = shared.cast::<u8>();
        // SAFETY: the mapping is SHARED bytes long and writable; the
        // replacement fits (checked above) and the length word is inside.
        unsafe {
            core::ptr::copy_nonoverlapping(
                replacement.as_ptr(),
                shared.add(REPLACEMENT),
                replacement.len(),
            );
            shared
                .add(REPLACEMENT_LEN)
                .cast::<u64>()
                .write(replacement.len() as u64);
        }
        let own_len = host.layout().standard_size_for(host.xcr0()) as usize;
        let rfbm = host.xcr0().without(ComponentId::TILEDATA);
        let (lo, hi) = halves(rfbm);
        // One spawn at a time: the child must see its own mapping in
        // SHARED_AT, not another thread's.
        let guard = FORKING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        SHARED_AT.store(shared as u64, Ordering::SeqCst);
        // SAFETY: fork in a process that may have other threads: the child
        // runs only async-signal-safe code (sigaction, chdir, setrlimit,
        // kill, raw instructions) and never returns from this function.
        let pid = unsafe { libc::fork() };
        drop(guard);
        if pid < 0 {
            let e = os_error("fork");
            // SAFETY: the mapping made above, unmapped once.
            unsafe { libc::munmap(shared.cast(), SHARED) };
            return Err(e);
        }
        if pid == 0 {
            child_main(
                input.as_mut_ptr(),
                shared,
                lo,
                hi,
                options.signal,
                abort_dir.as_deref(),
            );
        }
        Ok(XstateChild {
            pid,
            shared,
            own_len,
            reaped: false,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn seq(&self) -> u64 {
        // SAFETY: the counter is an aligned u64 inside the live mapping,
        // written by the child with locked increments.
        unsafe { &*self.shared.add(SEQ).cast::<AtomicU64>() }.load(Ordering::SeqCst)
    }

    /// The child's own XSAVE of its registers, taken after this call
    /// began (it waits for two more saves, at most `timeout`): what the
    /// child holds, standard format, the host's user size. `None` when
    /// the child made no save in time (it is stopped, or dead).
    pub fn own_state(&self, timeout: Duration) -> Option<Vec<u8>> {
        let start = self.seq();
        let deadline = Instant::now() + timeout;
        loop {
            let before = self.seq();
            if before >= start + 4 && before % 2 == 0 {
                let mut out = vec![0u8; self.own_len];
                // SAFETY: OWN..OWN+own_len lies inside the mapping; the
                // child may be writing it, which the sequence check below
                // detects (the copy is then thrown away).
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        self.shared.add(OWN),
                        out.as_mut_ptr(),
                        self.own_len,
                    );
                }
                if self.seq() == before {
                    return Some(out);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// The signal frame's `fpstate` as the handler found it (area,
    /// `_fpx_sw_bytes` and magic2: xstate_size + 4 bytes), once the
    /// handler ran; waits at most `timeout`.
    pub fn signal_frame(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: the length word is an aligned u64 in the mapping,
            // written by the handler after the frame bytes.
            let len = unsafe { &*self.shared.add(FRAME_LEN).cast::<AtomicU64>() }
                .load(Ordering::SeqCst) as usize;
            if len != 0 {
                let len = len.min(MAX_AREA);
                let mut out = vec![0u8; len];
                // SAFETY: FRAME..FRAME+len lies inside the mapping and the
                // handler wrote it before the length.
                unsafe {
                    core::ptr::copy_nonoverlapping(self.shared.add(FRAME), out.as_mut_ptr(), len);
                }
                return Some(out);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// Waits for the child to end (after [`ChildOptions::abort_in`]):
    /// its wait status.
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] when `waitpid` fails.
    pub fn wait(&mut self) -> Result<i32, HostError> {
        let mut status = 0;
        // SAFETY: waits for our own child, writing one int to `status`.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if r != self.pid {
            return Err(os_error("waitpid"));
        }
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for XstateChild {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: signals and reaps our own child (by pid, never a
            // group); a stopped or traced child dies of SIGKILL too.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, core::ptr::null_mut(), 0);
            }
        }
        // SAFETY: the mapping made in spawn, unmapped once.
        unsafe { libc::munmap(self.shared.cast(), SHARED) };
    }
}

/// The child's SIGUSR1 handler: copies the frame's `fpstate` out, then
/// writes the replacement in when there is one.
extern "C" fn on_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let shared = SHARED_AT.load(Ordering::SeqCst) as *mut u8;
    // SAFETY: the kernel passes a valid ucontext_t whose fpregs point at
    // the frame's fpstate, xstate_size + 4 bytes long (its
    // _fpx_sw_bytes say so; 512 bytes without XSAVE); `shared` is the
    // mapping set before the fork; every copy is bounded by MAX_AREA.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        let fp = (*uc).uc_mcontext.fpregs.cast::<u8>();
        if fp.is_null() {
            return;
        }
        let magic = fp.add(464).cast::<u32>().read_unaligned();
        let len = if magic == crate::artifact::swbytes::FP_XSTATE_MAGIC1 {
            fp.add(480).cast::<u32>().read_unaligned() as usize + 4
        } else {
            512
        }
        .min(MAX_AREA);
        core::ptr::copy_nonoverlapping(fp, shared.add(FRAME), len);
        (*shared.add(FRAME_LEN).cast::<AtomicU64>()).store(len as u64, Ordering::SeqCst);
        let replacement =
            (*shared.add(REPLACEMENT_LEN).cast::<AtomicU64>()).load(Ordering::SeqCst) as usize;
        if replacement != 0 {
            core::ptr::copy_nonoverlapping(shared.add(REPLACEMENT), fp, replacement.min(len));
        }
    }
}

/// The child: restore, signal, abort or save forever. Never returns.
fn child_main(
    area: *mut u8,
    shared: *mut u8,
    lo: u32,
    hi: u32,
    signal: bool,
    abort_dir: Option<&std::ffi::CStr>,
) -> ! {
    // SAFETY: sigaction with a zeroed, then filled, struct: our handler,
    // SA_SIGINFO; async-signal-safe after fork.
    unsafe {
        if signal {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut());
        }
        if let Some(dir) = abort_dir {
            libc::chdir(dir.as_ptr());
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
            // The default action of SIGABRT: a core dump.
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
        }
    }
    let sig = if signal { libc::SIGUSR1 } else { 0 };
    let abort = if abort_dir.is_some() {
        libc::SIGABRT
    } else {
        0
    };
    // SAFETY: `area` is 64-byte aligned and passed check_restorable, so
    // XRSTOR does not fault; kill(getpid(), sig) is a plain syscall
    // (signal 0 only checks); the loop writes only the shared mapping
    // (seq, and OWN.. within the user size of XCR0). This never returns,
    // so no register the compiler relies on matters.
    unsafe {
        core::arch::asm!(
            "xrstor64 [r8]",
            // getpid(), then kill(pid, sig): the handler sees the
            // restored state in its frame.
            "mov eax, 39",
            "syscall",
            "mov edi, eax",
            "mov esi, r14d",
            "mov eax, 62",
            "syscall",
            "mov eax, 39",
            "syscall",
            "mov edi, eax",
            "mov esi, r15d",
            "mov eax, 62",
            "syscall",
            "2:",
            "lock inc qword ptr [r9]",
            "mov eax, r12d",
            "mov edx, r13d",
            "xsave64 [r9 + {own}]",
            "lock inc qword ptr [r9]",
            "pause",
            "jmp 2b",
            in("r8") area,
            in("r9") shared,
            in("r12") lo,
            in("r13") hi,
            in("r14") sig,
            in("r15") abort,
            own = const OWN,
            in("eax") lo,
            in("edx") hi,
            options(noreturn),
        );
    }
}

/// A ptrace tracer of one child (the calling thread traces it: every call
/// must come from the thread that made it). Detaches on drop.
#[derive(Debug)]
pub struct Tracer {
    pid: libc::pid_t,
}

impl Tracer {
    /// Seizes `pid` (`PTRACE_SEIZE`) and stops it (`PTRACE_INTERRUPT`).
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] when the kernel refuses.
    pub fn seize(pid: i32) -> Result<Tracer, HostError> {
        // SAFETY: PTRACE_SEIZE takes no address or data pointer.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) };
        if r != 0 {
            return Err(os_error("PTRACE_SEIZE"));
        }
        let tracer = Tracer { pid };
        tracer.stop()?;
        Ok(tracer)
    }

    /// Stops the tracee (`PTRACE_INTERRUPT`) and waits for the stop.
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] when the kernel refuses.
    pub fn stop(&self) -> Result<(), HostError> {
        // SAFETY: PTRACE_INTERRUPT takes no pointers; waitpid writes one
        // int.
        unsafe {
            if libc::ptrace(libc::PTRACE_INTERRUPT, self.pid, 0usize, 0usize) != 0 {
                return Err(os_error("PTRACE_INTERRUPT"));
            }
            let mut status = 0;
            if libc::waitpid(self.pid, &mut status, libc::__WALL) != self.pid {
                return Err(os_error("waitpid"));
            }
        }
        Ok(())
    }

    /// Resumes the tracee (`PTRACE_CONT`, no signal).
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] when the kernel refuses.
    pub fn resume(&self) -> Result<(), HostError> {
        // SAFETY: PTRACE_CONT with signal 0 takes no pointers.
        let r = unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid, 0usize, 0usize) };
        if r != 0 {
            return Err(os_error("PTRACE_CONT"));
        }
        Ok(())
    }

    /// `PTRACE_GETREGSET` of note type `note` (`NT_X86_XSTATE` 0x202,
    /// `NT_PRFPREG` 2) into a buffer of `max` bytes: the bytes the kernel
    /// wrote (it shortens the iovec to its size).
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] when the kernel refuses.
    pub fn get_regset(&self, note: u32, max: usize) -> Result<Vec<u8>, HostError> {
        let mut buf = vec![0u8; max];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: the iovec describes `buf`, live and writable across the
        // call; the kernel writes at most iov_len bytes and updates it.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGSET,
                self.pid,
                note as usize,
                &mut iov as *mut libc::iovec,
            )
        };
        if r != 0 {
            return Err(os_error("PTRACE_GETREGSET"));
        }
        buf.truncate(iov.iov_len);
        Ok(buf)
    }

    /// `PTRACE_SETREGSET` of note type `note` from `bytes`.
    ///
    /// # Errors
    ///
    /// [`HostError::Os`] with the kernel's errno when it refuses (EINVAL
    /// for a compacted area or a bad header, EFAULT ...).
    pub fn set_regset(&self, note: u32, bytes: &[u8]) -> Result<(), HostError> {
        let mut copy = bytes.to_vec();
        let mut iov = libc::iovec {
            iov_base: copy.as_mut_ptr().cast(),
            iov_len: copy.len(),
        };
        // SAFETY: the iovec describes `copy`, live across the call; the
        // kernel only reads it.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGSET,
                self.pid,
                note as usize,
                &mut iov as *mut libc::iovec,
            )
        };
        if r != 0 {
            return Err(os_error("PTRACE_SETREGSET"));
        }
        Ok(())
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // SAFETY: PTRACE_DETACH with signal 0 takes no pointers; failing
        // (a running tracee) leaves it to the child's own drop.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid, 0usize, 0usize) };
    }
}
