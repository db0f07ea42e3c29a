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

# preseed_postfix: answers the postfix package's question ahead, so it installs without a mail
# system set up (no /etc/postfix/main.cf): tests run instances of their own from scratch folders.
preseed_postfix() {
  echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
}

# keep_system_postfix_off: the system-wide Postfix the package enables (and may start) is disabled
# and stopped, so nothing of it listens on port 25 or starts at boot. Installed with the answer
# above it has no /etc/postfix/main.cf and could not start anyway.
keep_system_postfix_off() {
  if command -v systemctl >/dev/null; then
    as_root systemctl disable postfix >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then as_root systemctl stop postfix >/dev/null 2>&1 || true; fi
  fi
  if [ -f /etc/postfix/main.cf ] && as_root postfix status >/dev/null 2>&1; then
    as_root postfix stop
  fi
}

# keep_system_dovecot_off: the dovecot-imapd package enables the system-wide Dovecot (and starts it
# where service starts are allowed); tests run instances of their own from scratch folders, so the
# system one is disabled and, if it is running, stopped: nothing listens on 143 or 993.
keep_system_dovecot_off() {
  if command -v systemctl >/dev/null; then
    as_root systemctl disable dovecot.service dovecot.socket >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then as_root systemctl stop dovecot.service dovecot.socket >/dev/null 2>&1 || true; fi
  fi
  if command -v update-rc.d >/dev/null; then as_root update-rc.d dovecot disable >/dev/null 2>&1 || true; fi
  if [ -f /run/dovecot/master.pid ]; then as_root /usr/sbin/dovecot stop >/dev/null 2>&1 || true; fi
}
