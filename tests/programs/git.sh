#!/bin/sh
# tests/programs/git.sh — git under bulwark.
#
# Proves that git (index, object database, zlib, packing with delta search,
# fsck) creates the very same commits and reports the very same history with
# bulwark preloaded as without: a repository of a few hundred generated files
# is committed three times with fixed identities and dates (so the commit
# hashes are deterministic), then logged, diffed, fsck'ed and gc'ed. Also
# proves git's malloc really was bulwark's.

. "$(dirname "$0")/common.inc"

need_tool git git
need_tool awk mawk
BOUND_PROGRAMS="git"

# Writes 300 files (src/dNN/fileNNN.txt) whose content depends on the seed $1,
# from a fixed LCG: a generation-1 tree, then edits of part of it.
generate_files() {
    for d in $(seq 0 16); do mkdir -p "src/d$(printf %02d "$d")"; done
    awk -v seed="$1" -v only_every="$2" '
    function rnd(m) { seed = (seed * 69069 + 1) % 4294967296; return int(seed / 65536) % m }
    BEGIN {
        for (f = 0; f < 300; f++) {
            if (f % only_every != 0) continue
            dir = sprintf("src/d%02d", f % 17)
            path = sprintf("%s/file%03d.txt", dir, f)
            lines = 5 + rnd(200)
            for (l = 0; l < lines; l++) {
                printf "line %d of %s: %08x %08x", l, path, rnd(65536) * 65536 + rnd(65536), rnd(1000) > path
                for (k = rnd(8); k > 0; k--) printf " lorem%d", rnd(50) > path
                printf "\n" > path
            }
            close(path)
        }
    }'
}

workload() {
    # An isolated, reproducible git: no user or system config, fixed identity
    # and dates, no background gc, deterministic packing.
    export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
    export GIT_AUTHOR_NAME="Bulwark Test" GIT_AUTHOR_EMAIL="test@bulwark.invalid"
    export GIT_COMMITTER_NAME="Bulwark Test" GIT_COMMITTER_EMAIL="test@bulwark.invalid"
    export TZ=UTC LC_ALL=C
    git init -q -b main repo
    cd repo || exit 1
    git config user.name "Bulwark Test"
    git config user.email "test@bulwark.invalid"
    git config gc.auto 0
    git config gc.autoDetach false

    generate_files 1 1
    git add -A
    GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z" \
        git commit -q -m "generation 1: 300 files"
    generate_files 2 3
    git add -A
    GIT_AUTHOR_DATE="2024-01-02T00:00:00Z" GIT_COMMITTER_DATE="2024-01-02T00:00:00Z" \
        git commit -q -m "generation 2: edit every third file"
    git rm -q -r src/d05
    generate_files 3 7
    git add -A
    GIT_AUTHOR_DATE="2024-01-03T00:00:00Z" GIT_COMMITTER_DATE="2024-01-03T00:00:00Z" \
        git commit -q -m "generation 3: drop d05, edit every seventh file"

    echo "HEAD $(git rev-parse HEAD)"
    echo "tree $(git rev-parse 'HEAD^{tree}')"
    git log --format='%H %an <%ae> %ad %s' --shortstat
    git diff --stat HEAD~2 HEAD | tail -n 3
    echo "diff sha256 $(git diff HEAD~2 HEAD | sha256sum)"
    git ls-files | wc -l
    git fsck --full --strict --no-progress 2>&1
    echo "fsck before gc: exit $?"
    git -c pack.threads=2 gc -q --aggressive
    git count-objects -v | grep -E '^(count|in-pack|packs|prune-packable|garbage):'
    git fsck --full --strict --no-progress 2>&1
    echo "fsck after gc: exit $?"
    echo "after gc HEAD $(git rev-parse HEAD)"
    git archive --format=tar HEAD | sha256sum
}

bw_main "$@"
