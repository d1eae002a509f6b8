//! The same seccomp filter in fewer instructions, decided in fewer steps.
//!
//! A filter as the JSON compiler writes it tests the system call number
//! against each rule in turn, with jumps around each rule's block. That
//! is paid on every install, and every command installs the observing
//! filter: the kernel compiles each instruction (JIT) and, to cache the
//! calls a filter always allows, runs the filter once per system call
//! number at install time, each run walking the whole chain.
//!
//! [`compact`] writes a program with the same verdict for every input: it
//! checks the architecture, then looks the number up in a balanced tree of
//! the numbers the filter names, and goes straight to that number's
//! verdict, or to the instructions of the original that read its
//! arguments (copied in their order, with their jumps moved). Every other
//! number gets the verdict the original gives them all.
//!
//! That is proven on the original, not assumed: it is followed with the
//! architecture and number known until it returns or reads an argument;
//! the number and the architecture must only ever be compared for
//! equality (a filter that does otherwise is left as it is), so every
//! number it never compares with takes one and the same path, and every
//! other architecture too. The build checks each result against its
//! original on every number below 1100 and on the argument values the
//! rules name (build.rs), and so do the tests.
//!
//! This file is also compiled into build.rs (`#[path]`): std only.

/// One classic BPF instruction: (code, jt, jf, k).
pub type Insn = (u16, u8, u8, u32);

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const JSET: u16 = 0x45;
const RET: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

/// Where the filter goes for one (architecture, number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    /// It returns this, whatever the arguments.
    Ret(u32),
    /// It reads an argument at this instruction of the original.
    At(usize),
}

/// What the accumulator holds while following the original.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Nr,
    Arch,
    Other,
}

/// Follow `p` with `arch` and `nr` known until it returns or reads another
/// field; with the constants the number and the architecture were
/// compared with. None: an instruction this does not follow, or a test of
/// the number or the architecture other than equality.
fn entry(p: &[Insn], arch: u32, nr: u32) -> Option<(Entry, Vec<u32>, Vec<u32>)> {
    let (mut nr_k, mut arch_k) = (Vec::new(), Vec::new());
    let mut pc = 0usize;
    let mut a = 0u32;
    let mut held = Held::Other;
    // A filter runs forward only; this bounds a malformed one all the same.
    for _ in 0..=p.len() {
        let &(code, jt, jf, k) = p.get(pc)?;
        match code {
            LD_W_ABS if k == NR => (a, held) = (nr, Held::Nr),
            LD_W_ABS if k == ARCH => (a, held) = (arch, Held::Arch),
            LD_W_ABS => return Some((Entry::At(pc), nr_k, arch_k)),
            ALU_AND_K if held == Held::Other => a &= k,
            RET => return Some((Entry::Ret(k), nr_k, arch_k)),
            JA => pc = pc.checked_add(usize::try_from(k).ok()?)?,
            JEQ | JGT | JGE | JSET => {
                match (held, code) {
                    (Held::Nr, JEQ) => nr_k.push(k),
                    (Held::Arch, JEQ) => arch_k.push(k),
                    (Held::Other, _) => {}
                    _ => return None,
                }
                pc += branch(code, a, (jt, jf, k));
            }
            _ => return None,
        }
        pc += 1;
    }
    None
}

/// How far a conditional jump `code` goes with `a` in the accumulator.
fn branch(code: u16, a: u32, (jt, jf, k): (u8, u8, u32)) -> usize {
    let taken = match code {
        JEQ => a == k,
        JGT => a > k,
        JGE => a >= k,
        _ => a & k != 0,
    };
    usize::from(if taken { jt } else { jf })
}

/// Is this a jump (its target moves with it)?
fn is_jump(code: u16) -> bool {
    code & 0x07 == 0x05
}

/// Which instructions of `p` are reachable from `starts`.
fn reachable(p: &[Insn], starts: &[usize]) -> Option<Vec<bool>> {
    let mut seen = vec![false; p.len()];
    let mut todo: Vec<usize> = starts.to_vec();
    while let Some(pc) = todo.pop() {
        if *seen.get(pc)? {
            continue;
        }
        seen[pc] = true;
        let (code, jt, jf, k) = p[pc];
        match code {
            RET => {}
            JA => todo.push(pc.checked_add(usize::try_from(k).ok()?)?.checked_add(1)?),
            c if is_jump(c) => {
                todo.push(pc + 1 + usize::from(jt));
                todo.push(pc + 1 + usize::from(jf));
            }
            _ => todo.push(pc + 1),
        }
    }
    Some(seen)
}

/// Where a jump of the new program goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    At(usize),
    E(Entry),
}

