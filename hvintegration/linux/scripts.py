"""The fixed shell programs the library runs on a Linux guest.

Each is sent as ``sh -c PROGRAM NAME ARG...``: the program text never
changes, and every value that comes from the caller or the guest travels as a
positional argument, so nothing is ever spliced into shell text. Each writes
a line-oriented report: a keyword, then tab-separated fields. Free text that
could hold a tab or newline (command lines, executable paths) travels as
hex.

They use only POSIX ``sh`` and tools every distribution (and BusyBox) has:
``od``, ``tr``, ``readlink``, ``sleep``, ``kill``.
"""

from __future__ import annotations

__all__ = [
    "KVP_PERL",
    "KVP_PYTHON",
    "KVP_SCRIPT",
    "MAX_ARGS_BYTES",
    "MAX_LISTED",
    "START_SCRIPT",
    "STATUS_SCRIPT",
    "STOP_SCRIPT",
    "UNIT_SCRIPT",
]

MAX_LISTED = 64
"""At most this many candidate processes and installed programs are listed;
the report says how many more there were."""

MAX_ARGS_BYTES = 4096
"""A process's command line is listed up to this many bytes, and marked cut."""

_COMMON = r"""
tab=$(printf '\t')
nl='
'
out() { printf '%s' "$1"; shift; for f in "$@"; do printf '\t%s' "$f"; done; printf '\n'; }
hex() { od -An -v -tx1 | tr -d ' \n'; }
"""

