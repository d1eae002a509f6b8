//! `filesystem.deny`: every name under which the sandbox could show a
//! denied object, found once per spec.
//!
//! A path names an object by one route; the host can offer others. Each is
//! closed here or refused:
//!
//! - a symbolic link on the way: the entry is resolved, and both the name
//!   as written and where it leads are denied;
//! - `..` after a link: refused when the policy is read;
//! - a bind mount of the same folder elsewhere (the host's mount table):
//!   every such place is denied too;
//! - a hard link (a second name of the same file) on a filesystem the
//!   sandbox shows: refused, since paddock cannot know where it is;
//! - a system folder itself (`/etc`): covered whole.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use paddock_policy::Sourced;
use paddock_reasons::Reason;
use paddock_sandbox::MountSpec;

use crate::error::CliError;

/// How many entries of a denied folder are checked for hard links.
const LINK_SCAN_BUDGET: usize = 10_000;

/// The denied entries, each with every place on this host it is seen at.
pub(crate) struct DenyList<'a> {
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    rule: &'a Sourced<String>,
    /// As written, expanded and normalised.
    lexical: PathBuf,
    /// Links resolved; None when it does not exist.
    real: Option<PathBuf>,
    /// The same object through other mounts of its filesystem.
    aliases: Vec<PathBuf>,
}

impl Entry<'_> {
    /// Every host path this entry is seen at.
    fn places(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.real.as_deref().unwrap_or(&self.lexical))
            .chain(self.aliases.iter().map(PathBuf::as_path))
    }
}

impl<'a> DenyList<'a> {
    /// `entries`: each rule with its path expanded (`~`, relative paths)
    /// and normalised.
    pub(crate) fn new(entries: Vec<(&'a Sourced<String>, PathBuf)>) -> DenyList<'a> {
        let table = if entries.is_empty() {
            Vec::new()
        } else {
            MountLine::read_table()
        };
        let entries = entries
            .into_iter()
            .map(|(rule, lexical)| {
                let real = std::fs::canonicalize(&lexical).ok();
                let aliases = real
                    .as_deref()
                    .map(|r| aliases(r, &table))
                    .unwrap_or_default();
                Entry {
                    rule,
                    lexical,
                    real,
                    aliases,
                }
            })
            .collect();
        DenyList { entries }
    }

    /// The entry `p` lies under: as written, where its link leads, or
    /// through another mount of the same folder.
    pub(crate) fn covering(&self, p: &Path) -> Option<&'a Sourced<String>> {
        self.entries
            .iter()
            .find(|e| p.starts_with(&e.lexical) || e.places().any(|x| p.starts_with(x)))
            .map(|e| e.rule)
    }

    /// The places to cover: (host path, path inside the sandbox). A place
    /// inside a system folder is covered at its own path; a system folder
    /// inside (or equal to) a denied path is covered whole; a place inside
    /// a mount is covered where the mount shows it. A mount *under* a
    /// denied path is refused before this.
    pub(crate) fn inside(&self, mounts: &[MountSpec]) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut add = |host: &Path, inside: PathBuf| {
            if !out.iter().any(|(_, x)| *x == inside) {
                out.push((host.to_path_buf(), inside));
            }
        };
        for e in &self.entries {
            for hp in e.places() {
                for d in paddock_sandbox::spec::SYSTEM_DIRS {
                    let sys = Path::new("/").join(d);
                    if hp.starts_with(&sys) {
                        add(hp, hp.to_path_buf());
                    } else if sys.starts_with(hp) {
                        add(&sys, sys.clone());
                    }
                }
                for m in mounts {
                    if let Ok(rest) = hp.strip_prefix(&m.source) {
                        if !rest.as_os_str().is_empty() {
                            add(hp, m.target.join(rest));
                        }
                    }
                }
            }
        }
        out
    }

    /// Refuse a denied file with a second name (a hard link) on a
    /// filesystem the sandbox shows: that name would show its contents.
    /// `shown`: the host folders the sandbox shows (mounts and system
    /// folders). Folders are searched up to [`LINK_SCAN_BUDGET`] entries.
    pub(crate) fn refuse_hard_links(&self, shown: &[PathBuf]) -> Result<(), CliError> {
        if self.entries.iter().all(|e| e.real.is_none()) {
            return Ok(());
        }
        let table = MountLine::read_table();
        let devices = shown_devices(shown, &table);
        for e in &self.entries {
            let Some(real) = &e.real else { continue };
            let mut budget = LINK_SCAN_BUDGET;
            if let Some(file) = linked_file(real, &devices, &mut budget) {
                return Err(CliError::new(
                    Reason::FS_DENY_HARD_LINKED.code(),
                    format!(
                        "{} has more than one name (a hard link), and a name outside `{}` \
                         ({}) would show it in the sandbox",
                        file.display(),
                        e.rule.value,
                        e.rule.origin.describe()
                    ),
                    format!(
                        "find the other names with `find / -xdev -samefile {}` and remove \
                         them, or keep the file elsewhere",
                        file.display()
                    ),
                ));
            }
            if budget == 0 {
                eprintln!(
                    "paddock: warning[FS_DENY_LINKS_UNCHECKED]: {} holds more than {LINK_SCAN_BUDGET} \
                     entries; files past them were not checked for hard links",
                    real.display()
                );
            }
        }
        Ok(())
    }
}

