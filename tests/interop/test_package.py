"""The Debian package made by cargo-deb, checked with Debian's own tools.

KINEDGE_DEB is the host's (amd64) package, KINEDGE_DEB_ARM64 the arm64 one; scripts/test builds
both with `cargo deb --no-build` from binaries it has already built. Each is read with
dpkg-deb (control fields, conffiles, file list), unpacked into a temporary root, and its
postinst run there as dpkg would run it (DPKG_ROOT: systemd-sysusers and deb-systemd-helper
work inside that root; a private, empty /run keeps the "systemd is running" branches from
touching this machine). Then systemd-tmpfiles --create --root, systemd-analyze verify on the
unit, and the packaged binary's check-config on the packaged /etc/kinedge/kinedge.toml (under
qemu-user for arm64). A missing package is skipped, except in CI, where that is a failure.
"""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ELF_MACHINE = {"amd64": 62, "arm64": 183}
HOST_ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                           text=True, check=True).stdout.strip()
PACKAGES = {"amd64": "KINEDGE_DEB", "arm64": "KINEDGE_DEB_ARM64"}


def run(*cmd, check=True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                            **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module", params=sorted(PACKAGES))
def deb(request) -> tuple[str, Path]:
    arch, var = request.param, PACKAGES[request.param]
    value = os.environ.get(var)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{var} is not set (scripts/test builds the {arch} package)")
        pytest.skip(f"{var} is not set")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{var}={value} does not exist")
    return arch, path


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory) -> Path:
    """The package unpacked (data and control) into a fresh root."""
    _, path = deb
    root = tmp_path_factory.mktemp("root")
    run("dpkg-deb", "-x", path, root)
    run("dpkg-deb", "-e", path, root / "DEBIAN")
    return root


def field(path: Path, name: str) -> str:
    return run("dpkg-deb", "-f", path, name).stdout.strip()


def relations(text: str) -> list[set[str]]:
    """`a (>= 1), b | c` -> [{"a"}, {"b", "c"}]: package names, alternatives together."""
    return [{re.sub(r"\s*\(.*\)", "", alt).strip() for alt in group.split("|")}
            for group in text.split(",") if group.strip()]


