"""Tests of bindings/python/rebound.py against the real librebound (tests/c/run.sh runs
them with REBOUND_LIB and REBOUND_BIN set)."""

import os
import stat
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rebound  # noqa: E402

REBOUND_BIN = os.environ.get("REBOUND_BIN", "rebound")


@pytest.fixture
def device(tmp_path, monkeypatch):
    """A sealed golden-mode set in tmp_path; REBOUND_CONFIG points at it."""
    live, golden = tmp_path / "live", tmp_path / "golden"
    (live / "etc").mkdir(parents=True)
    golden.mkdir()
    (live / "etc" / "app.conf").write_text("threshold=10\n")
    (live / "etc" / "net.conf").write_text("dhcp=yes\n")
    os.chmod(live / "etc" / "app.conf", 0o640)
    cfg = tmp_path / "rebound.toml"
    cfg.write_text(
        '[[set]]\nname = "config"\nmode = "golden"\nlive = "%s"\ngolden = "%s"\ninclude = ["etc/**"]\n'
        % (live, golden)
    )
    subprocess.run([REBOUND_BIN, "-c", str(cfg), "seal"], check=True, stdout=subprocess.DEVNULL)
    monkeypatch.setenv("REBOUND_CONFIG", str(cfg))
    monkeypatch.setattr(rebound, "_default", None)
    return tmp_path


def test_the_seed_flow_through_module_functions(device):
    app = device / "live" / "etc" / "app.conf"
    rebound.verify()
    app.write_text("bit rot\n")
    with pytest.raises(rebound.DamageFound) as e:
        rebound.verify()
    assert e.value.status == 1
    assert "app.conf" in e.value.message
    rebound.boot()
    assert app.read_text() == "threshold=10\n"
    rebound.write(str(app), b"threshold=20\n")
    assert app.read_text() == "threshold=20\n"
    assert stat.S_IMODE(app.stat().st_mode) == 0o640
    rebound.write(app, "threshold=30\n")  # str data, path-like path
    rebound.boot("config")
    assert app.read_text() == "threshold=30\n"
    net = device / "live" / "etc" / "net.conf"
    net.write_text("dhcp=no\n")
    rebound.commit(str(net))
    rebound.verify("config")
    rebound.boot()
    assert net.read_text() == "dhcp=no\n"
    st = rebound.status()
    assert isinstance(st, list) and [s["set"] for s in st] == ["config"]
    assert st[0]["mode"] == "golden"


def test_errors_carry_status_and_text(device):
    with rebound.open(str(device / "rebound.toml"), wait=1) as rb:
        with pytest.raises(rebound.ReboundError) as e:
            rb.write(str(device / "elsewhere.txt"), b"x")
        assert e.value.status == 2 and "elsewhere.txt" in e.value.message
        assert not isinstance(e.value, (rebound.DamageFound, rebound.Lost))
        with pytest.raises(rebound.ReboundError) as e:
            rb.commit(b"/x/\xff.conf")
        assert "not UTF-8" in e.value.message
        with pytest.raises(rebound.ReboundError) as e:
            rb.verify("no-such-set")
        assert "no-such-set" in e.value.message
        (device / "live" / "etc" / "app.conf").write_text("rot\n")
        (device / "golden" / "etc" / "app.conf").write_text("rot\n")
        with pytest.raises(rebound.Lost) as e:
            rb.boot()
        assert e.value.status == 3 and "app.conf" in e.value.message
    with pytest.raises(rebound.ReboundError) as e:
        rb.verify()
    assert "closed" in e.value.message


def test_a_bad_configuration_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[set]]\nmode = 'sideways'\n")
    with pytest.raises(rebound.ReboundError) as e:
        rebound.open(str(bad))
    assert e.value.status == 2 and "bad.toml" in e.value.message


def test_threads_share_a_handle(device):
    live = device / "live" / "etc"
    with rebound.open(str(device / "rebound.toml")) as rb:
        errors = []

        def work(name):
            try:
                for i in range(5):
                    rb.write(str(live / name), "%s %d\n" % (name, i))
            except rebound.ReboundError as e:  # pragma: no cover (reported below)
                errors.append(e)

        ts = [threading.Thread(target=work, args=(n,)) for n in ("a.conf", "b.conf")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert errors == []
        rb.verify()
        assert (live / "a.conf").read_text() == "a.conf 4\n"
        assert (live / "b.conf").read_text() == "b.conf 4\n"
