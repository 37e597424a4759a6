#!/usr/bin/env bash
# Run a statically linked test binary inside a Debian kernel under qemu.
#
# Usage:
#   test/vm/exec.sh [--kernel 5.10|6.1|6.12|PATH] [--mem MiB] [--timeout SECONDS]
#                   [--smp N] [--tcg-thread single|multi] [--kernel-dir DIR]
#                   [--] BINARY [ARGS...]
#
# Meant to be used as a `go test -exec` wrapper:
#   CGO_ENABLED=0 go test -exec "$PWD/test/vm/exec.sh --kernel 6.1" ./tracer/... -v
#
# The guest console is streamed to stdout and the script exits with the exit
# code of BINARY inside the guest. If the guest never reports an exit code
# (kernel panic, timeout, qemu failure) the script exits 1.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)

kernel=${TWTOP_VM_KERNEL:-6.1}
kernel_dir="$repo_root/build/kernels"
mem=1024
vm_timeout=1200
smp=2
# Multi-threaded TCG occasionally executes stale code after the kernel patches
# its text (int3 oopses during boot and when kprobes/fentry are attached), so
# the vCPUs share one host thread unless asked otherwise.
tcg_thread=${TWTOP_VM_TCG_THREAD:-single}

log() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: error: %s\n' "$*" >&2; exit 1; }

usage() {
	cat >&2 <<EOF
usage: ${0##*/} [--kernel 5.10|6.1|6.12|PATH] [--mem MiB] [--timeout SECONDS]
       [--smp N] [--tcg-thread single|multi] [--kernel-dir DIR]
       [--] BINARY [ARGS...]
EOF
	exit 2
}

need_arg() { [ "$1" -ge 2 ] || usage; }

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) need_arg $#; kernel=$2; shift 2 ;;
	--kernel=*) kernel=${1#*=}; shift ;;
	--mem) need_arg $#; mem=$2; shift 2 ;;
	--mem=*) mem=${1#*=}; shift ;;
	--timeout) need_arg $#; vm_timeout=$2; shift 2 ;;
	--timeout=*) vm_timeout=${1#*=}; shift ;;
	--smp) need_arg $#; smp=$2; shift 2 ;;
	--smp=*) smp=${1#*=}; shift ;;
	--tcg-thread) need_arg $#; tcg_thread=$2; shift 2 ;;
	--tcg-thread=*) tcg_thread=${1#*=}; shift ;;
	--kernel-dir) need_arg $#; kernel_dir=$2; shift 2 ;;
	--kernel-dir=*) kernel_dir=${1#*=}; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) log "unknown option: $1"; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
binary=$1
shift

[[ $mem =~ ^[0-9]+$ ]] || die "--mem must be a number of MiB, got '$mem'"
[[ $vm_timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds, got '$vm_timeout'"
[[ $smp =~ ^[1-9][0-9]*$ ]] || die "--smp must be a positive number, got '$smp'"
case "$tcg_thread" in
single | multi) ;;
*) die "--tcg-thread must be single or multi, got '$tcg_thread'" ;;
esac
[ -f "$binary" ] || die "test binary not found: $binary"
[ -x "$binary" ] || die "test binary is not executable: $binary"

# --- host tools -------------------------------------------------------------

busybox_bin=/bin/busybox

is_static() {
	local out
	if command -v file >/dev/null; then
		out=$(file -bL "$1")
		case "$out" in
		ELF*) ;;
		*) return 2 ;;
		esac
		case "$out" in
		*"dynamically linked"*) return 1 ;;
		esac
		return 0
	fi
	# No file(1): ldd says "not a dynamic executable" or "statically linked".
	out=$(LC_ALL=C ldd "$1" 2>&1 || true)
	case "$out" in
	*"not a dynamic executable"* | *"statically linked"*) return 0 ;;
	esac
	return 1
}