_STATUS_FUNCTION = (
    r"""
# fact PATH [RESOLVED]: sets $fx to "UID MODE DIRUID DIRMODE" of the file
# PATH resolves to and of its directory, so that the reader can tell a
# program only root could have written from one anyone could have planted;
# "- - - -" when unknown. RESOLVED=1 says PATH is already absolute and free
# of symbolic links. Each path is looked at once per run: the answers are
# kept in $fcache, one "PATH<tab>FACTS" line each, as the same programs turn
# up under several names (merged /usr) and as several processes.
fcache=$nl
fact() {
    fx='- - - -'
    case $1 in *"$tab"*|*"$nl"*|'') return 0 ;; esac
    case $fcache in *"$nl$1$tab"*)
        fx=${fcache#*"$nl$1$tab"}; fx=${fx%%"$nl"*}; return 0 ;;
    esac
    if [ "${2:-0}" = 1 ]; then fr=$1; else fr=$(readlink -f -- "$1" 2>/dev/null) || fr=; fi
    case $fr in
    /*)
        ff=$(stat -L -c '%u %a' -- "$fr" "${fr%/*}/" 2>/dev/null) || ff=
        set -f
        # One line per file: the default IFS splits on the newline too.
        # shellcheck disable=SC2086
        set -- "$1" $ff
        set +f
        [ $# -eq 5 ] && fx="$2 $3 $4 $5" ;;
    *) set -- "$1" ;;
    esac
    fcache="$fcache$1$tab$fx$nl"
}
# facts PATH: the same, printed.
facts() { fact "$1"; printf '%s' "$fx"; }

# unhex "HEX": sets $text to the bytes od printed as HEX (blank-separated
# two-digit numbers, no NUL), through printf's octal escapes: no program runs.
unhex() {
    fmt=
    set -f
    # shellcheck disable=SC2086
    set -- $1
    set +f
    for h in "$@"; do fmt="$fmt\\$((0x$h / 64))$((0x$h / 8 % 8))$((0x$h % 8))"; done
    # shellcheck disable=SC2059
    text=$(printf "$fmt.")
    text=${text%.}
}

# nospace HEX...: sets $joined to its arguments run together (od's bytes
# without their blanks) and $count to how many there are, with no process
# started.
nospace() { ns_ifs=$IFS; IFS=; joined="$*"; IFS=$ns_ifs; count=$#; }

# status_report UNIT...: the whole status; the units are systemd unit names.
status_report() {
    PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
    # Unit names have no blanks; the process loop below reuses "$@".
    asked=$*
    out version 2
    out uid "$(id -u)"
    out user "$(id -un 2>/dev/null)"
    kernel=$(uname -r)
    out kernel "$kernel"
    read -r pid1 2>/dev/null < /proc/1/comm || pid1=""
    out pid1 "$pid1"
    while read -r key value _; do [ "$key" = btime ] && out btime "$value"; done < /proc/stat
    out clk_tck "$(getconf CLK_TCK 2>/dev/null || echo 100)"

    # The driver: sysfs first (built in and module alike), /proc/modules and
    # lsmod where the kernel has them.
    [ -d /sys/bus/vmbus/drivers/hv_utils ] && out driver_bound 1
    # The generic UIO driver, through which hv_fcopy_uio_daemon (kernel 6.10
    # and later) reaches the file copy channel.
    [ -d /sys/bus/vmbus/drivers/uio_hv_generic ] && out uio_driver 1
    m=/sys/module/hv_utils
    if [ -d "$m" ]; then
        out module_dir 1
        for f in initstate refcnt coresize; do
            [ -r "$m/$f" ] && read -r v < "$m/$f" && out "module_$f" "$v"
        done
        for h in "$m"/holders/*; do [ -e "$h" ] && out module_holder "${h##*/}"; done
    fi
    if [ -r /proc/modules ]; then
        while read -r name size used by _; do
            [ "$name" = hv_utils ] && out procmodules "$size" "$used" "$by"
        done < /proc/modules
    elif [ ! -d "$m" ] && command -v lsmod >/dev/null 2>&1; then
        lsmod 2>/dev/null | while read -r name size used by; do
            [ "$name" = hv_utils ] && out lsmod "$size" "$used" "$by"
        done
    fi

    for dev in /sys/bus/vmbus/devices/*; do
        [ -r "$dev/class_id" ] || continue
        read -r cls < "$dev/class_id" || cls=""
        drv=""
        if [ -L "$dev/driver" ]; then
            # The kernel lists a bound device in its driver's directory
            # (driver_sysfs_add), so a real sysfs names the driver with no
            # readlink; a tree without those links falls back to one.
            for dd in /sys/bus/vmbus/drivers/*; do
                [ -L "$dd/${dev##*/}" ] && drv=${dd##*/} && break
            done
            [ -n "$drv" ] || { drv=$(readlink "$dev/driver") && drv=${drv##*/}; }
        fi
        out device "${dev##*/}" "$cls" "$drv"
    done

    for n in /dev/vmbus/hv_*; do
        [ -e "$n" ] || continue
        kind=other
        if [ -c "$n" ]; then kind=char
        elif [ -p "$n" ]; then kind=fifo
        elif [ -f "$n" ]; then kind=file
        fi
        out node "${n##*/}" "$kind"
    done

    # Installed programs: what compgen -c hv_ finds on PATH, then the private
    # directories of SUSE, Red Hat and older Ubuntu, then the programs the
    # units run; each with the owner and mode of the file and its directory.
    listed=0
    one() {
        # one PATH REAL ON_PATH
        case $1 in *"$tab"*|*"$nl"*) return 0 ;; esac
        listed=$((listed + 1))
        [ "$listed" -gt @MAX_LISTED@ ] && return 0
        # The same file under several names is read once: its facts under
        # its resolved path, its first two bytes beside them.
        case $scripts in
        *"$nl$2$tab"*) script=${scripts#*"$nl$2$tab"}; script=${script%%"$nl"*} ;;
        *)
            script=0
            case $(head -c 2 -- "$1" 2>/dev/null) in '#!') script=1 ;; esac
            case $2 in *"$tab"*|*"$nl"*) ;; *) scripts="$scripts$2$tab$script$nl" ;; esac ;;
        esac
        case $2 in /*) fact "$2" "$4" ;; *) fact "$1" ;; esac
        out installed "$1" "$2" "$3" "$script" "$fx"
    }
    scripts=$nl
    scan() {
        [ -d "$1" ] || return 0
        # Resolve the directory once (merged /usr makes /sbin and /usr/sbin one).
        exact=1
        realdir=$(cd "$1" 2>/dev/null && pwd -P) || { realdir=$1; exact=0; }
        for f in "$1"/hv_* "$1"/hyperv*; do
            [ -f "$f" ] && [ -x "$f" ] || continue
            real=$realdir/${f##*/}
            resolved=$exact
            if [ -L "$f" ]; then
                real=$(readlink -f -- "$f" 2>/dev/null) || { real=$f; resolved=0; }
            fi
            one "$f" "$real" "$2" "$resolved"
        done
    }
    old_ifs=$IFS
    IFS=:
    scanned=$nl
    for dir in $PATH; do
        IFS=$old_ifs
        # Only absolute entries: a relative one ("." or "bin") would make the
        # answer depend on the directory the command happened to run in. A
        # directory named twice in PATH is scanned once.
        case $dir in
        *"$nl"*) ;;
        /*)
            case $scanned in
            *"$nl$dir$nl"*) ;;
            *) scanned="$scanned$dir$nl"; scan "$dir" 1 ;;
            esac ;;
        esac
        IFS=:
    done
    IFS=$old_ifs
    for dir in /usr/lib/hyper-v/bin /usr/libexec/hypervkvpd "/usr/lib/linux-tools/$kernel"; do
        scan "$dir" 0
    done

    # Running daemons, from /proc. A candidate is a process whose name
    # (comm) or an argument names an hv_ or hyperv program: a wrapper's
    # exec -a "$0" leaves argv[0] the program's while comm is the wrapped
    # file's. The reader decides which candidates are daemons.
    cands=" "
    for d in /proc/[0-9]*; do
        read -r comm 2>/dev/null < "$d/comm" || continue
        case $comm in hv_*|hyperv*|.hv_*|.hyperv*) cands="$cands${d#/proc/} " ;; esac
    done
    if command -v grep >/dev/null 2>&1; then
        # Each argument is one NUL-terminated record (-z): any whose file
        # name starts hv_ or hyperv makes a candidate.
        named=$(grep -l -z -a -E '^([^[:cntrl:]]*/)?[.]?(hv_|hyperv)' /proc/[0-9]*/cmdline \
            2>/dev/null)
        # Other runs of these scripts (and sudo running them) name units
        # and directories such as hypervkvpd.service and /var/lib/hyperv in
        # their arguments. They are never daemons, and with many calls at
        # once each run would read every other one: the work would grow
        # with the square of the calls. An argument that is one of these
        # scripts (it starts with their first line) leaves them out, unless
        # their name (comm) already made them candidates above.
        ours=" "
        if [ -n "$named" ]; then
            # Only /proc/PID/cmdline paths, so splitting is safe.
            # shellcheck disable=SC2086
            for f in $(grep -l -z -a '^# hvintegration linux ' $named 2>/dev/null); do
                pid=${f#/proc/}; ours="$ours${pid%/cmdline} "
            done
        fi
        for f in $named; do
            pid=${f#/proc/}; pid=${pid%/cmdline}
            case $ours in *" $pid "*) continue ;; esac
            case $cands in *" $pid "*) ;; *) cands="$cands$pid " ;; esac
        done
    fi
    seen=0
    users=$nl
    pids=" "
    for pid in $cands; do
        # Not this script, whose arguments name units.
        [ "$pid" = "$$" ] && continue
        d=/proc/$pid
        read -r comm 2>/dev/null < "$d/comm" || continue
        # Kernel threads have an empty command line. Only the first
        # @MAX_ARGS_BYTES@ bytes are listed, so one process cannot swell the report.
        exe=$(readlink "$d/exe" 2>/dev/null) || exe=""
        # One od for the name, the executable and the command line: the
        # first two hold no NUL byte, so the first two " 00" of od's
        # blank-separated bytes end them.
        all=$({ printf '%s\000%s\000' "$comm" "$exe"; head -c @MAX_ARGS_BYTES_1@ "$d/cmdline"; } \
            2>/dev/null | od -An -v -tx1 | tr -d '\n') || continue
        commx=${all%% 00*}; all=${all#* 00}
        exex=${all%% 00*}; all=${all#* 00}
        set -f
        # shellcheck disable=SC2086
        nospace $all
        args=$joined
        # The first two arguments, still as od's blank-separated bytes, from
        # the first @MAX_ARGS_BYTES@ bytes only (one more is read to tell a
        # cut command line); each ends at a NUL (" 00").
        [ "$count" -gt @MAX_ARGS_BYTES@ ] && all=${all% ??}
        a0=${all%% 00*}; a1=""
        case $all in *" 00"*) a1=${all#* 00}; a1=${a1%% 00*} ;; esac
        nospace $exex
        exex=$joined
        nospace $commx
        commx=$joined
        set +f
        [ -n "$args" ] || continue
        uid=""
        while read -r key value _; do
            [ "$key" = "Uid:" ] && uid=$value && break
        done < "$d/status" 2>/dev/null
        # A root process whose program (its executable, its first word, or
        # the script an interpreter runs) is named like a daemon is always
        # listed: only root starts one, and it may be the daemon. Others
        # count against the bound, so other users cannot crowd it out.
        # The arguments' names are compared as bytes: after the last "/"
        # (2f), hv_ is 68 76 5f, hyperv 68 79 70 65 72 76, and . is 2e.
        daemonlike=0
        if [ "$uid" = 0 ]; then
            case ${exe##*/} in hv_*|hyperv*|.hv_*|.hyperv*) daemonlike=1 ;; esac
            for pn in "${a0##* 2f}" "${a1##* 2f}"; do
                case ${pn# 2e} in " 68 76 5f"*|" 68 79 70 65 72 76"*) daemonlike=1 ;; esac
            done
        fi
        if [ "$daemonlike" = 0 ]; then
            seen=$((seen + 1))
            [ "$seen" -gt @MAX_LISTED@ ] && continue
        fi
        cut=0
        if [ "${#args}" -gt @MAX_ARGS_HEX@ ]; then
            args=$(printf '%s' "$args" | head -c @MAX_ARGS_HEX@)
            cut=1
        fi
        read -r stat 2>/dev/null < "$d/stat" || continue
        rest=${stat##*) }
        set -f
        # shellcheck disable=SC2086
        set -- $rest
        set +f
        start=${20:-}
        # Each owner is looked up once.
        case $users in
        *"$nl$uid:"*) user=${users#*"$nl$uid:"}; user=${user%%"$nl"*} ;;
        *)
            user=$( (getent passwd "$uid" || grep "^[^:]*:[^:]*:$uid:" /etc/passwd) 2>/dev/null |
                head -n 1)
            user=${user%%:*}
            users="$users$uid:$user$nl" ;;
        esac
        fe="- - - -"; f0="- - - -"; f1="- - - -"
        [ -n "$exe" ] && fact "$exe" && fe=$fx
        # Only an absolute path (it starts with "/", 2f) is looked at.
        case $a0 in " 2f"*) unhex "$a0"; fact "$text"; f0=$fx ;; esac
        case $a1 in " 2f"*) unhex "$a1"; fact "$text"; f1=$fx ;; esac
        pids="$pids$pid "
        out proc "$pid" "$uid" "$user" "$start" "$exex" "$commx" "$args" "$cut" "$fe" "$f0" "$f1"
    done
    [ "$seen" -gt @MAX_LISTED@ ] && out more processes $((seen - @MAX_LISTED@))
    # Whatever was left out, no root process named like a daemon was.
    out rootlisted 1

    # systemd units, when systemd runs the guest (sd_booted(3): /run/systemd/system):
    # the units asked for, and any running service whose main process is a
    # candidate, whatever it is called.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        out systemd 1
        owners=""
        if [ "$pids" != " " ]; then
            running=$(systemctl list-units --type=service --state=running --no-legend --plain \
                2>/dev/null | while read -r u _; do printf '%s\n' "$u"; done)
            if [ -n "$running" ]; then
                set -f
                # Properties come in systemd's order, not the -p order.
                # shellcheck disable=SC2086
                owners=$(systemctl show -p Id -p MainPID -- $running 2>/dev/null | {
                    u=""; mp=""
                    while IFS= read -r line; do
                        case $line in
                        Id=*) u=${line#Id=} ;;
                        MainPID=*) mp=${line#MainPID=} ;;
                        "") case $pids in *" $mp "*) [ -n "$u" ] && printf '%s\n' "$u" ;; esac
                            u=""; mp="" ;;
                        esac
                    done
                    case $pids in *" $mp "*) [ -n "$u" ] && printf '%s\n' "$u" ;; esac
                })
                set +f
            fi
        fi
        set -f
        # shellcheck disable=SC2086
        shown=$(systemctl show --no-pager -p Id -p LoadState -p ActiveState -p SubState \
            -p MainPID -p UnitFileState -p Result -p ExecMainStatus -p ConditionResult \
            -p ExecStart -- $asked $owners 2>/dev/null)
        set +f
        while IFS= read -r line; do
            out unit "$line"
            # The program a unit runs, wherever it is installed.
            case $line in
            ExecStart=*path=*)
                p=${line#*path=}; p=${p%% *}
                case ${p##*/} in
                hv_*|hyperv*|.hv_*)
                    if [ -f "$p" ] && [ -x "$p" ]; then one "$p" "$(readlink -f -- "$p")" 0 1; fi ;;
                esac ;;
            esac
        done <<EOF
$shown
EOF
    fi
    [ "$listed" -gt @MAX_LISTED@ ] && out more installed $((listed - @MAX_LISTED@))
    out end
}
""".replace("@MAX_LISTED@", str(MAX_LISTED))
    .replace("@MAX_ARGS_BYTES_1@", str(MAX_ARGS_BYTES + 1))
    .replace("@MAX_ARGS_BYTES@", str(MAX_ARGS_BYTES))
    .replace("@MAX_ARGS_HEX@", str(MAX_ARGS_BYTES * 2))
)

