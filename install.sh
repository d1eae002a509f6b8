#!/usr/bin/env bash
# Install paddock into a prefix: one binary, its shell completions, its man
# pages and its AppArmor profile (for hosts that restrict user namespaces).
# Says what goes where, and how many bytes, before it writes anything; records
# what it wrote so that `paddock uninstall` removes exactly that.
#
#   ./install.sh [--prefix DIR] [--binary FILE] [--yes] [--dry-run]
#                [--apparmor auto|yes|no]
#
#   --prefix DIR     where to install (default: ~/.local, or /usr/local as root)
#   --binary FILE    install this paddock binary (default: build it with
#                    `cargo build --release` from this source tree)
#   --yes            do not ask (required when not on a terminal)
#   --dry-run        only say what would be written
#   --apparmor MODE  auto: offer the profile when the kernel restricts user
#                    namespaces (kernel.apparmor_restrict_unprivileged_userns=1);
#                    yes: install and load it (root); no: never
set -euo pipefail

prefix=""
binary=""
yes=0
dry=0
apparmor=auto

die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        --yes|-y) yes=1; shift ;;
        --dry-run) dry=1; shift ;;
        --apparmor) [ $# -ge 2 ] || die "--apparmor needs auto, yes or no"; apparmor=$2; shift 2 ;;
        --apparmor=*) apparmor=${1#--apparmor=}; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$apparmor" in auto|yes|no) ;; *) die "--apparmor must be auto, yes or no, not '$apparmor'" ;; esac

if [ -z "$prefix" ]; then
    if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi
case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || die "--prefix / is not allowed; use /usr or /usr/local"

if [ -z "$binary" ]; then
    here="$(cd "$(dirname "$0")" && pwd)"
    [ -f "$here/Cargo.toml" ] || die "no --binary given and no source tree beside install.sh"
    command -v cargo >/dev/null || die "no --binary given and cargo is not installed (https://rustup.rs)"
    echo "building paddock (cargo build --release --locked -p paddock)..." >&2
    (cd "$here" && cargo build --release --locked -p paddock >&2)
    binary="$here/target/release/paddock"
fi
[ -x "$binary" ] || die "$binary is not an executable file"
"$binary" --version >/dev/null 2>&1 || die "$binary does not run here ('$binary --version' failed)"

# Everything is generated into a staging folder first, from the binary
# itself, so the sizes below are the sizes that will be written.
stage="$(mktemp -d "${TMPDIR:-/tmp}/paddock-install.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/man"
"$binary" generate completions bash >"$stage/paddock.bash"
"$binary" generate completions zsh >"$stage/_paddock"
"$binary" generate completions fish >"$stage/paddock.fish"
"$binary" generate man "$stage/man" >/dev/null
"$binary" generate apparmor --binary "$prefix/bin/paddock" >"$stage/apparmor"

# source<TAB>destination<TAB>mode<TAB>what
plan="$stage/plan"
{
    printf '%s\t%s\t755\tthe paddock binary\n' "$binary" "$prefix/bin/paddock"
    printf '%s\t%s\t644\tbash completion\n' "$stage/paddock.bash" "$prefix/share/bash-completion/completions/paddock"
    printf '%s\t%s\t644\tzsh completion\n' "$stage/_paddock" "$prefix/share/zsh/site-functions/_paddock"
    printf '%s\t%s\t644\tfish completion\n' "$stage/paddock.fish" "$prefix/share/fish/vendor_completions.d/paddock.fish"
    for m in "$stage"/man/*.1; do
        printf '%s\t%s\t644\tman page\n' "$m" "$prefix/share/man/man1/$(basename "$m")"
    done
    printf '%s\t%s\t644\tAppArmor profile, a copy for the administrator\n' "$stage/apparmor" "$prefix/share/paddock/apparmor/paddock"
} >"$plan"

restricted=0
if [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
    restricted=1
fi
load_profile=0
case "$apparmor" in
    yes) load_profile=1 ;;
    auto) [ "$restricted" = 1 ] && load_profile=1 ;;
esac
if [ "$load_profile" = 1 ] && [ "$(id -u)" != 0 ] && [ "$dry" = 0 ]; then
    if [ "$apparmor" = yes ]; then
        die "--apparmor yes writes /etc/apparmor.d/paddock and needs root; run with sudo, or use --apparmor no and follow 'paddock doctor'"
    fi
    load_profile=0
fi
if [ "$load_profile" = 1 ]; then
    printf '%s\t%s\t644\tAppArmor profile, loaded\n' "$stage/apparmor" /etc/apparmor.d/paddock >>"$plan"
fi

size() { stat -c %s "$1"; }
total=0
count=0
echo "paddock $("$binary" --version | awk '{print $2}') will be installed into $prefix:"
man_n=0
man_bytes=0
while IFS=$'\t' read -r src dst mode what; do
    n=$(size "$src")
    total=$((total + n))
    count=$((count + 1))
    if [ "$what" = "man page" ]; then
        man_n=$((man_n + 1)); man_bytes=$((man_bytes + n))
        continue
    fi
    printf '  %10d bytes  %s  (%s)\n' "$n" "$dst" "$what"
done <"$plan"
printf '  %10d bytes  %s  (%d man pages: paddock.1, paddock-run.1, ...)\n' "$man_bytes" "$prefix/share/man/man1/" "$man_n"
manifest="$prefix/share/paddock/install-manifest"
printf '  %10s        %s  (the list of these files, for paddock uninstall)\n' "" "$manifest"
printf '  %10d bytes in %d files\n' "$total" "$count"
if [ "$load_profile" = 1 ]; then
    echo "This kernel refuses user namespaces to programs without an AppArmor profile"
    echo "(kernel.apparmor_restrict_unprivileged_userns=1), and paddock's sandbox is built"
    echo "from one: /etc/apparmor.d/paddock lets $prefix/bin/paddock create them, nothing"
    echo "else, and is loaded with 'apparmor_parser -r'."
elif [ "$restricted" = 1 ]; then
    echo "Note: this kernel restricts user namespaces (AppArmor). Without the profile"
    echo "paddock cannot build its sandbox. As root, run:"
    echo "  sudo install -m 0644 $prefix/share/paddock/apparmor/paddock /etc/apparmor.d/paddock"
    echo "  sudo apparmor_parser -r /etc/apparmor.d/paddock"
fi
if [ -e "$prefix/bin/paddock" ]; then
    echo "  (replaces the existing $prefix/bin/paddock)"
fi

if [ "$dry" = 1 ]; then
    echo "dry run: nothing written"
    exit 0
fi
if [ "$yes" = 0 ]; then
    if [ -t 0 ]; then
        printf 'Proceed? [y/N] '
        read -r answer
        case "$answer" in y|Y|yes) ;; *) echo "nothing written"; exit 1 ;; esac
    else
        die "not on a terminal: read the list above and pass --yes to install"
    fi
fi

# Folders this install creates (so uninstall can remove them when empty).
created=()
mkdirs() {
    local d=$1 missing=()
    while [ ! -d "$d" ]; do missing+=("$d"); d=$(dirname "$d"); done
    local i
    for ((i=${#missing[@]}-1; i>=0; i--)); do
        mkdir "${missing[$i]}"
        created+=("${missing[$i]}")
    done
}

files=()
while IFS=$'\t' read -r src dst mode what; do
    mkdirs "$(dirname "$dst")"
    # Write beside, then rename: a running paddock keeps its old binary.
    tmp="$dst.paddock-new.$$"
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dst"
    files+=("$dst")
done <"$plan"

mkdirs "$(dirname "$manifest")"
{
    echo "# paddock install manifest 1"
    for f in "${files[@]}"; do echo "file $f"; done
    for d in "${created[@]}"; do
        case "$d" in "$prefix"|"$prefix"/*) echo "dir $d" ;; esac
    done
} >"$manifest"

if [ "$load_profile" = 1 ]; then
    if command -v apparmor_parser >/dev/null; then
        apparmor_parser -r /etc/apparmor.d/paddock || echo "warning: apparmor_parser could not load /etc/apparmor.d/paddock; see 'paddock doctor'" >&2
    else
        echo "warning: apparmor_parser not found; the profile is in place but not loaded" >&2
    fi
fi

echo "installed: $prefix/bin/paddock"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on your PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
echo "check this machine with: paddock doctor;  see every file paddock uses: paddock info"
echo "remove everything again with: paddock uninstall"
