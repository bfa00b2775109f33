#!/usr/bin/env bash
# End-to-end DMA test of the skmem packet pool on the `Vfio` source, with no
# hardware: boots a QEMU guest (TCG) with an emulated VT-d IOMMU and two
# emulated Intel 82574 NICs (e1000e) joined by a hub, binds both NICs to
# vfio-pci inside the guest and runs the user-space driver of
# `e1000e-driver/` (binary `vfio-e2e`) there. The verdict is the line
# `E2E-RESULT: PASS ...` on the guest's serial console.
#
# Needs: qemu-system-x86, a Debian kernel with vfio modules (linux-image-amd64),
# busybox-static, cpio (installed with apt-get when missing and running as
# root). Run from anywhere; exits non-zero on failure. Environment:
#   VFIO_E2E_FRAMES   frames to send (default 10000)
#   VFIO_E2E_TIMEOUT  seconds before QEMU is killed (default 600)
#   VFIO_E2E_KERNEL   kernel version to boot (default: newest with vfio-pci)
#   VFIO_E2E_BIN      use this prebuilt guest binary instead of building
#   VFIO_E2E_GLIBC    set: build for glibc and ship its libraries (no musl)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET_DIR/vfio-e2e
FRAMES=${VFIO_E2E_FRAMES:-10000}
TIMEOUT=${VFIO_E2E_TIMEOUT:-600}

log() { echo "vfio-e2e: $*" >&2; }

# ---- 1. host packages -------------------------------------------------------
find_kernel() {
    local v
    for v in $(ls -1 /lib/modules 2>/dev/null | sort -rV); do
        if [ -n "${VFIO_E2E_KERNEL:-}" ] && [ "$v" != "$VFIO_E2E_KERNEL" ]; then continue; fi
        if [ -r "/boot/vmlinuz-$v" ] && ls /lib/modules/"$v"/kernel/drivers/vfio/pci/vfio-pci.ko* >/dev/null 2>&1; then
            echo "$v"
            return 0
        fi
    done
    return 1
}

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
# busybox-static's /bin/busybox is not a dynamic executable (ldd fails).
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
find_kernel >/dev/null || missing+=(linux-image-amd64)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
KVER=$(find_kernel) || { log "no kernel with vfio-pci modules under /lib/modules"; exit 1; }
log "guest kernel $KVER"

# ---- 2. the test binary -----------------------------------------------------
cd "$ROOT"
MUSL=x86_64-unknown-linux-musl
if [ -n "${VFIO_E2E_BIN:-}" ]; then
    # A prebuilt guest binary (static, or with STATIC=0 its libraries).
    BIN=$VFIO_E2E_BIN
    STATIC=${VFIO_E2E_STATIC:-1}
elif [ -z "${VFIO_E2E_GLIBC:-}" ] && { rustup target list --installed 2>/dev/null | grep -qx "$MUSL" \
    || rustup target add "$MUSL" >/dev/null 2>&1; }; then
    log "building vfio-e2e (static, $MUSL)"
    cargo build --release -q -p skmem-e1000e --bin vfio-e2e --target "$MUSL"
    BIN=$TARGET_DIR/$MUSL/release/vfio-e2e
    STATIC=1
else
    log "building vfio-e2e for glibc (musl target unavailable or VFIO_E2E_GLIBC set); shipping its libraries"
    cargo build --release -q -p skmem-e1000e --bin vfio-e2e
    BIN=$TARGET_DIR/release/vfio-e2e
    STATIC=0
fi

# ---- 3. initramfs -----------------------------------------------------------
rm -rf "$WORK/root"
mkdir -p "$WORK/root"/{bin,dev,proc,sys,lib/modules,tmp}
R=$WORK/root
cp /bin/busybox "$R/bin/busybox"
cp "$ROOT/ci/vfio-e2e/init" "$R/init"
chmod +x "$R/init"
cp "$BIN" "$R/bin/vfio-e2e"
echo "--frames $FRAMES" >"$R/e2e-args"
if [ "$STATIC" = 0 ]; then
    # The loader and every library ldd names, at the same paths.
    for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
fi
MODDIR=/lib/modules/$KVER/kernel
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_virqfd \
    drivers/vfio/vfio_iommu_type1 drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci; do
    name=$(basename "$m")
    if [ -f "$MODDIR/$m.ko" ]; then
        cp "$MODDIR/$m.ko" "$R/lib/modules/$name.ko"
    elif [ -f "$MODDIR/$m.ko.xz" ]; then
        xz -dc "$MODDIR/$m.ko.xz" >"$R/lib/modules/$name.ko"
    elif [ -f "$MODDIR/$m.ko.zst" ]; then
        zstd -qdc "$MODDIR/$m.ko.zst" >"$R/lib/modules/$name.ko"
    fi
    # Built-in (absent) modules are fine: init skips what is not there.
done
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.gz"
log "initramfs $(du -h "$WORK/initramfs.gz" | cut -f1)"

# ---- 4. boot ----------------------------------------------------------------
SERIAL=$WORK/serial.log
QLOG=$WORK/qemu.log
rm -f "$SERIAL" "$QLOG"
log "booting the guest (TCG, VT-d, 2x e1000e on one hub; timeout ${TIMEOUT}s)"
start=$(date +%s)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg -cpu max -M q35,kernel-irqchip=split -m 1G -smp 1 \
    -device intel-iommu,intremap=on,caching-mode=on \
    -kernel "/boot/vmlinuz-$KVER" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 intel_iommu=on panic=-1" \
    -netdev hubport,id=a,hubid=0 -netdev hubport,id=b,hubid=0 \
    -device e1000e,netdev=a,mac=52:54:00:e2:e0:0a,bus=pcie.0,addr=0x4 \
    -device e1000e,netdev=b,mac=52:54:00:e2:e0:0b,bus=pcie.0,addr=0x5 \
    -display none -monitor none -serial "file:$SERIAL" -no-reboot \
    2>"$QLOG"
rc=$?
set -e
log "guest ran $(($(date +%s) - start)) s (qemu exit $rc)"

# ---- 5. verdict -------------------------------------------------------------
grep -a -E '^(E2E|vfio-e2e)' "$SERIAL" | tr -d '\r' || true
if [ -s "$QLOG" ]; then
    log "QEMU's own log (the emulated IOMMU reports refused DMA here):"
    sed 's/^/  qemu: /' "$QLOG" | head -20 >&2
fi
if [ $rc -eq 124 ]; then
    log "FAIL: timed out after ${TIMEOUT}s; last console lines:"
    tail -30 "$SERIAL" >&2
    exit 1
fi
if grep -a -q '^E2E-RESULT: PASS' "$SERIAL"; then
    # The fault case must also have been seen by the IOMMU: the guest's
    # VT-d driver logs the fault QEMU's emulated IOMMU recorded.
    if ! grep -a -q '^E2E-DMESG: .*fault addr' "$SERIAL"; then
        log "FAIL: the test passed but the guest logged no DMAR fault for the unmapped IOVA"
        exit 1
    fi
    log "PASS"
    exit 0
fi
log "FAIL: no E2E-RESULT: PASS line; last console lines:"
tail -40 "$SERIAL" >&2
exit 1