STATUS_SCRIPT = (
    "# hvintegration linux status v2; arguments: systemd unit names\n"
    + _COMMON
    + _STATUS_FUNCTION
    + 'status_report "$@"\n'
)

_LOCK_FUNCTIONS = r"""
# The change lock of one daemon (see LOCK_DIRECTORY in hvintegration.linux.daemon):
# start, stop and restart of one daemon on one guest take turns. It is held
# only for the check and the change, never for the status report after it.
#
# lock_take DIR NAME WAIT_TENTHS: take the lock named NAME in DIR, waiting at
# most WAIT_TENTHS tenths of a second. There is one lock per PID namespace
# (NAME below stands for NAME.NS, NS the number of /proc/self/ns/pid): the
# check under it sees this namespace's processes only, and a holder's pid
# means something only here. With flock(1) (util-linux or BusyBox,
# polled with -n, which both have): a lock on DIR/NAME.flock, which the
# kernel drops when its holder dies, however it dies. Without flock: the
# directory DIR/NAME.lock, made with mkdir (atomic), with the holder's
# "PID START_TICKS" in its file "owner". A holder that is gone (no such
# process, a zombie, or its pid reused: another start time) leaves a stale
# lock that the next waiter removes; so does a holder killed between its
# mkdir and its write of "owner" (no owner for 2 s). Stale locks are removed
# under a second mkdir lock, DIR/NAME.lock.break, so that two waiters never
# remove a lock a third has just taken. When the wait runs out the script
# writes "locked PID PATH" (PID of the holder when known, else "-") and
# exits 75 (EX_TEMPFAIL in sysexits.h); nothing was changed. A lock
# directory that is not a directory owned by root and writable by no one
# else is refused: exit 78 (EX_CONFIG). On every exit (trap: EXIT, HUP, INT,
# PIPE, TERM) a lock this run holds is released; SIGKILL cannot be trapped,
# which the rules above cover.
lk_held=
lk_path=
proc_ticks() {
    # proc_ticks PID: $pt is the start time of a live, non-zombie process.
    pt=
    read -r pst 2>/dev/null < "/proc/$1/stat" || return 1
    set -f
    # shellcheck disable=SC2086
    set -- ${pst##*) }
    set +f
    case $1 in Z|X|x) return 1 ;; esac
    pt=${20:-}
    [ -n "$pt" ]
}
lock_fail() { echo "$1" >&2; exit "$2"; }
lock_release() {
    case $lk_held in
    flock)
        : > "$lk_path"
        flock -u 9 2>/dev/null
        exec 9>&- ;;
    mkdir)
        lk_cur=
        { read -r lk_cur < "$lk_path/owner"; } 2>/dev/null
        if [ "$lk_cur" = "$lk_me" ]; then rm -f -- "$lk_path/owner"; rmdir -- "$lk_path"; fi ;;
    esac
    lk_held=
}
lock_busy() { out locked "${1:--}" "$lk_path"; exit 75; }
lock_break() {
    # lock_break OWNER: remove the lock still held by the gone OWNER ("" for
    # none written), unless another waiter already did and someone took it.
    if mkdir -m 0700 -- "$lk_path.break" 2>/dev/null; then
        lk_brk=0
        lk_cur=
        { read -r lk_cur < "$lk_path/owner"; } 2>/dev/null
        if [ "$lk_cur" = "$1" ]; then rm -f -- "$lk_path/owner"; rmdir -- "$lk_path" 2>/dev/null; fi
        rmdir -- "$lk_path.break"
        return 0
    fi
    # Another waiter is removing it. One killed within its few steps
    # leaves its .break behind: after 2 s of seeing it, it goes too.
    lk_brk=$((lk_brk + 1))
    if [ "$lk_brk" -gt 20 ]; then rmdir -- "$lk_path.break" 2>/dev/null; lk_brk=0; fi
    return 1
}
lock_take() {
    lk_dir=$1; lk_name=$2; lk_wait=$3
    case $lk_name in ''|.*|*/*) lock_fail "bad lock name: $lk_name" 64 ;; esac
    case $lk_wait in ''|*[!0-9]*) lock_fail "bad lock wait: $lk_wait" 64 ;; esac
    case $lk_dir in /*) ;; *) lock_fail "the lock directory must be absolute: $lk_dir" 64 ;; esac
    [ -d "$lk_dir" ] || mkdir -m 0755 -- "$lk_dir" 2>/dev/null
    lk_ok=0
    if [ -d "$lk_dir" ] && [ ! -L "$lk_dir" ]; then
        set -f
        # shellcheck disable=SC2046
        set -- $(stat -c '%u %a' -- "$lk_dir" 2>/dev/null)
        set +f
        [ "$#" -eq 2 ] && [ "$1" = 0 ] && [ $((0$2 & 022)) -eq 0 ] && lk_ok=1
    fi
    [ "$lk_ok" = 1 ] || lock_fail "refusing the lock directory $lk_dir: it must be a directory \
owned by root and writable by no one else" 78
    lk_ns=$(readlink /proc/self/ns/pid 2>/dev/null) || lk_ns=
    lk_ns=${lk_ns#pid:\[}
    lk_ns=${lk_ns%]}
    case $lk_ns in ''|*[!0-9]*) ;; *) lk_name=$lk_name.$lk_ns ;; esac
    proc_ticks "$$"
    lk_me="$$ $pt"
    trap lock_release EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
    lk_tries=0
    if command -v flock >/dev/null 2>&1; then
        lk_path=$lk_dir/$lk_name.flock
        command exec 9>>"$lk_path" || lock_fail "cannot open the lock $lk_path" 78
        while :; do
            flock -n 9
            lk_rc=$?
            [ "$lk_rc" = 0 ] && break
            [ "$lk_rc" = 1 ] || lock_fail "flock -n failed with status $lk_rc on $lk_path" 78
            if [ "$lk_tries" -ge "$lk_wait" ]; then
                lk_cur=
                { read -r lk_cur < "$lk_path"; } 2>/dev/null
                lock_busy "${lk_cur%% *}"
            fi
            sleep 0.1
            lk_tries=$((lk_tries + 1))
        done
        lk_held=flock
        printf '%s\n' "$lk_me" > "$lk_path"
        return 0
    fi
    lk_path=$lk_dir/$lk_name.lock
    lk_orphan=0
    lk_brk=0
    while :; do
        if mkdir -m 0700 -- "$lk_path" 2>/dev/null; then
            lk_held=mkdir
            printf '%s\n' "$lk_me" > "$lk_path/owner"
            return 0
        fi
        lk_cur=
        { read -r lk_cur < "$lk_path/owner"; } 2>/dev/null
        if [ -n "$lk_cur" ]; then
            lk_orphan=0
            if ! proc_ticks "${lk_cur%% *}" || [ "$pt" != "${lk_cur#* }" ]; then
                lock_break "$lk_cur" && continue
            fi
        elif [ -d "$lk_path" ] && [ ! -L "$lk_path" ]; then
            lk_orphan=$((lk_orphan + 1))
            if [ "$lk_orphan" -gt 20 ]; then
                lk_orphan=0
                lock_break "" && continue
            fi
        elif [ -e "$lk_path" ] || [ -L "$lk_path" ]; then
            lock_fail "$lk_path is not a lock directory" 78
        else
            # Released meanwhile.
            continue
        fi
        [ "$lk_tries" -ge "$lk_wait" ] && lock_busy "${lk_cur%% *}"
        sleep 0.1
        lk_tries=$((lk_tries + 1))
    done
}

# instances: sets $found to " PID:START_TICKS" of each live process run by
# root whose executable, or whose first or second argument (the script an
# interpreter runs), is one of the programs in $progs (newline-separated
# paths; test -ef compares the files, so any name of one file counts). Only
# processes whose name (comm, 15 bytes) is a program's, or makeWrapper's
# .NAME-wrapped, are looked at closer.
instances() {
    found=
    in_names=$nl
    in_ifs=$IFS
    set -f
    IFS=$nl
    for p in $progs; do
        b=${p##*/}
        in_names="$in_names$(printf '%.15s' "$b")$nl$(printf '%.15s' ".$b-wrapped")$nl"
    done
    IFS=$in_ifs
    set +f
    for d in /proc/[0-9]*; do
        read -r comm 2>/dev/null < "$d/comm" || continue
        case $in_names in *"$nl$comm$nl"*) ;; *) continue ;; esac
        pid=${d#/proc/}
        [ "$pid" = "$$" ] && continue
        uid=
        while read -r key value _; do
            [ "$key" = "Uid:" ] && uid=$value && break
        done < "$d/status" 2>/dev/null
        [ "$uid" = 0 ] || continue
        proc_ticks "$pid" || continue
        hit=0
        in_args=$(tr '\000' '\n' < "$d/cmdline" 2>/dev/null | head -n 2)
        set -f
        IFS=$nl
        for p in $progs; do
            [ "$d/exe" -ef "$p" ] && hit=1 && break
            for a in $in_args; do
                case $a in /*) [ "$a" -ef "$p" ] && hit=1 && break ;; esac
            done
            [ "$hit" = 1 ] && break
        done
        IFS=$in_ifs
        set +f
        [ "$hit" = 1 ] && found="$found $pid:$pt"
    done
}
"""

