#!/bin/sh
# Runs mtad in the foreground on a working default configuration:
# SMTP on 127.0.0.1:2525, web UI on 127.0.0.1:8080, queue and mail log under
# ./var in the project folder, relaying to the recipients' MX hosts.
# Called by `make run` after the build; edit var/mtad.conf to change it.
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
fi
echo "mtad: SMTP on 127.0.0.1:2525, UI on http://127.0.0.1:8080/, mail log in var/log/maillog"
exec ./build/mtad -c var/mtad.conf
