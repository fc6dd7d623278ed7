#!/usr/bin/env bash
# Check that the edgecount runtime installs and counts the same on 64-bit ARM as on x86.
#
# The check builds (or reuses) a Debian 12 "bookworm" arm64 root, the same userland as 64-bit
# Raspberry Pi OS, runs it under qemu-aarch64-static user emulation, installs the project's wheel
# there twice (ai-edge-litert, and tflite-runtime 2.14 with numpy<2), counts faces in real photos and
# in a recorded video, and compares every count with the same wheel on this x86 machine.
#
# Emulated timings are not Raspberry Pi timings: qemu translates every ARM instruction, so the
# import-time ratio it prints shows slow start-up paths, not the speed of a board.
#
# Usage: sudo scripts/check-arm64.sh [options]    (scripts/check-arm64.sh --help lists them)
# Needs root (debootstrap, chroot, mount) and about 2 GB of disk. On a 2-core x86 machine the first
# run bootstraps the root in about 30 minutes. The checks themselves take 20 to 45 minutes, and later
# runs reuse the cached root and pip's download cache.
set -Eeuo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS_DIR="$REPO_DIR/scripts/arm64"

CACHE_DIR=${EDGECOUNT_ARM64_CACHE:-$HOME/.cache/edgecount/arm64-bookworm}
RUN_DIR=${EDGECOUNT_ARM64_RUN:-}
SHARED_DIR=${EDGECOUNT_SHARED:-$REPO_DIR/../shared}
MIRROR=${EDGECOUNT_DEBIAN_MIRROR:-}
HOST_PYTHON=${EDGECOUNT_HOST_PYTHON:-}
IMAGE_COUNT=12
# qemu's CPU model: cortex-a72 is the Raspberry Pi 4's core, cortex-a76 the Pi 5's.
CPU_MODEL=${EDGECOUNT_ARM64_CPU:-cortex-a72}
VIDEO_PHOTOS=8
REBUILD_ROOT=0
SETUP_ONLY=0
KEEP_WORK=0
SUITE=bookworm
# Python of the Debian release above; the x86 reference venvs must use the same minor version.
TARGET_PYTHON=3.11

usage() {
    cat <<EOF
Usage: $0 [options]

Check the edgecount runtime on Debian 12 arm64 (qemu user emulation) against x86.

Options:
  --cache DIR        arm64 root cache folder (default: \$EDGECOUNT_ARM64_CACHE or
                     ~/.cache/edgecount/arm64-bookworm; now: $CACHE_DIR)
  --run DIR          run folder with model_<mode>.tflite files (default: runs/av in the checkout when it has
                     model_float32.tflite and model_int8.tflite, else small models built here
                     with TensorFlow)
  --shared DIR       folder with data/av-faces (default: \$EDGECOUNT_SHARED or ../shared beside the
                     checkout; now: $SHARED_DIR)
  --mirror URL       Debian mirror (default: the first Debian URI in /etc/apt/sources.list*)
  --host-python PATH Python with edgecount, OpenCV (and TensorFlow when no run folder is given)
                     that prepares the video and models (default: .venv/bin/python in the checkout if
                     present, else python3)
  --images N         number of real photos to count (default: $IMAGE_COUNT)
  --cpu MODEL        emulated CPU: cortex-a72 (Raspberry Pi 4, default) or cortex-a76 (Pi 5)
  --rebuild-root     delete the cached arm64 root and bootstrap it again
  --setup-only       prepare the arm64 root and exit
  --keep-work        keep the temporary work folder (wheel, models, results) for inspection
  -h, --help         show this help

Exit status: 0 when every check passes, 1 when a check fails, 2 for a usage error, 3 when the
environment cannot be prepared (not root, no network to the mirror or PyPI, no binfmt_misc).
EOF
}

log() { printf '[check-arm64] %s\n' "$*" >&2; }
fail_setup() { log "error: $*"; exit 3; }

while (($#)); do
    case $1 in
        --cache) CACHE_DIR=${2:?--cache needs a folder}; shift 2 ;;
        --run) RUN_DIR=${2:?--run needs a folder}; shift 2 ;;
        --shared) SHARED_DIR=${2:?--shared needs a folder}; shift 2 ;;
        --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
        --host-python) HOST_PYTHON=${2:?--host-python needs a path}; shift 2 ;;
        --images) IMAGE_COUNT=${2:?--images needs a number}; shift 2 ;;
        --cpu) CPU_MODEL=${2:?--cpu needs a CPU model}; shift 2 ;;
        --rebuild-root) REBUILD_ROOT=1; shift ;;
        --setup-only) SETUP_ONLY=1; shift ;;
        --keep-work) KEEP_WORK=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'error: unknown option %q; see --help\n' "$1" >&2; exit 2 ;;
    esac