STOP_SCRIPT = (
    "# hvintegration linux stop v2; arguments: GRACE_TENTHS FORCE LOCK_DIR LOCK_NAME "
    "LOCK_WAIT_TENTHS COUNT PID:START... PROGRAM_COUNT PROGRAM... UNIT...\n"
    + _COMMON
    + _STATUS_FUNCTION
    + _LOCK_FUNCTIONS
    + r"""
grace=$1; force=$2; lock_dir=$3; lock_name=$4; lock_wait=$5; count=$6; shift 6
targets=""
while [ "$count" -gt 0 ]; do targets="$targets $1"; shift; count=$((count - 1)); done
count=$1; shift
progs=""
while [ "$count" -gt 0 ]; do progs="$progs$1$nl"; shift; count=$((count - 1)); done
# Signal only the processes the status saw, and those the check under the
# lock finds: same pid and same start time, so a pid reused since then is
# never hit.
same() {
    want=$2
    read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
    rest=${stat##*) }
    set -f
    # shellcheck disable=SC2086
    set -- $rest
    set +f
    # A zombie has exited already; only its parent's wait is missing.
    [ "$1" != Z ] && [ "${20:-}" = "$want" ]
}
alive() {
    left=""
    for item in "$@"; do
        pid=${item%%:*}
        same "$pid" "${item#*:}" && left="$left $pid"
    done
    [ -n "$left" ]
}
lock_take "$lock_dir" "$lock_name" "$lock_wait"
# An instance another change started since the status was read is stopped too.
instances
for item in $found; do
    case " $targets " in *" $item "*) ;; *) targets="$targets $item" ;; esac
done
rc=0
# Only "pid:ticks" numbers travel in $targets, so splitting it is safe.
# shellcheck disable=SC2086
for item in $targets; do
    same "${item%%:*}" "${item#*:}" && kill -TERM "${item%%:*}" 2>/dev/null
done
# Wait in tenths of a second, bounded by GRACE_TENTHS.
ticks=$grace
# shellcheck disable=SC2086
while alive $targets && [ "$ticks" -gt 0 ]; do sleep 0.1; ticks=$((ticks - 1)); done
# shellcheck disable=SC2086
if alive $targets && [ "$force" = 1 ]; then
    for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
    ticks=30
    # shellcheck disable=SC2086
    while alive $targets && [ "$ticks" -gt 0 ]; do sleep 0.1; ticks=$((ticks - 1)); done
fi
# shellcheck disable=SC2086
if alive $targets; then
    # shellcheck disable=SC2086
    out alive $left
    rc=3
else
    out stopped
fi
lock_release
status_report "$@"
exit $rc
"""
)