/// The balanced tree: `jge k` splits (numbers at or above the middle one
/// go right), a leaf compares up to four numbers, then goes to `default`.
fn tree(out: &mut Vec<(u16, To, To, u32)>, keys: &[(u32, Entry)], default: Entry) {
    if keys.len() <= 4 {
        for &(n, e) in keys {
            out.push((JEQ, To::E(e), To::Next, n));
        }
        out.push((JA, To::E(default), To::Next, 0));
        return;
    }
    let mid = keys.len() / 2;
    let at = out.len();
    out.push((JGE, To::Next, To::Next, keys[mid].0));
    tree(out, &keys[..mid], default);
    out[at].1 = To::At(out.len());
    tree(out, &keys[mid..], default);
}

/// `p` rewritten with the same verdict for every input (see the module
/// comment), for a filter that checks the architecture against `native`.
/// None when that cannot be proven, or the result would not be shorter.
pub fn compact(p: &[Insn], native: u32) -> Option<Vec<Insn>> {
    // Every other architecture is compared with the native one only (below),
    // so all take the path of this one, which must not look at the number.
    let (foreign, f_nr, mut arch_k) = entry(p, native ^ 1, 0)?;
    if !f_nr.is_empty() {
        return None;
    }
    // The numbers the filter compares with, found by following it: from a
    // number it has not named, then from each number named on the way,
    // until a number it has not named meets only named ones.
    let mut names: Vec<u32> = Vec::new();
    let mut entries: Vec<(u32, Entry)> = Vec::new();
    let default = loop {
        let other = (0..=u32::MAX).rev().find(|n| !names.contains(n))?;
        let (e, ks, ak) = entry(p, native, other)?;
        arch_k.extend(ak);
        let mut todo: Vec<u32> = ks.into_iter().filter(|k| !names.contains(k)).collect();
        if todo.is_empty() {
            break e;
        }
        while let Some(n) = todo.pop() {
            if names.contains(&n) {
                continue;
            }
            names.push(n);
            let (e, ks, ak) = entry(p, native, n)?;
            arch_k.extend(ak);
            entries.push((n, e));
            todo.extend(ks.into_iter().filter(|k| !names.contains(k)));
        }
    };
    if arch_k.iter().any(|&k| k != native) {
        return None;
    }
    let mut named: Vec<(u32, Entry)> = entries.into_iter().filter(|&(_, e)| e != default).collect();
    named.sort_unstable();

    // The original's instructions still needed: those reachable from an
    // entry that reads an argument.
    let all = || named.iter().map(|&(_, e)| e).chain([default, foreign]);
    let starts: Vec<usize> = all()
        .filter_map(|e| match e {
            Entry::At(pc) => Some(pc),
            Entry::Ret(_) => None,
        })
        .collect();
    let keep = reachable(p, &starts)?;
    // One return per verdict the tree reaches.
    let mut rets: Vec<u32> = all()
        .filter_map(|e| match e {
            Entry::Ret(k) => Some(k),
            Entry::At(_) => None,
        })
        .collect();
    rets.sort_unstable();
    rets.dedup();

    // Layout: the architecture check, the tree, the returns, the kept
    // instructions in their order.
    let mut out: Vec<(u16, To, To, u32)> = vec![
        (LD_W_ABS, To::Next, To::Next, ARCH),
        (JEQ, To::Next, To::E(foreign), native),
        (LD_W_ABS, To::Next, To::Next, NR),
    ];
    tree(&mut out, &named, default);
    let ret_base = out.len();
    out.extend(rets.iter().map(|&k| (RET, To::Next, To::Next, k)));
    let base = out.len();
    let mut moved = vec![None; p.len()];
    let mut n = 0;
    for (pc, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
        moved[pc] = Some(base + n);
        n += 1;
    }
    let place = |to: To, at: usize| -> Option<usize> {
        let t = match to {
            To::Next => at + 1,
            To::At(t) => t,
            To::E(Entry::Ret(k)) => ret_base + rets.iter().position(|&r| r == k)?,
            To::E(Entry::At(pc)) => (*moved.get(pc)?)?,
        };
        t.checked_sub(at + 1)
    };
    let mut prog: Vec<Insn> = Vec::with_capacity(base + n);
    for (at, &(code, jt, jf, k)) in out.iter().enumerate() {
        prog.push(match code {
            JA => (JA, 0, 0, u32::try_from(place(jt, at)?).ok()?),
            c if is_jump(c) => (
                c,
                u8::try_from(place(jt, at)?).ok()?,
                u8::try_from(place(jf, at)?).ok()?,
                k,
            ),
            _ => (code, 0, 0, k),
        });
    }
    for (pc, &(code, jt, jf, k)) in p.iter().enumerate() {
        let Some(here) = moved[pc] else { continue };
        let to = |old: usize| -> Option<usize> { (*moved.get(old)?)?.checked_sub(here + 1) };
        prog.push(match code {
            JA => (
                JA,
                0,
                0,
                u32::try_from(to(pc + 1 + usize::try_from(k).ok()?)?).ok()?,
            ),
            c if is_jump(c) => (
                c,
                u8::try_from(to(pc + 1 + usize::from(jt))?).ok()?,
                u8::try_from(to(pc + 1 + usize::from(jf))?).ok()?,
                k,
            ),
            _ => (code, jt, jf, k),
        });
    }
    (prog.len() < p.len()).then_some(prog)
}

