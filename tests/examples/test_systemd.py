"""Tests of the unattended deployment in ``examples/systemd``: the unit, its settings file, the
logrotate rule and the install script, checked with the real systemd-analyze, logrotate, bash and
shellcheck where this machine has them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "examples" / "systemd"
UNIT = SYSTEMD_DIR / "edgecount.service"
ENV_FILE = SYSTEMD_DIR / "edgecount.env"
LOGROTATE = SYSTEMD_DIR / "edgecount.logrotate"
INSTALL = SYSTEMD_DIR / "install.sh"
VENV_EDGECOUNT = "/opt/edgecount/venv/bin/edgecount"


def _read_unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into section -> key -> values; repeated keys such as DeviceAllow= keep every value."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _read_env() -> dict[str, str]:
    values = {}
    for raw in ENV_FILE.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            key, separator, value = raw.partition("=")
            assert separator, f"line without '=' in {ENV_FILE.name}: {raw!r}"
            values[key] = value
    return values


def _run_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd provides it)")
    # verify checks that ExecStart= is executable, and /opt/edgecount exists only on an installed Pi.
    unit = tmp_path / "edgecount.service"
    unit.write_text(UNIT.read_text().replace(VENV_EDGECOUNT, str(Path(sys.executable).with_name("edgecount"))))

    completed = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert "edgecount.service" not in completed.stderr, completed.stderr


def test_unit_security_exposure_is_low(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd provides it)")
    unit = tmp_path / "edgecount.service"
    shutil.copy(UNIT, unit)

    completed = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)

    if "offline" in completed.stderr and completed.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline option: {completed.stderr.strip()[:200]}")
    match = re.search(r"Overall exposure level for edgecount\.service: ([0-9.]+)", completed.stdout)
    assert match, completed.stdout[-500:] + completed.stderr
    # systemd rates 0 (locked down) to 10 (unprotected); below 3 is its "OK" band.
    assert float(match.group(1)) < 3.0


def test_unit_runs_webcam_as_video_user():
    unit = _read_unit()
    service = unit["Service"]

    assert service["User"] == ["edgecount"]
    assert service["SupplementaryGroups"] == ["video"]
    assert service["ExecStart"][0].startswith(f"{VENV_EDGECOUNT} webcam ${{EDGECOUNT_MODEL}}")
    assert "--csv ${EDGECOUNT_CSV}" in service["ExecStart"][0]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]
    assert service["EnvironmentFile"] == ["/etc/edgecount/edgecount.env"]
    assert service["LogsDirectory"] == ["edgecount"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert "network-online.target" in unit["Unit"]["Wants"][0]


def test_unit_hardening_keeps_camera_reachable():
    service = _read_unit()["Service"]

    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ProtectHome"] == ["yes"]
    assert service["DevicePolicy"] == ["closed"]
    assert "char-video4linux rw" in service["DeviceAllow"]
    assert "char-dma_heap rw" in service["DeviceAllow"]
    # PrivateDevices=yes would hide /dev/video* from the service.
    assert service.get("PrivateDevices", ["no"]) == ["no"]


def test_env_file_defines_every_unit_variable():
    used = set(re.findall(r"\$\{?(EDGECOUNT_[A-Z_]+)", UNIT.read_text()))
    env = _read_env()

    assert used <= set(env), f"undefined in {ENV_FILE.name}: {sorted(used - set(env))}"
    # ProtectSystem=strict leaves only the LogsDirectory= folder writable.
    assert env["EDGECOUNT_CSV"].startswith("/var/log/edgecount/")
    assert env["EDGECOUNT_MODEL"].startswith("/opt/edgecount/models/")


@pytest.mark.parametrize("source", ["/dev/null", "picamera2", "http://127.0.0.1:8080/stream.mjpg", "clip.mp4"])
def test_wait_for_camera_passes_ready_sources(source: str):
    command = _read_unit()["Service"]["ExecStartPre"][0]
    # systemd turns "$$" into "$" before it runs the command.
    script = shlex.split(command.replace("$$", "$"))[2]

    completed = subprocess.run(["/bin/sh", "-c", script], env={**os.environ, "EDGECOUNT_SOURCE": source}, capture_output=True, text=True, timeout=20)

    assert completed.returncode == 0, completed.stderr


def test_unit_command_line_counts_video(tmp_path: Path, tiny_run: Path, real_photo_paths: list[Path], video_writer):
    """The unit's ExecStart, with the shipped settings, runs the real command on a video file."""
    from edgecount.cli import main

    env = _read_env()
    video = video_writer(tmp_path / "clip.avi", real_photo_paths[:3], frames=12)
    env.update(EDGECOUNT_MODEL=str(tiny_run / "model_int8.tflite"), EDGECOUNT_SOURCE=str(video), EDGECOUNT_CSV=str(tmp_path / "counts.csv"))
    command = _read_unit()["Service"]["ExecStart"][0]
    expanded = re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], command)
    expanded = re.sub(r"\$(\w+)", lambda match: env[match.group(1)], expanded)
    arguments = shlex.split(expanded)[1:]

    with pytest.raises(SystemExit) as stop:
        main(arguments)

    assert stop.value.code in (0, None)
    rows = (tmp_path / "counts.csv").read_text().splitlines()
    assert rows[0] == "timestamp,frame,count,smoothed,latency_ms,fps"
    # --every 5 over 12 frames counts frames 1, 6 and 11.
    assert [row.split(",")[1] for row in rows[1:]] == ["1", "6", "11"]