def passwd_entry(root: Path, name: str) -> list[str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    raise AssertionError(f"no user {name} in {root}/etc/passwd")


def kinedge_cmd(arch: str, root: Path) -> list[str]:
    binary = root / "usr/bin/kinedge"
    if arch == HOST_ARCH:
        return [str(binary)]
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.fail("qemu-aarch64 not found (scripts/install-deps --cross installs qemu-user)")
    return [qemu, "-L", "/", str(binary)]


def test_control_fields(deb):
    arch, path = deb
    assert field(path, "Package") == "kinedge"
    assert field(path, "Architecture") == arch
    cargo_version = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
    assert field(path, "Version").startswith(cargo_version + "-")

    depends = relations(field(path, "Depends"))
    # $auto: what the binary links, found by dpkg-shlibdeps.
    for lib in ("libc6", "libglib2.0-0", "libgstreamer1.0-0", "libgstreamer-plugins-base1.0-0"):
        assert {lib} in depends, f"Depends lacks {lib}: {depends}"
    # The plugins every camera needs, and systemd-sysusers for the postinst.
    for plugins in ("gstreamer1.0-plugins-base", "gstreamer1.0-plugins-good",
                    "gstreamer1.0-plugins-bad"):
        assert {plugins} in depends, f"Depends lacks {plugins}: {depends}"
    assert {"systemd", "systemd-standalone-sysusers"} in depends
    recommends = relations(field(path, "Recommends"))
    assert {"gstreamer1.0-libav"} in recommends and {"gstreamer1.0-plugins-ugly"} in recommends


def test_apt_can_install_it(deb):
    """apt resolves every dependency from the configured Debian archive, removing nothing
    (a simulation; arm64 through multiarch, which scripts/install-deps --cross enables)."""
    arch, path = deb
    foreign = run("dpkg", "--print-foreign-architectures").stdout.split()
    if arch != HOST_ARCH and arch not in foreign:
        pytest.skip(f"dpkg has no foreign architecture {arch}")
    result = run("apt-get", "install", "--simulate", "--no-install-recommends", path.resolve())
    assert re.search(r"^Inst kinedge(:arm64)? ", result.stdout, re.M), result.stdout
    assert not re.search(r"^Remv ", result.stdout, re.M), result.stdout


def test_files_and_conffiles(deb, root):
    arch, path = deb
    listing = run("dpkg-deb", "--contents", path).stdout.splitlines()
    entries = {}
    for line in listing:
        mode, owner, _size, _date, _time, name = line.split(None, 5)
        entries[name.split(" -> ")[0].removeprefix(".")] = (mode, owner)
    assert all(owner == "0/0" for _, owner in entries.values()), listing

    expected = {
        "/usr/bin/kinedge": "-rwxr-xr-x",
        "/usr/lib/systemd/system/kinedge.service": "-rw-r--r--",
        "/usr/lib/sysusers.d/kinedge.conf": "-rw-r--r--",
        "/usr/lib/tmpfiles.d/kinedge.conf": "-rw-r--r--",
        "/etc/kinedge/kinedge.toml": "-rw-r--r--",
        "/usr/share/doc/kinedge/README.md": "-rw-r--r--",
        "/usr/share/doc/kinedge/kinedge-v4l2.conf": "-rw-r--r--",
        "/usr/share/doc/kinedge/copyright": "-rw-r--r--",
    }
    for doc in sorted((REPO / "docs").glob("*.md")):
        expected[f"/usr/share/doc/kinedge/docs/{doc.name}"] = "-rw-r--r--"
    for example in sorted((REPO / "devices/examples").iterdir()):
        expected[f"/usr/share/doc/kinedge/examples/devices/{example.name}"] = "-rw-r--r--"
    for example in sorted((REPO / "config/examples").rglob("*")):
        if example.is_file():
            rel = example.relative_to(REPO / "config/examples")
            expected[f"/usr/share/doc/kinedge/examples/{rel}"] = "-rw-r--r--"
    assert any("/examples/" in p and p.endswith("kinedge.toml") for p in expected), \
        "config/examples holds no kinedge.toml"
    for name, mode in expected.items():
        assert name in entries, f"{name} is not in the package"
        assert entries[name][0] == mode, f"{name} has mode {entries[name][0]}, expected {mode}"
    files = {name for name, (mode, _) in entries.items() if not mode.startswith("d")}
    assert files == set(expected), f"unexpected files: {sorted(files - set(expected))}"

    # Installed as they are in the repository.
    same = {
        "usr/lib/systemd/system/kinedge.service": "systemd/kinedge.service",
        "usr/lib/sysusers.d/kinedge.conf": "systemd/kinedge.sysusers",
        "usr/lib/tmpfiles.d/kinedge.conf": "systemd/kinedge.tmpfiles",
        "etc/kinedge/kinedge.toml": "config/kinedge.toml",
        "usr/share/doc/kinedge/kinedge-v4l2.conf": "systemd/kinedge-v4l2.conf",
    }
    for installed, source in same.items():
        assert (root / installed).read_bytes() == (REPO / source).read_bytes(), installed

    # Only the configuration file is a conffile: dpkg keeps local changes on upgrades.
    assert (root / "DEBIAN/conffiles").read_text().split() == ["/etc/kinedge/kinedge.toml"]

    # The binary is built for the package's architecture.
    header = (root / "usr/bin/kinedge").read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[arch]


def test_postinst_creates_the_user_and_enables_the_unit(deb, root):
    postinst = (root / "DEBIAN/postinst").read_text()
    # Starts the service only where systemd runs (not in a chroot building an SD card image).
    assert re.search(r'if \[ -d /run/systemd/system \]; then.*deb-systemd-invoke '
                     r'\$_dh_action kinedge\.service', postinst, re.S), postinst
    assert "systemd-tmpfiles --create kinedge.conf" in postinst
    assert "deb-systemd-invoke stop kinedge.service" in (root / "DEBIAN/prerm").read_text()

    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run the postinst in isolation")
    # As dpkg --root would run it, with a private empty /run (so "systemd is running" is false).
    env = dict(os.environ, DPKG_ROOT=str(root), DPKG_MAINTSCRIPT_PACKAGE="kinedge",
               DPKG_MAINTSCRIPT_NAME="postinst")
    script = 'mount -t tmpfs tmpfs /run && exec sh "$0" configure ""'
    result = run("unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                 root / "DEBIAN/postinst", env=env, check=False)
    if result.returncode != 0 and "unshare failed" in result.stderr and os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot run the postinst isolated (needs root): {result.stderr}")
        pytest.skip("running the postinst isolated needs root")
    assert result.returncode == 0, f"postinst failed:\n{result.stdout}\n{result.stderr}"

    user = passwd_entry(root, "kinedge")
    assert user[5:] == ["/var/lib/kinedge", "/usr/sbin/nologin"], user
    assert int(user[2]) < 1000, f"kinedge is not a system user: {user}"
    assert any(line.startswith("kinedge:") for line in (root / "etc/group").read_text().splitlines())
    wants = root / "etc/systemd/system/multi-user.target.wants/kinedge.service"
    assert wants.is_symlink(), "postinst did not enable kinedge.service"
    assert os.readlink(wants) == "/usr/lib/systemd/system/kinedge.service"


def test_tmpfiles_make_the_directories(deb, root):
    if not (root / "etc/passwd").exists():
        run("systemd-sysusers", f"--root={root}", "kinedge.conf")
    run("systemd-tmpfiles", "--create", f"--root={root}", "kinedge.conf")
    _, _, uid, gid, *_ = passwd_entry(root, "kinedge")
    for path, mode, owner, group in [("etc/kinedge", 0o2750, "0", gid),
                                     ("etc/kinedge/devices", 0o2750, "0", gid),
                                     ("etc/kinedge/keys", 0o700, uid, gid),
                                     ("var/lib/kinedge", 0o750, uid, gid)]:
        st = (root / path).stat()
        assert (st.st_mode & 0o7777, str(st.st_uid), str(st.st_gid)) == (mode, owner, group), \
            f"/{path}: mode {st.st_mode & 0o7777:o} owner {st.st_uid}:{st.st_gid}"


def test_unit_verifies(deb, root, tmp_path):
    """systemd-analyze verify, with the unit's /usr/bin/kinedge pointing into the unpacked root
    (verify checks that the commands exist and are executable)."""
    unit = (root / "usr/lib/systemd/system/kinedge.service").read_text()
    assert "ExecStart=/usr/bin/kinedge run --config /etc/kinedge/kinedge.toml" in unit
    (tmp_path / "kinedge.service").write_text(unit.replace("/usr/bin/kinedge",
                                                           str(root / "usr/bin/kinedge")))
    result = run("systemd-analyze", "verify", "--man=no", tmp_path / "kinedge.service", check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_installed_config_works_under_the_unit(deb, root):
    arch, _ = deb
    config = root / "etc/kinedge/kinedge.toml"
    parsed = tomllib.loads(config.read_text())
    # No data_dir: the service's $STATE_DIRECTORY (/var/lib/kinedge) is used.
    assert "data_dir" not in parsed.get("storage", {}), parsed.get("storage")
    # Device files next to the configuration: /etc/kinedge/devices.
    assert not Path(parsed.get("devices", {}).get("dir", "devices")).is_absolute()
    (root / "etc/kinedge/devices").mkdir(exist_ok=True)
    result = run(*kinedge_cmd(arch, root), "check-config", config)
    assert f"in {root}/etc/kinedge/devices" in result.stdout + result.stderr, result.stdout
