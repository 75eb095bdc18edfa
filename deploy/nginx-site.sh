#!/bin/sh
# Prints deploy/nginx-site.conf.in with its placeholders filled in from the environment:
#   sudo SERVER_NAME=analytics.example.com sh deploy/nginx-site.sh \
#     > /etc/nginx/sites-available/landing-analytics
# SERVER_NAME is required; the rest default to a production host (ports 80 and 443, the web
# units on 8001 and 8002, certbot's certificate paths for SERVER_NAME).
set -eu

: "${SERVER_NAME:?SERVER_NAME is required, e.g. SERVER_NAME=analytics.example.com}"
HTTP_LISTEN="${HTTP_LISTEN:-80}"
HTTPS_LISTEN="${HTTPS_LISTEN:-443}"
WEB_PORT_1="${WEB_PORT_1:-8001}"
WEB_PORT_2="${WEB_PORT_2:-8002}"
TLS_CERT="${TLS_CERT:-/etc/letsencrypt/live/$SERVER_NAME/fullchain.pem}"
TLS_KEY="${TLS_KEY:-/etc/letsencrypt/live/$SERVER_NAME/privkey.pem}"
CACHE_DIR="${CACHE_DIR:-/var/cache/nginx/landing-analytics}"

# The redirect names the https port unless it is the default one.
https_port="${HTTPS_LISTEN##*:}"
if [ "$https_port" = 443 ]; then suffix=""; else suffix=":$https_port"; fi

for value in "$SERVER_NAME" "$HTTP_LISTEN" "$HTTPS_LISTEN" "$WEB_PORT_1" "$WEB_PORT_2" \
             "$TLS_CERT" "$TLS_KEY" "$CACHE_DIR"; do
  case "$value" in
    *[!A-Za-z0-9._:/@+-]*) echo "nginx-site.sh: unexpected character in '$value'" >&2; exit 1 ;;
  esac
done

exec sed -e "s|@SERVER_NAME@|$SERVER_NAME|g" \
         -e "s|@HTTP_LISTEN@|$HTTP_LISTEN|g" \
         -e "s|@HTTPS_LISTEN@|$HTTPS_LISTEN|g" \
         -e "s|@HTTPS_PORT_SUFFIX@|$suffix|g" \
         -e "s|@WEB_PORT_1@|$WEB_PORT_1|g" \
         -e "s|@WEB_PORT_2@|$WEB_PORT_2|g" \
         -e "s|@TLS_CERT@|$TLS_CERT|g" \
         -e "s|@TLS_KEY@|$TLS_KEY|g" \
         -e "s|@CACHE_DIR@|$CACHE_DIR|g" \
         "$(dirname "$0")/nginx-site.conf.in"
