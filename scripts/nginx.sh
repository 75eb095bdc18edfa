#!/usr/bin/env bash
# Makes sure Debian's nginx is installed for the deploy tests (make test-deploy), which run
# deploy/'s site in front of real `web` processes. Installed with apt when missing and we are
# root; otherwise we say what to install and the deploy tests skip. The package is installed
# without starting its default site: the tests start nginx themselves, on their own ports.
set -euo pipefail

if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "nginx: nginx is missing (sudo apt-get install nginx); the deploy tests will be skipped" >&2
  exit 0
fi
# A policy-rc.d that forbids starting services, for the length of the install (unless the
# machine already has one: then its own policy applies).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
echo "nginx: installing nginx with apt-get" >&2
apt-get update -qq >/dev/null
for package in nginx-light nginx; do
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
    exit 0
  fi
done
echo "nginx: apt-get could not install nginx; the deploy tests will be skipped" >&2
exit 0
