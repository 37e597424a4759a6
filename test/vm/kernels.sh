#!/usr/bin/env bash
# Fetch Debian's packaged cloud kernels and cache them for the VM test harness.
#
# Usage: test/vm/kernels.sh [--dir DIR] [5.10|6.1|6.12|all]
#
# 5.10 is Debian 11's (bullseye) cloud kernel. It comes through a private
# apt configuration under DIR/apt (its own sources list, lists and cache),
# so the system's apt sources are never touched.
#
# Layout of the cache (DIR defaults to build/kernels under the repo root):
#   DIR/<series>/vmlinuz   the kernel image
#   DIR/<series>/config    the kernel's build config (for reference)
#   DIR/<series>/VERSION   the exact release string, e.g. 6.1.0-40-cloud-amd64
#   DIR/<series>/modules/  modules the tests need that Debian builds as modules
#                          (inet_diag, tcp_diag: sock_diag for TCP), uncompressed,
#                          with modules/order listing them in load order
#
# Nothing is downloaded when a series is already cached.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
kdir="$repo_root/build/kernels"
which=all

log() { printf 'kernels: %s\n' "$*" >&2; }
die() { printf 'kernels: error: %s\n' "$*" >&2; exit 1; }

usage() {
	printf 'usage: %s [--dir DIR] [5.10|6.1|6.12|all]\n' "${0##*/}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--dir) [ $# -ge 2 ] || usage; kdir=$2; shift 2 ;;
	--dir=*) kdir=${1#--dir=}; shift ;;
	-h | --help) usage ;;
	5.10 | 6.1 | 6.12 | all) which=$1; shift ;;
	*) usage ;;
	esac
done

# Debian metapackage tracking each kernel series.
metapkg() {
	case "$1" in
	5.10) echo linux-image-cloud-amd64 ;;
	6.1) echo linux-image-cloud-amd64 ;;
	6.12) echo linux-image-6.12-cloud-amd64 ;;
	*) die "unknown kernel series: $1" ;;
	esac
}

need_tools() {
	local missing=()
	command -v apt-get >/dev/null || die "apt-get not found; this script needs a Debian-based host"
	command -v apt-cache >/dev/null || die "apt-cache not found; this script needs a Debian-based host"
	command -v dpkg >/dev/null || missing+=(dpkg)
	[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]}"
}

# apt options of a series: bullseye's kernel comes from a private
# configuration (sources list, lists, cache and status under $kdir/apt),
# the others from the system's.
apt_opts=()
apt_setup() {
	apt_opts=()
	case "$1" in
	5.10)
		local a="$kdir/apt"
		mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/etc/preferences.d" "$a/etc/sources.list.d"
		printf 'deb http://deb.debian.org/debian bullseye main\n' >"$a/etc/sources.list"
		: >"$a/status"
		apt_opts=(-o "Dir::Etc::SourceList=$a/etc/sources.list"
			-o "Dir::Etc::SourceParts=$a/etc/sources.list.d"
			-o "Dir::Etc::Preferences=$a/etc/preferences"
			-o "Dir::Etc::PreferencesParts=$a/etc/preferences.d"
			-o "Dir::State::Lists=$a/lists"
			-o "Dir::State::Status=$a/status"
			-o "Dir::Cache=$a/cache")
		if [ -z "$(find "$a/lists" -maxdepth 1 -name '*bullseye*Packages*' -print -quit)" ]; then
			log "[$1] apt-get update (bullseye main, private lists in $a)"
			apt-get "${apt_opts[@]}" update -qq >&2 || die "apt-get update of bullseye main failed"
		fi
		;;
	esac
}

apt_update() {
	apt-get "${apt_opts[@]}" update -qq >&2 || die "apt-get update failed"
}

# Print the real linux-image package the metapackage depends on.
resolve_image_pkg() {
	local meta=$1 dep
	dep=$(apt-cache "${apt_opts[@]}" depends "$meta" 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ { print $2; exit }')
	if [ -z "$dep" ]; then
		log "$meta unknown to apt; running apt-get update"
		apt_update
		dep=$(apt-cache "${apt_opts[@]}" depends "$meta" 2>/dev/null |
			awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-/ { print $2; exit }')
	fi
	[ -n "$dep" ] || die "cannot resolve the kernel image package behind $meta"
	printf '%s\n' "$dep"
}

fetch_series() {
	local series=$1 dest="$kdir/$1"
	if [ -s "$dest/vmlinuz" ] && [ -s "$dest/VERSION" ] && [ -s "$dest/modules/order" ]; then
		return 0
	fi
	need_tools

	local meta pkg tmp deb release
	meta=$(metapkg "$series")
	apt_setup "$series"
	log "[$series] resolving $meta"
	pkg=$(resolve_image_pkg "$meta")

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/twtop-kernel.XXXXXX")
	cleanup_dirs+=("$tmp")

	log "[$series] downloading $pkg"
	if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download -q "$pkg" >/dev/null 2>&1); then
		log "[$series] $pkg not downloadable; running apt-get update"
		apt_update
		pkg=$(resolve_image_pkg "$meta")
		(cd "$tmp" && apt-get "${apt_opts[@]}" download -q "$pkg" >&2) || die "apt-get download $pkg failed"
	fi
	deb=$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)
	[ -n "$deb" ] || die "apt-get download produced no .deb for $pkg"

	log "[$series] unpacking $(basename "$deb")"
	dpkg -x "$deb" "$tmp/root"
	local vmlinuz
	vmlinuz=$(find "$tmp/root/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)
	[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $pkg"
	release=${vmlinuz##*/vmlinuz-}

	mkdir -p "$dest"
	cp "$vmlinuz" "$dest/vmlinuz.tmp"
	if [ -f "$tmp/root/boot/config-$release" ]; then
		cp "$tmp/root/boot/config-$release" "$dest/config"
	fi
	rm -rf "$dest/modules"
	mkdir -p "$dest/modules"
	local mod src
	for mod in inet_diag tcp_diag; do
		src=$(find "$tmp/root/lib/modules/$release" -name "$mod.ko*" -print -quit)
		[ -n "$src" ] || die "no $mod module in $pkg"
		case "$src" in
		*.ko.xz) xz -dc "$src" >"$dest/modules/$mod.ko" ;;
		*.ko.zst) zstd -qdc "$src" >"$dest/modules/$mod.ko" ;;
		*.ko.gz) gzip -dc "$src" >"$dest/modules/$mod.ko" ;;
		*) cp "$src" "$dest/modules/$mod.ko" ;;
		esac
		printf '%s\n' "$mod" >>"$dest/modules/order"
	done
	printf '%s\n' "$release" >"$dest/VERSION.tmp"
	mv "$dest/vmlinuz.tmp" "$dest/vmlinuz"
	mv "$dest/VERSION.tmp" "$dest/VERSION"
	rm -rf "$tmp"
	log "[$series] cached $release in $dest"
}

cleanup_dirs=()
cleanup() {
	local d
	for d in "${cleanup_dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# Serialise concurrent runs (go test runs several packages in parallel).
mkdir -p "$kdir"
kdir=$(cd "$kdir" && pwd) # apt reads relative paths from /etc/apt
if command -v flock >/dev/null; then
	exec 9>"$kdir/.lock"
	flock 9
fi

case "$which" in
all) fetch_series 5.10; fetch_series 6.1; fetch_series 6.12 ;;
*) fetch_series "$which" ;;
esac