done
if ! [[ $IMAGE_COUNT =~ ^[1-9][0-9]*$ ]]; then
    printf 'error: --images must be a positive integer, got %q\n' "$IMAGE_COUNT" >&2
    exit 2
fi
case $CPU_MODEL in
    cortex-a72) CPU_PART=0xd08 CPU_FEATURES="fp asimd evtstrm crc32 cpuid" BOARD="Raspberry Pi 4 Model B" ;;
    cortex-a76) CPU_PART=0xd0b CPU_FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" BOARD="Raspberry Pi 5 Model B" ;;
    *) printf 'error: --cpu must be cortex-a72 or cortex-a76, got %q\n' "$CPU_MODEL" >&2; exit 2 ;;
esac
# qemu-user reads the CPU model from the environment of every emulated process.
export QEMU_CPU=$CPU_MODEL

ROOT="$CACHE_DIR/root"
MOUNTS=()
WORK_DIR=""

# ---------------------------------------------------------------------------------------------
# Host preparation: root, packages, binfmt_misc, mirror.

require_root() {
    if ((EUID != 0)); then
        fail_setup "debootstrap, chroot and mount need root; run: sudo $0 $*"
    fi
}

install_host_packages() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        apt-get update -q >&2 || fail_setup "apt-get update failed; install ${missing[*]} by hand"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
            fail_setup "apt-get install ${missing[*]} failed"
    fi
}

register_binfmt() {
    local binfmt=/proc/sys/fs/binfmt_misc
    if [[ ! -e $binfmt/register ]]; then
        mount binfmt_misc -t binfmt_misc "$binfmt" ||
            fail_setup "cannot mount binfmt_misc on $binfmt; in a container, start it with --privileged"
    fi
    if [[ ! -e $binfmt/qemu-aarch64 ]]; then
        log "registering qemu-aarch64 with binfmt_misc"
        if ! update-binfmts --enable qemu-aarch64 >&2 2>&1 || [[ ! -e $binfmt/qemu-aarch64 ]]; then
            # The same entry that qemu-user-static ships, written directly; F opens the
            # interpreter now, so the chroot needs no copy of it.
            printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:FP' \
                >"$binfmt/register" || fail_setup "cannot register qemu-aarch64 in $binfmt/register"
        fi
    fi
    if [[ $(cat "$binfmt/qemu-aarch64") != enabled* ]]; then
        fail_setup "the qemu-aarch64 binfmt entry is disabled; enable it with: update-binfmts --enable qemu-aarch64"
    fi
}

