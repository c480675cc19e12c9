#!/bin/sh
# Test only: the facts the host checks, as KEY=VALUE lines, to the raw disk /dev/vdc.
set -u
# Until no start job is left (at most 60 s): a boot that was to be stopped must have
# had every chance to start app.service.
i=0
while [ -n "$(systemctl list-jobs --no-legend 2>/dev/null)" ] && [ "$i" -lt 120 ]; do
    sleep 0.5; i=$((i + 1))
done
out=/run/report.txt
{
    echo "jobs_left=$(systemctl list-jobs --no-legend 2>/dev/null | wc -l)"
    for t in multi-user.target emergency.target sysinit.target; do
        echo "$t.ActiveState=$(systemctl show -P ActiveState "$t")"
    done
    echo "data.mount.ActiveState=$(systemctl show -P ActiveState data.mount)"
    echo "data.mount.ActiveEnterTimestampMonotonic=$(systemctl show -P ActiveEnterTimestampMonotonic data.mount)"
    for u in rebound-boot.service app.service; do
        for p in ActiveState Result ExecMainStatus ActiveEnterTimestampMonotonic \
                 ExecMainStartTimestampMonotonic ExecMainExitTimestampMonotonic; do
            echo "$u.$p=$(systemctl show -P "$p" "$u")"
        done
    done
    echo "rebound-boot.service.RequiresMountsFor=$(systemctl show -P RequiresMountsFor rebound-boot.service)"
    echo "rebound-boot.service.DropInPaths=$(systemctl show -P DropInPaths rebound-boot.service)"
    echo "rebound-boot.service.Requires=$(systemctl show -P Requires rebound-boot.service)"
    echo "rebound-boot.service.After=$(systemctl show -P After rebound-boot.service)"
    echo "app_saw=$(cat /run/app-saw 2>/dev/null || echo none)"
    echo "sha_apn=$(sha256sum /data/live/apn_cfg.json | cut -d' ' -f1)"
    journalctl -b -u rebound-boot.service -o cat --no-pager | sed 's/^/journal: /'
    dmesg | grep rebound-generator | sed "s/^/kmsg: /"
    systemd-analyze critical-chain app.service --no-pager 2>&1 | sed 's/^/chain: /'
    echo "END"
} > "$out" 2>&1
dd if="$out" of=/dev/vdc conv=fsync 2>/dev/null
systemctl poweroff
