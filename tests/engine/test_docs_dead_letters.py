"""The examples of docs/dead-letters-and-failover.md are valid: its flows load without a
problem and its flowrun.toml and sentinel URLs are taken by the settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import redis_url
from engine.loader import Loader
from engine.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "dead-letters-and-failover.md"
TEXT = DOC.read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


@pytest.mark.parametrize("text", blocks("yaml"))
def test_the_flows_load(text: str, loader: Loader, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FLOWRUN_SECRET_ERP_TOKEN", "erp-token-for-the-doc")
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    flows = loader.load_paths([path])
    assert flows.ok, [str(p) for p in flows.problems]
    assert list(flows.flows) == ["erp-orders"]


def test_the_sentinel_urls_are_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml, = blocks("toml")
    (tmp_path / "flowrun.toml").write_text(toml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.redis_url is not None
    target = redis_url.parse(settings.redis_url)
    assert target is not None and target.master == "flowrun" and len(target.sentinels) == 3
    exported = re.search(r"FLOWRUN_REDIS_URL='([^']+)'", TEXT)
    assert exported is not None and redis_url.parse(exported.group(1)) == target