START_SCRIPT = (
    "# hvintegration linux start v3; arguments: SETTLE_TENTHS PROGRAM LOCK_DIR LOCK_NAME "
    "LOCK_WAIT_TENTHS PROGRAM_COUNT PROGRAM... UNIT...\n"
    + _COMMON
    + _STATUS_FUNCTION
    + _LOCK_FUNCTIONS
    + r"""
settle=$1; program=$2; shift 2
# The program runs with this script's rights, often root's: refuse one that
# someone other than root could have replaced. Packaging installs symbolic
# links to daemons: the file and directory they resolve to are what count.
set -f
# shellcheck disable=SC2046
set -- $(facts "$program") "$@"
set +f
if [ "$1" != 0 ] || [ "$3" != 0 ] || [ $((0$2 & 022)) -ne 0 ] || [ $((0$4 & 022)) -ne 0 ]; then
    echo "refusing to start $program: it must be owned by root and writable by no one else" >&2
    exit 77
fi
shift 4
lock_dir=$1; lock_name=$2; lock_wait=$3; count=$4; shift 4
progs="$program$nl"
while [ "$count" -gt 0 ]; do progs="$progs$1$nl"; shift; count=$((count - 1)); done
lock_take "$lock_dir" "$lock_name" "$lock_wait"
# The check again, under the lock: another change may have started it
# since the status was read.
instances
if [ -n "$found" ]; then
    # shellcheck disable=SC2086
    out already $found
    lock_release
    status_report "$@"
    exit 0
fi
# No predictable fallback name: a planted symlink there could make root
# overwrite another file.
log=$(mktemp) || { echo "mktemp is needed to start a daemon" >&2; exit 71; }
# Detached: a new session, no terminal, stdio away from this channel, so the
# daemon outlives the SSH session and a closed channel never kills it. In
# the foreground (-n, as every packaging's unit runs it): the process
# watched is the daemon itself, whose exit status is its own, not that of a
# parent that forked it and left. Without the lock's descriptor: the
# daemon must never hold the lock.
setsid "$program" -n < /dev/null > "$log" 2>&1 9>&- &
launcher=$!
ticks=$settle
while [ "$ticks" -gt 0 ]; do sleep 0.1; ticks=$((ticks - 1)); done
if kill -0 "$launcher" 2>/dev/null; then
    out launcher running
else
    wait "$launcher"
    out launcher exited "$?"
fi
lock_release
out log "$(head -c 4000 "$log" | hex)"
rm -f "$log"
status_report "$@"
"""
)

