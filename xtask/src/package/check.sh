#!/bin/bash
# Runs inside the clean Debian root of `cargo xtask package --check`, as root, one phase per
# call: `install` installs the package and checks what it installed, `trace` runs the tracers
# (the caller holds the workload lock), `service` starts and stops the exporter through
# systemd (run as a unit of the booted root, under the same lock), `remove` purges it. The
# environment gives PACKAGE and TOOL_VERSION (what `--version` must say after each binary's
# name). Any failure says what failed on stderr and exits 1.
set -euo pipefail

binaries=(compactsnoop drsnoop memstall_exporter mmplot)
tracers=(compactsnoop drsnoop)
# Each binary's man section, and so its directory (8: /usr/sbin, 1: /usr/bin).
declare -A section=([compactsnoop]=8 [drsnoop]=8 [memstall_exporter]=8 [mmplot]=1)
# The words typed before <TAB>, and a long option the completions must offer there.
declare -A words=([compactsnoop]=-- [drsnoop]=-- [memstall_exporter]=-- [mmplot]="render --")
declare -A flag=([compactsnoop]=--extended_fields [drsnoop]=--histogram
    [memstall_exporter]=--top-cgroups [mmplot]=--labels)
# The sections each page has between OPTIONS and SEE ALSO, |-separated.
declare -A sections=(
    [compactsnoop]="EXAMPLES|COLUMNS|EXIT STATUS|KERNEL REQUIREMENTS|LOST EVENTS"
    [drsnoop]="EXAMPLES|COLUMNS|EXIT STATUS|KERNEL REQUIREMENTS|LOST EVENTS"
    [memstall_exporter]="EXAMPLES|METRICS|EXIT STATUS|KERNEL REQUIREMENTS|FILES"
    [mmplot]="COMMANDS|EXAMPLES|EXIT STATUS|KERNEL REQUIREMENTS"
)
# The header each tracer prints first, spaces squeezed.
declare -A header=(
    [compactsnoop]="COMM PID NODE ZONE ORDER MODE LAT(ms) STATUS"
    [drsnoop]="COMM PID LAT(ms) PAGES"
)
unit=/usr/lib/systemd/system/memstall_exporter.service
# Where the exporter listens when its unit adds no --listen (its man page's default).
exporter_address=127.0.0.1:9877
examples=/usr/share/doc/$PACKAGE/examples

fail() {
    echo "check: $*" >&2
    exit 1
}

# The lines of one section of a man page rendered as text, without their indentation.
man_section() {
    awk -v s="$1" '$0 == s { on = 1; next } /^[A-Z]/ { on = 0 } on' | sed -e 's/^       //' -e '/^$/d'
}

check_man() {
    local bin=$1 s=${section[$1]} text
    # man-db finds the page by itself: it is where `man <section> <binary>` looks.
    text=$(MANWIDTH=200 man --warnings "$s" "$bin" 2>/tmp/man.err) || fail "man $s $bin failed: $(cat /tmp/man.err)"
    [ ! -s /tmp/man.err ] || fail "man $s $bin warns: $(cat /tmp/man.err)"
    local expected
    IFS='|' read -ra expected <<<"NAME|SYNOPSIS|DESCRIPTION|OPTIONS|${sections[$bin]}|SEE ALSO"
    [ "$(grep -x '[A-Z][A-Z ]*' <<<"$text")" = "$(printf '%s\n' "${expected[@]}")" ] ||
        fail "man $s $bin's sections are $(grep -x '[A-Z][A-Z ]*' <<<"$text" | paste -sd,)"
    local from_man from_help
    from_man=$(man_section EXAMPLES <<<"$text")
    # -h's examples: from "examples:" to the next blank line.
    from_help=$("$bin" -h | sed -n '/^examples:$/,/^$/p' | tail -n +2 | sed -e 's/^    //' -e '/^$/d')
    [ -n "$from_man" ] && [ "$from_man" = "$from_help" ] ||
        fail "man $s $bin's EXAMPLES differ from -h's: $(diff <(echo "$from_man") <(echo "$from_help"))"
}

