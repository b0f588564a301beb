"""``scopeseg serve``: starts on localhost and answers; refuses other hosts without --allow-remote + token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from scopeseg.cli import main


def test_refuses_remote_host_and_missing_root(capsys, tmp_path):
    assert main(["serve", str(tmp_path), "host=0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--allow-remote" in err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_serves_on_localhost(data_root):
    from scopeseg.serve.live import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scopeseg", "serve", str(data_root), f"port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as r:
                    status = json.loads(r.read())
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        assert status is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert status["roots"][0]["path"] == str(data_root.resolve())
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"http://127.0.0.1:{port}/" in proc.stdout.read()