UNIT_SCRIPT = (
    "# hvintegration linux unit v2; arguments: start|stop SETTLE_TENTHS LOCK_DIR LOCK_NAME "
    "LOCK_WAIT_TENTHS UNIT UNIT...\n"
    + _COMMON
    + _STATUS_FUNCTION
    + _LOCK_FUNCTIONS
    + r"""
verb=$1; settle=$2; lock_dir=$3; lock_name=$4; lock_wait=$5; unit=$6; shift 6
lock_take "$lock_dir" "$lock_name" "$lock_wait"
# Without the lock's descriptor: what systemctl starts must never hold it.
err=$(systemctl "$verb" -- "$unit" 2>&1 >/dev/null 9>&-)
out systemctl "$?" "$(printf '%s' "$err" | head -c 4000 | hex)"
if [ "$verb" = start ]; then
    # A simple service counts as started once forked: watch it settle, then
    # keep what it logged (systemd sends a service's output to the journal).
    ticks=$settle
    while [ "$ticks" -gt 0 ]; do sleep 0.1; ticks=$((ticks - 1)); done
fi
lock_release
if [ "$verb" = start ] && command -v journalctl >/dev/null 2>&1; then
    out journal "$(journalctl -u "$unit" -n 10 --no-pager -o cat 2>/dev/null | tail -n 10 |
        head -c 4000 | hex)"
fi
status_report "$@"
"""
)

