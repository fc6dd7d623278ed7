#!/usr/bin/env bash
# Install edgecount as a systemd service on a Raspberry Pi (64-bit Raspberry Pi OS Bookworm) or any
# Debian-like system: a system user in the video group, a virtual environment, the model, the unit,
# its settings file and a logrotate rule. Run it again to upgrade; edited settings are kept.
#
#   sudo examples/systemd/install.sh --model runs/av/model_int8.tflite --source 0
#   sudo examples/systemd/install.sh --model model_int8.tflite --source picamera2 --picamera2
#   sudo examples/systemd/install.sh --uninstall
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=/opt/edgecount
SERVICE_USER=edgecount
CONFIG_DIR=/etc/edgecount
UNIT_PATH=/etc/systemd/system/edgecount.service
LOGROTATE_PATH=/etc/logrotate.d/edgecount
PACKAGE=edgecount
MODEL=""
SOURCE=""
PICAMERA2=0
START=1
UNINSTALL=0
PURGE=0
DRY_RUN=0

usage() {
    cat <<EOF
Usage: sudo $0 --model MODEL.tflite [options]
       sudo $0 --uninstall [--purge]

Install edgecount.service, which runs 'edgecount webcam' at boot and appends the counts to
/var/log/edgecount/counts.csv.

Options:
  --model PATH        the .tflite model to count with (copied to $PREFIX/models/); required
                      for a first install
  --source SOURCE     camera index (0), /dev/videoN, picamera2, an rtsp:// or http:// URL, or a
                      video file (default: keep the configured one; 0 on a first install)
  --picamera2         install python3-picamera2 with apt and give the venv the system packages,
                      for the Raspberry Pi camera module (--source picamera2)
  --package SPEC      what pip installs into the venv: a version such as 'edgecount==0.1.0' or a
                      wheel file (default: $PACKAGE)
  --no-start          install and enable, but do not start the service now
  --uninstall         stop, disable and remove the service, its settings and logrotate rule
  --purge             with --uninstall, also delete $PREFIX, the logs and the $SERVICE_USER user
  --dry-run           print the commands instead of running them
  -h, --help          show this help
EOF
}

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: error: %s; see --help\n' "$*" >&2; exit 2; }

run() {
    # Run a command, or only print it with --dry-run.
    if ((DRY_RUN)); then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

while (($#)); do
    case $1 in
        --model) MODEL=${2:-}; [[ -n $MODEL ]] || usage_error "--model needs a path"; shift 2 ;;
        --source) SOURCE=${2:-}; [[ -n $SOURCE ]] || usage_error "--source needs a value"; shift 2 ;;
        --package) PACKAGE=${2:-}; [[ -n $PACKAGE ]] || usage_error "--package needs a value"; shift 2 ;;
        --picamera2) PICAMERA2=1; shift ;;
        --no-start) START=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option '$1'" ;;
    esac
done

check_system() {
    if ((EUID != 0)) && ((!DRY_RUN)); then
        die "run as root: sudo $0 (with the same options)"
    fi
    if ! command -v systemctl >/dev/null; then
        ((DRY_RUN)) || die "systemctl not found; this script needs a systemd system"
        log "warning: systemctl not found; this system could not run the service"
    fi
    local bits
    bits=$(getconf LONG_BIT)
    if [[ $bits != 64 ]]; then
        die "this is a ${bits}-bit system ($(uname -m)); ai-edge-litert has no wheels for it. Install the 64-bit Raspberry Pi OS (Bookworm)"
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "python3 is $(python3 --version 2>&1); edgecount needs Python 3.10 or newer"
}

uninstall() {
    log "removing edgecount.service"
    run systemctl disable --now edgecount.service || true
    run rm -f "$UNIT_PATH" "$LOGROTATE_PATH"
    run systemctl daemon-reload
    if ((PURGE)); then
        log "deleting $PREFIX, $CONFIG_DIR, /var/log/edgecount and the $SERVICE_USER user"
        run rm -rf "$PREFIX" "$CONFIG_DIR" /var/log/edgecount
        if id -u "$SERVICE_USER" >/dev/null 2>&1; then
            run userdel "$SERVICE_USER"
        fi
    else
        log "kept $PREFIX, $CONFIG_DIR and /var/log/edgecount (delete them with --uninstall --purge)"
    fi
}

install_packages() {
    local packages=(python3-venv python3-pip logrotate)
    ((PICAMERA2)) && packages+=(python3-picamera2)
    log "installing ${packages[*]} with apt-get"
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
}