check_completions() {
    local bin=$1 offered
    local typed="$bin ${words[$bin]}"
    # bash: the function the script registers, asked about `<binary> <words><TAB>`.
    offered=$(bash -c '. "/usr/share/bash-completion/completions/$1"
        read -ra COMP_WORDS <<<"$2"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
        "_$1" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$bin" "$typed") ||
        fail "bash completion of '$typed' failed"
    grep -qx -- "${flag[$bin]}" <<<"$offered" ||
        fail "bash does not complete '$typed' with ${flag[$bin]}: $offered"
    # fish: finds the script in its vendor directory by itself.
    offered=$(fish -c "complete --do-complete='$typed'" | cut -f1) ||
        fail "fish completion of '$typed' failed"
    grep -qx -- "${flag[$bin]}" <<<"$offered" ||
        fail "fish does not complete '$typed' with ${flag[$bin]}: $offered"
    # zsh: the script parses, in a directory of zsh's own function path.
    zsh -n "/usr/share/zsh/vendor-completions/_$bin" || fail "_$bin does not parse in zsh"
    zsh -fc 'print -l $fpath' | grep -qx /usr/share/zsh/vendor-completions ||
        fail "zsh does not look in /usr/share/zsh/vendor-completions"
}

# The unit: where systemd looks, valid, naming the installed binary, and not enabled.
check_unit() {
    [ -f "$unit" ] || fail "no $unit"
    systemd-analyze unit-paths | grep -qx "${unit%/*}" || fail "systemd does not look in ${unit%/*}"
    local out
    out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
    [ -z "$out" ] || fail "systemd-analyze verify $unit warns: $out"
    local exec
    exec=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
    [ "$exec" = "$(command -v memstall_exporter)" ] || fail "$unit runs '$exec', not the installed binary"
    local enabled
    enabled=$(systemctl is-enabled memstall_exporter.service 2>&1) || true
    [ "$enabled" = disabled ] || fail "memstall_exporter.service is '$enabled' after dpkg -i, not disabled"
    echo "check: $unit: systemd-analyze verify passes, runs $exec, installed and disabled"
}

# The dashboard and the rules, as a user would take them from the examples.
check_examples() {
    [ -s "$examples/memstall.json" ] || fail "no $examples/memstall.json"
    local out
    out=$(cd "$examples" && promtool check rules alerts.yml 2>&1) ||
        fail "promtool check rules $examples/alerts.yml: $out"
    out=$(cd "$examples" && promtool test rules alerts_test.yml 2>&1) ||
        fail "promtool test rules $examples/alerts_test.yml: $out"
    echo "check: $examples: promtool check rules and test rules pass"
}

install() {
    dpkg -i /var/lib/package-check/package.deb || fail "dpkg -i failed (its Depends not met by a clean root?)"
    [ "$(dpkg-query -W -f='${Status}' "$PACKAGE")" = "install ok installed" ] ||
        fail "$PACKAGE is not installed"
    local doc=/usr/share/doc/$PACKAGE
    grep -q '^License: MIT or Apache-2.0$' "$doc/copyright" || fail "no licence in $doc/copyright"
    # grep -c reads to the end: grep -q would stop early and fail zcat's write (pipefail).
    [ "$(zcat "$doc/README.md.gz" | grep -c '^## Install$')" = 1 ] || fail "$doc/README.md.gz has no Install section"
    [ "$(zcat "$doc/changelog.Debian.gz" | grep -c "^$PACKAGE (")" = 1 ] || fail "no changelog"
    for bin in "${binaries[@]}"; do
        local dir=/usr/bin
        [ "${section[$bin]}" != 8 ] || dir=/usr/sbin
        [ "$(command -v "$bin")" = "$dir/$bin" ] || fail "$bin is not $dir/$bin"
        local said
        said=$("$bin" --version)
        [ "$said" = "$bin $TOOL_VERSION" ] || fail "$bin --version says '$said', not '$bin $TOOL_VERSION'"
        check_man "$bin"
        check_completions "$bin"
        echo "check: $bin: installed in $dir, $said, man ${section[$bin]} $bin and completions work"
    done
    check_unit
    check_examples
}

# The exporter as an administrator starts it: `systemctl start` of the installed unit, under
# the real systemd of the booted root (this phase runs as a unit there), on the address its man
# page documents. It must serve a scrape, hold our programs while it runs, and on
# `systemctl stop` end cleanly and leave none of them loaded.
service() {
    [ "$(cat /proc/1/comm)" = systemd ] || fail "the service phase runs under '$(cat /proc/1/comm)', not systemd"
    local name=${unit##*/}
    systemctl start "$name" || fail "systemctl start $name failed: $(journal "$name")"
    # Type=simple: active as soon as it runs; serving once it says so, after loading the
    # programs and dropping privileges (it listens before: a connection alone proves nothing).
    local serving="Serving memory-stall metrics on http://$exporter_address/metrics" said=
    for _ in $(seq 300); do
        said=$(journalctl -b -u "$name" -o cat --no-pager | grep -cxF "$serving") || true
        [ "$said" = 0 ] || break
        # An exit sets Result at once, before any restart.
        [ "$(systemctl show -p Result --value "$name")" = success ] || break
        sleep 0.1
    done
    [ "$said" = 1 ] || fail "$name did not say it serves on $exporter_address within 30 s" \
        "(result: $(systemctl show -p Result --value "$name")): $(journal "$name")"
    local state
    state=$(systemctl show -p ActiveState --value "$name")
    [ "$state" = active ] || fail "$name is '$state' after it said it serves"
    # The programs the exporter holds, by id, from its descriptors.
    local pid programs
    pid=$(systemctl show -p MainPID --value "$name")
    programs=$(grep -h '^prog_id:' /proc/"$pid"/fdinfo/* | awk '{print $2}' | sort -un | paste -sd' ')
    [ -n "$programs" ] || fail "$name (pid $pid) holds no BPF program while serving"
    # bpftool must see them now for its not seeing them after the stop to mean anything.
    for id in $programs; do
        bpftool prog show id "$id" >/dev/null 2>&1 ||
            fail "bpftool does not show program $id that $name holds"
    done
    local response
    exec 3<>"/dev/tcp/${exporter_address%:*}/${exporter_address##*:}" ||
        fail "cannot connect to $name on $exporter_address"
    printf 'GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$exporter_address" >&3
    response=$(cat <&3 | tr -d '\r') || fail "reading $name's answer on $exporter_address failed"
    exec 3<&-
    [ "$(head -n 1 <<<"$response")" = "HTTP/1.1 200 OK" ] ||
        fail "GET http://$exporter_address/metrics answered '$(head -n 1 <<<"$response")'"
    local body
    body=$(sed '1,/^$/d' <<<"$response")
    for family in memstall_build_info memstall_compaction_duration_seconds_bucket \
        memstall_reclaim_duration_seconds_bucket; do
        grep -q "^$family{" <<<"$body" || fail "the scrape of $name has no $family"
    done
    promtool check metrics <<<"$body" >/tmp/promtool.out 2>&1 ||
        fail "promtool check metrics of the scrape: $(cat /tmp/promtool.out)"

    systemctl stop "$name" || fail "systemctl stop $name failed: $(journal "$name")"
    local ended
    ended=$(systemctl show -p ActiveState -p Result -p NRestarts "$name" | sort | paste -sd' ')
    [ "$ended" = "ActiveState=inactive NRestarts=0 Result=success" ] ||
        fail "$name did not end cleanly on systemctl stop ($ended): $(journal "$name")"
    # The kernel frees a program when its last reference goes, which may trail the exit.
    local left=
    for _ in $(seq 50); do
        left=
        for id in $programs; do
            ! bpftool prog show id "$id" >/dev/null 2>&1 || left="$left $id"
        done
        [ -n "$left" ] || break
        sleep 0.1
    done
    [ -z "$left" ] || fail "programs$left of $name are still loaded 5 s after systemctl stop"
    echo "check: $name: systemctl start served $(grep -c . <<<"$body") lines on $exporter_address" \
        "with programs $programs loaded; systemctl stop ended it cleanly and unloaded them"
}

# What the journal says of unit $1 in this boot, on one line.
journal() {
    journalctl -b -u "$1" -o cat --no-pager | tail -n 5 | paste -sd' '
}

trace() {
    for tool in "${tracers[@]}"; do
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
    for bin in "${binaries[@]}"; do
        ! command -v "$bin" >/dev/null || fail "$bin is still there after dpkg --purge"
    done
    [ ! -e "$unit" ] || fail "$unit is still there after dpkg --purge"
    echo "check: $PACKAGE purged"
}

case "${1:-}" in
install | trace | service | remove) "$1" ;;
*) fail "usage: check.sh install|trace|service|remove" ;;
esac