KVP_PYTHON = r"""
import errno, fcntl, os, sys

RECORD, KEY = 2560, 512
mode, directories = sys.argv[1], sys.argv[2:]

def emit(*fields):
    sys.stdout.write("\t".join(str(f) for f in fields) + "\n")

def path(directory, pool):
    return os.path.join(directory, ".kvp_pool_%d" % pool)

def pool_directory():
    # The first directory that holds a pool file: today's daemon keeps them
    # in /var/lib/hyperv, old ones in /var/opt/hyperv. A file this login
    # may not even look at (an old daemon's directory was mode 0604) counts.
    for directory in directories:
        for pool in range(5):
            try:
                os.stat(path(directory, pool))
                return directory
            except PermissionError:
                return directory
            except OSError:
                pass
    return directories[0]

def read_all(fd):
    chunks, at = [], 0
    while True:
        chunk = os.pread(fd, 1 << 16, at)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        at += len(chunk)

def text(exc):
    return (exc.strerror or str(exc)).encode().hex()

def read_pools():
    directory = pool_directory()
    emit("dir", directory.encode().hex())
    for pool in range(5):
        try:
            fd = os.open(path(directory, pool), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            emit("pool", pool, "missing")
            continue
        except OSError as exc:
            emit("pool", pool, "unreadable", exc.errno or 0, text(exc))
            continue
        try:
            # hv_kvp_daemon's lock: an fcntl record lock on the whole file
            # (kvp_acquire_lock), shared here because this only reads.
            fcntl.lockf(fd, fcntl.LOCK_SH)
            data = read_all(fd)
        except OSError as exc:
            emit("pool", pool, "unreadable", exc.errno or 0, text(exc))
            continue
        finally:
            os.close(fd)
        emit("pool", pool, "data", data.hex())

def changed(old, updates, deletes):
    # What a read shows is kept: a trailing partial record is completed
    # with NUL bytes rather than dropped. The daemon looks a key up in its
    # first record only (kvp_get_value, kvp_key_add_or_modify), while the
    # host enumerates every record, so a set rewrites the value of every
    # record of the key, in place, and a delete removes all of them.
    records = [old[at:at + RECORD] for at in range(0, len(old), RECORD)]
    if records and len(records[-1]) < RECORD:
        records[-1] = records[-1].ljust(RECORD, b"\0")
    out, seen = [], set()
    for record in records:
        key = record[:KEY].split(b"\0", 1)[0]
        if key in deletes:
            continue
        if key in updates:
            seen.add(key)
            record = record[:KEY] + updates[key].ljust(RECORD - KEY, b"\0")
        out.append(record)
    for key, value in updates.items():
        if key not in seen:
            out.append(key.ljust(KEY, b"\0") + value.ljust(RECORD - KEY, b"\0"))
    return b"".join(out)

def write_all(fd, data, at):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, at)
        if written <= 0:
            raise OSError(errno.EIO, "the write stopped short")
        view, at = view[written:], at + written

class Failed(Exception):
    pass

def commit(fd, old, new):
    # hv_kvp_daemon opens the pool once and takes its lock on that
    # descriptor for as long as it runs, but reads and rewrites the file by
    # name (fopen in kvp_update_mem_state and kvp_update_file). Renaming a
    # new file over the pool would leave the daemon locking the old, unlinked
    # inode while it reads and writes the new one: no lock would keep the
    # daemon and any other writer apart any more. So the file is changed in
    # place, under the daemon's lock, in an order that keeps the old bytes
    # until the new ones are sure to fit:
    # 1. a longer pool first gets its new tail, past the old end, and an
    #    fsync; ENOSPC or any other error there leaves the old bytes
    #    untouched, and a truncate to the old size drops what was added;
    # 2. then the old part is overwritten, which needs no new blocks, the
    #    file is cut to its new size and synced again; should that fail
    #    anyway (EIO, a copy-on-write file system), the old bytes are
    #    written back and checked.
    size = len(old)
    try:
        if len(new) > size:
            write_all(fd, new[size:], size)
            os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            raise Failed(exc)
    try:
        write_all(fd, new[:size], 0)
        os.ftruncate(fd, len(new))
        os.fsync(fd)
    except OSError as exc:
        try:
            write_all(fd, old, 0)
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            raise Failed(exc)

def write_pool():
    updates, deletes = {}, set()
    for line in sys.stdin.read().splitlines():
        op, key, value = line.split("\t")
        key, value = bytes.fromhex(key), bytes.fromhex(value)
        if op == "set":
            updates[key] = value
            deletes.discard(key)
        else:
            deletes.add(key)
            updates.pop(key, None)
    directory = pool_directory()
    name = path(directory, 1)
    # The daemon creates its directory 0755 and its pools 0644. Until the
    # pool is open, locked and read nothing has been written: a failure
    # there leaves it as it was, reported as a failed write is.
    created = False
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            created = True
        except FileExistsError:
            fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        emit("failed", "unchanged", ("%s: %s" % (name, exc.strerror or exc)).encode().hex(), "")
        sys.exit(75)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            old = read_all(fd)
        except OSError as exc:
            if created:
                os.unlink(name)
            emit("failed", "unchanged", ("%s: %s" % (name, exc.strerror or exc)).encode().hex(), "")
            sys.exit(75)
        new = changed(old, updates, deletes)
        try:
            if new != old:
                commit(fd, old, new)
        except Failed as failure:
            exc = failure.args[0]
            try:
                now = read_all(fd)
            except OSError:
                now = None
            if created and now == b"":
                os.unlink(name)
            state = "unchanged" if now == old else "damaged" if now is not None else "unknown"
            emit("failed", state, text(exc), (now or b"").hex())
            sys.exit(75 if state == "unchanged" else 76)
        after = read_all(fd)
    finally:
        os.close(fd)
    emit("dir", directory.encode().hex())
    emit("pool", 1, "data", after.hex())

if mode == "read":
    read_pools()
else:
    write_pool()
"""

