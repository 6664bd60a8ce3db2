#!/bin/bash
# Runs inside the clean Debian root of `cargo xtask package --check`, as root, one phase per
# call: `install` installs the package and checks what it installed, `trace` runs the tools
# (the caller holds the workload lock), `remove` purges it. The environment gives PACKAGE and
# TOOL_VERSION (what `--version` must say after the tool's name). Any failure says what failed
# on stderr and exits 1.
set -euo pipefail

tools=(compactsnoop drsnoop)
# A long option each tool's completions must offer.
declare -A flag=([compactsnoop]=--extended_fields [drsnoop]=--histogram)
# The header each tool prints first, spaces squeezed.
declare -A header=(
    [compactsnoop]="COMM PID NODE ZONE ORDER MODE LAT(ms) STATUS"
    [drsnoop]="COMM PID LAT(ms) PAGES"
)
sections=(NAME SYNOPSIS DESCRIPTION OPTIONS EXAMPLES COLUMNS "EXIT STATUS"
    "KERNEL REQUIREMENTS" "LOST EVENTS" "SEE ALSO")

fail() {
    echo "check: $*" >&2
    exit 1
}

# The lines of one section of a man page rendered as text, without their indentation.
man_section() {
    awk -v s="$1" '$0 == s { on = 1; next } /^[A-Z]/ { on = 0 } on' | sed -e 's/^       //' -e '/^$/d'
}

check_man() {
    local tool=$1 text
    # man-db finds the page by itself: it is where `man 8 <tool>` looks.
    text=$(MANWIDTH=200 man --warnings 8 "$tool" 2>/tmp/man.err) || fail "man 8 $tool failed: $(cat /tmp/man.err)"
    [ ! -s /tmp/man.err ] || fail "man 8 $tool warns: $(cat /tmp/man.err)"
    for s in "${sections[@]}"; do
        grep -qx "$s" <<<"$text" || fail "man 8 $tool has no $s section"
    done
    local from_man from_help
    from_man=$(man_section EXAMPLES <<<"$text")
    from_help=$("$tool" -h | sed -n '/^examples:$/,$p' | tail -n +2 | sed -e 's/^    //' -e '/^$/d')
    [ -n "$from_man" ] && [ "$from_man" = "$from_help" ] ||
        fail "man 8 $tool's EXAMPLES differ from -h's: $(diff <(echo "$from_man") <(echo "$from_help"))"
}

check_completions() {
    local tool=$1 offered
    # bash: the function the script registers, asked about `<tool> --<TAB>`.
    offered=$(bash -c '. "/usr/share/bash-completion/completions/$1"
        COMP_WORDS=("$1" --); COMP_CWORD=1; COMP_LINE="$1 --"; COMP_POINT=${#COMP_LINE}
        "_$1" "$1" -- "$1"; printf "%s\n" "${COMPREPLY[@]}"' _ "$tool") ||
        fail "bash completion of $tool failed"
    grep -qx -- "${flag[$tool]}" <<<"$offered" ||
        fail "bash does not complete '$tool --' with ${flag[$tool]}: $offered"
    # fish: finds the script in its vendor directory by itself.
    offered=$(fish -c "complete --do-complete='$tool --'" | cut -f1) ||
        fail "fish completion of $tool failed"
    grep -qx -- "${flag[$tool]}" <<<"$offered" ||
        fail "fish does not complete '$tool --' with ${flag[$tool]}: $offered"
    # zsh: the script parses, in a directory of zsh's own function path.
    zsh -n "/usr/share/zsh/vendor-completions/_$tool" || fail "_$tool does not parse in zsh"
    zsh -fc 'print -l $fpath' | grep -qx /usr/share/zsh/vendor-completions ||
        fail "zsh does not look in /usr/share/zsh/vendor-completions"
}

install() {
    dpkg -i /tmp/package.deb || fail "dpkg -i failed (its Depends not met by a clean root?)"
    [ "$(dpkg-query -W -f='${Status}' "$PACKAGE")" = "install ok installed" ] ||
        fail "$PACKAGE is not installed"
    local doc=/usr/share/doc/$PACKAGE
    grep -q '^License: MIT or Apache-2.0$' "$doc/copyright" || fail "no licence in $doc/copyright"
    zcat "$doc/README.md.gz" | grep -q '^## Install$' || fail "$doc/README.md.gz has no Install section"
    zcat "$doc/changelog.Debian.gz" | grep -q "^$PACKAGE (" || fail "no changelog"
    for tool in "${tools[@]}"; do
        [ "$(command -v "$tool")" = "/usr/sbin/$tool" ] || fail "$tool is not /usr/sbin/$tool"
        local version
        version=$("$tool" --version)
        [ "$version" = "$tool $TOOL_VERSION" ] || fail "$tool --version says '$version'"
        check_man "$tool"
        check_completions "$tool"
        echo "check: $tool: installed in /usr/sbin, $version, man page and completions work"
    done
}

trace() {
    for tool in "${tools[@]}"; do
        local status=0 first
        "$tool" -d 1 >/tmp/out 2>/tmp/err || status=$?
        [ "$status" = 0 ] || fail "$tool -d 1 exited with $status: $(cat /tmp/err)"
        first=$(head -n 1 /tmp/out | tr -s ' ')
        [ "$first" = "${header[$tool]}" ] || fail "$tool -d 1 printed '$first' first"
        [ ! -s /tmp/err ] || echo "check: $tool -d 1 said on stderr: $(cat /tmp/err)"
        echo "check: $tool -d 1: exit status 0, $(wc -l </tmp/out) lines, header first"
    done
}

remove() {
    dpkg --purge "$PACKAGE" || fail "dpkg --purge failed"
    for tool in "${tools[@]}"; do
        ! command -v "$tool" >/dev/null || fail "$tool is still there after dpkg --purge"
    done
    echo "check: $PACKAGE purged"
}

case "${1:-}" in
install | trace | remove) "$1" ;;
*) fail "usage: check.sh install|trace|remove" ;;
esac
