//! Terminals: the pty `paddock exec` relays.

use super::*;

/// `isatty(fd)`.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// A new pseudo-terminal pair (master, slave), both close-on-exec; the
/// slave is not made anyone's controlling terminal.
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt takes flags only.
    let m =
        check_int(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    let master = owned(libc::c_long::from(m));
    // SAFETY: grantpt/unlockpt take a valid open master fd.
    check_int(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is writable for its full length, which we pass.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: ptsname_r NUL-terminated the name inside `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    // SAFETY: `name` is a NUL-terminated path.
    let s = check_int(unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    Ok((master, owned(libc::c_long::from(s))))
}

/// Make the terminal on `fd` the controlling terminal of the calling
/// session leader (TIOCSCTTY, without stealing).
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// Saved terminal settings, restored by [`restore_terminal`].
pub struct Termios(libc::termios);

/// Put the terminal on `fd` in raw mode; returns the previous settings.
pub fn make_raw(fd: RawFd) -> io::Result<Termios> {
    // SAFETY: termios is plain data that tcgetattr fills in.
    let mut t = unsafe { std::mem::zeroed::<libc::termios>() };
    // SAFETY: `t` is a valid out-pointer.
    check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
    let saved = Termios(t);
    // SAFETY: `t` is an initialised termios.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })?;
    Ok(saved)
}

/// Restore settings saved by [`make_raw`].
pub fn restore_terminal(fd: RawFd, t: &Termios) {
    // SAFETY: `t.0` is a termios obtained from tcgetattr.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t.0) };
}

/// Copy the window size of terminal `from` to terminal `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data.
    let mut ws = unsafe { std::mem::zeroed::<libc::winsize>() };
    // SAFETY: TIOCGWINSZ fills `ws`; TIOCSWINSZ reads it.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