detect_mirror() {
    [[ -n $MIRROR ]] && return
    local files=() file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] && files+=("$file")
    done
    ((${#files[@]})) || files=(/dev/null)
    # One-line entries ("deb [options] URI suite ...") and deb822 ones ("URIs: URI ...").
    MIRROR=$(awk '
        /^[[:space:]]*deb[[:space:]]/ { sub(/\[[^]]*\][[:space:]]*/, ""); print $2 }
        /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
    ' "${files[@]}" 2>/dev/null | grep -E '/debian/?$' | grep -v security | head -n 1 || true)
    if [[ -z $MIRROR ]]; then
        MIRROR=http://deb.debian.org/debian
        log "no Debian mirror found in /etc/apt/sources.list*, using $MIRROR"
    fi
}

# ---------------------------------------------------------------------------------------------
# The arm64 root.

unmount_under() {
    # Mounts left under a folder by an interrupted run, deepest first.
    local target
    while read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" || true
    done < <(findmnt -rn -o TARGET | grep -F "$1/" | sort -r)
}

bootstrap_root() {
    if [[ -f $CACHE_DIR/root-complete && $REBUILD_ROOT == 0 ]]; then
        log "reusing the arm64 root in $ROOT"
        return
    fi
    if [[ -e $ROOT && ! -f $CACHE_DIR/root-started ]]; then
        fail_setup "$ROOT exists but was not made by this script; pass another --cache folder"
    fi
    if [[ -e $ROOT ]]; then
        log "deleting the old or incomplete arm64 root $ROOT"
        unmount_under "$ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    mkdir -p "$ROOT"
    rm -f "$CACHE_DIR/root-complete"
    touch "$CACHE_DIR/root-started"

    log "debootstrap $SUITE arm64 from $MIRROR (first stage, on the host)"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$ROOT" "$MIRROR" >&2 || fail_setup "debootstrap first stage failed (mirror $MIRROR)"
    # Only needed when the binfmt entry lacks the F flag, but harmless otherwise.
    cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"
    log "debootstrap second stage (inside the root, emulated; about 10 minutes)"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage >&2 ||
        fail_setup "debootstrap second stage failed; see $ROOT/debootstrap/debootstrap.log"
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list"
    touch "$CACHE_DIR/root-complete"
    log "arm64 root ready: $(chroot "$ROOT" /usr/bin/python3 --version)"
}

bind_mount() {
    # bind_mount SOURCE TARGET [ro]; TARGET may be a file such as /proc/cpuinfo.
    [[ -e $2 ]] || mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTS+=("$2")
    if [[ ${3:-} == ro ]]; then
        mount -o remount,bind,ro "$2"
    fi
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$?
    local index
    for ((index = ${#MOUNTS[@]} - 1; index >= 0; index--)); do
        umount "${MOUNTS[index]}" 2>/dev/null || umount -l "${MOUNTS[index]}" 2>/dev/null ||
            log "warning: could not unmount ${MOUNTS[index]}"
    done
    MOUNTS=()
    if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
        if ((KEEP_WORK)); then
            log "work folder kept: $WORK_DIR"
        else
            rm -rf --one-file-system "$WORK_DIR"
        fi
    fi
    exit "$status"
}

write_cpu_description() {
    local folder=$1 core name
    mkdir -p "$folder/sys/devices/system/cpu"
    for name in possible present online; do
        echo 0-3 >"$folder/sys/devices/system/cpu/$name"
    done
    : >"$folder/cpuinfo"
    for core in 0 1 2 3; do
        mkdir -p "$folder/sys/devices/system/cpu/cpu$core"
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' \
            "$core" "$CPU_FEATURES" "$CPU_PART" >>"$folder/cpuinfo"
    done
    printf 'Model\t\t: %s (emulated by qemu %s)\n' "$BOARD" "$CPU_MODEL" >>"$folder/cpuinfo"
}

mount_root() {
    unmount_under "$ROOT"
    mkdir -p "$ROOT/proc"
    mount -t proc proc "$ROOT/proc"
    MOUNTS+=("$ROOT/proc")
    bind_mount /dev "$ROOT/dev"
    # XNNPACK's CPU detection (the cpuinfo library) reads /sys/devices/system/cpu and /proc/cpuinfo.
    # Without them it fails and the interpreter silently runs without XNNPACK, unlike on a Pi; the
    # host's x86 files make it crash under qemu. So the root gets a Pi's four-core CPU description.
    write_cpu_description "$WORK_DIR/cpu"
    bind_mount "$WORK_DIR/cpu/sys" "$ROOT/sys" ro
    bind_mount "$WORK_DIR/cpu/cpuinfo" "$ROOT/proc/cpuinfo" ro
    bind_mount "$SHARED_DIR" "$ROOT/mnt/shared" ro
    bind_mount "$WORK_DIR" "$ROOT/mnt/work"
    # pip inside the root needs name resolution and, behind an intercepting proxy, the host's CA bundle.
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    if [[ -n ${PIP_CERT:-} && -f $PIP_CERT ]]; then
        cp -L "$PIP_CERT" "$ROOT/etc/edgecount-host-ca.crt"
    fi
}

in_root() {
    # Run a command in the arm64 root with a clean environment plus pip's network settings.
    local env_vars=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PIP_DISABLE_PIP_VERSION_CHECK=1
        PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-120}" PYTHONDONTWRITEBYTECODE=)
    local name
    for name in PIP_INDEX_URL http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
        [[ -n ${!name:-} ]] && env_vars+=("$name=${!name}")
    done
    [[ -f $ROOT/etc/edgecount-host-ca.crt ]] && env_vars+=(PIP_CERT=/etc/edgecount-host-ca.crt)
    chroot "$ROOT" /usr/bin/env -i "${env_vars[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------
# Inputs: the wheel, the photos, the video, the models.

find_host_python() {
    if [[ -z $HOST_PYTHON ]]; then
        if [[ -x $REPO_DIR/.venv/bin/python ]]; then HOST_PYTHON=$REPO_DIR/.venv/bin/python; else HOST_PYTHON=python3; fi
    fi
    "$HOST_PYTHON" -c 'import cv2, numpy' 2>/dev/null ||
        fail_setup "$HOST_PYTHON cannot import cv2 and numpy; pass --host-python with a Python that has edgecount installed"
    REFERENCE_PYTHON=$(command -v "python$TARGET_PYTHON" || true)
    [[ -n $REFERENCE_PYTHON ]] ||
        fail_setup "python$TARGET_PYTHON not found on the host; the x86 reference must use the Python of Debian 12"
}

build_wheel() {
    log "building the edgecount wheel from $REPO_DIR"
    mkdir -p "$WORK_DIR/src" "$WORK_DIR/wheel"
    # Build from a copy, so setuptools' build/ and egg-info folders never land in the checkout.
    if git -C "$REPO_DIR" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$REPO_DIR" ls-files -z --cached --others --exclude-standard |
            (cd "$REPO_DIR" && xargs -0 cp --parents -t "$WORK_DIR/src")
    else
        cp -r "$REPO_DIR/." "$WORK_DIR/src"
    fi
    "$REFERENCE_PYTHON" -m pip wheel --quiet --no-deps -w "$WORK_DIR/wheel" "$WORK_DIR/src" >&2 ||
        fail_setup "pip wheel failed for $REPO_DIR"
    WHEEL_NAME=$(basename "$(ls "$WORK_DIR"/wheel/edgecount-*.whl)")
    log "wheel: $WHEEL_NAME"
}

prepare_inputs() {
    local default_run=$REPO_DIR/runs/av
    if [[ -z $RUN_DIR && -f $default_run/model_float32.tflite && -f $default_run/model_int8.tflite ]]; then
        RUN_DIR=$default_run
    fi
    mkdir -p "$WORK_DIR/models" "$WORK_DIR/results"
    local build_args=()
    if [[ -n $RUN_DIR ]]; then
        [[ -d $RUN_DIR ]] || fail_setup "run folder $RUN_DIR not found"
        local mode
        for mode in float32 float16 dynamic int8; do
            [[ -f $RUN_DIR/model_$mode.tflite ]] && cp "$RUN_DIR/model_$mode.tflite" "$WORK_DIR/models/"
        done
        compgen -G "$WORK_DIR/models/model_*.tflite" >/dev/null ||
            fail_setup "$RUN_DIR has no model_<mode>.tflite files; convert the run first (edgecount convert)"
        log "models from $RUN_DIR: $(cd "$WORK_DIR/models" && echo model_*.tflite)"
    else
        log "no run folder: building small alpha 0.35 models with TensorFlow on the host"
        build_args=(--build-models)
    fi
    "$HOST_PYTHON" "$SCRIPTS_DIR/prepare_inputs.py" --shared "$SHARED_DIR" --out "$WORK_DIR" \
        --images "$IMAGE_COUNT" --video-photos "$VIDEO_PHOTOS" "${build_args[@]}" >&2 ||
        fail_setup "preparing the photos, video or models failed"
    cp "$SCRIPTS_DIR/probe.py" "$WORK_DIR/probe.py"
}

# ---------------------------------------------------------------------------------------------
# The checks.

# setup_venv SIDE VARIANT: SIDE is arm64 or x86, VARIANT litert or tflite-runtime.
setup_venv() {
    local side=$1 variant=$2 extras="" start end
    [[ $variant == tflite-runtime ]] && extras="[tflite-runtime]"
    local venv_dir=/opt/edgecount-check/venv-$variant requirement="/mnt/work/wheel/$WHEEL_NAME$extras"
    start=$(date +%s)
    if [[ $side == arm64 ]]; then
        log "arm64: creating $venv_dir and installing $WHEEL_NAME$extras (emulated, several minutes)"
        in_root rm -rf "$venv_dir"
        in_root python3 -m venv "$venv_dir"
        # --no-compile: Python writes bytecode only for the modules it imports, on first use. pip's
        # compiling wrote 27 MB of .pyc into the litert venv, mostly of code the runtime never runs.
        in_root "$venv_dir/bin/pip" install --quiet --no-compile "$requirement" >&2
        in_root "$venv_dir/bin/pip" freeze --all >"$WORK_DIR/results/freeze-arm64-$variant.txt"
    else
        venv_dir="$WORK_DIR/x86/venv-$variant"
        requirement="$WORK_DIR/wheel/$WHEEL_NAME$extras"
        log "x86: creating $venv_dir with the versions the arm64 venv resolved"
        grep -v -E '^(edgecount|pip|setuptools|wheel)( |=|@)' "$WORK_DIR/results/freeze-arm64-$variant.txt" \
            >"$WORK_DIR/results/constraints-$variant.txt"
        "$REFERENCE_PYTHON" -m venv "$venv_dir"
        "$venv_dir/bin/pip" install --quiet --no-compile -c "$WORK_DIR/results/constraints-$variant.txt" "$requirement" >&2
        "$venv_dir/bin/pip" freeze --all >"$WORK_DIR/results/freeze-x86-$variant.txt"
    fi
    end=$(date +%s)
    echo $((end - start)) >"$WORK_DIR/results/install-seconds-$side-$variant.txt"
}

# run_side SIDE VARIANT: the probe plus the edgecount count and webcam commands.
run_side() {
    local side=$1 variant=$2 backend=$2 python venv_dir data_dir work_dir model name
    if [[ $side == arm64 ]]; then
        venv_dir=/opt/edgecount-check/venv-$variant data_dir=/mnt/shared/data/av-faces work_dir=/mnt/work
        run() { in_root "$@"; }
    else
        venv_dir="$WORK_DIR/x86/venv-$variant" data_dir="$SHARED_DIR/data/av-faces" work_dir="$WORK_DIR"
        # From the work folder, so that no checkout in the current folder shadows the venv's edgecount.
        run() { (cd "$WORK_DIR" && env -u PYTHONPATH "$@"); }
    fi
    python="$venv_dir/bin/python"
    local tag="$side-$variant"
    log "$side: probing with the $variant backend"
    if [[ $side == arm64 ]]; then
        local models=("$WORK_DIR"/models/model_*.tflite)
        run "$venv_dir/bin/edgecount" doctor "$work_dir/models/$(basename "${models[-1]}")" --json --no-devices \
            --backend "$backend" >"$WORK_DIR/results/doctor-$tag.json" 2>"$WORK_DIR/results/doctor-$tag.err" || true
    fi
    run "$python" "$work_dir/probe.py" --backend "$backend" --models "$work_dir/models" \
        --images-root "$data_dir/images" --images "$work_dir/images.txt" --video "$work_dir/video.avi" --venv "$venv_dir" \
        --out "$work_dir/results/probe-$tag.json" >&2

    for model in "$WORK_DIR"/models/model_*.tflite; do
        name=$(basename "$model" .tflite)
        log "$side: edgecount count and webcam, $name, $variant"
        mapfile -t photos < <(sed "s|^|$data_dir/images/|" "$WORK_DIR/images.txt")
        run "$venv_dir/bin/edgecount" count "$work_dir/models/$name.tflite" "${photos[@]}" \
            --backend "$backend" --json >"$WORK_DIR/results/count-$tag-$name.json" \
            2>"$WORK_DIR/results/count-$tag-$name.err" || true
        run "$venv_dir/bin/edgecount" webcam "$work_dir/models/$name.tflite" --source "$work_dir/video.avi" \
            --backend "$backend" --json >"$WORK_DIR/results/webcam-$tag-$name.jsonl" \
            2>"$WORK_DIR/results/webcam-$tag-$name.err" || true
    done
}

main() {
    require_root "$@"
    [[ -d $SHARED_DIR/data/av-faces/images ]] ||
        fail_setup "$SHARED_DIR/data/av-faces/images not found; pass --shared with the folder holding data/av-faces"
    SHARED_DIR=$(cd "$SHARED_DIR" && pwd)
    install_host_packages
    register_binfmt
    detect_mirror
    mkdir -p "$CACHE_DIR"
    CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
    ROOT="$CACHE_DIR/root"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    bootstrap_root
    if ((SETUP_ONLY)); then
        log "setup done; the arm64 root is $ROOT"
        return
    fi

    find_host_python
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgecount-arm64.XXXXXX")
    build_wheel
    prepare_inputs
    mount_root

    local variant
    for variant in litert tflite-runtime; do
        setup_venv arm64 "$variant" || log "arm64: installing the $variant venv failed; its checks will fail"
        setup_venv x86 "$variant" || log "x86: installing the $variant venv failed; its checks will fail"
        # Bytes of the regular files right after the install, before any command wrote bytecode; the
        # probe counts the same files after the commands ran.
        find "$ROOT/opt/edgecount-check/venv-$variant" -type f -printf '%s\n' | awk '{ total += $1 } END { print total + 0 }' \
            >"$WORK_DIR/results/size-arm64-$variant.txt" || true
        run_side arm64 "$variant" || log "arm64: the $variant run stopped early"
        run_side x86 "$variant" || log "x86: the $variant run stopped early"
    done

    "$REFERENCE_PYTHON" "$SCRIPTS_DIR/compare.py" --work "$WORK_DIR" --wheel "$WHEEL_NAME" \
        --mirror "$MIRROR" --run "${RUN_DIR:-built on the host}" --cpu "$CPU_MODEL" | tee "$CACHE_DIR/last-summary.txt"
}

# One line, so that bash never reads past it if this file changes while a run is in progress.
main "$@"; exit