def test_logrotate_rotates_and_recreates_csv(tmp_path: Path):
    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None)
    if logrotate is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "counts.csv").write_text("timestamp,frame,count,smoothed,latency_ms,fps\n2026-01-01T00:00:00,1,2.0,2.0,10.0,1.0\n")
    marker = tmp_path / "restarted"
    config = (
        LOGROTATE.read_text()
        .replace("/var/log/edgecount", str(logs))
        .replace("edgecount edgecount", f"{user} {group}")
        .replace("/bin/systemctl try-restart edgecount.service", f"touch {marker}")
    )
    (tmp_path / "edgecount.logrotate").write_text(config)

    completed = subprocess.run(
        [logrotate, "--force", "--verbose", "--state", str(tmp_path / "state"), str(tmp_path / "edgecount.logrotate")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    rotated = sorted(path.name for path in logs.iterdir() if path.name != "counts.csv")
    assert len(rotated) == 1, rotated
    assert rotated[0].startswith("counts.csv-")
    assert (logs / "counts.csv").read_text() == ""
    assert marker.exists()


def test_install_script_bash_syntax():
    completed = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True, timeout=30)

    assert completed.returncode == 0, completed.stderr


def test_install_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")

    completed = subprocess.run([shellcheck, str(INSTALL)], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stdout


def test_install_dry_run_lists_every_step(tmp_path: Path):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(b"placeholder")

    completed = _run_install("--dry-run", "--model", str(model), "--source", "/dev/video0")

    assert completed.returncode == 0, completed.stderr
    steps = completed.stdout
    assert "+ useradd --system" in steps or "user edgecount exists" in completed.stderr
    assert "+ usermod -aG video edgecount" in steps
    assert "python3 -m venv /opt/edgecount/venv" in steps or "/opt/edgecount/venv/bin/python" in steps
    assert "--system-site-packages" not in steps
    assert f"+ install -D -m 0644 {model} /opt/edgecount/models/model_int8.tflite" in steps
    assert "EDGECOUNT_SOURCE=/dev/video0" in steps
    assert "/etc/systemd/system/edgecount.service" in steps
    assert "/etc/logrotate.d/edgecount" in steps
    assert "edgecount doctor /opt/edgecount/models/model_int8.tflite" in steps
    assert steps.rstrip().endswith("+ systemctl restart edgecount.service")


def test_install_picamera2_uses_system_packages(tmp_path: Path):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(b"placeholder")

    completed = _run_install("--dry-run", "--model", str(model), "--source", "picamera2", "--picamera2", "--no-start")

    assert completed.returncode == 0, completed.stderr
    assert "python3-picamera2" in completed.stdout
    assert "-m venv --system-site-packages /opt/edgecount/venv" in completed.stdout
    assert re.search(r"pip install .* edgecount numpy(==[0-9.]+|<2)", completed.stdout)
    assert "+ systemctl restart" not in completed.stdout
    assert "+ systemctl enable edgecount.service" in completed.stdout


def test_install_missing_model_fails(tmp_path: Path):
    completed = _run_install("--dry-run", "--model", str(tmp_path / "absent.tflite"))

    assert completed.returncode == 1
    assert "model file" in completed.stderr
    assert "not found" in completed.stderr


def test_install_without_model_is_usage_error():
    if Path("/etc/edgecount/edgecount.env").exists():
        pytest.skip("edgecount is installed on this machine, so --model is optional")

    completed = _run_install("--dry-run")

    assert completed.returncode == 2
    assert "--model is required" in completed.stderr


def test_install_unknown_option_is_usage_error():
    completed = _run_install("--prefix", "/tmp/x")

    assert completed.returncode == 2
    assert "unknown option '--prefix'" in completed.stderr


def test_install_uninstall_dry_run_keeps_data():
    completed = _run_install("--dry-run", "--uninstall")

    assert completed.returncode == 0, completed.stderr
    assert "+ systemctl disable --now edgecount.service" in completed.stdout
    assert "rm -rf" not in completed.stdout
    assert "kept /opt/edgecount" in completed.stderr
