#!/usr/bin/env bash
# Test dependencies of honeysens-notify: rsyslog with its GnuTLS driver (the real syslog
# collector of the syslog tests; mmnormalize/mmpstrucdata ship with rsyslog) from Debian, and a
# venv with aiosmtpd (the real SMTP server of the mail tests). Idempotent: installs only what is
# missing. The venv path can be overridden with HONEYSENS_NOTIFY_VENV (the tests read it too).
set -euo pipefail
venv="${HONEYSENS_NOTIFY_VENV:-/work/venvs/notify}"

need=()
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || need+=(rsyslog-gnutls)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q 'aiosmtpd==1.4.6'
fi
