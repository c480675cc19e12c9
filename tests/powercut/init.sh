#!/bin/sh
# /init of the power-cut lab's guest (busybox sh, PID 1). It behaves like the device's
# boot path: mount the partitions (reformat one that fails to mount, as the vendor's
# find_partitions.sh does), run `rebound boot`, then run the application workload the
# host planned, until the power is cut. See docs/powercut.md.
#
# Disks (virtio, in this order):
#   vda  control: a tar archive from the host (params, plans, file contents)
#   vdb  results: raw, append-only records, each padded to 512 bytes and fsynced
#   vdc  golden:  squashfs image, mounted read-only at /bak
#   vdd  system   partition (ext4/vfat runs) mounted at /usrapp
#   vde  usr_data partition (ext4/vfat runs) mounted at /usrdata
# In replay mode (lab.py --replay) one disk vdd holds three partitions instead: vdd1
# system, vdd2 usr_data, vdd3 results, so that QEMU's blklogwrites driver records all
# of their writes and flushes in one log, in one order (params.sh names the devices).
# UBIFS runs put system and usr_data in two UBI volumes on simulated NAND (nandsim).
#
# Power cuts:
#   ext4/vfat: `echo b > /proc/sysrq-trigger` (immediate reset, page cache lost; QEMU
#              runs with -no-reboot, so the host starts the next boot on the same disks).
#   ubifs:     nandsim lives in RAM and would not survive a reboot, so the cut happens
#              inside one boot: UBI's power-cut emulation makes the flash refuse every
#              write from that instant (read-only mode, as if the power were gone), all
#              processes are killed, UBIFS is unmounted (its dirty pages and write-buffer
#              are dropped: the writes fail), UBI is detached and attached again (a
#              fresh scan of the flash, as at power-on) and the cycle starts over.

export PATH=/sbin:/bin
RES=/dev/vdb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug

# Keep unsynced data in memory until the power cut: no periodic writeback, nothing
# expires, no background flushing below 90% of memory.
echo 0 > /proc/sys/vm/dirty_writeback_centisecs
echo 360000 > /proc/sys/vm/dirty_expire_centisecs
echo 90 > /proc/sys/vm/dirty_background_ratio
echo 90 > /proc/sys/vm/dirty_ratio
echo 1 > /proc/sys/kernel/sysrq

say() { echo "lab-init: $*"; }

# ----------------------------------------------------------------------------------
# Results disk: every record starts on a 512-byte boundary, is padded with NULs and is
# fsynced before the caller goes on. Only one process writes at a time (the workload
# while it runs, PID 1 otherwise). RECF names the caller's scratch file.
# ----------------------------------------------------------------------------------
RECF=/tmp/rec.main
echo 0 > /tmp/res.off
rec_file() {
    _off=$(cat /tmp/res.off)
    _size=$(wc -c < "$1")
    dd if="$1" of=$RES bs=512 seek="$_off" conv=notrunc,sync,fsync 2>/dev/null
    echo $(( _off + (_size + 511) / 512 )) > /tmp/res.off
}
rec() { printf '%s\n' "$*" > "$RECF"; rec_file "$RECF"; }
rec_block() { # NAME FILE: a multi-line record
    { echo "BEGIN $1"; cat "$2"; echo; echo "END $1"; } > "$RECF.b"
    rec_file "$RECF.b"
}
# After the workload was killed, its last record may be on disk without the offset
# having been updated: skip forward over non-empty sectors.
rec_resync() {
    _off=$(cat /tmp/res.off)
    while [ -n "$(dd if=$RES bs=512 skip="$_off" count=1 2>/dev/null | tr -d '\000')" ]; do
        _off=$((_off + 1))
    done
    echo "$_off" > /tmp/res.off
}

die() {
    say "FATAL: $*"
    rec "fatal $*"
    dmesg | grep -v "nandsim. warning" | tail -n 40 > /tmp/dmesg.tail; rec_block dmesg /tmp/dmesg.tail
    poweroff -f
}