KVP_PERL = r"""
use strict;
use warnings;
use Errno;
use Fcntl qw(F_SETLKW F_RDLCK F_WRLCK SEEK_SET O_RDONLY O_RDWR O_CREAT O_EXCL);
use IO::Handle;
my ($mode, @dirs) = @ARGV;
my ($RECORD, $KEY) = (2560, 512);
# struct flock on 64-bit Linux: short type, short whence, off_t start,
# off_t len, pid_t pid (with padding). The daemon takes the same lock.
sub lock_fd {
    my ($fh, $type) = @_;
    my $flock = pack("s s x4 q q l x4", $type, SEEK_SET, 0, 0, 0);
    fcntl($fh, F_SETLKW, $flock) or die "lock: $!\n";
}
sub path { return "$_[0]/.kvp_pool_$_[1]"; }
sub hexed { return unpack("H*", $_[0]); }
sub pool_dir {
    for my $dir (@dirs) {
        for my $pool (0 .. 4) {
            return $dir if stat(path($dir, $pool)) || $!{EACCES};
        }
    }
    return $dirs[0];
}
sub read_all {
    my ($fh) = @_;
    sysseek($fh, 0, SEEK_SET) or die "seek: $!\n";
    my ($data, $got) = ("", 0);
    while (1) {
        $got = sysread($fh, $data, 65536, length($data));
        die "read: $!\n" unless defined $got;
        last if $got == 0;
    }
    return $data;
}
sub write_all {
    my ($fh, $data, $at) = @_;
    while (length($data)) {
        sysseek($fh, $at, SEEK_SET) or return 0;
        my $put = syswrite($fh, $data);
        return 0 unless defined $put;
        if ($put == 0) { $! = Errno::EIO(); return 0; }
        substr($data, 0, $put, "");
        $at += $put;
    }
    return 1;
}
if ($mode eq "read") {
    my $dir = pool_dir();
    print "dir\t", hexed($dir), "\n";
    for my $pool (0 .. 4) {
        my $fh;
        if (!sysopen($fh, path($dir, $pool), O_RDONLY)) {
            if ($!{ENOENT}) { print "pool\t$pool\tmissing\n"; }
            else { print "pool\t$pool\tunreadable\t", $! + 0, "\t", hexed("$!"), "\n"; }
            next;
        }
        binmode $fh;
        lock_fd($fh, F_RDLCK);
        my $data = read_all($fh);
        close $fh;
        print "pool\t$pool\tdata\t", hexed($data), "\n";
    }
    exit 0;
}
# The same edit as the python3 version, step for step; see its comments.
my (%updates, %deletes, @order);
while (my $line = <STDIN>) {
    chomp $line;
    my ($op, $k, $v) = split /\t/, $line, -1;
    $k = pack("H*", $k); $v = pack("H*", $v);
    if ($op eq "set") {
        push @order, $k unless exists $updates{$k};
        $updates{$k} = $v;
        delete $deletes{$k};
    } else {
        $deletes{$k} = 1;
        delete $updates{$k};
        @order = grep { $_ ne $k } @order;
    }
}
my $dir = pool_dir();
my $name = path($dir, 1);
mkdir $dir, 0755;
my ($fh, $created);
# Until the pool is open, locked and read nothing has been written.
sub unchanged {
    print "failed\tunchanged\t", hexed("$name: $_[0]"), "\t\n";
    exit 75;
}
if (sysopen($fh, $name, O_RDWR | O_CREAT | O_EXCL, 0644)) { $created = 1; }
elsif (!sysopen($fh, $name, O_RDWR)) { unchanged("$!"); }
binmode $fh;
my $old = eval { lock_fd($fh, F_WRLCK); read_all($fh) };
if (!defined $old) {
    my $error = $@;
    $error =~ s/\n\z//;
    unlink $name if $created;
    unchanged($error);
}
my $size = length($old);
my @records;
for (my $at = 0; $at < $size; $at += $RECORD) {
    push @records, pack("a$RECORD", substr($old, $at, $RECORD));
}
my (@out, %seen);
for my $record (@records) {
    my $key = substr($record, 0, $KEY); $key =~ s/\0.*//s;
    next if $deletes{$key};
    if (exists $updates{$key}) {
        $seen{$key} = 1;
        $record = substr($record, 0, $KEY) . pack("a" . ($RECORD - $KEY), $updates{$key});
    }
    push @out, $record;
}
for my $key (@order) {
    next if $seen{$key};
    push @out, pack("a$KEY", $key) . pack("a" . ($RECORD - $KEY), $updates{$key});
}
my $new = join("", @out);
if ($new ne $old) {
    my $error = "";
    if (length($new) > $size) {
        if (!(write_all($fh, substr($new, $size), $size) && $fh->sync)) {
            $error = "$!";
            truncate($fh, $size); $fh->sync;
        }
    }
    if (!$error) {
        my $ok = write_all($fh, substr($new, 0, $size), 0);
        $ok = $ok && truncate($fh, length($new)) && $fh->sync;
        if (!$ok) {
            $error = "$!";
            write_all($fh, $old, 0); truncate($fh, $size); $fh->sync;
        }
    }
    if ($error) {
        my $now = read_all($fh);
        unlink $name if $created && $now eq "";
        my $state = $now eq $old ? "unchanged" : "damaged";
        print "failed\t$state\t", hexed($error), "\t", hexed($now), "\n";
        exit($state eq "unchanged" ? 75 : 76);
    }
}
my $after = read_all($fh);
close $fh;
print "dir\t", hexed($dir), "\n";
print "pool\t1\tdata\t", hexed($after), "\n";
"""

KVP_SCRIPT = (
    "# hvintegration linux kvp v2; arguments: read|write PYTHON PERL INTERPRETER DIRECTORY...\n"
    + r"""
mode=$1; py=$2; pl=$3; prefer=$4; shift 4
# This may run as root: leave the caller's directory, and start python3
# isolated (-I), so no module planted in the working directory or named by
# PYTHONPATH can be imported in place of the standard library.
cd / || exit 70
# The pool files are locked with fcntl record locks, which neither flock(1)
# nor a shell can take: python3 or perl does the locked read or write.
if [ "$prefer" != perl ] && command -v python3 >/dev/null 2>&1; then
    exec python3 -I -c "$py" "$mode" "$@"
fi
if command -v perl >/dev/null 2>&1; then
    exec perl -e "$pl" "$mode" "$@"
fi
echo "the KVP pools need python3 or perl on the guest to take the daemon's fcntl lock" >&2
exit 69
"""
)
