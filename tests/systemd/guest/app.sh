#!/bin/sh
# Test only: the application's first read of its configuration file.
set -eu
want="$(cat /etc/app-expected.sha256)"
got="$(sha256sum /data/live/apn_cfg.json | cut -d' ' -f1)" || got=unreadable
if [ "$got" = "$want" ]; then echo intact > /run/app-saw; else echo "damaged:$got" > /run/app-saw; fi
