#!/bin/sh
# Runs mtad in the foreground on a working default configuration:
# SMTP on 127.0.0.1:2525, web UI on 127.0.0.1:8080, queue and mail log under
# ./var in the project folder, relaying to the recipients' MX hosts.
# Called by `make run` after the build; edit var/mtad.conf to change it.
# What it prints (addresses, the mtactl command) comes from the effective
# configuration (`mtad -t --print`), so it stays true after an edit.
set -e
cd "$(dirname "$0")/.."
top=$(pwd)
mkdir -p var/data var/log
if [ ! -f var/mtad.conf ]; then
  cat > var/mtad.conf <<CF
# mtad development configuration (written by etc/run-default.sh)
data_dir = $top/var/data
log_dir = $top/var/log
logs_enabled = yes
maillog_filename = maillog
smtp_listen = 127.0.0.1:2525
ui_address = 127.0.0.1
ui_port = 8080
smtpd_trusted_networks = 127.0.0.0/8, ::1
ssl_disabled = yes
# run as nobody after binding (a production host has a "mtad" user: mtad.conf(5))
mail_owner = nobody
CF
elif [ "$(id -u)" = 0 ] && ! grep -q '^[[:space:]]*mail_owner[[:space:]]*=' var/mtad.conf; then
  # written before mtad refused a missing mail_owner: keep it running as before
  printf '%s\n' '# added by etc/run-default.sh: run as nobody after binding' \
    'mail_owner = nobody' >> var/mtad.conf
  echo "mtad: added 'mail_owner = nobody' to var/mtad.conf"
fi
eff=$(./build/mtad -c var/mtad.conf -t --print) || exit 1
get() { printf '%s\n' "$eff" | sed -n "s/^$1 = //p" | head -n 1; }
scheme=http
[ "$(get ssl_disabled)" = no ] && scheme=https
ui_addr=$(get ui_address)
case $ui_addr in *:*) ui_addr="[$ui_addr]" ;; esac
log="no mail log"
if [ "$(get logs_enabled)" = yes ] && [ -n "$(get maillog_filename)" ]; then
  log="mail log in $(get log_dir)/$(get maillog_filename | sed 's|^/*||')"
fi
echo "mtad: SMTP on $(get smtp_listen), UI on $scheme://$ui_addr:$(get ui_port)/, $log"
echo "mtad: from another shell: build/mtactl -c var/mtad.conf queue" \
  "(or export MTAD_CONFIG=$top/var/mtad.conf)"
exec ./build/mtad -c var/mtad.conf
