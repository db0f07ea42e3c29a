# What scripts/test, scripts/fixtures and scripts/fuzz-api share; sourced, not run.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install PACKAGE...: installs Debian's packages without questions, waiting up to 10 minutes
# for another apt (unattended upgrades, an earlier run still installing) instead of failing at once.
apt_install() {
  command -v apt-get >/dev/null || { echo "install $* with your package manager" >&2; exit 1; }
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "$@"
}
