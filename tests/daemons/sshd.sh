#!/bin/sh
# tests/daemons/sshd.sh — OpenSSH's sshd under bulwark.
#
# Proves that sshd (Debian's OpenSSH 9.2) accepts logins with bulwark
# preloaded: sshd -D -e on a high port of 127.0.0.1 with a configuration,
# an ed25519 host key and an authorized user key of its own in a temporary
# directory; the listener maps libbulwark; five logins by key each run a
# command whose parent is the session's sshd (the process that forked the
# user's shell: sshd re-executed itself for the connection and ran its
# seccomp-sandboxed pre-authentication child first) and print whether that
# process and its parent map libbulwark — they must, in every login — and
# whether the user's shell has LD_PRELOAD — it must not: sshd builds the
# session's environment afresh (docs/OPERATIONS.md, "Daemons tested").
# sshd stops on SIGTERM and wrote no `bulwark:` line.
#
# As root (CI) sshd runs with privilege separation, as it is deployed (its
# directory /run/sshd is made if missing), and logs root in by key (a system
# user such as postgres has a locked account, which sshd refuses without
# PAM, and PAM's session modules need a real login environment); as another
# user, sshd runs without privileges and logs that user in.

. "$(dirname "$0")/daemon.inc"

SSHD=/usr/sbin/sshd
need_tool "$SSHD" openssh-server
need_tool ssh openssh-client
need_tool ssh-keygen openssh-client

LOGINS=5

sshd_start() {
    if [ "$(id -u)" -eq 0 ]; then
        mkdir -p /run/sshd
        chmod 755 /run/sshd
    fi
    PORT=$(dm_port)
    ssh-keygen -q -t ed25519 -N '' -C bulwark-test-host -f "$WORK/host_key"
    ssh-keygen -q -t ed25519 -N '' -C bulwark-test-user -f "$WORK/user_key"
    cp "$WORK/user_key.pub" "$WORK/authorized_keys"
    chmod 600 "$WORK/authorized_keys"
    cat >"$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
# The keys live below /tmp, which is world-writable: StrictModes would refuse them.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
LogLevel VERBOSE
EOF
    dm_start "$WORK/sshd.log" "$SSHD" -D -e -f "$WORK/sshd_config"
    dm_wait_for "sshd on port $PORT" dm_listening "$PORT"
}

# ssh_run COMMAND: one login by key, running COMMAND.
ssh_run() {
    timeout 30 ssh -F /dev/null -i "$WORK/user_key" -p "$PORT" -o BatchMode=yes \
        -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR "$(id -un)@127.0.0.1" "$1"
}

dm_test() {
    sshd_start
    echo "== sshd pid $DM_PID on port $PORT"
    dm_check_tree "$DM_PID" 1

    # $PPID of the remote shell is the session's sshd ("sshd: USER@notty").
    # Its parent is the privileged monitor ("sshd: USER [priv]") for a
    # user, or for root (sshd skips the unprivileged post-authentication
    # child for root) the listener; both must map the library too.
    probe='gp=$(sed "s/.*) //" /proc/$PPID/stat | cut -d" " -f2)
        printf "%s maps=%s parent=%s maps=%s shell_maps=%s preload=%s\n" \
        "$(tr "\0" " " </proc/$PPID/cmdline | cut -c1-24 | sed "s/ *$//")" "$(grep -c libbulwark /proc/$PPID/maps)" \
        "$(tr "\0" " " </proc/$gp/cmdline | cut -c1-24 | sed "s/ *$//")" "$(grep -c libbulwark /proc/$gp/maps)" \
        "$(grep -c libbulwark /proc/$$/maps)" "${LD_PRELOAD:-unset}"'
    i=0
    while [ "$i" -lt "$LOGINS" ]; do
        i=$((i + 1))
        out=$(ssh_run "$probe") || {
            dm_fail "login $i failed: $out"
            continue
        }
        echo "   login $i: $out"
        case "$out" in
        *" maps=0 "*) dm_fail "login $i: the session's sshd or its parent does not map libbulwark" ;;
        "sshd: "*@*" maps="[1-9]*" parent=sshd: "*" maps="[1-9]*" shell_maps=0 preload=unset") ;;
        *) dm_fail "login $i: unexpected answer: $out" ;;
        esac
    done
    n=$(grep -c 'Accepted publickey' "$WORK/sshd.log" || true)
    [ "$n" -eq "$LOGINS" ] || dm_fail "sshd logged $n accepted logins, $LOGINS expected"

    dm_check_tree "$DM_PID" 1
    dm_stop "$DM_PID" TERM
    dm_check_logs "$WORK/sshd.log"
}

# bench/daemons.sh: 20 logins in a row; logins/s and server CPU.
dm_bench() {
    sshd_start
    t0=$(date +%s.%N)
    i=0
    while [ "$i" -lt 20 ]; do
        ssh_run true
        i=$((i + 1))
    done
    t1=$(date +%s.%N)
    cpu=$(dm_cpu "$DM_PID")
    dm_stop "$DM_PID" TERM
    echo "logins/s $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 20 / (b - a) }') server-cpu $cpu"
}

dm_main "$@"
