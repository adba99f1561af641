#!/usr/bin/env bash
# mkrootfs.sh DIR — a tiny busybox root filesystem from Debian's busybox-static.
#
# DIR/bin/busybox plus one symlink per applet in DIR/bin; /sbin, /usr/bin and
# /usr/sbin are symlinks to /bin so every PATH entry finds the applets.
# /etc/passwd, /etc/group, /etc/hosts and the empty mount-point directories a
# runtime expects. Idempotent: rerunning on an existing DIR only fixes what
# differs. Quiet on success.
set -euo pipefail

die() { echo "mkrootfs: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: mkrootfs.sh DIR"
dir=$1
busybox=${BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || die "$busybox not found: install busybox-static (bash scripts/setup.sh)"
# A dynamically linked busybox would not run inside the rootfs.
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked: install busybox-static"
fi

mkdir -p "$dir"
cd "$dir"

mkdir -p bin etc proc sys dev tmp root run var/tmp usr home
chmod 0755 bin etc proc sys dev root run usr home
chmod 1777 tmp var/tmp
chmod 0700 root
for l in sbin usr/bin usr/sbin; do
    case $l in usr/*) target=../bin ;; *) target=bin ;; esac
    if [[ -L $l ]]; then
        [[ $(readlink "$l") == "$target" ]] || ln -sfn "$target" "$l"
    else
        [[ -e $l ]] && rm -rf --one-file-system -- "$l"
        ln -s "$target" "$l"
    fi
done

if ! cmp -s "$busybox" bin/busybox; then
    cp "$busybox" bin/busybox.new
    chmod 0755 bin/busybox.new
    mv -f bin/busybox.new bin/busybox
fi

# One relative symlink per applet (perl-base is essential on Debian: one
# process instead of ~270 `ln` forks).
"$busybox" --list | perl -e '
    chdir "bin" or die "bin: $!";
    while (my $a = <STDIN>) {
        chomp $a;
        next if $a eq "" || $a eq "busybox" || $a =~ m{/};
        my $cur = readlink $a;
        next if defined $cur && $cur eq "busybox";
        unlink $a;
        symlink("busybox", $a) or die "symlink $a: $!";
    }'

write() { # write FILE MODE CONTENT: only when it differs
    local f=$1 mode=$2 content=$3
    if [[ ! -f $f ]] || [[ $(<"$f") != "$content" ]]; then
        printf '%s\n' "$content" >"$f.new"
        chmod "$mode" "$f.new"
        mv -f "$f.new" "$f"
    fi
}
write etc/passwd 0644 'root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false'
write etc/group 0644 'root:x:0:
tty:x:5:
nogroup:x:65534:'
write etc/hosts 0644 '127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback'
[[ -e etc/resolv.conf ]] || : >etc/resolv.conf
[[ -e etc/hostname ]] || : >etc/hostname