create_user() {
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        log "user $SERVICE_USER exists"
    else
        log "creating the system user $SERVICE_USER"
        run useradd --system --user-group --home-dir "$PREFIX" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    # The video group owns /dev/video*, /dev/media* and, on Raspberry Pi OS, /dev/dma_heap/*.
    run usermod -aG video "$SERVICE_USER"
}

create_venv() {
    local venv="$PREFIX/venv" options=()
    # picamera2 comes from apt (it needs libcamera's Python bindings), so the venv must see it.
    ((PICAMERA2)) && options+=(--system-site-packages)
    if [[ -x $venv/bin/python ]] && ((PICAMERA2)) && ! grep -q 'include-system-site-packages = true' "$venv/pyvenv.cfg"; then
        log "recreating $venv with --system-site-packages for picamera2"
        run rm -rf "$venv"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        log "creating the virtual environment $venv"
        run mkdir -p "$PREFIX"
        run python3 -m venv "${options[@]}" "$venv"
    fi
    local requirements=("$PACKAGE")
    if ((PICAMERA2)); then
        # picamera2's compiled helpers (simplejpeg) are built against Debian's NumPy; a NumPy 2 in the
        # venv would shadow it and break 'import picamera2'. Pinning it also makes pip choose an
        # opencv-python-headless release that supports it.
        local system_numpy
        system_numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo "")
        requirements+=("numpy${system_numpy:+==$system_numpy}${system_numpy:-<2}")
    fi
    log "pip install ${requirements[*]} (a few minutes on a Pi)"
    run "$venv/bin/pip" install --upgrade --disable-pip-version-check "${requirements[@]}"
}

install_model() {
    local target
    target="$PREFIX/models/$(basename "$MODEL")"
    run install -D -m 0644 "$MODEL" "$target"
    MODEL_TARGET=$target
}

write_settings() {
    local env_file="$CONFIG_DIR/edgecount.env"
    run install -d -m 0755 "$CONFIG_DIR"
    if [[ ! -f $env_file ]]; then
        log "writing $env_file"
        run install -m 0644 "$HERE/edgecount.env" "$env_file"
    else
        log "keeping the settings in $env_file"
    fi
    if [[ -n ${MODEL_TARGET:-} ]]; then
        run sed -i "s|^EDGECOUNT_MODEL=.*|EDGECOUNT_MODEL=$MODEL_TARGET|" "$env_file"
    fi
    if [[ -n $SOURCE ]]; then
        run sed -i "s|^EDGECOUNT_SOURCE=.*|EDGECOUNT_SOURCE=$SOURCE|" "$env_file"
    fi
    run install -m 0644 "$HERE/edgecount.service" "$UNIT_PATH"
    run install -m 0644 "$HERE/edgecount.logrotate" "$LOGROTATE_PATH"
}

check_install() {
    # The doctor loads the model and opens the cameras as the service user, so a missing group
    # membership, an unusable model or a broken interpreter shows up now, not at the first boot.
    log "checking the installation with 'edgecount doctor' as $SERVICE_USER"
    local model
    model=${MODEL_TARGET:-$(sed -n 's/^EDGECOUNT_MODEL=//p' "$CONFIG_DIR/edgecount.env")}
    if ! run runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/edgecount" doctor "$model"; then
        die "edgecount doctor found a problem (above); fix it and run this script again"
    fi
    if command -v systemd-analyze >/dev/null; then
        run systemd-analyze verify "$UNIT_PATH"
    fi
}

main() {
    [[ $SOURCE == *"|"* ]] && usage_error "--source must not contain '|'"
    if ((UNINSTALL)); then
        check_system
        uninstall
        return
    fi
    if [[ -z $MODEL && ! -f $CONFIG_DIR/edgecount.env ]]; then
        usage_error "--model is required for a first install"
    fi
    if [[ -n $MODEL ]]; then
        [[ -f $MODEL ]] || die "model file $MODEL not found; pass the .tflite file that 'edgecount convert' wrote"
        [[ $MODEL == *.tflite ]] || die "model $MODEL is not a .tflite file; pass one that 'edgecount convert' wrote"
        [[ $MODEL == *"|"* ]] && usage_error "--model must not contain '|'"
    fi
    check_system
    install_packages
    create_user
    create_venv
    [[ -n $MODEL ]] && install_model
    write_settings
    check_install

    run systemctl daemon-reload
    if ((START)); then
        # restart, not start: after an upgrade the running service must load the new code and settings.
        run systemctl enable edgecount.service
        run systemctl restart edgecount.service
        log "started; follow it with: journalctl -u edgecount -f   and   tail -f /var/log/edgecount/counts.csv"
    else
        run systemctl enable edgecount.service
        log "enabled; it starts at the next boot or with: sudo systemctl start edgecount"
    fi
}

main "$@"
