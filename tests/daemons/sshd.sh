#!/bin/sh
# tests/daemons/sshd.sh — OpenSSH's sshd under bulwark.
#
# Proves that sshd (Debian's OpenSSH 9.2) accepts logins with bulwark
# preloaded: `sshd -D -e` on a high port of 127.0.0.1 with a configuration,
# an ed25519 host key and an authorized user key of its own in a temporary
# directory (as root with PAM, as Debian configures sshd); the listener maps
# libbulwark; in each of four logins by key (sshd re-executes itself for
# the connection and runs a seccomp-sandboxed pre-authentication child) the
# session's sshd that forked the user's shell and its parent map libbulwark,
# checked from outside while the session waits; the user's shell has no
# LD_PRELOAD and does not map the library (sshd builds the session's
# environment afresh: docs/OPERATIONS.md, "Daemons tested"). sshd stops on
# SIGTERM and wrote no `bulwark:` line.
#
# As root (CI) sshd runs with privilege separation, as it is deployed (its
# directory /run/sshd is made if missing), and the logins alternate between
# root (whose session stays in the connection's process, below the
# listener) and, when it exists, the `postgres` user (a session child that
# switched to the user, below the privileged monitor); as another user, sshd
# runs without privileges and logs that user in.

. "$(dirname "$0")/daemon.inc"

SSHD=/usr/sbin/sshd
need_tool "$SSHD" openssh-server
need_tool ssh openssh-client
need_tool ssh-keygen openssh-client

LOGINS=4

sshd_start() {
    if [ "$(id -u)" -eq 0 ]; then
        mkdir -p /run/sshd
        chmod 755 /run/sshd
    fi
    PORT=$(dm_port)
    ssh-keygen -q -t ed25519 -N '' -C bulwark-test-host -f "$WORK/host_key"
    ssh-keygen -q -t ed25519 -N '' -C bulwark-test-user -f "$WORK/user_key"
    cp "$WORK/user_key.pub" "$WORK/authorized_keys"
    # Read by sshd as the user logging in.
    chmod 644 "$WORK/authorized_keys"
    use_pam=no
    if [ "$(id -u)" -eq 0 ]; then
        use_pam=yes
    fi
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
# As root as Debian configures it: PAM does the account and session work
# (and lets a user whose password is locked log in by key). Unprivileged,
# PAM's session modules cannot work (pam_loginuid).
UsePAM $use_pam
LogLevel VERBOSE
EOF
    dm_start "$WORK/sshd.log" "$SSHD" -D -e -f "$WORK/sshd_config"
    dm_wait_for "sshd on port $PORT" dm_listening "$PORT"
}

# ssh_run COMMAND [USER]: one login by key, running COMMAND, no stdin.
ssh_run() {
    timeout 30 ssh -n -F /dev/null -i "$WORK/user_key" -p "$PORT" -o BatchMode=yes \
        -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR "${2:-$(id -un)}@127.0.0.1" "$1"
}

dm_test() {
    sshd_start
    echo "== sshd pid $DM_PID on port $PORT"
    dm_check_tree "$DM_PID" 1

    # The remote shell prints its parent, the session's sshd ("sshd:
    # USER@notty", which forked it), and that one's parent: the privileged
    # monitor ("sshd: USER [priv]") for a user, the listener for root (sshd
    # keeps root's session in the connection's process); then whether the
    # shell itself maps the library or has LD_PRELOAD; then it waits until
    # this script has read both processes' maps (as root: a session's
    # processes are not readable by the user) and touched $WORK/go.N.
    dm_step "logins"
    # As root, every other login is the `postgres` user's (a user with a
    # shell, made by Debian's postgresql package), when it exists: its
    # session runs in a child that switched to the user.
    other=
    if [ "$(id -u)" -eq 0 ] && [ "$(getent passwd postgres | cut -d: -f7)" = /bin/bash ]; then
        other=postgres
    fi
    i=0
    while [ "$i" -lt "$LOGINS" ]; do
        i=$((i + 1))
        user=$(id -un)
        if [ $((i % 2)) -eq 0 ] && [ -n "$other" ]; then
            user=$other
        fi
        # shellcheck disable=SC2016 # expanded by the remote shell
        probe='gp=$(sed "s/.*) //" /proc/$PPID/stat | cut -d" " -f2)
            printf "session %s %s shell_maps=%s preload=%s\n" $PPID $gp \
                "$(grep -c libbulwark /proc/$$/maps)" "${LD_PRELOAD:-unset}"
            n=0
            while [ ! -e '"$WORK/go.$i"' ] && [ $n -lt 300 ]; do sleep 0.05; n=$((n + 1)); done'
        ssh_run "$probe" "$user" >"$WORK/login.$i" 2>&1 &
        ssh_pid=$!
        DM_PIDS="$DM_PIDS $ssh_pid"
        if ! dm_wait_for "login $i ($user)" grep -q '^session ' "$WORK/login.$i"; then
            dm_fail "login $i ($user): $(cat "$WORK/login.$i")"
            touch "$WORK/go.$i"
            continue
        fi
        # shellcheck disable=SC2046 # "session PID PID ..." split on purpose
        set -- $(cat "$WORK/login.$i")
        for p in "$2" "$3"; do
            if dm_maps_lib "$p"; then
                echo "ok: login $i ($user): pid $p maps libbulwark: $(dm_comm "$p")"
            else
                dm_fail "login $i ($user): pid $p does not map libbulwark: $(dm_comm "$p")"
            fi
        done
        case "$(dm_comm "$2")" in
        "sshd: $user@"*) ;;
        *) dm_fail "login $i: the shell's parent is not the session's sshd: $(dm_comm "$2")" ;;
        esac
        [ "$4 $5" = "shell_maps=0 preload=unset" ] ||
            dm_fail "login $i ($user): the user's shell runs on bulwark: $4 $5"
        touch "$WORK/go.$i"
        wait "$ssh_pid" || dm_fail "login $i ($user): ssh exited with an error: $(cat "$WORK/login.$i")"
    done
    n=$(grep -c 'Accepted publickey' "$WORK/sshd.log" || true)
    [ "$n" -eq "$LOGINS" ] || dm_fail "sshd logged $n accepted logins, $LOGINS expected"

    dm_check_tree "$DM_PID" 1
    dm_step "shutdown"
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
    sleep 0.2 # the last connection's processes are reaped by the listener
    cpu=$(dm_cpu "$DM_PID")
    dm_stop "$DM_PID" TERM
    echo "logins/s $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 20 / (b - a) }') server-cpu $cpu"
}

dm_main "$@"
