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
            let found = linked_file(real, &devices, &mut budget);
            if let Some(Linked::Unreadable(dir, err)) = &found {
                return Err(CliError::new(
                    Reason::FS_DENY_HARD_LINKED.code(),
                    format!(
                        "{} (inside `{}`, {}) cannot be searched for hard links: {err}",
                        dir.display(),
                        e.rule.value,
                        e.rule.origin.describe()
                    ),
                    format!(
                        "make it readable (`chmod u+rx {}`), or deny a narrower path",
                        dir.display()
                    ),
                ));
            }
            if let Some(Linked::File(file)) = found {
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

/// What the hard-link search found.
enum Linked {
    /// A regular file with more than one name on a shown filesystem.
    File(PathBuf),
    /// A folder that cannot be read: what it holds is not known.
    Unreadable(PathBuf, std::io::Error),
}

/// The first regular file at or under `p` (links not followed) with more
/// than one name on one of `devices`, or a folder that cannot be searched.
fn linked_file(p: &Path, devices: &[u64], budget: &mut usize) -> Option<Linked> {
    let md = std::fs::symlink_metadata(p).ok()?;
    if md.is_file() {
        return (md.nlink() > 1 && devices.contains(&md.dev()))
            .then(|| Linked::File(p.to_path_buf()));
    }
    if !md.is_dir() {
        return None;
    }
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A folder of the user's own that cannot be read may have been
            // made so to hide a link (the agent runs as the user); one of
            // another owner the user could not have planted in.
            Err(e) if owned_by_me(&dir) => return Some(Linked::Unreadable(dir, e)),
            Err(_) => continue,
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
                        return Some(Linked::File(ent.path()));
                    }
                }
            }
        }
    }
    None
}

/// Is `p` owned by the user paddock runs as?
fn owned_by_me(p: &Path) -> bool {
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    std::fs::symlink_metadata(p).is_ok_and(|m| Some(m.uid()) == me)
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
    let holder = table
        .iter()
        .enumerate()
        .filter(|(_, m)| real.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m);
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some((holder, rest)) =
        holder.and_then(|h| real.strip_prefix(&h.point).ok().map(|r| (h, r)))
    {
        let in_fs = holder.root.join(rest);
        for m in table.iter().filter(|m| m.dev == holder.dev) {
            if let Ok(r) = in_fs.strip_prefix(&m.root) {
                // A mount of the object or of a folder above it.
                out.push(m.point.join(r));
            } else if m.root.starts_with(&in_fs) {
                // A mount of something inside a denied folder: all of it.
                out.push(m.point.clone());
            }
        }
    }
    // An overlay with a layer at, above or inside the denied path shows
    // it too (a filesystem of its own, so no device to match).
    for m in table {
        for layer in &m.layers {
            if let Ok(r) = real.strip_prefix(layer) {
                out.push(m.point.join(r));
            } else if layer.starts_with(real) {
                out.push(m.point.clone());
            }
        }
    }
    out.retain(|a| a != real);
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
    /// An overlay's layer folders (lowerdir, upperdir).
    layers: Vec<PathBuf>,
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
        // After the optional fields and "-": type, source, options.
        let mut rest = f.skip_while(|x| *x != "-").skip(1);
        let fstype = rest.next().unwrap_or("");
        let options = rest.nth(1).unwrap_or("");
        let layers = if fstype == "overlay" {
            overlay_layers(options)
        } else {
            Vec::new()
        };
        // glibc's makedev: the device number stat reports.
        let dev = ((major & 0xffff_f000) << 32)
            | ((major & 0x0fff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff);
        Some(MountLine {
            dev,
            root,
            point,
            layers,
        })
    }
}

/// The folders of an overlay's `lowerdir=a:b,upperdir=c` options (`\,`
/// and `\:` escape a comma or colon in a path).
fn overlay_layers(options: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut opts = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in options.chars() {
        match (esc, c) {
            (false, '\\') => {
                esc = true;
                cur.push(c);
            }
            (false, ',') => opts.push(std::mem::take(&mut cur)),
            _ => {
                esc = false;
                cur.push(c);
            }
        }
    }
    opts.push(cur);
    for o in opts {
        let Some((key, value)) = o.split_once('=') else {
            continue;
        };
        if !matches!(key, "lowerdir" | "upperdir" | "lowerdir+" | "datadir+") {
            continue;
        }
        let mut part = String::new();
        let mut esc = false;
        for c in value.chars() {
            match (esc, c) {
                (false, '\\') => esc = true,
                (false, ':') => out.push(unescape(&std::mem::take(&mut part))),
                _ => {
                    esc = false;
                    part.push(c);
                }
            }
        }
        out.push(unescape(&part));
    }
    out.retain(|p| p.is_absolute());
    out
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
        let sub = aliases(Path::new("/home/alice"), &table);
        assert!(sub.contains(&PathBuf::from("/srv/keys")), "{sub:?}");
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
    fn an_overlay_on_a_denied_folder_is_denied_too() {
        let m = MountLine::parse(
            "9 1 0:50 / /mnt/ov rw - overlay overlay rw,lowerdir=/data/a\\:b:/home/alice/.ssh,upperdir=/u,workdir=/w",
        )
        .unwrap();
        assert_eq!(
            m.layers,
            vec![
                PathBuf::from("/data/a:b"),
                PathBuf::from("/home/alice/.ssh"),
                PathBuf::from("/u")
            ]
        );
        let table = vec![line("8:2", "/", "/home"), m];
        let got = aliases(Path::new("/home/alice/.ssh"), &table);
        assert!(got.contains(&PathBuf::from("/mnt/ov")), "{got:?}");
        let got = aliases(Path::new("/data/a:b/x"), &table);
        assert!(got.contains(&PathBuf::from("/mnt/ov/x")), "{got:?}");
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