/// Run a filter on one input (`data` as `struct seccomp_data`: nr, arch,
/// instruction pointer, six arguments), for the checks: the instructions
/// the filters use, each as the kernel runs it. None: one it does not run.
pub fn run(p: &[Insn], nr: u32, arch: u32, args: &[u64; 6]) -> Option<u32> {
    let word = |off: u32| -> Option<u32> {
        match off {
            NR => Some(nr),
            ARCH => Some(arch),
            8 | 12 => Some(0),
            16..=63 if off.is_multiple_of(4) => {
                let i = usize::try_from((off - 16) / 8).ok()?;
                let v = args[i];
                // Little-endian: the low half first.
                Some(if (off - 16).is_multiple_of(8) {
                    (v & 0xffff_ffff) as u32
                } else {
                    (v >> 32) as u32
                })
            }
            _ => None,
        }
    };
    let mut pc = 0usize;
    let mut a = 0u32;
    for _ in 0..=p.len() {
        let &(code, jt, jf, k) = p.get(pc)?;
        match code {
            LD_W_ABS => a = word(k)?,
            ALU_AND_K => a &= k,
            RET => return Some(k),
            JA => pc = pc.checked_add(usize::try_from(k).ok()?)?,
            JEQ | JGT | JGE | JSET => {
                pc += branch(code, a, (jt, jf, k));
            }
            _ => return None,
        }
        pc += 1;
    }
    None
}