ensure_tools() {
	local pkgs=()
	command -v qemu-system-x86_64 >/dev/null || pkgs+=(qemu-system-x86)
	command -v cpio >/dev/null || pkgs+=(cpio)
	if [ ! -x "$busybox_bin" ] || ! is_static "$busybox_bin"; then
		pkgs+=(busybox-static)
	fi
	[ ${#pkgs[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing host packages; run: apt-get install -y --no-install-recommends ${pkgs[*]}"
	fi
	log "installing ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
		die "apt-get install ${pkgs[*]} failed"
	if [ ! -x "$busybox_bin" ] || ! is_static "$busybox_bin"; then
		die "$busybox_bin is not a static busybox"
	fi
}

ensure_tools
for tool in gzip timeout sed tee; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

set +e
is_static "$binary"
rc=$?
set -e
case $rc in
0) ;;
2) die "$binary is not an ELF executable" ;;
*) die "$binary is dynamically linked; rebuild it with CGO_ENABLED=0" ;;
esac

# --- kernel -----------------------------------------------------------------

case "$kernel" in
5.10 | 6.1 | 6.12)
	if [ ! -s "$kernel_dir/$kernel/vmlinuz" ] || [ ! -s "$kernel_dir/$kernel/VERSION" ] ||
		[ ! -s "$kernel_dir/$kernel/modules/order" ]; then
		"$script_dir/kernels.sh" --dir "$kernel_dir" "$kernel"
	fi
	vmlinuz="$kernel_dir/$kernel/vmlinuz"
	modules="$kernel_dir/$kernel/modules"
	release=$(cat "$kernel_dir/$kernel/VERSION")
	;;
*)
	[ -f "$kernel" ] || die "--kernel must be 5.10, 6.1, 6.12 or a path to a kernel image, got '$kernel'"
	vmlinuz=$kernel
	modules="$(dirname "$kernel")/modules"
	if [ -s "$(dirname "$kernel")/VERSION" ]; then
		release=$(cat "$(dirname "$kernel")/VERSION")
	elif command -v file >/dev/null && [[ $(file -bL "$kernel") =~ version\ ([^ ,]+) ]]; then
		release=${BASH_REMATCH[1]}
	else
		release=$(basename "$kernel")
	fi
	;;
esac

# --- initramfs --------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twtop-vm.XXXXXX")
qemu_pid_file="$tmp/timeout.pid"
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [ -s "$qemu_pid_file" ]; then
		kill "$(cat "$qemu_pid_file")" 2>/dev/null || true
		wait || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 131' QUIT
trap 'exit 143' TERM
trap 'exit 129' HUP

root="$tmp/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,root,vm/bin,vm/wd}
cp "$busybox_bin" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
while IFS= read -r applet; do
	[ -n "$applet" ] || continue
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox_bin" --list-full)
[ -e "$root/bin/sh" ] || ln -s /bin/busybox "$root/bin/sh"
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF

