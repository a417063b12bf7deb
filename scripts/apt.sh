# Installing Debian packages as root (or through sudo), for the scripts that need some.
# Sourced; the sourcing script defines say MESSAGE and die MESSAGE (which exits).

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $* (re-run as root or install those packages yourself)"
    fi
}

apt_install() {
    say "installing from Debian: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || die "apt-get update failed (is deb.debian.org reachable?)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends --no-upgrade "$@" >/dev/null \
        || die "apt-get install failed for: $*"
}