/// The first regular file at or under `p` (links not followed) with more
/// than one name on one of `devices`.
fn linked_file(p: &Path, devices: &[u64], budget: &mut usize) -> Option<PathBuf> {
    let md = std::fs::symlink_metadata(p).ok()?;
    if md.is_file() {
        return (md.nlink() > 1 && devices.contains(&md.dev())).then(|| p.to_path_buf());
    }
    if !md.is_dir() {
        return None;
    }
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ent in rd.flatten() {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let Ok(ty) = ent.file_type() else { continue };
            if ty.is_dir() {
                stack.push(ent.path());
            } else if ty.is_file() {
                if let Ok(md) = ent.metadata() {
                    if md.nlink() > 1 && devices.contains(&md.dev()) {
                        return Some(ent.path());
                    }
                }
            }
        }
    }
    None
}

/// The device numbers of every filesystem the sandbox shows: those the
/// shown folders are on, and those mounted below them.
fn shown_devices(shown: &[PathBuf], table: &[MountLine]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for root in shown {
        if let Ok(md) = std::fs::metadata(root) {
            out.push(md.dev());
        }
        out.extend(
            table
                .iter()
                .filter(|m| m.point.starts_with(root))
                .map(|m| m.dev),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The other places the host shows the object at `real`: the same
/// filesystem's folder mounted elsewhere (bind mounts).
fn aliases(real: &Path, table: &[MountLine]) -> Vec<PathBuf> {
    // The mount `real` is seen through: the deepest mount point above it
    // (of equals, the later one, mounted on top).
    let Some(holder) = table
        .iter()
        .enumerate()
        .filter(|(_, m)| real.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m)
    else {
        return Vec::new();
    };
    let Ok(rest) = real.strip_prefix(&holder.point) else {
        return Vec::new();
    };
    let in_fs = holder.root.join(rest);
    let mut out: Vec<PathBuf> = table
        .iter()
        .filter(|m| m.dev == holder.dev)
        .filter_map(|m| in_fs.strip_prefix(&m.root).ok().map(|r| m.point.join(r)))
        .filter(|a| a != real)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One line of `/proc/self/mountinfo`: which filesystem, which of its
/// folders, and where it is mounted.
struct MountLine {
    dev: u64,
    root: PathBuf,
    point: PathBuf,
}

impl MountLine {
    /// The host's mount table; empty when it cannot be read (then only the
    /// paths themselves are denied).
    fn read_table() -> Vec<MountLine> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| t.lines().filter_map(MountLine::parse).collect())
            .unwrap_or_default()
    }

    /// `ID PARENT MAJOR:MINOR ROOT POINT ...`; None for a line not in that
    /// form.
    fn parse(line: &str) -> Option<MountLine> {
        let mut f = line.split(' ');
        let (_id, _parent) = (f.next()?, f.next()?);
        let (major, minor) = f.next()?.split_once(':')?;
        let (major, minor): (u64, u64) = (major.parse().ok()?, minor.parse().ok()?);
        let root = unescape(f.next()?);
        let point = unescape(f.next()?);
        // glibc's makedev: the device number stat reports.
        let dev = ((major & 0xffff_f000) << 32)
            | ((major & 0x0fff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff);
        Some(MountLine { dev, root, point })
    }
}

/// The kernel writes space, tab, newline and backslash in mountinfo as
/// `\` and three octal digits.
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(dev: &str, root: &str, point: &str) -> MountLine {
        MountLine::parse(&format!("1 0 {dev} {root} {point} rw - ext4 x rw")).unwrap()
    }

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let m = line("8:1", "/a\\040b", "/mnt/x\\134y");
        assert_eq!(m.root, Path::new("/a b"));
        assert_eq!(m.point, Path::new("/mnt/x\\y"));
        let st = std::fs::metadata("/proc/self").unwrap();
        let own = MountLine::read_table();
        assert!(own
            .iter()
            .any(|m| m.point == Path::new("/proc") && m.dev == st.dev()));
        assert!(MountLine::parse("garbage").is_none());
        assert!(MountLine::parse("1 0 x:y / /").is_none());
    }

    #[test]
    fn a_folder_bound_elsewhere_is_denied_at_both_places() {
        let table = vec![
            line("8:1", "/", "/"),
            line("8:2", "/", "/home"),
            line("8:2", "/alice/.ssh", "/srv/keys"),
            line("8:2", "/alice", "/mnt/alice"),
            line("8:3", "/alice", "/other"),
        ];
        let got = aliases(Path::new("/home/alice/.ssh/id"), &table);
        assert_eq!(
            got,
            vec![
                PathBuf::from("/mnt/alice/.ssh/id"),
                PathBuf::from("/srv/keys/id")
            ]
        );
        // Seen through the bind: the home's own path is an alias too.
        let got = aliases(Path::new("/srv/keys"), &table);
        assert!(got.contains(&PathBuf::from("/home/alice/.ssh")), "{got:?}");
        assert!(aliases(Path::new("/usr/bin"), &table).is_empty());
    }

    #[test]
    fn a_system_folder_itself_is_covered_whole() {
        let rule = Sourced {
            value: "/etc".to_string(),
            origin: paddock_policy::Origin::builtin(),
        };
        let list = DenyList::new(vec![(&rule, PathBuf::from("/etc"))]);
        let got = list.inside(&[]);
        assert!(
            got.contains(&(PathBuf::from("/etc"), PathBuf::from("/etc"))),
            "{got:?}"
        );
        let rule = Sourced {
            value: "/".to_string(),
            origin: paddock_policy::Origin::builtin(),
        };
        let list = DenyList::new(vec![(&rule, PathBuf::from("/"))]);
        let got = list.inside(&[]);
        for d in ["/usr", "/etc", "/opt"] {
            assert!(got.iter().any(|(_, i)| i == Path::new(d)), "{d}: {got:?}");
        }
    }
}