mkdir -p "$root/vm/modules"
if [ -s "$modules/order" ]; then
	cp "$modules"/*.ko "$modules/order" "$root/vm/modules/"
fi

bin_name=$(basename "$binary")
cp "$binary" "$root/vm/bin/$bin_name"
chmod 0755 "$root/vm/bin/$bin_name"

workdir=$PWD
if [ -d "$workdir/testdata" ]; then
	cp -a "$workdir/testdata" "$root/vm/wd/testdata"
fi

# Single-quote a string for /bin/sh.
shquote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker="TWTOP-VM-EXIT:$nonce"

{
	cat <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

mnt() {
	mkdir -p "$4"
	mount "$@" || echo "vm: mount $* failed"
}
mnt -t devpts devpts /dev/pts
mnt -t tmpfs tmpfs /dev/shm
mnt -t tmpfs tmpfs /tmp
mnt -t tmpfs tmpfs /run
mnt -t bpf bpffs /sys/fs/bpf
mnt -t tracefs tracefs /sys/kernel/tracing
mnt -t debugfs debugfs /sys/kernel/debug
mnt -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up || echo "vm: cannot bring up lo"
if [ -s /vm/modules/order ]; then
	while read -r m; do
		insmod "/vm/modules/$m.ko" || echo "vm: insmod $m failed"
	done </vm/modules/order
fi
ulimit -l unlimited 2>/dev/null
hostname twtop-vm

EOF
	# Environment: a clean slate plus what the host passes through.
	printf 'export HOME=/tmp TMPDIR=/tmp\n'
	while IFS= read -r name; do
		case "$name" in
		TWTOP_* | CI | GOTRACEBACK)
			printf 'export %s=%s\n' "$name" "$(shquote "${!name}")"
			;;
		esac
	done < <(compgen -e)

	printf 'workdir=%s\n' "$(shquote "$workdir")"
	printf 'bin=%s\n' "$(shquote "/vm/bin/$bin_name")"
	printf 'set --'
	for arg in "$@"; do
		printf ' %s' "$(shquote "$arg")"
	done
	printf '\n'
	printf 'marker=%s\n' "$(shquote "$marker")"

	cat <<'EOF'

if [ "$workdir" = / ]; then
	workdir=/vm/wd
else
	mkdir -p "$workdir" && mount --bind /vm/wd "$workdir"
fi
cd "$workdir" || cd /vm/wd

"$bin" "$@" </dev/null
rc=$?

echo "$marker:$rc"
sync
# Give the UART a moment to drain before the machine goes away.
sleep 0.2
poweroff -f
sleep 10
EOF
} >"$root/init"
chmod 0755 "$root/init"

initrd="$tmp/initrd.gz"
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"

# --- boot -------------------------------------------------------------------

cmdline="console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init mitigations=off"

log "booting $release (tcg, $smp vCPUs) for $bin_name"

# qemu runs in the background so that signals sent to this script (Ctrl-C,
# go test killing a hung test) are handled at once and the VM is torn down.
console="$tmp/console.log"
(
	set +e
	timeout --foreground -k 10 "$vm_timeout" qemu-system-x86_64 \
		-accel "tcg,thread=$tcg_thread" -smp "$smp" -cpu max -m "$mem" \
		-kernel "$vmlinuz" -initrd "$initrd" -append "$cmdline" \
		-nodefaults -no-user-config -no-reboot \
		-display none -monitor none -serial stdio \
		</dev/null 2>"$tmp/qemu.err" &
	echo $! >"$qemu_pid_file"
	wait $!
	echo $? 2>/dev/null >"$tmp/qemu.status"
) | tee "$console" | sed -u \
	-e 's/\r//g' \
	-e "/^$marker:[0-9]*\$/d" \
	-e "s/$marker:[0-9]*\$//" \
	-e '/^\[ *[0-9]*\.[0-9]*\] /d' &
wait $! || true
: >"$qemu_pid_file"
qemu_status=$(cat "$tmp/qemu.status" 2>/dev/null || echo unknown)

code=$(grep -ao "$marker:[0-9]*" "$console" | tail -n 1 | cut -d: -f3 || true)
if [ -n "$code" ]; then
	exit "$code"
fi

reason="qemu exited with status $qemu_status"
[ "$qemu_status" = 124 ] && reason="timed out after ${vm_timeout}s"
panic_line=$(tr -d '\r' <"$console" | grep -aEo '(Kernel panic|BUG:|Oops:).*' | head -n 1 || true)
[ -n "$panic_line" ] && reason="$reason; $panic_line"
printf 'vm: error: no exit status from %s on %s (%s); last console output:\n' \
	"$bin_name" "$release" "$reason" >&2
{
	tail -n 25 "$console" | tr -d '\r'
	if [ -s "$tmp/qemu.err" ]; then
		cat "$tmp/qemu.err"
	fi
} | sed 's/^/vm:   /' >&2
exit 1