# Centiseconds since boot.
now_cs() {
    read -r _up _ < /proc/uptime
    echo $(( ${_up%.*} * 100 + 1${_up#*.} - 100 ))
}

modprobe virtio_pci && modprobe virtio_blk && modprobe squashfs || die "modprobe"
for _i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdc ] && break; sleep 0.1; done
mkdir -p /ctl && tar -xf /dev/vda -C /ctl 2>/dev/null
[ -f /ctl/params.sh ] || die "no control archive on /dev/vda"
# FS RUN NCYCLES BROKEN FACTORY VFAT_OPTS [RES_DEV SYS_DEV DATA_DEV RES_OFF]
. /ctl/params.sh
SYS_DEV=${SYS_DEV:-/dev/vdd}
DATA_DEV=${DATA_DEV:-/dev/vde}
if [ -n "${RES_DEV:-}" ]; then
    for _i in 1 2 3 4 5 6 7 8 9 10; do [ -b "$RES_DEV" ] && break; sleep 0.1; done
    RES=$RES_DEV
    echo "${RES_OFF:-0}" > /tmp/res.off
fi
[ "$BROKEN" = 1 ] && export REBOUND_FAULT_SKIP_SYNC=1
rec "run $RUN fs $FS cycles $NCYCLES broken $BROKEN factory $FACTORY"

mount -t squashfs -o ro /dev/vdc /bak || die "cannot mount the golden image"

# ----------------------------------------------------------------------------------
# Partitions
# ----------------------------------------------------------------------------------
case $FS in
    ext4) modprobe crc32c_generic; modprobe ext4 || die "modprobe ext4" ;;
    vfat) modprobe vfat && modprobe nls_cp437 && modprobe nls_ascii && modprobe nls_utf8 || die "modprobe vfat" ;;
    ubifs)
        # 64 MiB of NAND, 2 KiB pages, 128 KiB erase blocks.
        modprobe nandsim first_id_byte=0x20 second_id_byte=0xa2 third_id_byte=0x00 fourth_id_byte=0x15 \
            || die "modprobe nandsim"
        modprobe ubi || die "modprobe ubi"
        # UBIFS sets up every compressor it was built with (lzo, zlib, zstd): load the
        # crypto modules first (deflate is a module on armmp, built in elsewhere).
        modprobe zstd; modprobe deflate; modprobe ubifs || die "modprobe ubifs" ;;
    *) die "unknown filesystem $FS" ;;
esac

reformat_block() { # DEV
    case $FS in
        ext4) /sbin/mke2fs -q -F -t ext4 "$1" ;;
        vfat) /sbin/mkfs.fat "$1" > /dev/null ;;
    esac
}
mount_block() { # DEV MOUNTPOINT NAME
    if [ "$FS" = vfat ]; then
        # A careful device checks a FAT before mounting it.
        /sbin/fsck.fat -a -w "$1" > /tmp/fsck.out 2>&1
        _rc=$?
        [ $_rc -ne 0 ] && { rec "fsck $3 rc=$_rc"; rec_block "fsck-$3" /tmp/fsck.out; }
        _opts="fmask=0133,dmask=0022${VFAT_OPTS:+,$VFAT_OPTS}"
    else
        _opts="noauto_da_alloc"
    fi
    if ! mount -t "$FS" -o "$_opts" "$1" "$2" 2> /tmp/mount.err; then
        rec "reformat $3 ($(head -c 160 /tmp/mount.err | tr '\n' ' '))"
        reformat_block "$1" || die "mkfs $3"
        mount -t "$FS" -o "$_opts" "$1" "$2" || die "mount $3 after mkfs"
    fi
}
ubi_attach() {
    /sbin/ubiattach -m 0 -d 0 > /dev/null || die "ubiattach"
    [ -e /dev/ubi0_2 ] || /sbin/ubimkvol /dev/ubi0 -n 2 -N trigger -s 256KiB > /dev/null || die "ubimkvol trigger"
}
mount_ubifs() { # VOLUME MOUNTPOINT
    if ! mount -t ubifs "ubi0:$1" "$2" 2> /tmp/mount.err; then
        rec "reformat $1 ($(head -c 160 /tmp/mount.err | tr '\n' ' '))"
        /sbin/ubirmvol /dev/ubi0 -N "$1" > /dev/null 2>&1
        _id=0; [ "$1" = usrdata ] && _id=1
        /sbin/ubimkvol /dev/ubi0 -n $_id -N "$1" -s 24MiB > /dev/null || die "ubimkvol $1"
        # An empty UBI volume is formatted by mounting it.
        mount -t ubifs "ubi0:$1" "$2" || die "mount $1 after reformat"
    fi
}
mount_all() {
    case $FS in
        ubifs) mount_ubifs system /usrapp; mount_ubifs usrdata /usrdata ;;
        *) mount_block "$SYS_DEV" /usrapp system; mount_block "$DATA_DEV" /usrdata usrdata ;;
    esac
}
# Method 5/6 of the vendor document: "erase the partition by fastboot". For UBIFS the
# volume is removed and created empty (ext4/vfat images are zeroed by the host).
erase_ubi_volume() { # NAME
    rec "erase $1"
    /sbin/ubirmvol /dev/ubi0 -N "$1" > /dev/null || die "ubirmvol $1"
}