/// The inputs [`same`] tries: every number below 1100 and each number the
/// filter compares with (and its neighbours), high numbers, the x32 range;
/// the native architecture and two others; for each number compared with,
/// arguments holding each constant of the filter in each half of each
/// argument, with and without the other bits set.
pub fn same(a: &[Insn], b: &[Insn], native: u32) -> Result<(), String> {
    let consts: Vec<u32> = {
        let mut v: Vec<u32> = a.iter().chain(b).map(|i| i.3).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut nrs: Vec<u32> = (0..1100).collect();
    nrs.extend(
        consts
            .iter()
            .flat_map(|&k| [k.wrapping_sub(1), k, k.wrapping_add(1)]),
    );
    nrs.extend([
        0x4000_0000,
        0x4000_0001,
        0x4000_0100,
        0x7fff_ffff,
        u32::MAX - 1,
        u32::MAX,
    ]);
    nrs.sort_unstable();
    nrs.dedup();
    let check = |nr: u32, arch: u32, args: &[u64; 6]| -> Result<(), String> {
        let (x, y) = (run(a, nr, arch, args), run(b, nr, arch, args));
        if x.is_none() || x != y {
            return Err(format!(
                "nr {nr} arch {arch:#x} args {args:x?}: {x:?} against {y:?}"
            ));
        }
        Ok(())
    };
    for arch in [native, 0x4000_0003, 0] {
        for &nr in &nrs {
            check(nr, arch, &[0; 6])?;
            check(nr, arch, &[u64::MAX; 6])?;
        }
    }
    for &nr in consts.iter().filter(|&&k| k < 0x1_0000) {
        for &k in &consts {
            for i in 0..6 {
                for v in [
                    u64::from(k),
                    u64::from(k) << 32,
                    u64::from(k) | 0xffff_ffff_0000_0000,
                ] {
                    let mut args = [0u64; 6];
                    args[i] = v;
                    check(nr, native, &args)?;
                    let mut args = [u64::MAX; 6];
                    args[i] = v;
                    check(nr, native, &args)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIVE: u32 = crate::seccomp::AUDIT_ARCH;

    fn compiled() -> Vec<(String, Vec<Insn>)> {
        let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let map =
            seccompiler::compile_from_json(crate::seccomp::FILTER_JSON.as_bytes(), arch).unwrap();
        let mut v: Vec<(String, Vec<Insn>)> = map
            .into_iter()
            .map(|(n, p)| (n, p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()))
            .collect();
        v.sort();
        v
    }

    /// The deny list as the JSON compiler writes it.
    fn deny_list() -> Vec<Insn> {
        compiled()
            .into_iter()
            .find(|(n, _)| n == "sandbox")
            .unwrap()
            .1
    }

    #[test]
    fn every_filter_is_shorter_and_gives_the_same_verdicts() {
        for (name, p) in compiled() {
            let short = compact(&p, NATIVE).unwrap_or_else(|| panic!("{name} not compacted"));
            assert!(short.len() < p.len(), "{name}");
            same(&p, &short, NATIVE).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_verdicts_are_the_kernels_own() {
        // The deny list as compiled: ptrace refused, read allowed, an
        // ioctl refused by its request only, another architecture killed.
        let p = deny_list();
        let short = compact(&p, NATIVE).unwrap();
        let nr = |n: i64| u32::try_from(n).unwrap();
        let eperm = 0x0005_0000 | 1;
        for prog in [&p, &short] {
            assert_eq!(
                run(prog, nr(libc::SYS_ptrace), NATIVE, &[0; 6]),
                Some(eperm)
            );
            assert_eq!(
                run(prog, nr(libc::SYS_read), NATIVE, &[0; 6]),
                Some(0x7fff_0000)
            );
            let tiocsti = [0, 0x5412, 0, 0, 0, 0];
            assert_eq!(
                run(prog, nr(libc::SYS_ioctl), NATIVE, &tiocsti),
                Some(eperm)
            );
            let tcgets = [0, 0x5401, 0, 0, 0, 0];
            assert_eq!(
                run(prog, nr(libc::SYS_ioctl), NATIVE, &tcgets),
                Some(0x7fff_0000)
            );
            assert_ne!(
                run(prog, nr(libc::SYS_read), 0x4000_0003, &[0; 6]),
                Some(0x7fff_0000)
            );
        }
    }

    #[test]
    fn a_filter_it_cannot_prove_the_same_is_left_as_it_is() {
        let allow = (RET, 0, 0, 0x7fff_0000);
        let deny = (RET, 0, 0, 0x0005_0001);
        let arch = [(LD_W_ABS, 0, 0, ARCH), (JEQ, 1, 0, NATIVE), (RET, 0, 0, 0)];
        let with = |body: &[Insn]| -> Vec<Insn> { arch.iter().chain(body).copied().collect() };
        // The number compared by range: every number is not alike.
        let range = with(&[(LD_W_ABS, 0, 0, NR), (JGE, 0, 1, 300), deny, allow]);
        assert_eq!(compact(&range, NATIVE), None);
        // The number masked before the comparison.
        let masked = with(&[
            (LD_W_ABS, 0, 0, NR),
            (ALU_AND_K, 0, 0, 0xff),
            (JEQ, 0, 1, 1),
            deny,
            allow,
        ]);
        assert_eq!(compact(&masked, NATIVE), None);
        // Another architecture compared with something else.
        let two = [
            (LD_W_ABS, 0, 0, ARCH),
            (JEQ, 2, 0, NATIVE),
            (JEQ, 0, 1, 0x4000_0003),
            allow,
            deny,
        ];
        assert_eq!(compact(&two, NATIVE), None);
        // An instruction it does not follow (X register) on the way.
        let x = with(&[(0x07, 0, 0, 0), deny]);
        assert_eq!(compact(&x, NATIVE), None);
        // And one it can: a chain of equalities, one with an argument
        // block, written as the JSON compiler writes them (a jump over
        // each rule's block).
        let mut body = vec![(LD_W_ABS, 0, 0, NR)];
        for n in 10..20 {
            body.extend([(JEQ, 0, 1, n), (JA, 0, 0, 1), (JA, 0, 0, 2), deny, allow]);
        }
        body.extend([
            (JEQ, 0, 3, 40),
            (LD_W_ABS, 0, 0, 16),
            (JEQ, 0, 1, 7),
            deny,
            allow,
        ]);
        let chain = with(&body);
        let short = compact(&chain, NATIVE).expect("compacted");
        assert!(
            short.len() < chain.len() / 2,
            "{} of {}",
            short.len(),
            chain.len()
        );
        same(&chain, &short, NATIVE).unwrap();
        assert_eq!(
            run(&short, 40, NATIVE, &[7, 0, 0, 0, 0, 0]),
            Some(0x0005_0001)
        );
        assert_eq!(
            run(&short, 40, NATIVE, &[8, 0, 0, 0, 0, 0]),
            Some(0x7fff_0000)
        );
    }

    #[test]
    fn the_observing_filter_gives_the_verdicts_it_gave_around_the_compilers_deny_list() {
        use crate::spec::AuditLevel;
        let sandbox = deny_list();
        for level in [
            AuditLevel::Off,
            AuditLevel::Denied,
            AuditLevel::Writes,
            AuditLevel::All,
        ] {
            let now = crate::seccomp::audit_program(level);
            let before = crate::seccomp::audit_program_around(level, &sandbox);
            assert!(now.len() < before.len());
            same(&before, &now, NATIVE).unwrap_or_else(|e| panic!("{level:?}: {e}"));
        }
    }
}
