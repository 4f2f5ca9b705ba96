#!/usr/bin/env bash
# Debian packages and Python receivers the test suite drives for real. Idempotent: installs
# only what is missing, so a second run costs a few `command -v` calls.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# nmap, sshpass, ssh/ssh-keygen, redis-cli, curl: the honeypot and services tests drive the
# built-in honeypots with real clients and scanners.
for tool in gcc pkg-config ip openssl skopeo nft nmap sshpass ssh ssh-keygen redis-cli curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# Static busybox: the Docker runtime tests build FROM scratch images from it.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  # ip (iproute2): the netlink tests create network namespaces; openssl: s_client test;
  # skopeo: the registry test copies an image with a real OCI client; nft: the catch-all
  # rules; busybox-static: the images of the Docker runtime tests.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config iproute2 openssl \
    skopeo nftables busybox-static nmap sshpass openssh-client redis-tools curl
fi
# honeysens-notify tests: rsyslog (+ GnuTLS driver) as the syslog collector, aiosmtpd in a venv
# as the SMTP server (apt: rsyslog rsyslog-gnutls python3-venv; pip: aiosmtpd).
scripts/notify-deps.sh