# ----------------------------------------------------------------------------------
# Power cut
# ----------------------------------------------------------------------------------
ubi_power_cut() {
    _d=/sys/kernel/debug/ubi/ubi0
    dmesg -c > /dev/null
    # The cut fires at the second EC/VID header write from now; writing the trigger
    # volume makes those writes happen at once. From then on UBI refuses every write.
    echo 1 > $_d/tst_emulate_power_cut_min
    echo 1 > $_d/tst_emulate_power_cut_max
    echo 3 > $_d/tst_emulate_power_cut
    _i=0
    # The cut shows as "emulating a power cut" (or UBI's "switch to read-only mode").
    # It may fire at once from the application's own writes; after it UBIFS logs an
    # error for every page it cannot write, hence the large log_buf_len on the kernel
    # command line, and both lines are accepted.
    until dmesg | grep -q -e 'emulating a power cut' -e 'switch to read-only mode'; do
        /sbin/ubiupdatevol /dev/ubi0_2 -t > /dev/null 2>&1
        _i=$((_i + 1))
        [ $_i -gt 20 ] && die "UBI power-cut emulation did not fire"
    done
    kill -9 -1 2> /dev/null    # every process but PID 1: the application dies with the power
    wait
    for _m in /usrapp /usrdata; do
        _i=0
        while grep -q " $_m " /proc/mounts; do
            umount "$_m" 2> /dev/null && break
            _i=$((_i + 1)); [ $_i -gt 50 ] && die "cannot unmount $_m"; sleep 0.1
        done
    done
    /sbin/ubidetach -m 0 > /dev/null || die "ubidetach"
}
power_cut() { # WHERE
    case $FS in
        ubifs) _t=$(now_cs); ubi_power_cut; rec_resync; rec "cut $1 $_t" ;;
        *) echo b > /proc/sysrq-trigger; sleep 30; die "sysrq reboot did not happen" ;;
    esac
}

# A partition that the kernel turned read-only: it found its own metadata corrupt (a FAT
# left inconsistent by an earlier cut that fsck.fat -a did not fully repair) and applied
# errors=remount-ro. That is the filesystem's fault, not rebound's: a device reboots, as
# the lab does (a power cut), and the next boot checks the partition again. Returns 0 if
# a partition is read-only now, after recording it with the kernel's words. Not for
# UBIFS, where a cut itself makes the flash read-only.
fs_went_ro() { # WHERE
    [ "$FS" = ubifs ] && return 1
    awk '$2 == "/usrapp" || $2 == "/usrdata" { split($4, o, ","); if (o[1] == "ro") found = 1 } END { exit !found }' \
        /proc/mounts || return 1
    rec "fsro $1 $(now_cs) $(awk '$2 == "/usrapp" || $2 == "/usrdata" { print $2 "=" substr($4, 1, 2) }' /proc/mounts | tr '\n' ' ')"
    dmesg | grep -i -e 'fat-fs' -e 'ext4-fs' -e 'read-only' | tail -n 20 > /tmp/dmesg.ro
    rec_block "dmesg-fsro" /tmp/dmesg.ro
    return 0
}

# ----------------------------------------------------------------------------------
# Boot phase: what the device runs at every boot, then the lab's dump of the state.
# ----------------------------------------------------------------------------------
dump_state() {
    : > /tmp/dump
    for _r in /usrapp/cfg /usrdata/cfgcopy /usrapp/apprun /usrdata/appbackup; do
        if [ ! -d "$_r" ]; then echo "noroot $_r" >> /tmp/dump; continue; fi
        (cd "$_r" && find . -path ./.rebound -prune -o -type f -print) | sort | while read -r _f; do
            echo "f $_r ${_f#./} $(sha256sum < "$_r/$_f" | cut -d' ' -f1)"
        done >> /tmp/dump
    done
    for _r in /usrapp/apprun /usrdata/appbackup; do
        echo "t $_r $(head -c 32 "$_r/app_ver.txt" 2> /dev/null | tr -d '\n\r ')" >> /tmp/dump
    done
    rec_block dump /tmp/dump
}
boot_phase() { # returns 1 if the power was cut during `rebound boot`
    rm -f /tmp/boot.rc /tmp/boot.err /tmp/boot.json
    (
        [ "$PAUSE_AT" -gt 0 ] && export REBOUND_FAULT_PAUSE_AT="$PAUSE_AT"
        rebound boot --json > /tmp/boot.json 2> /tmp/boot.err
        echo $? > /tmp/boot.rc.tmp && mv /tmp/boot.rc.tmp /tmp/boot.rc
    ) &
    while [ ! -e /tmp/boot.rc ]; do
        if grep -q 'paused before mutation' /tmp/boot.err 2> /dev/null; then
            rec "bootcut $PAUSE_AT"
            power_cut boot
            return 1
        fi
        sleep 0.01
    done
    wait
    _rc=$(cat /tmp/boot.rc)
    rec_block boot-json /tmp/boot.json
    [ -s /tmp/boot.err ] && rec_block boot-stderr /tmp/boot.err
    if [ "$_rc" -ne 0 ] && fs_went_ro boot; then
        power_cut boot
        return 1
    fi
    rec "boot_rc $_rc"
    rebound verify > /tmp/verify.out 2>&1
    _rc=$?
    if [ $_rc -ne 0 ] && fs_went_ro verify; then
        rec_block verify /tmp/verify.out
        power_cut boot
        return 1
    fi
    rec "verify_rc $_rc"
    [ $_rc -ne 0 ] && rec_block verify /tmp/verify.out
    dump_state
    return 0
}

# ----------------------------------------------------------------------------------
# Workload: the steps the host planned. A step's "done" record is written (fsynced)
# only after its command returned 0, and the next step starts only after that.
# ----------------------------------------------------------------------------------
root_of() { # SET-OR-SIDE
    case $1 in
        config) echo /usrapp/cfg ;;
        apps|system) echo /usrapp/apprun ;;
        usrdata) echo /usrdata/appbackup ;;
    esac
}
step_commit() { # K SET REL: the application rewrites the file in place, then commits it
    _root=$(root_of "$2")
    mkdir -p "$(dirname "$_root/$3")"
    cat "/ctl/data/$1/$3" > "$_root/$3" || return 1
    rebound commit "$_root/$3"
}
step_upgrade() { # K SIDE: the vendor's upgrade flow (copy, sync, bump the tag, sync)
    _root=$(root_of "$2")
    for _f in $(cd "/ctl/data/$1" && find apps -type f); do
        cat "/ctl/data/$1/$_f" > "$_root/$_f" || return 1
    done
    sync
    _v=$(cat "$_root/app_ver.txt") || return 1
    echo $((_v + 1)) > "$_root/app_ver.txt" || return 1
    sync
    echo "tag $((_v + 1))"
}
run_plan() { # PLANFILE
    RECF=/tmp/rec.wl
    while read -r _k _kind _a _b; do
        [ -n "$_k" ] || continue
        case $_kind in
            commit) step_commit "$_k" "$_a" "$_b" ;;
            update) rebound update "$_a" --from "/ctl/data/$_k" ;;
            upgrade) step_upgrade "$_k" "$_a" ;;
        esac > /tmp/step.out 2>&1
        _rc=$?
        if [ $_rc -ne 0 ]; then
            rec "fail $_k rc=$_rc $(now_cs)"
            rec_block "step-$_k" /tmp/step.out
            fs_went_ro "step $_k" && return 1
            dmesg | tail -n 40 > /tmp/dmesg.wl; rec_block "dmesg-$_k" /tmp/dmesg.wl
            return 1
        fi
        rec "done $_k $(now_cs)"
    done < "$1"
}
workload_phase() { # CYCLE
    rm -f /tmp/wl.done
    rec "workload $(now_cs)"
    ( run_plan "/ctl/cycles/$1/plan"; : > /tmp/wl.done ) &
    _deadline=$(( $(now_cs) + CUT_AT ))
    while [ ! -e /tmp/wl.done ] && [ "$(now_cs)" -lt $_deadline ]; do
        sleep 0.01
    done
    power_cut workload
}

factory_flash() {
    rec "factory"
    mkdir -p /usrapp/cfg /usrapp/apprun
    cp -r /ctl/factory/cfg/. /usrapp/cfg/ && cp -r /ctl/factory/apps/. /usrapp/apprun/ || die "factory copy"
    sync
}

# ----------------------------------------------------------------------------------
# Main loop: ext4/vfat runs have one cycle (the cut ends the boot); UBIFS runs many.
# ----------------------------------------------------------------------------------
[ "$FS" = ubifs ] && ubi_attach
_n=1
while [ $_n -le "$NCYCLES" ]; do
    # PAUSE_AT CUT_AT ERASE
    . "/ctl/cycles/$_n/params"
    rec "cycle $_n $(now_cs)"
    if [ "$FS" = ubifs ]; then
        [ $_n -gt 1 ] && ubi_attach
        case $ERASE in system|usrdata) erase_ubi_volume "$ERASE" ;; esac
    fi
    mount_all
    [ "$FACTORY" = 1 ] && [ $_n = 1 ] && factory_flash
    if boot_phase; then
        workload_phase $_n
    fi
    _n=$((_n + 1))
done
rec "end"
poweroff -f
